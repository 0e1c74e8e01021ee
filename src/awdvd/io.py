"""Image files: the only module that knows file formats (TIFF incl. LZW/OME/multi-page, PNG, JPEG, OME-Zarr).

Writes are atomic (temporary file or folder in the target folder, then rename) and never replace an existing
file unless ``overwrite=True``.

Large images: :func:`read_image` returns images of more than :data:`LARGEST_IMAGE_IN_MEMORY_PX` pixels
(OME-Zarr, and TIFF that tifffile can map as a zarr store) as a lazily loaded ``dask.array.Array`` instead of
reading them into memory; :func:`open_ome_zarr_output` gives a zarr array to fill tile by tile
(``awdvd.tiles.tiled_map(..., out=...)``) that becomes an OME-Zarr image only once it is complete.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # dask is imported only when an image is read lazily
    import dask.array

__all__ = [
    "ImageFile",
    "read_image",
    "find_images",
    "plan_outputs",
    "BatchPlan",
    "write_tiff",
    "write_ome_tiff",
    "write_ome_zarr",
    "write_image",
    "open_ome_zarr_output",
    "open_image_output",
    "OUTPUT_FORMATS",
    "write_png",
    "write_json",
    "write_csv",
    "read_json",
    "image_shape",
    "image_stem",
    "atomic_path",
    "check_pixel_size",
    "is_image_folder",
    "IMAGE_SUFFIXES",
    "ZARR_SUFFIX",
    "LARGEST_IMAGE_IN_MEMORY_PX",
    "ImageReadError",
    "PixelSizeWarning",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
# an OME-Zarr image is a folder whose name ends in .zarr (conventionally .ome.zarr)
ZARR_SUFFIX = ".zarr"

# Images up to this many pixels are read into memory and processed whole; larger ones are read lazily and
# processed in tiles (awdvd.tiles.should_tile). 4096 x 4096: whole-image AWDVD holds about a dozen float32
# copies of the image (one per defocus level, plus Richardson-Lucy's work arrays), ~1-2 GB at this size, which
# keeps one worker under 3 GB; every camera frame (BBBC006 is 696 x 520, sCMOS chips 2048 x 2048 to
# 2560 x 2160) stays far below it, so only stitched or slide-scale images are tiled.
LARGEST_IMAGE_IN_MEMORY_PX = 4096 * 4096


class ImageReadError(ValueError):
    """A file exists but is not an image awdvd can read."""


class PixelSizeWarning(UserWarning):
    """An image's pixel size disagrees with the optics a model was made for."""


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


def find_images(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their image files, not recursive) or glob patterns.
    An OME-Zarr folder (``*.zarr``) counts as one image, named directly, matched by a pattern or inside a folder.

    Returns a sorted, de-duplicated list. Raises FileNotFoundError for a path or pattern that names nothing,
    and ValueError if no image file is found at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]

    def is_image(p: Path) -> bool:
        return (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) or is_image_folder(p)

    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if is_image_folder(path) or path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if is_image(p))
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file() or is_image_folder(p))
            if not matches:
                raise FileNotFoundError(f"the pattern {text!r} matches no file")
            found += [p for p in matches if is_image(p)]
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    unique = sorted(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}, *.zarr) in {', '.join(map(os.fspath, inputs))}")
    return unique


