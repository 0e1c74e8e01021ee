"""The optics an image file records, and their check against a model's: :func:`read_ome_optics` reads the pixel
size, emission wavelength, NA and refractive index from OME-TIFF and OME-Zarr metadata (the pixel size alone from
ImageJ/TIFF resolution tags); :func:`check_optics` and :func:`check_pixel_size` compare what a file records with
the :class:`~awdvd.physics.optics.Optics` a model was made for, warning (:class:`OpticsWarning`,
:class:`PixelSizeWarning`) or raising (:class:`OpticsMismatchError`) on a mismatch. The pixels themselves are read
by :mod:`awdvd.io.images`. Part of :mod:`awdvd.io`."""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from .images import (
    UNIT_TO_UM,
    ImageReadError,
    check_pixel_um,
    check_readable,
    is_image_folder,
    open_tiff,
    read_zarr,
    tiff_pixel_um,
)
from .vendor import is_vendor_file, open_vendor

__all__ = ["read_ome_optics", "check_optics", "check_pixel_size", "OpticsWarning", "OpticsMismatchError",
           "PixelSizeWarning"]


class PixelSizeWarning(UserWarning):
    """An image's pixel size disagrees with the optics a model was made for."""


def check_pixel_size(file_pixel_um: float | None, optics_pixel_um: float, *, tolerance: float = 0.05) -> bool:
    """Warn (:class:`PixelSizeWarning`) if an image's pixel size disagrees with the optics' pixel size.

    The model's defocus levels are blur widths in pixels of the optics it was made for: an image sampled at
    another pixel size gets the wrong levels and the wrong PSFs.

    Parameters
    ----------
    file_pixel_um : the pixel size the file records (``ImageFile.pixel_um``), or ``None`` if it records none
        (nothing to compare: no warning).
    optics_pixel_um : the pixel size of the model's optics (``Optics.pixel_um``), um.
    tolerance : relative difference allowed (0.05 = 5%).

    Returns
    -------
    True if the sizes agree (or the file has none), False after warning.
    """
    optics_pixel_um = check_pixel_um(optics_pixel_um)
    if not (0 <= tolerance < 1):
        raise ValueError(f"tolerance is a relative difference in [0, 1), got {tolerance!r}")
    if file_pixel_um is None:
        return True
    file_pixel_um = check_pixel_um(file_pixel_um)
    if abs(file_pixel_um / optics_pixel_um - 1.0) <= tolerance:
        return True
    warnings.warn(
        f"the image's pixels are {file_pixel_um:.4g} um but the model's optics assume {optics_pixel_um:.4g} um "
        f"({file_pixel_um / optics_pixel_um:.2f}x); defocus levels and PSFs will be wrong. Resample the image to "
        f"{optics_pixel_um:.4g} um pixels or use a model made for these optics (--pixel-um).",
        PixelSizeWarning,
        stacklevel=2,
    )
    return False


class OpticsWarning(UserWarning):
    """The optics an image file records disagree with the optics a model was made for."""


class OpticsMismatchError(ValueError):
    """The optics an image file records disagree with the model's, and a strict check was asked for."""


_OPTICS_FIELDS = ("pixel_um", "wavelength_um", "na", "n")


def _ome_number(element, name: str, unit_name: str | None = None, default_unit: str = "µm") -> float | None:
    """An OME-XML attribute as a positive finite number in um (for lengths with ``unit_name``), or None when the
    file does not record it. A value recorded as zero, negative or not finite is an error (ValueError naming it):
    the file contradicts itself, and assuming the model's value would hide that."""
    if element is None or element.get(name) is None:
        return None
    try:
        value = float(element.get(name))
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"its OME-XML records {name}={element.get(name)!r}, which is not a positive size")
    if unit_name is not None:
        factor = UNIT_TO_UM.get(element.get(unit_name, default_unit))
        if factor is None:
            return None
        value *= factor
    return value if math.isfinite(value) and value > 0 else None


def _ome_xml_optics(text: str) -> dict:
    """pixel_um, wavelength_um, na, n and the first channel's acquisition mode (``modality``) from the first Image
    of an OME-XML document (None where absent)."""

    root = ET.fromstring(text)

    def find(node, tag):
        return None if node is None else next((e for e in node.iter() if e.tag.rsplit("}", 1)[-1] == tag), None)

    image = find(root, "Image")
    pixels = find(image, "Pixels")
    channel = find(pixels, "Channel")
    settings = find(image, "ObjectiveSettings")
    objective = None
    if settings is not None and settings.get("ID"):  # the objective the image names, else the first one
        objective = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Objective"
                          and e.get("ID") == settings.get("ID")), None)
    objective = objective if objective is not None else find(root, "Objective")
    return {
        "pixel_um": _ome_number(pixels, "PhysicalSizeX", "PhysicalSizeXUnit"),
        "wavelength_um": _ome_number(channel, "EmissionWavelength", "EmissionWavelengthUnit", default_unit="nm"),
        "na": _ome_number(objective, "LensNA"),
        "n": _ome_number(settings, "RefractiveIndex"),
        "modality": channel.get("AcquisitionMode") if channel is not None else None,
    }


