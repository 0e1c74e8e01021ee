"""Microscope vendors' files: Zeiss CZI, Nikon ND2 and Leica LIF, read through bioio and its format plugins
(``pip install 'awdvd[formats]'``: bioio, bioio-czi, bioio-nd2, bioio-lif), with the optics they record.

:func:`open_vendor` gives the pixels as a lazy (T, C, Z, Y, X) array and, from the file's own metadata, the
pixel size, the channels' names and emission wavelengths, the objective's NA and the immersion index. The rest
of :mod:`awdvd.io` (:func:`~awdvd.io.read_image`, :func:`~awdvd.io.channels.read_channels`,
:func:`~awdvd.io.read_ome_optics`, ...) reads these files through it, so every command takes them.

A file of several scenes (positions, wells) is refused with their names by the readers, which take one field per
file; ``awdvd deconvolve`` and ``awdvd predict`` process each scene in turn (:mod:`awdvd.batch.scene_files`), and
:func:`awdvd.io.scenes.split_scenes` (``awdvd split-scenes``) writes each scene as its own OME-TIFF.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .base import UNIT_TO_UM, ImageReadError

__all__ = ["VENDOR_SUFFIXES", "VendorImage", "is_vendor_file", "open_vendor", "scene_names", "scene_shapes"]

#: file suffix -> (bioio plugin module, its PyPI name, the format in words)
_PLUGINS = {".czi": ("bioio_czi", "bioio-czi", "Zeiss CZI"), ".nd2": ("bioio_nd2", "bioio-nd2", "Nikon ND2"),
            ".lif": ("bioio_lif", "bioio-lif", "Leica LIF")}
VENDOR_SUFFIXES = tuple(_PLUGINS)


def is_vendor_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file of a microscope vendor's format (by its suffix)."""
    return Path(path).suffix.lower() in _PLUGINS


@dataclass
class VendorImage:
    """A vendor file's single scene. data : lazy (T, C, Z, Y, X) dask array, dtype as stored. names, emission_um :
    one per channel (emission None where the file records none). optics : ``pixel_um``, ``wavelength_um`` (the
    first channel's emission), ``na``, ``n``, ``modality`` (the acquisition mode, in OME's words; None where
    absent) and ``source``."""

    path: Path
    data: object
    names: list[str]
    emission_um: list[float | None]
    optics: dict = field(default_factory=dict)
    scene: str | None = None

    @property
    def axes(self) -> str:
        return "TCZYX"

    @property
    def pixel_um(self) -> float | None:
        return self.optics.get("pixel_um")


def _positive(value, scale: float = 1.0) -> float | None:
    try:
        value = float(value) * scale
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _czi_optics(root) -> tuple[list[float | None], dict]:
    """Emission per channel and the objective from a CZI's own metadata (``ImageDocument/Metadata/Information``),
    the paths Zeiss's own CZI-to-OME transform reads."""
    information = root.find("Metadata/Information") if root is not None else None
    if information is None:
        return [], {}
    channels = information.findall("Image/Dimensions/Channels/Channel")
    emission = [_positive(c.findtext("EmissionWavelength"), 1e-3) for c in channels]  # nm
    modality = next((c.findtext("AcquisitionMode") for c in channels if c.findtext("AcquisitionMode")), None)
    objectives = information.findall("Instrument/Objectives/Objective")
    ref = information.find("Image/ObjectiveSettings/ObjectiveRef")  # the objective the image was taken with
    chosen = [o for o in objectives if ref is not None and o.get("Id") == ref.get("Id")]
    objective = (chosen or objectives or [None])[0]
    return emission, {"na": _positive(objective.findtext("LensNA")) if objective is not None else None,
                      "n": _positive(information.findtext("Image/ObjectiveSettings/RefractiveIndex")),
                      "modality": modality}


