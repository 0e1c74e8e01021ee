"""Any local operation on a large image, tile by tile: the tile grid with a halo (:func:`tile_grid`),
:func:`tiled_map` (in this process, on a local Dask cluster or on an existing one, with identical results),
bounded submission of many calls to a cluster (:func:`submit_bounded`) and whole-image statistics read a tile at
a time (:func:`image_min_max`). Images are any array that slices to numpy (numpy, memmap, zarr, dask); peak
memory is bounded by a few tiles in flight. AWDVD's own use of it is :mod:`awdvd.restore.tiles`."""

from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._checks import check_positive_int
from .._cluster import check_picklable, dask_client, in_dask_worker, limit_worker_threads
from ..io import LARGEST_IMAGE_IN_MEMORY_PX

__all__ = ["DEFAULT_TILE_PX", "should_tile", "tile_grid", "read_block", "tiled_map", "submit_bounded", "image_min_max"]


#: core tile side (px) of tiled maps and restorations: 0.2 GB of the default DelpNet's first feature maps
DEFAULT_TILE_PX = 1024


def should_tile(shape: Sequence[int], *, max_px: int = LARGEST_IMAGE_IN_MEMORY_PX) -> bool:
    """True if an image of ``shape`` (…, H, W) is too large to process whole (more than ``max_px`` pixels per
    plane, default :data:`LARGEST_IMAGE_IN_MEMORY_PX` = 4096 x 4096) and should go through :func:`tiled_map`."""
    max_px = check_positive_int(max_px, "max_px")
    if len(shape) < 2:
        raise ValueError(f"an image shape has at least 2 axes, got {tuple(shape)}")
    return math.prod(int(s) for s in shape[-2:]) > max_px


def _pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one int or a (y, x) pair, got {value!r}")
        return tuple(check_positive_int(v, name, minimum=minimum) for v in value)  # type: ignore[return-value]
    v = check_positive_int(value, name, minimum=minimum)
    return v, v


def tile_grid(shape: tuple[int, int], tile_px, halo_px) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """Tiles of a (H, W) image in row-major order: ``(core, read)`` slice pairs, where ``core`` (tile_px
    square, smaller at the right/bottom edges) is what the tile contributes to the output and ``read`` is the
    core grown by ``halo_px`` on every side and clipped to the image. Cores cover every pixel exactly once."""
    h, w = (check_positive_int(s, "shape") for s in shape)
    ty, tx = _pair(tile_px, "tile_px", minimum=1)
    hy, hx = _pair(halo_px, "halo_px", minimum=0)
    tiles = []
    for y0 in range(0, h, ty):
        for x0 in range(0, w, tx):
            y1, x1 = min(y0 + ty, h), min(x0 + tx, w)
            core = (slice(y0, y1), slice(x0, x1))
            read = (slice(max(0, y0 - hy), min(h, y1 + hy)), slice(max(0, x0 - hx), min(w, x1 + hx)))
            tiles.append((core, read))
    return tiles


def read_block(image, read: tuple[slice, slice]) -> np.ndarray:
    """``image[read]`` as a numpy array (a dask block is computed here, in this thread)."""
    block = image[read]
    if hasattr(block, "dask"):  # computed here, in this thread, never sent to a cluster (see io._compute)
        block = block.compute(scheduler="sync")
    return np.asarray(block)


def _apply_tile(fn, block: np.ndarray, origin: tuple[int, int], crop: tuple[slice, slice]) -> np.ndarray:
    """fn on one tile (with halo); returns only the core. Runs on a worker (through submit_bounded, which sets
    the worker's thread limits) or in the main process."""
    result = np.asarray(fn(block, origin))
    if result.shape != block.shape:
        raise ValueError(
            f"fn returned shape {result.shape} for a block of shape {block.shape} at {origin}; tiled_map needs "
            "fn(block, origin_yx) to return an array of the block's shape"
        )
    return result[crop]


