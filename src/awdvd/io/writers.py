"""Writing files atomically (a temporary file or folder beside the target, renamed when complete; never over an
existing file unless ``overwrite=True``): TIFF, OME-TIFF, OME-Zarr (also filled tile by tile), PNG, JSON, CSV.
Part of :mod:`awdvd.io`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile

from .. import __version__
from .files import SOFTWARE_PREFIX
from .images import ZARR_SUFFIX, check_pixel_um
from .resumable import ResumableArray, open_resumable_part, part_prefix

__all__ = ["software", "check_output_folder", "check_output_file", "keep_previous", "atomic_path", "write_tiff",
           "write_ome_tiff", "write_ome_zarr", "write_image", "open_ome_zarr_output", "open_image_output",
           "OUTPUT_FORMATS"]


def software() -> str:
    """What awdvd writes into a file's Software field (TIFF tag, PNG text; see :func:`awdvd.io.made_by_awdvd`)."""

    return f"{SOFTWARE_PREFIX} {__version__}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_folder(path: str | os.PathLike, *, option: str = "-o") -> Path:
    """``path`` as an output folder, checked before any work: NotADirectoryError (one sentence) if it, or a
    folder above it, is an existing file. The folder need not exist yet."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "" if part == path else f" (in {path})"
            raise NotADirectoryError(f"{part} is a file{where}; {option} takes a folder: give a new or an existing "
                                     "folder")
    return path


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, option: str = "-o",
                      example: str = "out.tif") -> Path:
    """``path`` as an output file, checked before any work: IsADirectoryError if it is a folder (a common slip:
    ``-o results/``), NotADirectoryError if a folder above it is a file, FileExistsError if it exists and not
    ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; {option} takes the file to write, e.g. {path / example}")
    check_output_folder(path.parent, option=f"{option}'s folder")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass --overwrite (overwrite=True)")
    return path


def keep_previous(path: str | os.PathLike) -> Path | None:
    """Move an existing file aside to ``STEM-YYYYmmdd-HHMMSS.SUFFIX`` (its modification time; ``-2``, ``-3``
    ... if that is taken), so that writing ``path`` anew loses nothing (e.g. the report of an earlier run).
    Returns the new name, or None if there was nothing to keep."""

    path = Path(path)
    if not path.is_file():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    target = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    number = 2
    while target.exists():
        target = path.with_name(f"{path.stem}-{stamp}-{number}{path.suffix}")
        number += 1
    os.replace(path, target)
    return target


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
    fd, tmp = tempfile.mkstemp(prefix=part_prefix(path), suffix=".part" + path.suffix, dir=path.parent)
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

    data = np.asarray(data)
    _check_writable_shape(data.shape, "write_tiff")
    data = data.astype(_stored_dtype(data.dtype), copy=False)
    kwargs: dict = {"imagej": True, "software": software(), "metadata": {"axes": "ZYX" if data.ndim == 3 else "YX"}}
    if pixel_um is not None:
        pixel_um = check_pixel_um(pixel_um)
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
        pixel_um = check_pixel_um(pixel_um)
        metadata.update(PhysicalSizeX=pixel_um, PhysicalSizeXUnit="µm", PhysicalSizeY=pixel_um, PhysicalSizeYUnit="µm")
    kwargs: dict = {"ome": True, "photometric": "minisblack", "metadata": metadata, "software": software()}
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
    resume_key: str | None = None,
    axes: str | None = None,
    omero: dict | None = None,
):
    """Yield an empty zarr array to fill (e.g. tile by tile); it becomes the OME-Zarr image ``path`` only if
    the block completes.

    The store (OME-Zarr 0.5, zarr format 3, one resolution level, axes ``yx`` or ``zyx``, scale ``pixel_um``
    micrometres on y and x) is built in a temporary folder beside ``path`` and renamed into place at the end,
    so an interrupted job leaves no half-written image; on error the temporary folder is removed.

    Parameters
    ----------
    path : folder name ending in ``.zarr`` (conventionally ``.ome.zarr``).
    shape : (H, W) or (Z, H, W); with ``axes``, one size per axis (up to five).
    dtype : pixel type; uint8/uint16/float32 are kept, others become float32.
    pixel_um : pixel size in the specimen (um), or ``None`` (scale 1, no unit).
    chunks : chunk edge in pixels (square chunks of one plane) or one size per axis.
    overwrite : replace an existing image at ``path`` (otherwise FileExistsError up front).
    resume_key : build the store in the resumable part of ``path`` for this work instead
        (:func:`awdvd.io.resumable.open_resumable_part`): an interrupted or killed run leaves it, and the same work
        started again finds the tiles it holds. A :class:`awdvd.io.resumable.ResumableArray` is then yielded.
    axes : the axes' names, e.g. "cyx" or "tyx" (default "yx" or "zyx"); omero : the image's ``omero`` metadata
        (channel labels and display windows).

    Yields
    ------
    zarr.Array of ``shape``, filled with 0 until written (or the ResumableArray holding it).
    """
    import zarr

    with warnings.catch_warnings():  # ome-zarr 0.18 warns about its own defaults when imported
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata

    path = Path(path)
    _check_zarr_path(path)
    shape = tuple(int(s) for s in shape)
    if not axes or len(axes) != len(shape) or len(shape) > 5:  # named axes: up to t, c, z, y, x
        _check_writable_shape(shape, "open_ome_zarr_output")
    elif 0 in shape:
        raise ValueError(f"open_ome_zarr_output got an empty shape {shape}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True (--overwrite)")
    if pixel_um is not None:
        pixel_um = check_pixel_um(pixel_um)
    axes = list(axes) if axes else ["z", "y", "x"] if len(shape) == 3 else ["y", "x"]
    units = {"y": "micrometer", "x": "micrometer"} if pixel_um is not None else None
    scale = [1.0] * (len(shape) - 2) + [pixel_um or 1.0] * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume_key is not None:
        with open_resumable_part(path, key=resume_key) as part:
            store = part.folder / "image.zarr"
            array = None
            if part.resumed and store.is_dir():
                with contextlib.suppress(Exception):  # an unreadable store is made again
                    array = zarr.open_group(str(store), mode="r+")["0"]
                if array is not None and (tuple(array.shape) != shape or array.dtype != _stored_dtype(dtype)):
                    array = None
            if array is None:
                part.tiles.clear()
                shutil.rmtree(store, ignore_errors=True)
                array = _new_ome_zarr(store, path, shape, dtype, chunks, axes, units, scale, write_multiscales_metadata,
                                      omero)
            yield ResumableArray(array, part)
            _replace_folder(store, path)
        return
    tmp = Path(tempfile.mkdtemp(prefix=part_prefix(path), suffix=".part", dir=path.parent))
    try:
        yield _new_ome_zarr(tmp, path, shape, dtype, chunks, axes, units, scale, write_multiscales_metadata, omero)
        _replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _new_ome_zarr(store: Path, path: Path, shape, dtype, chunks, axes, units, scale, write_multiscales_metadata,
                  omero: dict | None = None):
    """An empty OME-Zarr image in the folder ``store`` (to be renamed to ``path``): its array."""
    import zarr

    group = zarr.open_group(str(store), mode="w", zarr_format=3)
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
    group.attrs.update({"awdvd": {"software": software()}})  # awdvd.io.made_by_awdvd
    if omero:
        group.attrs.update({"ome": {**group.attrs["ome"], "omero": omero}})
    return array