def _ome_optics(ome, index: int = 0) -> tuple[list[float | None], dict]:
    """Emission per channel and the objective from an ``ome_types`` OME model (what bioio-nd2 gives), of image
    (scene) ``index``."""
    image = ome.images[min(index, len(ome.images) - 1)]
    modes = [getattr(c.acquisition_mode, "value", c.acquisition_mode) for c in image.pixels.channels]
    emission = []
    for channel in image.pixels.channels:
        unit = getattr(channel.emission_wavelength_unit, "value", "nm")
        emission.append(_positive(channel.emission_wavelength, UNIT_TO_UM.get(unit, math.nan)))
    objectives = [o for instrument in ome.instruments for o in instrument.objectives]
    settings = image.objective_settings
    if settings is not None and settings.id:
        objectives = [o for o in objectives if o.id == settings.id] or objectives
    return emission, {"na": _positive(objectives[0].lens_na) if objectives else None,
                      "n": _positive(settings.refractive_index) if settings is not None else None,
                      "modality": next((str(m) for m in modes if m), None)}


def _lif_optics(path: Path, index: int) -> tuple[list[float | None], dict, list[str]]:
    """Emission per channel, the objective and the channels' own names from a LIF's XML, where LAS X writes them
    (bioio-lif converts none of them to OME): ``ATLCameraSettingDefinition`` (a camera's, widefield) or
    ``ATLConfocalSettingDefinition``: ``NumericalAperture``, ``RefractionIndex``; per channel a
    ``WideFieldChannelInfo`` (matched to the image's channels by their LUT, else in order): ``EmissionWavelength``
    (nm) and ``UserDefName``."""
    import liffile

    with liffile.LifFile(path) as lif:
        image = lif.images[index].xml_element.find("Data/Image")
    settings, modality = image.find(".//ATLCameraSettingDefinition"), "WideField"
    if settings is None:
        settings, modality = image.find(".//ATLConfocalSettingDefinition"), "LaserScanningConfocalMicroscopy"
    objective = {"na": None, "n": None, "modality": None}
    if settings is not None:
        objective = {"na": _positive(settings.get("NumericalAperture")),
                     "n": _positive(settings.get("RefractionIndex")), "modality": modality}
    channels = image.findall("ImageDescription/Channels/ChannelDescription")
    infos = image.findall(".//WideFieldChannelInfo")
    by_lut = {info.get("LUT"): info for info in infos}
    if len(by_lut) < len(infos) or any(c.get("LUTName") not in by_lut for c in channels):
        by_lut = {}
    matched = [by_lut.get(c.get("LUTName")) if by_lut else (infos[i] if i < len(infos) else None)
               for i, c in enumerate(channels)]
    emission = [_positive(info.get("EmissionWavelength"), 1e-3) if info is not None else None for info in matched]
    names = [(info.get("UserDefName") or "").strip() if info is not None else "" for info in matched]
    return emission, objective, names


def _reason(error: BaseException) -> str:
    """A reader's error in one line: bioio lists every reader it tried over several lines; the last says why."""
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