def read_ome_optics(path: str | os.PathLike) -> dict:
    """The optics an OME-TIFF or OME-Zarr image records: pixel size, emission wavelength, NA, refractive index.

    OME-TIFF: from the OME-XML (``Pixels/@PhysicalSizeX``, the first ``Channel/@EmissionWavelength``, the
    image's ``Objective/@LensNA``, ``ObjectiveSettings/@RefractiveIndex``; units converted to um, an
    emission wavelength without unit is nm as OME defines). Plain (ImageJ) TIFF: the pixel size only.
    OME-Zarr: the pixel size of the multiscale metadata, and the rest from ``OME/METADATA.ome.xml`` where the
    converter (bioformats2raw) wrote one; NGFF itself records no wavelength or NA. CZI, ND2, LIF: what the
    vendor's metadata record (:func:`awdvd.io.vendor.open_vendor`).

    Returns
    -------
    dict with keys ``pixel_um``, ``wavelength_um``, ``na``, ``n`` (the :class:`~awdvd.physics.optics.Optics` field
    names; None where the file records nothing), ``modality`` (the microscope's acquisition mode as the file
    records it, in OME's words: "WideField", "LaserScanningConfocalMicroscopy", "SpinningDiskConfocal", ...;
    None where it records none) and ``source`` (what was read: "ome-xml", "tiff", "ome-zarr",
    "ome-zarr+ome-xml", "czi", "nd2+ome", "lif").
    """
    path = Path(path)
    check_readable(path)
    found: dict = dict.fromkeys((*_OPTICS_FIELDS, "modality"))
    try:
        if is_image_folder(path):
            _, pixel_um, _ = read_zarr(path, True, channels=True)
            found["pixel_um"] = pixel_um
            source = "ome-zarr"
            sidecar = path / "OME" / "METADATA.ome.xml"
            if sidecar.is_file():
                from_xml = _ome_xml_optics(sidecar.read_text(encoding="utf-8"))
                found.update({k: v for k, v in from_xml.items() if v is not None and found.get(k) is None})
                source = "ome-zarr+ome-xml"
        elif is_vendor_file(path):
            found.update(open_vendor(path).optics)
            source = found.pop("source")
        elif path.suffix.lower() in (".tif", ".tiff"):
            with open_tiff(path) as (tif, _):
                if tif.ome_metadata:
                    found.update(_ome_xml_optics(tif.ome_metadata))
                    source = "ome-xml"
                else:
                    found["pixel_um"] = tiff_pixel_um(tif)
                    source = "tiff"
        else:
            raise ImageReadError(f"{path}: optics are read from OME-TIFF, TIFF, OME-Zarr, CZI, ND2 and LIF images, not "
                                 f"{path.suffix!r}")
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{path}: could not read its optics metadata ({type(error).__name__}: {error})") from error
    found["source"] = source
    return found


def check_optics(file_optics: dict, model_optics, *, strict: bool = False, tolerance: float = 0.05) -> list[str]:
    """Compare the optics a file records (:func:`read_ome_optics`) with a model's.

    Parameters
    ----------
    file_optics : dict with any of ``pixel_um``, ``wavelength_um``, ``na``, ``n`` (None or missing: not
        recorded, not compared).
    model_optics : the model's :class:`~awdvd.physics.optics.Optics` (or its ``to_dict()``).
    strict : raise :class:`OpticsMismatchError` on any mismatch instead of warning.
    tolerance : relative difference allowed for each value (0.05 = 5%).

    Returns
    -------
    One message per mismatch (empty if all recorded values agree); each is also warned as
    :class:`OpticsWarning` unless ``strict``, where one error names them all.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance is a relative difference in [0, 1), got {tolerance!r}")
    model = model_optics.to_dict() if hasattr(model_optics, "to_dict") else dict(model_optics)
    names = {"pixel_um": ("pixel size", "um"), "wavelength_um": ("emission wavelength", "um"),
             "na": ("NA", ""), "n": ("immersion refractive index", "")}
    messages = []
    for key, (label, unit) in names.items():
        recorded = file_optics.get(key)
        if recorded is None or model.get(key) is None:
            continue
        recorded, expected = float(recorded), float(model[key])
        if abs(recorded / expected - 1.0) > tolerance:
            messages.append(f"{label} {recorded:.4g}{' ' + unit if unit else ''} in the file, "
                            f"{expected:.4g}{' ' + unit if unit else ''} in the model's optics")
    if messages and strict:
        raise OpticsMismatchError("the image's optics differ from the model's: " + "; ".join(messages)
                                  + ". Use a model made for these optics, or drop the strict optics check.")
    for message in messages:
        warnings.warn(f"{message}: defocus levels and PSFs may be wrong for this image", OpticsWarning, stacklevel=2)
    return messages