def _checked_outputs(paths: Sequence[Path], outputs_for: Callable[[Path], Iterable]) -> dict[Path, tuple[Path, ...]]:
    """outputs_for(path) for every input, checked: at least one output per file, no output is any input
    file (or inside an input folder), and no two files share an output."""
    plan: dict[Path, tuple[Path, ...]] = {}
    for path in paths:
        outputs = outputs_for(path)
        if isinstance(outputs, (str, os.PathLike)):
            outputs = [outputs]
        outputs = tuple(Path(o).absolute() for o in outputs)
        if not outputs:
            raise ValueError(f"outputs_for({path.name}) named no output; every file needs at least one output to resume")
        plan[path] = outputs
    inputs = {p.resolve(): p for p in paths}
    owner: dict[Path, Path] = {}
    for path, outputs in plan.items():
        for output in outputs:
            resolved = output.resolve()
            clash = inputs.get(resolved)
            if clash is None:
                clash = next((p for p in resolved.parents if p in inputs), None)  # inside an input .zarr folder
            if clash is None and output.exists():
                clash = next((p for p in paths if _same_file(p, output)), None)  # hard links
            if clash is not None:
                raise ValueError(
                    f"the output {output} of {path.name} would overwrite the input {clash}; outputs never replace "
                    "inputs: write them to another folder (-o) or name them differently. (Were outputs of an earlier "
                    "run written into the input folder? Then keep outputs in a folder of their own.)"
                )
            if resolved in owner and owner[resolved] != path:
                raise ValueError(
                    f"{owner[resolved].name} and {path.name} would both write {output}; give each file its own outputs"
                )
            owner[resolved] = path
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class BatchPlan:
    """The files of a batch and the outputs each will write, checked once (:func:`plan_outputs`).

    paths : the input files, sorted, de-duplicated. outputs : {path: its output paths (absolute)}.
    """

    paths: tuple[Path, ...]
    outputs: Mapping[Path, tuple[Path, ...]]

    def done(self, path: Path) -> bool:
        """True if every output of ``path`` exists."""
        return all(o.exists() for o in self.outputs[path])

    def todo(self, *, overwrite: bool = False) -> list[Path]:
        """The files to (re)do: all with ``overwrite``, else those with an output missing."""
        return [p for p in self.paths if overwrite or not self.done(p)]

    def subset(self, paths: Iterable[Path]) -> BatchPlan:
        """The plan of some of its files, in this plan's order."""
        keep = set(paths)
        chosen = tuple(p for p in self.paths if p in keep)
        return BatchPlan(paths=chosen, outputs={p: self.outputs[p] for p in chosen})


def plan_outputs(inputs, outputs_for: Callable[[Path], Iterable[str | os.PathLike]]) -> BatchPlan:
    """Discover the input files (:func:`find_images`) and name their outputs, checked: at least one output per
    file, none of them an input (or inside an input folder), no two files sharing one. (What
    :func:`awdvd.batch.run_batch` runs over; made once per batch.)

    Raises FileNotFoundError / ValueError for inputs that name nothing, ValueError for outputs that would
    replace inputs or collide."""
    if not callable(outputs_for):
        raise TypeError("outputs_for must be a callable: outputs_for(path) -> paths")
    paths = find_images(inputs)
    return BatchPlan(paths=tuple(paths), outputs=_checked_outputs(paths, outputs_for))


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        if is_image_folder(path):
            return
        raise IsADirectoryError(f"{path} is a folder, not an image file (OME-Zarr images are folders named *.zarr)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes)")


_UNIT_TO_UM = {"um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0, "\\u00B5m": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6,
               "cm": 1e4,
               # OME-Zarr (NGFF) spells units out, UDUNITS-2 style
               "micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,
               "angstrom": 1e-4}


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

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ImageReadError (not an image, or an unsupported layout).
    """
    path = Path(path)
    _check_readable(path)
    suffix = ZARR_SUFFIX if path.is_dir() else path.suffix.lower()
    pixel_um = None
    metadata: dict = {}
    try:
        if suffix == ZARR_SUFFIX:
            data, pixel_um, metadata = _read_zarr(path, lazy)
        elif suffix in (".tif", ".tiff"):
            data, pixel_um = _read_tiff(path, lazy)
        elif suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio

            data = iio.imread(path)
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
    if data.ndim == 3 and data.shape[-1] in (3, 4) and suffix in (".png", ".jpg", ".jpeg"):
        raise ImageReadError(f"{path} is a colour (RGB) image; awdvd needs a single fluorescence channel")
    if data.ndim not in (2, 3):
        raise ImageReadError(f"{path} has shape {data.shape}; awdvd reads 2-D images and (Z, H, W) stacks")
    if data.dtype.kind not in "uif" and data.dtype != bool:
        raise ImageReadError(f"{path} holds {data.dtype} pixels; awdvd needs integer or float intensities")
    return ImageFile(data=data, path=path, pixel_um=pixel_um, metadata=metadata)


def image_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape ``read_image(path).data`` will have, read from the file's metadata only (TIFF, OME-Zarr; PNG and
    JPEG headers), e.g. to decide before reading whether an image is large.

    Raises the errors of :func:`read_image` for missing or unreadable files.
    """
    path = Path(path)
    _check_readable(path)
    suffix = ZARR_SUFFIX if path.is_dir() else path.suffix.lower()
    try:
        if suffix == ZARR_SUFFIX:
            data, _, _ = _read_zarr(path, True)
            shape = tuple(data.shape)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tuple(tif.series[0].shape)
        elif suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio

            shape = tuple(iio.improps(path).shape)
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


