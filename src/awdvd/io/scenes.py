"""A vendor file's scenes (positions, wells) as files of their own: ``awdvd split-scenes``.

awdvd's commands take one field per file; a CZI, ND2 or LIF file of several scenes is written here as one OME-TIFF
per scene, ``STEM.SCENE.ome.tif``, with every axis it holds (T, C, Z, Y, X), the channels' names and emission
wavelengths, the pixel size and the objective's NA and immersion index (where the file records them), so that
``awdvd deconvolve`` and ``awdvd predict`` read the same optics from it. Planes are read (a reader's chunk at a
time: a plane or a z-stack) and written in order, never a whole scene at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import tifffile

from .images import image_stem
from .vendor import is_vendor_file, open_vendor, scene_names
from .writers import atomic_path, check_output_folder, software

__all__ = ["split_scenes", "write_scene", "scene_count", "scene_stems", "scene_file_name", "ome_description"]

_OME_TYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16",
              np.dtype(np.uint32): "uint32", np.dtype(np.int32): "int32", np.dtype(np.float32): "float"}


def scene_file_name(path: str | os.PathLike, scene: str) -> str:
    """``STEM.SCENE.ome.tif``, the scene's name kept to letters, digits, ``-`` and ``_``."""
    return f"{image_stem(path)}.{re.sub(r'[^A-Za-z0-9_-]+', '_', scene).strip('_') or 'scene'}.ome.tif"


def ome_description(shape: tuple[int, ...], dtype, *, names, emission_um, pixel_um=None, na=None, n=None,
                    name: str = "image") -> str:
    """OME-XML for a (T, C, Z, Y, X) image written plane by plane in C order (DimensionOrder XYZCT), recording
    the channels' names and emission (nm), the pixel size, and the objective's NA and immersion index."""
    frames, channels, planes, rows, cols = shape
    channel_xml = "".join(
        f'<Channel ID="Channel:0:{i}" SamplesPerPixel="1" Name={quoteattr(str(label))}'
        + (f' EmissionWavelength="{emission * 1000:.6g}" EmissionWavelengthUnit="nm"' if emission else "") + "/>"
        for i, (label, emission) in enumerate(zip(names, emission_um)))
    size = f' PhysicalSizeX="{pixel_um:.9g}" PhysicalSizeXUnit="µm" PhysicalSizeY="{pixel_um:.9g}" ' \
           'PhysicalSizeYUnit="µm"' if pixel_um else ""
    instrument = (f'<Instrument ID="Instrument:0"><Objective ID="Objective:0:0" LensNA="{na:.6g}"/></Instrument>'
                  if na else "")
    settings = ('<InstrumentRef ID="Instrument:0"/>' if na else "") + (
        f'<ObjectiveSettings ID="Objective:0:0" RefractiveIndex="{n:.6g}"/>' if n and na else "")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            f'{instrument}<Image ID="Image:0" Name={quoteattr(name)}>{settings}'
            f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="{_OME_TYPES[np.dtype(dtype)]}" SizeX="{cols}" '
            f'SizeY="{rows}" SizeZ="{planes}" SizeC="{channels}" SizeT="{frames}"{size}>'
            f'{channel_xml}<TiffData/></Pixels></Image></OME>')


def scene_count(path: str | os.PathLike) -> int:
    """How many scenes ``path`` holds: those of a CZI, ND2 or LIF file; 1 for any other file and for a file that
    cannot be read (its reader then says what is wrong)."""
    if not is_vendor_file(path):
        return 1
    try:
        return len(scene_names(path))
    except Exception:
        return 1


def scene_stems(path: str | os.PathLike, scenes: list[str] | None = None) -> list[str]:
    """``STEM.SCENE`` of every scene of ``path``, in the file's order (what :func:`split_scenes` names them, less
    ``.ome.tif``): unique, the scenes' names kept to letters, digits, ``-`` and ``_``. ``scenes``: their names,
    when already read (else read from the file)."""
    scenes = scene_names(path) if scenes is None else scenes
    names = [scene_file_name(path, scene) for scene in scenes]
    if len(set(names)) < len(names):  # names that differ only in characters a file name drops
        names = [scene_file_name(path, f"{i}_{scene}") for i, scene in enumerate(scenes)]
    return [name[: -len(".ome.tif")] for name in names]


def write_scene(path: str | os.PathLike, scene: int | str, target: str | os.PathLike, *,
                overwrite: bool = False) -> Path:
    """Write one scene (by index or name) of a CZI, ND2 or LIF file as the OME-TIFF ``target``, atomically, plane
    by plane, with every axis, the channels' names and emission, the pixel size, the NA and immersion index."""
    path, target = Path(path), Path(target)
    image = open_vendor(path, scene=scene)
    data = image.data
    dtype = np.dtype(np.float32) if np.dtype(data.dtype) == np.float64 else np.dtype(data.dtype)
    if dtype not in _OME_TYPES:
        raise ValueError(f"{path.name}: scene {image.scene} holds {dtype} pixels, which OME-TIFF cannot hold")
    description = ome_description(tuple(data.shape), dtype, names=image.names, emission_um=image.emission_um,
                                  pixel_um=image.pixel_um, na=image.optics.get("na"), n=image.optics.get("n"),
                                  name=f"{path.name} {image.scene}")
    frames, channels, planes = (int(s) for s in data.shape[:3])
    planes_in_order = (np.asarray(data[t, c, z]).astype(dtype, copy=False)
                       for t in range(frames) for c in range(channels) for z in range(planes))
    with atomic_path(target, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, planes_in_order, shape=(frames * channels * planes, *data.shape[3:]), dtype=dtype,
                         description=description.encode(), metadata=None, photometric="minisblack",
                         software=software())
    return target


def split_scenes(path: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
                 progress: Callable[[str, Path], None] | None = None) -> list[Path]:
    """Write every scene of a CZI, ND2 or LIF file as ``output/STEM.SCENE.ome.tif``; returns the files written.

    Pixels as stored (float64 as float32; other types the OME-TIFF cannot hold are refused); every output is
    written atomically, and none is written if one exists already (unless ``overwrite``). ``progress(scene,
    file)`` is called after each scene.

    Raises
    ------
    ImageReadError (not a vendor file, damaged), FileExistsError, ValueError (a pixel type OME cannot hold).
    """
    path, output = Path(path), Path(output)
    check_output_folder(output)
    scenes = scene_names(path)
    targets = [output / f"{stem}.ome.tif" for stem in scene_stems(path, scenes)]
    for target in targets:
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another output folder or pass --overwrite")
    written = []
    for index, (scene, target) in enumerate(zip(scenes, targets)):
        write_scene(path, index, target, overwrite=overwrite)
        written.append(target)
        if progress is not None:
            progress(scene, target)
    return written