def tiled_map(
    image,
    fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    *,
    tile_px: int | tuple[int, int] = DEFAULT_TILE_PX,
    halo_px: int | tuple[int, int],
    out=None,
    workers: int = 0,
    client=None,
    max_in_flight: int | None = None,
    progress: bool = False,
):
    """Apply a local operation ``fn`` to a 2-D image tile by tile, each tile read with a halo around it.

    ``fn(block, origin_yx)`` gets a tile plus up to ``halo_px`` pixels of its surroundings (fewer where the
    image ends) and the global (y, x) of the block's top-left pixel, so that e.g. a grid of windows can be
    aligned to the whole image (choose ``tile_px`` and ``halo_px`` as multiples of the window stride); it
    returns an array of the block's shape. Only the tile's core is kept. For any operation whose reach is at
    most ``halo_px`` (a convolution with a PSF of radius <= halo_px, ...) and whose edge rule is local (e.g.
    symmetric padding) the result equals ``fn(image, (0, 0))`` to floating-point tolerance, image borders
    included: tiles at the border see the true border, as the whole-image call does. (Iterative operations
    such as Richardson-Lucy reach further with each iteration; their tiled result only converges to the
    whole-image one as the halo grows: benchmarks/bench_batch.py measures how fast.)

    Why own tiling rather than ``dask.array.map_overlap``: tiles here carry their global origin, need no
    chunk >= halo rule (any tile size, including sizes that do not divide the image), are read from any
    sliceable array (numpy, memmap, zarr, dask) and their results are written into ``out`` one tile at a
    time by this process alone, so tiles need not match the output's zarr chunks, workers need no access to
    the output store, and memory stays bounded by the tiles in flight.

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy: numpy array, ``numpy.memmap``, zarr array, dask array.
    fn : ``fn(block, origin_yx) -> array of block.shape``; picklable when run on Dask. Load heavy objects it
        needs with :func:`worker_resource`.
    tile_px : core tile size (int or (y, x)); the last row/column of tiles may be smaller.
    halo_px : halo on each side (int or (y, x)), at least the operation's reach in pixels.
    out : (H, W) array to write into (numpy, memmap, zarr, e.g. from ``awdvd.io.open_ome_zarr_output``);
        None allocates a numpy array of the dtype ``fn`` returns. For zarr, a ``tile_px`` that is a multiple
        of the chunk size writes whole chunks. An ``out`` with ``tile_done(core)`` and ``mark_tile(core)``
        (:class:`awdvd.io.resumable.ResumableArray`: the output of an earlier, interrupted run of the same work)
        resumes: tiles it holds are not computed again, and each tile written is marked.
    workers : 0 (default) runs the tiles one after another in this process; N >= 1 starts a local Dask
        cluster of N workers for this call. Ignored when ``client`` is given.
    client : a ``distributed.Client`` or scheduler address to run the tiles on an existing cluster.
    max_in_flight : tiles submitted to Dask and not yet written (default 2 per worker thread); bounds memory.
    progress : show a progress bar over tiles.

    Returns
    -------
    ``out`` (or the new numpy array), (H, W).
    """
    if not hasattr(image, "shape") or len(image.shape) != 2:
        raise ValueError(f"tiled_map takes a 2-D image (H, W), got shape {getattr(image, 'shape', None)}; "
                         "process a stack plane by plane")
    if not callable(fn):
        raise TypeError("fn must be callable: fn(block, origin_yx) -> block")
    shape = tuple(int(s) for s in image.shape)
    tiles = tile_grid(shape, tile_px, halo_px)
    if out is not None and tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}; it must match the image, {shape}")
    workers = check_positive_int(workers, "workers", minimum=0)
    holder = {"out": out}
    done, mark = getattr(out, "tile_done", None), getattr(out, "mark_tile", None)
    total = len(tiles)
    if done is not None:
        tiles = [(core, read) for core, read in tiles if not done(core)]

    def write(core, result):
        if holder["out"] is None:
            holder["out"] = np.empty(shape, dtype=result.dtype)
        holder["out"][core] = result
        if mark is not None:  # after the pixels: a tile in the journal is complete
            mark(core)

    def crop_of(core, read):  # the core's position inside the block that was read
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read))

    with tqdm(total=total, initial=total - len(tiles), unit="tile", desc="tiles", disable=not progress) as bar:
        if not tiles:
            pass
        elif client is None and workers == 0:
            for core, read in tiles:
                block = read_block(image, read)
                write(core, _apply_tile(fn, block, (read[0].start, read[1].start), crop_of(core, read)))
                bar.update(1)
        else:
            check_picklable(fn, "fn")
            with dask_client(max(workers, 1), client) as (cluster, _, _):
                limit = max_in_flight or 2 * max(1, sum(cluster.nthreads().values()))
                limit = check_positive_int(limit, "max_in_flight")
                _tiles_on_dask(cluster, image, fn, tiles, crop_of, write, limit, bar)
    return holder["out"]


