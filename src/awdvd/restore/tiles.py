"""Large images in tiles: the tile grid with a halo, any local operation tile by tile (:func:`tiled_map`), and
AWDVD's two steps with the result of the whole image (defocus maps on the whole image's window grid, then
restoration tile by tile with the whole image's blend weights).

Cutting a large image into tiles and restoring each on its own would not do: every tile would lay out its own
windows from its own edges (the last one flush with the tile's edge), so the windows, their predictions and
their blend weights would all differ from the whole image's, and seams would show. Instead:

1. :func:`tiled_defocus_map` classifies the windows of the WHOLE image (:func:`awdvd.restore.windows.window_starts`
   of its full size) a group of windows at a time: each group is read with just the pixels its windows
   cover (patch mode: the same patches as whole-image patch mode) or, in dense mode, with
   :func:`awdvd.restore.defocus_maps.dense_reach_px` of context around them, from an origin on the trunk's cell grid, so
   the trunk's cells are the whole image's. The map is small (one entry per window) and lives in memory.
2. :func:`tiled_deconvolve_levels` restores core tiles with :func:`tiled_map`. Each tile is read with a halo
   of ``patch_px - 1`` (every window that covers a core pixel lies inside the block) plus the Richardson-Lucy
   context that whole-image AWDVD gives each region (3 x the PSF's 99% radius by default,
   :func:`awdvd.restore.rl.default_halo_px`); the block is restored by :func:`awdvd.restore.blend.blend_windows` with the
   whole image's windows that lie in it (:meth:`awdvd.restore.windows.DefocusMap.window_subset`). So every core pixel
   gets exactly the whole image's blend weights and levels, and each RL it draws on sees at least the same
   context as in the whole image; ``eps`` is the whole image's. What differs is only RL's reach beyond that
   context (RL is iterative: its reach grows with every iteration and no finite halo is exact):
   tests/restore/test_tiles.py bounds the difference.

:func:`awdvd.restore.pipeline.deconvolve` chooses between whole and tiled and runs both steps. Images can be any array
that slices to numpy (numpy, memmap, zarr, the dask arrays that ``awdvd.io.read_image`` returns for large
files); the output can be a zarr array from ``awdvd.io.open_ome_zarr_output``, so neither is ever whole in
memory. Tiles run in this process (``workers=0``, default), on a local Dask cluster (``workers=N``) or on an
existing one (``client=``); the results are identical. Peak memory is bounded by a few tiles in flight, not by
the image. Dask is imported only when a cluster is used.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._checks import check_positive_int
from .._cluster import check_picklable, dask_client, in_dask_worker, limit_worker_threads
from .._device import resolve_device
from ..data.patches import image_range as normalisation_range
from ..io import LARGEST_IMAGE_IN_MEMORY_PX
from ..physics.psf import check_psf_stack
from . import defocus_maps
from .blend import METHODS, blend_windows, check_levels, per_level_iterations
from .defocus_maps import MAP_MODES, NORMALIZATIONS, window_proba
from .rl import check_eps, check_offset, eps_floor, halos_px
from .windows import WEIGHTINGS, DefocusMap, window_starts

__all__ = [
    "should_tile",
    "tile_grid",
    "read_block",
    "tiled_map",
    "submit_bounded",
    "image_min_max",
    "resolve_model",
    "tiled_defocus_map",
    "tiled_deconvolve_levels",
    "restoration_halo_px",
    "DEFAULT_TILE_PX",
    "LARGEST_IMAGE_IN_MEMORY_PX",
]

#: core tile side (px) of tiled maps and restorations: 0.2 GB of the default DelpNet's first feature maps
DEFAULT_TILE_PX = 1024


# --------------------------------------------------------------------------------------------- any operation
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



_SCATTER_BYTES = 1 << 16


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


# --------------------------------------------------------------------------------------------- defocus maps
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


def _check_large_image(image, patch_px: int) -> tuple[int, int]:
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"a 2-D image (H, W) is needed, got shape {shape}; process a stack plane by plane")
    dtype = np.dtype(image.dtype)
    if dtype == bool or dtype.kind not in "uif":
        raise TypeError(f"image must hold integer or float intensities, got dtype {dtype}")
    h, w = (int(s) for s in shape)
    if min(h, w) < patch_px:
        raise ValueError(f"image is {h} x {w} px; AWDVD needs at least one {patch_px} x {patch_px} window")
    return h, w


def resolve_model(model):
    """A DefocusModel from a model or a zero-argument loader (e.g. :class:`awdvd.batch.jobs.ModelFile`), where this
    runs."""
    if hasattr(model, "predict_patches"):
        return model
    return model()


def _window_groups(starts: np.ndarray, tile_px: int) -> list[np.ndarray]:
    """Indices of the windows grouped by the tile_px band their start falls in."""
    band = starts // tile_px
    return [np.nonzero(band == b)[0] for b in np.unique(band)]


def _block_span(first: int, last: int, patch_px: int, context: int, cell: int, length: int) -> slice:
    """Rows (or columns) a group of windows starting at first..last needs, with ``context`` px around them and
    a start on the ``cell`` grid."""
    start = max(0, first - context)
    start -= start % cell
    return slice(start, min(length, last + patch_px + context))


def _proba_block(model, block: np.ndarray, ys: np.ndarray, xs: np.ndarray, mode: str, normalization: str,
                 batch_size: int, value_range, tta: int = 1) -> np.ndarray:
    return window_proba(block, resolve_model(model), ys, xs, mode=mode, normalization=normalization,
                        batch_size=batch_size, value_range=value_range, tta=tta)


def tiled_defocus_map(
    image,
    model,
    *,
    stride: int,
    mode: str = "patch",
    normalization: str = "local",
    tile_px: int = DEFAULT_TILE_PX,
    batch_size: int = 256,
    workers: int = 0,
    client=None,
    progress: bool = False,
    tta: int = 1,
    smoothing_px: float = 0.0,
):
    """:func:`awdvd.restore.defocus_maps.defocus_map` of a large image, computed a tile of windows at a time.

    Equal to ``defocus_map(image, model, ...)`` of the whole image: the same windows (the whole image's
    grid), the same patches (patch mode) or the same trunk cells (dense mode, see the module docstring), so
    the same levels and, to float32 rounding, the same probabilities.

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask), H and W >= ``patch_px``.
    model : a :class:`awdvd.learn.model.DefocusModel`, or a picklable zero-argument callable that returns one (e.g.
        :class:`awdvd.batch.jobs.ModelFile`, which loads the model file once per Dask worker). A model object is
        sent to each Dask worker once.
    stride, mode, normalization, batch_size : as for :func:`awdvd.restore.defocus_maps.defocus_map`; "global"
        normalization uses the whole image's min and max (one extra pass over the image).
    tile_px : windows are grouped by the ``tile_px`` band their start falls in; a group reads about
        ``tile_px + patch_px`` px square (dense: plus the trunk's context).
    workers, client : 0 (default) runs the groups in this process; N >= 1 on a local Dask cluster of N
        workers; ``client`` (a ``distributed.Client`` or scheduler address) on an existing cluster.
    progress : show a progress bar over tiles.

    Returns
    -------
    :class:`awdvd.restore.windows.DefocusMap` of the whole image.
    """

    loaded = resolve_model(model)
    patch_px = int(loaded.patch_px)
    h, w = _check_large_image(image, patch_px)
    stride = check_positive_int(stride, "stride")
    tile_px = check_positive_int(tile_px, "tile_px")
    batch_size = check_positive_int(batch_size, "batch_size")
    workers = check_positive_int(workers, "workers", minimum=0)
    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    mode = defocus_maps.resolve_map_mode(mode, loaded)
    ys = window_starts(h, patch_px=patch_px, stride=stride)
    xs = window_starts(w, patch_px=patch_px, stride=stride)
    if mode == "dense" and not defocus_maps.exact_dense(loaded):
        cell, context = defocus_maps.dense_cell_px(loaded), defocus_maps.dense_reach_px(loaded)
    else:  # patch mode, and exact dense passes, read nothing beyond a group's windows
        cell, context = 1, 0
    if getattr(loaded, "normalization", "window-minmax") == "image-range":
        value_range = normalisation_range(image)  # the whole image's: every tile normalises alike
    elif mode == "dense" and normalization == "global":
        value_range = image_min_max(image, tile_px=tile_px)
    else:
        value_range = None
    class_levels = np.asarray(loaded.class_levels, dtype=np.int64)
    proba = np.empty((len(ys), len(xs), len(class_levels)), dtype=np.float32)

    groups = []
    for rows in _window_groups(ys, tile_px):
        span_y = _block_span(int(ys[rows[0]]), int(ys[rows[-1]]), patch_px, context, cell, h)
        for cols in _window_groups(xs, tile_px):
            span_x = _block_span(int(xs[cols[0]]), int(xs[cols[-1]]), patch_px, context, cell, w)
            groups.append((rows, cols, (span_y, span_x)))

    def calls(model_arg):
        for rows, cols, read in groups:
            block = read_block(image, read)
            yield ((rows, cols), _proba_block,
                   (model_arg, block, ys[rows] - read[0].start, xs[cols] - read[1].start, mode, normalization,
                    batch_size, value_range, tta))

    with tqdm(total=len(groups), unit="tile", desc="defocus map", disable=not progress) as bar:
        if client is None and workers == 0:
            for (rows, cols), fn, args in calls(model):
                proba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = fn(*args)
                bar.update(1)
        else:
            with dask_client(max(workers, 1), client) as (cluster, _, _):
                if hasattr(model, "predict_patches"):  # an object: send it to every worker once
                    model_arg = cluster.scatter(model, broadcast=True, hash=False)
                else:
                    check_picklable(model, "model")
                    model_arg = model
                limit = 2 * max(1, sum(cluster.nthreads().values()))
                for (rows, cols), result in submit_bounded(cluster, calls(model_arg), limit=limit):
                    proba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = result
                    bar.update(1)
    proba = defocus_maps.smooth_proba(proba, ys, xs, smoothing_px=smoothing_px, patch_px=patch_px)  # the whole grid
    levels = class_levels[np.argmax(proba, axis=-1)]
    return DefocusMap(levels=levels, proba=proba, class_levels=class_levels, ys=ys, xs=xs, image_shape=(h, w),
                      patch_px=patch_px, stride=stride, mode=mode,
                      normalization=None if mode == "patch" or defocus_maps.exact_dense(loaded) else normalization)


# --------------------------------------------------------------------------------------------- restoration
def restoration_halo_px(psfs, *, patch_px: int, halo_px: int | None = None) -> int:
    """Halo (px) of a restoration tile: ``patch_px - 1`` (so that every window covering a core pixel lies in
    the tile) plus the Richardson-Lucy context of the deepest level (``halo_px``, or by default
    :func:`awdvd.restore.rl.default_halo_px` of each level's PSF, as whole-image AWDVD uses)."""

    psfs, _ = check_psf_stack(psfs)
    patch_px = check_positive_int(patch_px, "patch_px")
    return patch_px - 1 + max(halos_px(psfs, halo_px))


def _restore_block(block: np.ndarray, origin_yx, *, dmap: DefocusMap, psfs: np.ndarray, options: dict) -> np.ndarray:
    """AWDVD of one tile (with halo): the whole image's windows that lie inside the block, blended."""

    inside = dmap.window_subset(origin_yx, block.shape)
    if inside.levels.size == 0:  # cannot happen with the halo above; say so rather than write zeros
        raise RuntimeError(f"no window lies in the tile at {origin_yx}; the tile halo is too small (a bug in awdvd)")
    out, _ = blend_windows(block, inside, psfs, **options)
    return out


def tiled_deconvolve_levels(
    image,
    dmap: DefocusMap,
    psfs,
    *,
    iterations: int | Sequence[int],
    method: str,
    weighting: str,
    offset: float,
    halo_px: int | None,
    device: str | None,
    eps: float | None = None,
    tile_px: int = DEFAULT_TILE_PX,
    out=None,
    workers: int = 0,
    client=None,
    progress: bool = False,
    level_blend: str = "argmax",
):
    """:func:`awdvd.restore.blend.deconvolve_levels` of a large image, tile by tile, in bounded memory.

    Every pixel gets the whole image's windows, levels and blend weights; each Richardson-Lucy it uses sees at
    least the context whole-image AWDVD gives it, and ``eps`` is the whole image's. The result equals
    whole-image AWDVD up to RL's reach beyond that context (see the module docstring and tests/restore/test_tiles.py).

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask).
    dmap : the whole image's :class:`awdvd.restore.windows.DefocusMap` (e.g. :func:`tiled_defocus_map`'s).
    psfs, iterations, method, weighting, offset, halo_px, device, level_blend : as for
        :func:`awdvd.restore.blend.deconvolve_levels` (``offset`` a number: resolve "auto" first, once for the whole image).
    eps : RL's floor; default ``1e-6 * max(image - offset)`` over the whole image (one extra pass over it).
    tile_px : core tile side (px); each tile is read with :func:`restoration_halo_px` around it.
    out : (H, W) array to fill (e.g. ``awdvd.io.open_ome_zarr_output(...)``, a memmap, or any object with
        ``shape`` and ``__setitem__``); None allocates a numpy float32 array.
    workers, client, progress : as for :func:`tiled_map`.

    Returns
    -------
    ``out`` (or the new numpy array), float32 values.
    """

    patch_px = check_positive_int(dmap.patch_px, "patch_px")
    h, w = _check_large_image(image, patch_px)
    if (h, w) != tuple(dmap.image_shape):
        raise ValueError(f"the defocus map is of a {dmap.image_shape[0]} x {dmap.image_shape[1]} image; this image "
                         f"is {h} x {w}")
    tile_px = check_positive_int(tile_px, "tile_px")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    offset = check_offset(offset)
    psfs, _ = check_psf_stack(psfs)
    check_levels(dmap, len(psfs))
    iterations = per_level_iterations(iterations, len(psfs))
    if eps is None:
        _, hi = image_min_max(image, tile_px=tile_px)
        eps = eps_floor(np.array([max(hi - offset, 0.0)], dtype=np.float32))
    else:
        eps = check_eps(eps)

    halo = restoration_halo_px(psfs, patch_px=patch_px, halo_px=halo_px)
    options = dict(iterations=iterations, method=method, weighting=weighting, offset=offset, halo_px=halo_px, eps=eps,
                   device=resolve_device(device), level_blend=level_blend)
    # the map travels with every tile: levels in the smallest integer type that holds them, probabilities only
    # when the blend uses them
    proba = (np.asarray(dmap.proba, np.float32) if level_blend == "probability"
             else np.zeros(dmap.levels.shape + (0,), np.float32))
    small = DefocusMap(levels=dmap.levels.astype(np.int16 if len(psfs) < 2**15 else np.int64),
                       proba=proba, class_levels=dmap.class_levels,
                       ys=np.asarray(dmap.ys), xs=np.asarray(dmap.xs), image_shape=(h, w), patch_px=patch_px,
                       stride=int(dmap.stride), mode=dmap.mode, normalization=dmap.normalization)
    fn = functools.partial(_restore_block, dmap=small, psfs=psfs, options=options)
    return tiled_map(image, fn, tile_px=tile_px, halo_px=halo, out=out, workers=workers, client=client,
                     progress=progress)
