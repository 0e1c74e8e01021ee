"""Image files: the only module that knows file formats (TIFF incl. LZW/OME/multi-page, PNG, JPEG).

Writes are atomic (temporary file in the target folder, then rename) and never replace an existing file
unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ImageFile",
    "read_image",
    "write_tiff",
    "write_png",
    "write_json",
    "write_csv",
    "atomic_path",
    "IMAGE_SUFFIXES",
    "ImageReadError",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """A file exists but is not an image awdvd can read."""


@dataclass
class ImageFile:
    """Pixels and what the file says about them.

    data : (H, W) for one plane, (Z, H, W) for a stack (multi-page TIFF); dtype as stored.
    pixel_um : physical pixel size in micrometres if the file records one (OME or ImageJ/TIFF resolution).
    """

    data: np.ndarray
    path: Path
    pixel_um: float | None = None
    metadata: dict = field(default_factory=dict)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes)")


_UNIT_TO_UM = {"um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0, "\\u00B5m": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6,
               "cm": 1e4}


def _tiff_pixel_um(tif) -> float | None:
    """Pixel size from OME-XML (PhysicalSizeX) or ImageJ/TIFF resolution tags, in um."""
    if tif.ome_metadata:
        match = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        if match:
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
            scale = _UNIT_TO_UM.get(unit.group(1) if unit else "µm")
            if scale is not None:
                return float(match.group(1)) * scale
    page = tif.pages.first
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if not num or not den:
        return None
    per_unit = num / den  # pixels per unit
    unit = None
    if tif.imagej_metadata:
        unit = tif.imagej_metadata.get("unit")
    res_unit = page.tags.get("ResolutionUnit")
    if unit in _UNIT_TO_UM:
        return _UNIT_TO_UM[unit] / per_unit
    if res_unit is not None and int(res_unit.value) == 3:  # centimetre
        return 1e4 / per_unit
    return None  # inches or no unit: a screen resolution, not a physical pixel size


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read one image file.

    TIFF (any compression imagecodecs handles, LZW included; multi-page files become (Z, H, W) stacks;
    OME-TIFF and ImageJ pixel sizes are read), PNG and JPEG. RGB(A) images are refused: awdvd works on one
    fluorescence channel, so split channels first.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ImageReadError (not an image, or an unsupported layout).
    """
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    pixel_um = None
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                data = tif.asarray()
                pixel_um = _tiff_pixel_um(tif)
        elif suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio

            data = iio.imread(path)
        else:
            raise ImageReadError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    except ImageReadError:
        raise
    except Exception as error:  # the readers raise many types for a corrupt file; give one clear one
        raise ImageReadError(f"{path} could not be read as an image ({type(error).__name__}: {error})") from error
    data = np.asarray(data)
    data = np.squeeze(data) if data.ndim > 2 else data
    if data.ndim == 3 and data.shape[-1] in (3, 4) and suffix in (".png", ".jpg", ".jpeg"):
        raise ImageReadError(f"{path} is a colour (RGB) image; awdvd needs a single fluorescence channel")
    if data.ndim not in (2, 3):
        raise ImageReadError(f"{path} has shape {data.shape}; awdvd reads 2-D images and (Z, H, W) stacks")
    if data.dtype.kind not in "uif" and data.dtype != bool:
        raise ImageReadError(f"{path} holds {data.dtype} pixels; awdvd needs integer or float intensities")
    return ImageFile(data=data, path=path, pixel_um=pixel_um)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Raises FileExistsError up front if ``path`` exists and ``overwrite`` is false, so nothing is computed
    in vain and nothing is replaced by accident.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True (--overwrite)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    pixel_um: float | None = None,
    overwrite: bool = False,
    description: dict | None = None,
) -> Path:
    """Write a 2-D image or (Z, H, W) stack as an ImageJ-compatible TIFF that Fiji and napari open with
    its pixel size (``pixel_um``, micrometres). Float data are written as float32, integers as stored
    (uint8/uint16; other integer types become float32). ``description`` is stored as JSON in the file's
    ImageJ info. Returns the path written.
    """
    import tifffile

    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"write_tiff writes 2-D images or (Z, H, W) stacks, got shape {data.shape}")
    if data.dtype not in (np.uint8, np.uint16, np.float32):
        data = data.astype(np.float32)
    kwargs: dict = {"imagej": True, "metadata": {"axes": "ZYX" if data.ndim == 3 else "YX"}}
    if pixel_um is not None:
        if not (np.isfinite(pixel_um) and pixel_um > 0):
            raise ValueError(f"pixel_um must be a positive number, got {pixel_um!r}")
        kwargs["resolution"] = (1.0 / pixel_um, 1.0 / pixel_um)
        kwargs["metadata"]["unit"] = "um"
    if description:
        kwargs["metadata"]["Info"] = json.dumps(description, sort_keys=True)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)
    return Path(path)


def write_png(path: str | os.PathLike, data: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write an 8-bit grey or RGB(A) PNG (figures, overlays, montages)."""
    import imageio.v3 as iio

    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise ValueError(f"write_png writes uint8 pictures, got {data.dtype}; scale the data first")
    with atomic_path(path, overwrite=overwrite) as tmp:
        iio.imwrite(tmp, data, extension=".png")
    return Path(path)


def write_json(path: str | os.PathLike, payload: dict, *, overwrite: bool = False) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True)
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text + "\n")
    return Path(path)


def write_csv(path: str | os.PathLike, header: list[str], rows, *, overwrite: bool = False) -> Path:
    """Write a table as comma-separated text (one header line, then one line per row), atomically.
    Floats are written with full precision (``repr``); NaN as "nan"."""
    import csv

    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])
    return Path(path)