def _replace_folder(source: Path, target: Path) -> None:
    """Move the finished folder ``source`` onto ``target``; an old ``target`` is set aside first and deleted
    only once the new one is in place."""
    os.chmod(source, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give outputs the user's usual mode
    if not target.exists():
        os.replace(source, target)
        return
    old = Path(tempfile.mkdtemp(prefix=part_prefix(target), suffix=".old", dir=target.parent))
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
    resume_key: str | None = None,
):
    """Yield an empty array to fill tile by tile (e.g. ``awdvd.restore.tiling.tiled_map(..., out=...)``); it becomes the
    image ``path`` in ``format`` ("tiff", "ome-tiff" or "ome-zarr") only if the block completes.

    "ome-zarr" fills the store itself (:func:`open_ome_zarr_output`). The TIFF formats fill a temporary
    ``numpy.memmap`` beside ``path`` (the disk, not memory, holds the image), written as TIFF at the end and
    then deleted. Nothing half-written is left behind on error. ``description`` goes into plain TIFFs.
    ``resume_key``: the store or memmap lives in the output's resumable part (see :func:`open_ome_zarr_output`),
    and a :class:`awdvd.io.resumable.ResumableArray` is yielded, whose finished tiles a rerun of the same work keeps.
    """
    if format == "ome-zarr":
        with open_ome_zarr_output(path, shape=shape, dtype=dtype, pixel_um=pixel_um, chunks=chunks,
                                  overwrite=overwrite, resume_key=resume_key) as out:
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
    if resume_key is not None:
        with open_resumable_part(path, key=resume_key) as part:
            pixels, stored = part.folder / "pixels.npy", _stored_dtype(dtype)
            out = None
            if part.resumed and pixels.is_file():
                with contextlib.suppress(Exception):
                    out = np.lib.format.open_memmap(pixels, mode="r+")
                if out is not None and (tuple(out.shape) != shape or out.dtype != stored):
                    out = None
            if out is None:
                part.tiles.clear()
                out = np.lib.format.open_memmap(pixels, mode="w+", dtype=stored, shape=shape)
            yield ResumableArray(out, part)
            out.flush()
            write_image(path, out, format=format, pixel_um=pixel_um, overwrite=overwrite, description=description)
            del out
        return
    scratch = Path(tempfile.mkdtemp(prefix=part_prefix(path), suffix=".part", dir=path.parent))
    try:
        out = np.lib.format.open_memmap(scratch / "pixels.npy", mode="w+", dtype=_stored_dtype(dtype), shape=shape)
        yield out
        out.flush()
        write_image(path, out, format=format, pixel_um=pixel_um, overwrite=overwrite, description=description)
        del out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
