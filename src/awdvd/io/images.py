"""Reading image files: TIFF (incl. LZW, OME, ImageJ, multi-page), PNG, JPEG and OME-Zarr, with the pixel size
the file records; images too large for memory are read lazily (dask). Part of :mod:`awdvd.io`; the optics a file
records, and their check against a model's, are :mod:`awdvd.io.optics_metadata`."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import imageio.v3 as iio
import numpy as np
import tifffile

from .base import UNIT_TO_UM, ImageReadError
from .vendor import VENDOR_SUFFIXES, open_vendor

if TYPE_CHECKING:  # dask is imported only when an image is read lazily
    import dask.array

__all__ = ["ImageFile", "read_image", "image_shape", "image_stem", "is_image_folder", "check_pixel_um",
           "check_pixels", "check_readable", "quiet_tifffile", "open_tiff", "tiff_pixel_um", "read_zarr", "read_json",
           "IMAGE_SUFFIXES", "ZARR_SUFFIX", "LARGEST_IMAGE_IN_MEMORY_PX", "UNIT_TO_UM", "ImageReadError"]

#: the suffixes of image files awdvd reads (the vendors' through bioio, :mod:`awdvd.io.vendor`)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg") + VENDOR_SUFFIXES
# an OME-Zarr image is a folder whose name ends in .zarr (conventionally .ome.zarr)
ZARR_SUFFIX = ".zarr"

# Images up to this many pixels are read into memory and processed whole; larger ones are read lazily and
# processed in tiles (awdvd.restore.tiling.should_tile). 4096 x 4096: whole-image AWDVD holds about a dozen float32
# copies of the image (one per defocus level, plus Richardson-Lucy's work arrays), ~1-2 GB at this size, which
# keeps one worker under 3 GB; every camera frame (BBBC006 is 696 x 520, sCMOS chips 2048 x 2048 to
# 2560 x 2160) stays far below it, so only stitched or slide-scale images are tiled.
LARGEST_IMAGE_IN_MEMORY_PX = 4096 * 4096


@dataclass
class ImageFile:
    """Pixels and what the file says about them.

    data : (H, W) for one plane, (Z, H, W) for a stack (multi-page TIFF, OME-Zarr with a z axis); dtype as
        stored. A ``numpy.ndarray``, except for images of more than :data:`LARGEST_IMAGE_IN_MEMORY_PX` pixels
        (or ``read_image(..., lazy=True)``), where it is a lazily loaded ``dask.array.Array`` that reads only
        the pieces you slice (``numpy.asarray(data[y0:y1, x0:x1])``).
    pixel_um : physical pixel size in micrometres if the file records one (OME-XML, ImageJ/TIFF resolution,
        or the OME-Zarr scale transformation of the x axis).
    """

    data: np.ndarray | dask.array.Array
    path: Path
    pixel_um: float | None = None
    metadata: dict = field(default_factory=dict)


def is_image_folder(path: str | os.PathLike) -> bool:
    """True for a folder that is one image (a zarr store: name ends in ``.zarr``)."""
    path = Path(path)
    return path.is_dir() and path.name.lower().endswith(ZARR_SUFFIX)



class _TiffLog(logging.Handler):
    """Collects what tifffile logs while a file is read (it logs problems of a damaged file as warnings, which
    would otherwise reach the user's terminal line by line), so that one error can name the first."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        text = record.getMessage().strip()
        # tifffile starts its messages with the object's repr, e.g. "<tifffile.TiffPage 0 @8> ..."
        text = re.sub(r"^<tifffile\.[^>]*>\s*", "", text)
        if text and text not in self.messages:
            self.messages.append(text)


@contextlib.contextmanager
def quiet_tifffile():
    """While the block runs, tifffile's log goes to a list (yielded), not to stderr."""
    logger = logging.getLogger("tifffile")
    handler = _TiffLog()
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = saved


@contextlib.contextmanager
def open_tiff(path: Path):
    """A ``tifffile.TiffFile`` of ``path`` whose structure was checked: it holds an image, and every strip or
    tile the header names lies inside the file. Yields (tif, tifffile's log so far); ImageReadError with one
    sentence otherwise (truncated copies and headers that claim more pixels than the file holds are common
    when a transfer or an acquisition was interrupted)."""

    with quiet_tifffile() as log:
        try:
            tif = tifffile.TiffFile(path)
        except tifffile.TiffFileError as error:
            raise ImageReadError(f"{path} could not be read as an image ({error}); check the file or its "
                                 "extension") from error
        except Exception as error:
            raise _damaged(path, log, error) from error
        with tif:
            if not len(tif.pages) or not tif.series:
                raise _damaged(path, log, None)
            size = path.stat().st_size
            for page in tif.series[0].pages[:_PAGES_CHECKED]:
                if page is None or not hasattr(page, "dataoffsets"):
                    continue
                chunks = math.prod(getattr(page, "chunked", (1,)))
                segments = [(o, c) for o, c in zip(page.dataoffsets, page.databytecounts) if c]
                claimed = " x ".join(str(int(n)) for n in page.shape)
                if len(page.dataoffsets) < chunks:
                    raise ImageReadError(
                        f"{path}: its header claims {claimed} px, but names only {len(page.dataoffsets)} of the "
                        f"{chunks} pieces such an image is stored in; the file is corrupt or truncated")
                if any(o + c > size for o, c in segments):
                    end = max(o + c for o, c in segments)
                    raise ImageReadError(
                        f"{path} is truncated: its pixels ({claimed} px) end at byte {end} but the file has "
                        f"{size} bytes; copy it again from the source")
            yield tif, log


_PAGES_CHECKED = 4096  # pages of a stack whose strips are checked against the file size (a cheap header walk)


def _damaged(path: Path, log: list[str], error: BaseException | None) -> ImageReadError:
    """The one error of a TIFF that tifffile could open only in part (or not at all)."""
    detail = log[0] if log else (f"{type(error).__name__}: {error}" if error is not None else "no image in it")
    return ImageReadError(f"{path} is a damaged TIFF (truncated or corrupt: {detail}); copy it again from the source")


def check_readable(path: Path) -> None:
    """FileNotFoundError, IsADirectoryError or ImageReadError (one sentence) unless ``path`` is a non-empty file
    or an image folder (``*.zarr``)."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        if is_image_folder(path):
            return
        raise IsADirectoryError(f"{path} is a folder, not an image file (OME-Zarr images are folders named *.zarr)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes)")


def tiff_pixel_um(tif) -> float | None:
    """Pixel size from OME-XML (PhysicalSizeX) or ImageJ/TIFF resolution tags, in um."""
    if tif.ome_metadata:
        match = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        if match:
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
            scale = UNIT_TO_UM.get(unit.group(1) if unit else "µm")
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
    if unit in UNIT_TO_UM:
        return UNIT_TO_UM[unit] / per_unit
    if res_unit is not None and int(res_unit.value) == 3:  # centimetre
        return 1e4 / per_unit
    return None  # inches or no unit: a screen resolution, not a physical pixel size


def read_image(path: str | os.PathLike, *, lazy: bool | None = None) -> ImageFile:
    """Read one image file (or OME-Zarr folder).

    TIFF (any compression imagecodecs handles, LZW included; multi-page files become (Z, H, W) stacks;
    OME-TIFF and ImageJ pixel sizes are read), PNG, JPEG, and OME-Zarr (a folder ``*.zarr``, formats 0.4 and
    0.5; the pixel size is the scale of the x axis in the first (full-resolution) dataset, singleton t/c axes
    are dropped). RGB(A) and multi-channel images are refused: awdvd works on one fluorescence channel, so
    split channels first.

    Parameters
    ----------
    path : the file, or the ``.zarr`` folder.
    lazy : ``None`` (default) reads images of more than :data:`LARGEST_IMAGE_IN_MEMORY_PX` pixels lazily and
        smaller ones into memory; ``True`` / ``False`` force one or the other. Lazy reading covers OME-Zarr and
        TIFF; PNG and JPEG are always read whole. A lazy ``data`` is a ``dask.array.Array``.

    Zeiss CZI, Nikon ND2 and Leica LIF files are read through bioio (:mod:`awdvd.io.vendor`; one scene, lazily
    where large).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ImageReadError (not an image, or an unsupported layout).
    """
    path = Path(path)
    check_readable(path)
    suffix = ZARR_SUFFIX if path.is_dir() else path.suffix.lower()
    pixel_um = None
    metadata: dict = {}
    try:
        if suffix == ZARR_SUFFIX:
            data, pixel_um, metadata = read_zarr(path, lazy)
        elif suffix in (".tif", ".tiff"):
            data, pixel_um = _read_tiff(path, lazy)
        elif suffix in (".png", ".jpg", ".jpeg"):
            data = iio.imread(path)
        elif suffix in VENDOR_SUFFIXES:
            data, pixel_um = _read_vendor(path, lazy)
            metadata = {"format": suffix.lstrip(".")}
        else:
            raise ImageReadError(
                f"{path}: unsupported file type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)} or an OME-Zarr folder"
            )
    except ImageReadError:
        raise
    except Exception as error:  # the readers raise many types for a corrupt file; give one clear one
        raise ImageReadError(f"{path} could not be read as an image ({type(error).__name__}: {error})") from error
    if isinstance(data, np.ndarray) or not hasattr(data, "dask"):
        data = np.asarray(data)
        data = np.squeeze(data) if data.ndim > 2 else data
    elif data.ndim > 2:
        data = data.squeeze()
    check_pixels(path, tuple(data.shape), data.dtype)
    return ImageFile(data=data, path=path, pixel_um=pixel_um, metadata=metadata)


def check_pixels(path, shape: tuple[int, ...], dtype, *, colour: bool = False) -> None:
    """ImageReadError (one sentence naming ``path``) unless the pixels are one channel of intensities: a 2-D
    image or a (Z, H, W) stack of integer or float numbers. ``colour``: the file says its last axis holds
    colour samples (TIFF photometric RGB, several samples per pixel)."""
    dtype = np.dtype(dtype)
    if colour or (len(shape) == 3 and shape[-1] in (3, 4) and Path(path).suffix.lower() in (".png", ".jpg", ".jpeg")):
        raise ImageReadError(f"{path} is a colour (RGB) image of {' x '.join(map(str, shape))} values; awdvd needs "
                             "a single fluorescence channel: save that channel as a grey image (Fiji: Image > Color > "
                             "Split Channels)")
    if len(shape) not in (2, 3):
        raise ImageReadError(f"{path} has shape {tuple(shape)}; awdvd reads 2-D images and (Z, H, W) stacks")
    if dtype == bool:
        raise ImageReadError(f"{path} holds 1-bit (true/false) pixels: a mask, not intensities; awdvd needs the "
                             "microscope's integer or float image")
    if dtype.kind not in "uif":
        raise ImageReadError(f"{path} holds {dtype} pixels; awdvd needs integer or float intensities")


def image_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape ``read_image(path).data`` will have, read from the file's metadata only (TIFF, OME-Zarr; PNG and
    JPEG headers), e.g. to decide before reading whether an image is large.

    Raises the errors of :func:`read_image` for missing or unreadable files.
    """
    path = Path(path)
    check_readable(path)
    suffix = ZARR_SUFFIX if path.is_dir() else path.suffix.lower()
    try:
        if suffix == ZARR_SUFFIX:
            data, _, _ = read_zarr(path, True)
            shape = tuple(data.shape)
        elif suffix in (".tif", ".tiff"):
            with open_tiff(path) as (tif, _):
                shape = tuple(tif.series[0].shape)
        elif suffix in (".png", ".jpg", ".jpeg"):
            shape = tuple(iio.improps(path).shape)
        elif suffix in VENDOR_SUFFIXES:
            shape = tuple(_vendor_planes(path, open_vendor(path).data).shape)
        else:
            raise ImageReadError(f"{path}: unsupported file type {suffix!r}")
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{path} could not be read as an image ({type(error).__name__}: {error})") from error
    if len(shape) > 2:
        shape = tuple(s for s in shape if s != 1) or (1,)
    return tuple(int(s) for s in shape)


_NAME_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png", ".jpeg", ".jpg")


def image_stem(path: str | os.PathLike) -> str:
    """The name of an image without its format suffixes: ``a.tif``, ``a.ome.tif`` and ``a.ome.zarr`` all give
    ``a`` (so outputs are named ``a.awdvd...``, not ``a.ome.awdvd...``)."""
    name = Path(path).name
    lower = name.lower()
    for suffix in _NAME_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


_CHANNELS_HINT = ("awdvd deconvolve restores every channel from one map (--map-channel, --channels); "
                  "elsewhere give a single fluorescence channel")


def _is_large(shape: tuple[int, ...], lazy: bool | None) -> bool:
    return bool(lazy) if lazy is not None else math.prod(shape) > LARGEST_IMAGE_IN_MEMORY_PX


def _read_tiff(path: Path, lazy: bool | None):
    with open_tiff(path) as (tif, log):
        pixel_um = tiff_pixel_um(tif)
        series = tif.series[0]
        shape = tuple(series.shape)
        page = series.pages[0] if series.pages else tif.pages.first
        # colour: RGB(A) photometry, or several samples per pixel kept in the last axis
        colour = int(getattr(page, "photometric", 0)) in (2, 6) or (getattr(page, "samplesperpixel", 1) > 1
                                                                    and shape[-1] == page.samplesperpixel)
        axes = str(getattr(series, "axes", ""))
        if "C" in axes and shape[axes.index("C")] > 1:
            raise ImageReadError(f"{path} has {shape[axes.index('C')]} channels; {_CHANNELS_HINT}")
        check_pixels(path, tuple(s for s in shape if s != 1) if len(shape) > 2 else shape, series.dtype,
                     colour=colour)
        if not _is_large(shape, lazy):
            try:
                return tif.asarray(), pixel_um
            except Exception as error:  # damaged strips: one sentence, not the decoder's
                raise _damaged(path, log, error) from error
    import dask.array as da
    import zarr

    # the store keeps its own file handle open for as long as the array is used
    with quiet_tifffile():
        store = tifffile.imread(path, aszarr=True)
    node = zarr.open(store, mode="r")
    if isinstance(node, zarr.Group):  # pyramidal TIFF: level 0 is full resolution
        node = node["0"]
    return da.from_array(node, chunks=node.chunks), pixel_um


def _vendor_planes(path: Path, data):
    """A vendor file's (T, C, Z, Y, X) pixels as what read_image gives: one plane, a (Z, H, W) stack or a
    (T, H, W) time-lapse (lazy); several channels, or a time-lapse of stacks, refused as for TIFF."""
    frames, channels, planes = (int(s) for s in data.shape[:3])
    if channels > 1:
        raise ImageReadError(f"{path} has {channels} channels; {_CHANNELS_HINT}")
    if frames > 1 and planes > 1:
        raise ImageReadError(f"{path} holds {frames} time points of {planes} planes; awdvd reads one time-lapse or one "
                             "z-stack per file (save each time point as its own file)")
    return data[:, 0, 0] if frames > 1 else data[0, 0]


def _read_vendor(path: Path, lazy: bool | None):
    image = open_vendor(path)
    data = _vendor_planes(path, image.data)
    check_pixels(path, tuple(s for s in data.shape if s != 1) or (1,), data.dtype)
    return (data if _is_large(tuple(data.shape), lazy) else data.compute()), image.pixel_um


def _ngff_pixel_um(multiscale: dict, dataset: dict, axis_names: list[str]) -> float | None:
    """Pixel size of the x axis (um) from an OME-Zarr multiscale's scale transformations and axis units."""
    scale = np.ones(len(axis_names))
    for transforms in (dataset.get("coordinateTransformations", []), multiscale.get("coordinateTransformations", [])):
        for transform in transforms:
            if transform.get("type") == "scale" and "scale" in transform:
                scale = scale * np.asarray(transform["scale"], dtype=float)
    if "x" not in axis_names:
        return None
    axes = multiscale.get("axes", [])
    axis = axes[axis_names.index("x")] if axis_names.index("x") < len(axes) else None
    unit = axis.get("unit") if isinstance(axis, dict) else None
    factor = UNIT_TO_UM.get(unit) if unit else None
    if factor is None:
        return None  # no unit: the scale is in unknown units, not a physical pixel size
    value = float(scale[axis_names.index("x")]) * factor
    return value if math.isfinite(value) and value > 0 else None


def read_zarr(path: Path, lazy: bool | None, *, channels: bool = False):
    """(data, pixel_um, metadata) of an OME-Zarr folder or a bare zarr array: the full-resolution array with
    singleton axes kept (lazy as for :func:`read_image`), the x axis' pixel size (um) or None, and what the
    metadata says (format, version, axes). ImageReadError for a group without OME-Zarr metadata, or for several
    channels (unless ``channels``: :func:`awdvd.io.channels.read_channels`). Several time points are read as a
    (T, H, W) time-lapse, as from a TIFF (:func:`awdvd.io.channels.stack_axis` tells them from a z-stack)."""
    import zarr

    node = zarr.open(str(path), mode="r")
    metadata: dict = {"format": "zarr"}
    pixel_um = None
    if isinstance(node, zarr.Group):
        attrs = node.attrs.asdict()
        ome = attrs.get("ome", attrs)  # 0.5 nests the metadata under "ome"; 0.4 and earlier do not
        multiscales = ome.get("multiscales")
        if not multiscales:
            raise ImageReadError(f"{path} is a zarr group without OME-Zarr 'multiscales' metadata (not an OME-Zarr image)")
        multiscale = multiscales[0]
        dataset = multiscale["datasets"][0]  # the first dataset is the full resolution
        array = node[dataset["path"]]
        axes = multiscale.get("axes")
        if axes:
            axis_names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
        else:  # 0.1/0.2 have no axes: always 5-D tczyx
            axis_names = list("tczyx")[-array.ndim :]
        if len(axis_names) != array.ndim:
            raise ImageReadError(f"{path}: {len(axis_names)} axes named for a {array.ndim}-D array")
        pixel_um = _ngff_pixel_um(multiscale, dataset, axis_names)
        metadata.update(format="ome-zarr", ome_version=ome.get("version", multiscale.get("version")), axes=axis_names,
                        omero=ome.get("omero"))
    else:  # a bare zarr array: pixels, nothing else
        array = node
        axis_names = list("tczyx")[-array.ndim :] if array.ndim <= 5 else [f"dim{i}" for i in range(array.ndim)]
    for name, size in zip(axis_names, array.shape):
        if name == "c" and size > 1 and not channels:
            raise ImageReadError(f"{path} has {size} channels; {_CHANNELS_HINT}")
    if _is_large(array.shape, lazy):
        import dask.array as da

        return da.from_array(array, chunks=array.chunks), pixel_um, metadata
    return array[...], pixel_um, metadata


def check_pixel_um(pixel_um) -> float:
    """``pixel_um`` as a positive finite float (micrometres); TypeError / ValueError otherwise."""
    if isinstance(pixel_um, bool) or not isinstance(pixel_um, (int, float, np.number)):
        raise TypeError(f"pixel_um must be a number (micrometres), got {type(pixel_um).__name__}")
    if not (math.isfinite(pixel_um) and pixel_um > 0):
        raise ValueError(f"pixel_um must be a positive number of micrometres, got {pixel_um!r}")
    return float(pixel_um)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file written by :func:`write_json` (e.g. an output's sidecar); ValueError if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON file ({error})") from error