def _tiles_on_dask(client, image, fn, tiles, crop_of, write, limit: int, bar) -> None:
    calls = (
        (core, _apply_tile, (fn, read_block(image, read), (read[0].start, read[1].start), crop_of(core, read)))
        for core, read in tiles
    )
    for core, result in submit_bounded(client, calls, limit=limit):
        write(core, result)
        bar.update(1)


def _call_here(fn, *args):
    """fn(*args) on a worker (with its thread limits) or in this process."""

    if in_dask_worker()[0]:
        limit_worker_threads()
    return fn(*args)


def submit_bounded(client, calls: Iterable[tuple[Hashable, Callable, tuple]], *, limit: int) -> Iterator[tuple[Hashable, Any]]:
    """Run ``fn(*args)`` for every ``(tag, fn, args)`` of ``calls`` on a Dask client, with at most ``limit`` calls
    submitted and not yet collected, and yield ``(tag, result)`` as they finish (in any order).

    ``calls`` is consumed lazily, so its arguments (e.g. image blocks read from a large file) are made only
    as room frees up: memory stays bounded by ``limit`` calls. Numpy arguments of 64 KB or more are scattered
    (sent to one worker once, not embedded in the task graph); futures among ``args`` are resolved by Dask
    (e.g. a model scattered once with ``client.scatter(model, broadcast=True)``). On the worker, the thread
    limits of the module docstring apply. The first error raised by a call is raised here: used for tiles of
    one image, where an error is a bug for every tile, not a bad file.
    """
    from distributed import as_completed

    limit = check_positive_int(limit, "limit")
    calls = iter(calls)
    tags: dict[str, Hashable] = {}
    queue = as_completed(loop=client.loop)

    def submit_next() -> bool:
        item = next(calls, None)
        if item is None:
            return False
        tag, fn, args = item
        args = tuple(
            client.scatter(a, hash=False) if isinstance(a, np.ndarray) and a.nbytes >= _SCATTER_BYTES else a
            for a in args
        )
        future = client.submit(_call_here, fn, *args, pure=False)
        tags[future.key] = tag
        queue.add(future)
        return True

    for _ in range(limit):
        if not submit_next():
            break
    for future in queue:
        result = future.result()
        tag = tags.pop(future.key)
        future.release()
        submit_next()
        yield tag, result


def image_min_max(image, *, tile_px: int = DEFAULT_TILE_PX) -> tuple[float, float]:
    """(min, max) of a 2-D image read tile by tile (bounded memory for zarr / dask / memmap inputs)."""
    lo, hi = math.inf, -math.inf
    for core, _ in tile_grid(tuple(image.shape), tile_px, 0):
        block = read_block(image, core)
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            raise ValueError(f"the image contains NaN or infinite values (in rows {core[0].start}..{core[0].stop}, "
                             f"columns {core[1].start}..{core[1].stop}); replace them first")
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


_SCATTER_BYTES = 1 << 16