def _is_large(shape: tuple[int, ...], lazy: bool | None) -> bool:
    return bool(lazy) if lazy is not None else math.prod(shape) > LARGEST_IMAGE_IN_MEMORY_PX


def _read_tiff(path: Path, lazy: bool | None):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pixel_um = _tiff_pixel_um(tif)
        shape = tuple(tif.series[0].shape)
        if not _is_large(shape, lazy):
            return tif.asarray(), pixel_um
    import dask.array as da
    import zarr

    # the store keeps its own file handle open for as long as the array is used
    store = tifffile.imread(path, aszarr=True)
    node = zarr.open(store, mode="r")
    if isinstance(node, zarr.Group):  # pyramidal TIFF: level 0 is full resolution
        node = node["0"]
    return da.from_array(node, chunks=node.chunks), pixel_um


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
    factor = _UNIT_TO_UM.get(unit) if unit else None
    if factor is None:
        return None  # no unit: the scale is in unknown units, not a physical pixel size
    value = float(scale[axis_names.index("x")]) * factor
    return value if math.isfinite(value) and value > 0 else None


def _read_zarr(path: Path, lazy: bool | None):
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
        metadata.update(format="ome-zarr", ome_version=ome.get("version", multiscale.get("version")), axes=axis_names)
    else:  # a bare zarr array: pixels, nothing else
        array = node
        axis_names = list("tczyx")[-array.ndim :] if array.ndim <= 5 else [f"dim{i}" for i in range(array.ndim)]
    for name, size in zip(axis_names, array.shape):
        if name == "c" and size > 1:
            raise ImageReadError(f"{path} has {size} channels; awdvd needs a single fluorescence channel (split channels first)")
        if name == "t" and size > 1:
            raise ImageReadError(f"{path} has {size} time points; awdvd reads one 2-D image or (Z, H, W) stack")
    if _is_large(array.shape, lazy):
        import dask.array as da

        return da.from_array(array, chunks=array.chunks), pixel_um, metadata
    return array[...], pixel_um, metadata


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the user's usual mode
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
    _check_writable_shape(data.shape, "write_tiff")
    data = data.astype(_stored_dtype(data.dtype), copy=False)
    kwargs: dict = {"imagej": True, "metadata": {"axes": "ZYX" if data.ndim == 3 else "YX"}}
    if pixel_um is not None:
        pixel_um = _check_pixel_um(pixel_um)
        kwargs["resolution"] = (1.0 / pixel_um, 1.0 / pixel_um)
        kwargs["metadata"]["unit"] = "um"
    if description:
        kwargs["metadata"]["Info"] = json.dumps(description, sort_keys=True)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)
    return Path(path)