@contextlib.contextmanager
def _quiet_bioio():
    """bioio logs each reader attempt that fails; the error awdvd raises says it once."""
    logger = logging.getLogger("bioio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _plugin(path: Path):
    module, package, words = _PLUGINS[path.suffix.lower()]
    try:
        import bioio

        return bioio, importlib.import_module(module), words
    except ImportError as error:
        raise ImageReadError(f"{path.name}: reading {words} files needs bioio and {package}; install them with "
                             "pip install 'awdvd[formats]'") from error


def _open(path: Path):
    """(BioImage, its scene names, the format in words)."""
    if not is_vendor_file(path):
        raise ImageReadError(f"{path.name}: not a {', '.join(VENDOR_SUFFIXES)} file")
    bioio, plugin, words = _plugin(path)
    try:
        with _quiet_bioio():
            image = bioio.BioImage(path, reader=plugin.Reader)
            scenes = [str(scene) for scene in image.scenes]
    except Exception as error:  # each plugin raises its own types for a damaged file
        raise ImageReadError(f"{path} could not be read as a {words} file ({_reason(error)})") from error
    return image, scenes, words


def scene_names(path: str | os.PathLike) -> list[str]:
    """The scenes (positions, wells) a CZI, ND2 or LIF file holds, by name, in the file's order."""
    return _open(Path(path))[1]


def scene_shapes(path: str | os.PathLike) -> list[tuple[int, int, int, int, int]]:
    """The (T, C, Z, Y, X) shape of every scene of a CZI, ND2 or LIF file, in the file's order (the file opened
    once; no pixels read)."""
    path = Path(path)
    image, scenes, words = _open(path)
    shapes = []
    try:
        with _quiet_bioio():
            for index in range(len(scenes)):
                image.set_scene(index)
                sizes = dict(zip(image.dims.order, image.dims.shape))
                shapes.append(tuple(int(sizes.get(axis, 1)) for axis in "TCZYX"))
    except Exception as error:
        raise ImageReadError(f"{path} could not be read as a {words} file ({_reason(error)})") from error
    return shapes


def open_vendor(path: str | os.PathLike, scene: int | str | None = None) -> VendorImage:
    """Open a CZI, ND2 or LIF file's pixels (lazily) with the optics and channels it records.

    scene : the scene to open, by index or name; None: the file's only scene (a file of several is refused with
        their names).

    Raises
    ------
    ImageReadError : not a vendor suffix, the plugin is not installed, a damaged file, several scenes and no
        ``scene``, a scene that does not exist, or colour (RGB) pixels.
    """
    path = Path(path)
    image, scenes, words = _open(path)
    if scene is None and len(scenes) > 1:
        listed = ", ".join(scenes[:6]) + (", ..." if len(scenes) > 6 else "")
        raise ImageReadError(f"{path.name} holds {len(scenes)} scenes ({listed}); open one with "
                             f"open_vendor(path, scene=...), restore them all with awdvd deconvolve, or write each as "
                             f"its own file with awdvd split-scenes {path.name} -o FOLDER")
    index = 0 if scene is None else scenes.index(scene) if scene in scenes else scene
    if not isinstance(index, int) or not 0 <= index < len(scenes):
        raise ImageReadError(f"{path.name} has no scene {scene!r}; its scenes are {', '.join(scenes)}")
    try:
        with _quiet_bioio():
            image.set_scene(index)
            order, shape = image.dims.order, image.dims.shape
            sizes = dict(zip(order, shape))
            if sizes.get("S", 1) > 1:
                raise ImageReadError(f"{path.name} holds colour (RGB) pixels; awdvd needs fluorescence channels")
            data = image.get_image_dask_data("TCZYX")
            names = [str(name) for name in image.channel_names]
            pixel_um = _positive(image.physical_pixel_sizes.X)
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{path} could not be read as a {words} file ({_reason(error)})") from error
    emission, objective, source = [], {}, path.suffix.lower().lstrip(".")
    try:
        if path.suffix.lower() == ".czi":
            emission, objective = _czi_optics(image.metadata)
        elif path.suffix.lower() == ".lif":
            emission, objective, own_names = _lif_optics(path, index)
            names = [own_names[i] if i < len(own_names) and own_names[i] else name for i, name in enumerate(names)]
        else:
            emission, objective = _ome_optics(image.ome_metadata, index)
            source += "+ome"
    except Exception as error:  # metadata a reader cannot convert: the optics count as not recorded
        source += f" (optics not read: {type(error).__name__})"
    channels = int(data.shape[1])
    emission = (list(emission) + [None] * channels)[:channels]
    names = [n if n else str(i) for i, n in enumerate((names + [""] * channels)[:channels])]
    optics = {"pixel_um": pixel_um, "wavelength_um": emission[0], "na": objective.get("na"), "n": objective.get("n"),
              "modality": objective.get("modality"), "source": source}
    return VendorImage(path=path, data=data, names=names, emission_um=emission, optics=optics, scene=scenes[index])