def _stored_dtype(dtype) -> np.dtype:
    """uint8, uint16 and float32 are written as they are; everything else as float32."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.uint8, np.uint16, np.float32) else np.dtype(np.float32)


def _check_writable_shape(shape: tuple[int, ...], caller: str) -> None:
    if len(shape) not in (2, 3) or 0 in shape:
        raise ValueError(f"{caller} writes 2-D images or (Z, H, W) stacks, got shape {tuple(shape)}")


def _check_pixel_um(pixel_um) -> float:
    if isinstance(pixel_um, bool) or not isinstance(pixel_um, (int, float, np.number)):
        raise TypeError(f"pixel_um must be a number (micrometres), got {type(pixel_um).__name__}")
    if not (math.isfinite(pixel_um) and pixel_um > 0):
        raise ValueError(f"pixel_um must be a positive number of micrometres, got {pixel_um!r}")
    return float(pixel_um)


def _is_lazy(data) -> bool:
    return not isinstance(data, np.ndarray) and hasattr(data, "shape") and hasattr(data, "dtype")


_OME_TIFF_TILE_PX = 512  # tiles for large OME-TIFFs, so viewers (and our lazy reader) fetch pieces


def write_ome_tiff(path: str | os.PathLike, data, *, pixel_um: float | None, overwrite: bool = False) -> Path:
    """Write a 2-D image or (Z, H, W) stack as OME-TIFF, with ``PhysicalSizeX/Y`` in micrometres.

    Parameters
    ----------
    path : file name ending in ``.ome.tif`` or ``.ome.tiff`` (how Fiji's Bio-Formats and napari recognise
        OME-TIFF).
    data : (H, W) or (Z, H, W) array: numpy, or a lazy array (dask, zarr, memmap) that is then written tile by
        tile (512 x 512 tiles) without being loaded whole. uint8/uint16/float32 are stored as they are, other
        types as float32. BigTIFF is used automatically above 4 GB.
    pixel_um : pixel size in the specimen (um); ``None`` writes no physical size.
    overwrite : replace an existing file (otherwise FileExistsError before anything is written).

    Returns
    -------
    The path written. The write is atomic: a temporary file beside ``path``, renamed when complete.
    """
    import tifffile

    path = Path(path)
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        raise ValueError(f"{path.name}: OME-TIFF file names end in .ome.tif or .ome.tiff (so Fiji reads the metadata)")
    lazy = _is_lazy(data)
    if not lazy:
        data = np.asarray(data)
    _check_writable_shape(tuple(data.shape), "write_ome_tiff")
    dtype = _stored_dtype(data.dtype)
    metadata: dict = {"axes": "ZYX" if len(data.shape) == 3 else "YX"}
    if pixel_um is not None:
        pixel_um = _check_pixel_um(pixel_um)
        metadata.update(PhysicalSizeX=pixel_um, PhysicalSizeXUnit="µm", PhysicalSizeY=pixel_um, PhysicalSizeYUnit="µm")
    kwargs: dict = {"ome": True, "photometric": "minisblack", "metadata": metadata}
    with atomic_path(path, overwrite=overwrite) as tmp:
        if lazy:
            tile = (_OME_TIFF_TILE_PX, _OME_TIFF_TILE_PX)
            tifffile.imwrite(tmp, _tiles_of(data, tile, dtype), shape=tuple(data.shape), dtype=dtype, tile=tile, **kwargs)
        else:
            tifffile.imwrite(tmp, data.astype(dtype, copy=False), **kwargs)
    return path


def _tiles_of(data, tile: tuple[int, int], dtype):
    """Row-major tiles of each plane of a (lazy) 2-D/3-D array, zero-padded to the full tile shape (as tifffile
    expects); only one tile is in memory at a time."""
    planes = [None] if len(data.shape) == 2 else range(data.shape[0])
    h, w = data.shape[-2:]
    for z in planes:
        for y in range(0, h, tile[0]):
            for x in range(0, w, tile[1]):
                index = (slice(y, y + tile[0]), slice(x, x + tile[1]))
                block = np.asarray(_compute(data[index if z is None else (z, *index)]), dtype=dtype)
                if block.shape != tile:
                    block = np.pad(block, [(0, tile[0] - block.shape[0]), (0, tile[1] - block.shape[1])])
                yield block


def _compute(block):
    # dask pieces are computed in this thread: inside a Dask worker the default would send them to the cluster
    return block.compute(scheduler="sync") if hasattr(block, "dask") else block


def _check_zarr_path(path: Path) -> None:
    if not path.name.lower().endswith(ZARR_SUFFIX):
        raise ValueError(f"{path.name}: OME-Zarr images are folders named *.ome.zarr (or *.zarr)")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is a file, not an OME-Zarr folder; choose another output")


def _chunk_shape(shape: tuple[int, ...], chunks) -> tuple[int, ...]:
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        chunks = (1,) * (len(shape) - 2) + (int(chunks), int(chunks))
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != len(shape) or any(c < 1 for c in chunks):
        raise ValueError(f"chunks must be a positive int or one positive size per axis of {tuple(shape)}, got {chunks}")
    return tuple(min(c, s) for c, s in zip(chunks, shape))


@contextlib.contextmanager
def open_ome_zarr_output(
    path: str | os.PathLike,
    *,
    shape: tuple[int, ...],
    dtype,
    pixel_um: float | None,
    chunks: int | tuple[int, ...] = 1024,
    overwrite: bool = False,
):
    """Yield an empty zarr array to fill (e.g. tile by tile); it becomes the OME-Zarr image ``path`` only if
    the block completes.

    The store (OME-Zarr 0.5, zarr format 3, one resolution level, axes ``yx`` or ``zyx``, scale ``pixel_um``
    micrometres on y and x) is built in a temporary folder beside ``path`` and renamed into place at the end,
    so an interrupted job leaves no half-written image; on error the temporary folder is removed.

    Parameters
    ----------
    path : folder name ending in ``.zarr`` (conventionally ``.ome.zarr``).
    shape : (H, W) or (Z, H, W).
    dtype : pixel type; uint8/uint16/float32 are kept, others become float32.
    pixel_um : pixel size in the specimen (um), or ``None`` (scale 1, no unit).
    chunks : chunk edge in pixels (square chunks of one plane) or one size per axis.
    overwrite : replace an existing image at ``path`` (otherwise FileExistsError up front).

    Yields
    ------
    zarr.Array of ``shape``, filled with 0 until written.
    """
    import zarr

    with warnings.catch_warnings():  # ome-zarr 0.18 warns about its own defaults when imported
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata

    path = Path(path)
    _check_zarr_path(path)
    shape = tuple(int(s) for s in shape)
    _check_writable_shape(shape, "open_ome_zarr_output")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True (--overwrite)")
    if pixel_um is not None:
        pixel_um = _check_pixel_um(pixel_um)
    axes = ["z", "y", "x"] if len(shape) == 3 else ["y", "x"]
    units = {"y": "micrometer", "x": "micrometer"} if pixel_um is not None else None
    scale = [1.0] * (len(shape) - 2) + [pixel_um or 1.0] * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        array = group.create_array(
            "0", shape=shape, chunks=_chunk_shape(shape, chunks), dtype=_stored_dtype(dtype), dimension_names=axes
        )
        write_multiscales_metadata(
            group,
            [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            axes=axes,
            axes_units=units,
            name=path.name.split(".")[0],
        )
        yield array
        _replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(source: Path, target: Path) -> None:
    """Move the finished folder ``source`` onto ``target``; an old ``target`` is set aside first and deleted
    only once the new one is in place."""
    os.chmod(source, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give outputs the user's usual mode
    if not target.exists():
        os.replace(source, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_ome_zarr(
    path: str | os.PathLike,
    data,
    *,
    pixel_um: float | None,
    chunks: int | tuple[int, ...] = 1024,
    overwrite: bool = False,
) -> Path:
    """Write a 2-D image or (Z, H, W) stack as an OME-Zarr image (0.5, zarr format 3) that napari opens
    (``napari --plugin napari-ome-zarr out.ome.zarr``) with its pixel size.

    Parameters
    ----------
    path : folder name ending in ``.zarr`` (conventionally ``.ome.zarr``).
    data : (H, W) or (Z, H, W): numpy, or a lazy array (dask, zarr, memmap) copied chunk row by chunk row
        without being loaded whole. uint8/uint16/float32 are stored as they are, other types as float32.
    pixel_um : pixel size in the specimen (um), stored as the y/x scale transformation; ``None`` for unknown.
    chunks : chunk edge in pixels (square chunks of one plane), or one size per axis.
    overwrite : replace an existing image (otherwise FileExistsError before anything is written).

    Returns
    -------
    The path written. Atomic: built in a temporary folder beside ``path`` and renamed when complete.
    """
    lazy = _is_lazy(data)
    if not lazy:
        data = np.asarray(data)
    with open_ome_zarr_output(
        path, shape=tuple(data.shape), dtype=data.dtype, pixel_um=pixel_um, chunks=chunks, overwrite=overwrite
    ) as out:
        if not lazy:
            out[...] = data.astype(out.dtype, copy=False)
        else:  # one band of chunk rows at a time: bounded memory, whole chunks per write
            rows = out.chunks[-2]
            for y in range(0, data.shape[-2], rows):
                index = (Ellipsis, slice(y, y + rows), slice(None))
                out[index] = np.asarray(_compute(data[index]), dtype=out.dtype)
    return Path(path)


OUTPUT_FORMATS = ("tiff", "ome-tiff", "ome-zarr")


def write_image(path: str | os.PathLike, data, *, format: str, pixel_um: float | None, overwrite: bool = False,
                description: dict | None = None, chunks: int = 1024) -> Path:
    """Write ``data`` as ``format``: "tiff" (:func:`write_tiff`, ImageJ, with ``description``), "ome-tiff"
    (:func:`write_ome_tiff`) or "ome-zarr" (:func:`write_ome_zarr`, square chunks of ``chunks`` px)."""
    if format == "tiff":
        return write_tiff(path, data, pixel_um=pixel_um, overwrite=overwrite, description=description)
    if format == "ome-tiff":
        return write_ome_tiff(path, data, pixel_um=pixel_um, overwrite=overwrite)
    if format == "ome-zarr":
        return write_ome_zarr(path, data, pixel_um=pixel_um, chunks=chunks, overwrite=overwrite)
    raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {format!r}")


@contextlib.contextmanager
def open_image_output(
    path: str | os.PathLike,
    *,
    format: str,
    shape: tuple[int, ...],
    dtype,
    pixel_um: float | None,
    chunks: int = 1024,
    overwrite: bool = False,
    description: dict | None = None,
):
    """Yield an empty array to fill tile by tile (e.g. ``awdvd.tiles.tiled_map(..., out=...)``); it becomes the
    image ``path`` in ``format`` ("tiff", "ome-tiff" or "ome-zarr") only if the block completes.

    "ome-zarr" fills the store itself (:func:`open_ome_zarr_output`). The TIFF formats fill a temporary
    ``numpy.memmap`` beside ``path`` (the disk, not memory, holds the image), written as TIFF at the end and
    then deleted. Nothing half-written is left behind on error. ``description`` goes into plain TIFFs.
    """
    if format == "ome-zarr":
        with open_ome_zarr_output(path, shape=shape, dtype=dtype, pixel_um=pixel_um, chunks=chunks,
                                  overwrite=overwrite) as out:
            yield out
        return
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {format!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True (--overwrite)")
    shape = tuple(int(s) for s in shape)
    _check_writable_shape(shape, "open_image_output")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        out = np.lib.format.open_memmap(scratch / "pixels.npy", mode="w+", dtype=_stored_dtype(dtype), shape=shape)
        yield out
        out.flush()
        write_image(path, out, format=format, pixel_um=pixel_um, overwrite=overwrite, description=description)
        del out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    optics_pixel_um = _check_pixel_um(optics_pixel_um)
    if not (0 <= tolerance < 1):
        raise ValueError(f"tolerance is a relative difference in [0, 1), got {tolerance!r}")
    if file_pixel_um is None:
        return True
    file_pixel_um = _check_pixel_um(file_pixel_um)
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


def write_png(path: str | os.PathLike, data: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write an 8-bit grey or RGB(A) PNG (figures, overlays, montages)."""
    import imageio.v3 as iio

    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise ValueError(f"write_png writes uint8 pictures, got {data.dtype}; scale the data first")
    with atomic_path(path, overwrite=overwrite) as tmp:
        iio.imwrite(tmp, data, extension=".png")
    return Path(path)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file written by :func:`write_json` (e.g. an output's sidecar); ValueError if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON file ({error})") from error


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
