"""Large images in tiles, with the result of whole-image AWDVD: defocus maps on the whole image's window grid,
then restoration tile by tile with the whole image's blend weights.

Cutting a large image into tiles and running :func:`awdvd.deconv.deconvolve` on each would not do: every
tile would lay out its own windows from its own edges (the last one flush with the tile's edge), so the
windows, their predictions and their blend weights would all differ from the whole image's, and seams
would show. Instead:

1. :func:`tiled_defocus_map` classifies the windows of the WHOLE image (:func:`awdvd.windows.window_starts`
   of its full size) a group of windows at a time: each group is read with just the pixels its windows
   cover (patch mode: the same patches as whole-image patch mode) or, in dense mode, with
   :func:`awdvd.predict.dense_reach_px` of context around them, from an origin on the trunk's cell grid, so
   the trunk's cells are the whole image's. The map is small (one entry per window) and lives in memory.
2. :func:`tiled_deconvolve_levels` restores core tiles with :func:`awdvd.batch.tiled_map`. Each tile is read
   with a halo of ``patch_px - 1`` (every window that covers a core pixel lies inside the block) plus the
   Richardson-Lucy context that whole-image AWDVD gives each region (3 x the PSF's 99% radius by default,
   :func:`awdvd.deconv.default_halo_px`); the block is restored by :func:`awdvd.deconv.blend_windows` with
   the whole image's windows that lie in it. So every core pixel gets exactly the whole image's blend weights
   and levels, and each RL it draws on sees at least the same context as in the whole image; ``eps`` is the
   whole image's. What differs is only RL's reach beyond that context (RL is iterative: its reach grows with
   every iteration and no finite halo is exact): tests/test_tiling.py bounds the difference.
3. :func:`tiled_deconvolve` does both.

Images can be any array that slices to numpy (numpy, memmap, zarr, the dask arrays that
``awdvd.io.read_image`` returns for large files); the output can be a zarr array from
``awdvd.io.open_ome_zarr_output``, so neither is ever whole in memory. Tiles run in this process
(``workers=0``, default), on a local Dask cluster (``workers=N``) or on an existing one (``client=``); the
results are identical. Peak memory is bounded by a few tiles in flight, not by the image.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from ._checks import check_positive_int

__all__ = [
    "tiled_defocus_map",
    "tiled_deconvolve_levels",
    "tiled_deconvolve",
    "restoration_halo_px",
    "image_range",
]

_DEFAULT_TILE_PX = 1024


# --------------------------------------------------------------------------------------------- helpers
def image_range(image, *, tile_px: int = _DEFAULT_TILE_PX) -> tuple[float, float]:
    """(min, max) of a 2-D image read tile by tile (bounded memory for zarr / dask / memmap inputs)."""
    from .batch import _read_block, tile_grid

    lo, hi = math.inf, -math.inf
    for core, _ in tile_grid(tuple(image.shape), tile_px, 0):
        block = _read_block(image, core)
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


def _resolve_model(model):
    """A DefocusModel from a model or a zero-argument loader (e.g. awdvd.jobs.ModelFile), where this runs."""
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
                 batch_size: int, value_range) -> np.ndarray:
    from .predict import window_proba

    return window_proba(block, _resolve_model(model), ys, xs, mode=mode, normalization=normalization,
                        batch_size=batch_size, value_range=value_range)


# --------------------------------------------------------------------------------------------- 1. defocus map
def tiled_defocus_map(
    image,
    model,
    *,
    stride: int = 42,
    mode: str = "patch",
    normalization: str = "local",
    tile_px: int = _DEFAULT_TILE_PX,
    batch_size: int = 256,
    workers: int = 0,
    client=None,
    progress: bool = False,
):
    """:func:`awdvd.predict.defocus_map` of a large image, computed a tile of windows at a time.

    Equal to ``defocus_map(image, model, ...)`` of the whole image: the same windows (the whole image's
    grid), the same patches (patch mode) or the same trunk cells (dense mode, see the module docstring), so
    the same levels and, to float32 rounding, the same probabilities.

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask), H and W >= ``patch_px``.
    model : a :class:`awdvd.model.DefocusModel`, or a picklable zero-argument callable that returns one (e.g.
        :class:`awdvd.jobs.ModelFile`, which loads the model file once per Dask worker). A model object is
        sent to each Dask worker once.
    stride, mode, normalization, batch_size : as for :func:`awdvd.predict.defocus_map`; "global"
        normalization uses the whole image's min and max (one extra pass over the image).
    tile_px : windows are grouped by the ``tile_px`` band their start falls in; a group reads about
        ``tile_px + patch_px`` px square (dense: plus the trunk's context).
    workers, client : 0 (default) runs the groups in this process; N >= 1 on a local Dask cluster of N
        workers; ``client`` (a ``distributed.Client`` or scheduler address) on an existing cluster.
    progress : show a progress bar over tiles.

    Returns
    -------
    :class:`awdvd.predict.DefocusMap` of the whole image.
    """
    from .batch import _dask_client, _read_block, submit_bounded
    from .predict import MAP_MODES, NORMALIZATIONS, DefocusMap, dense_cell_px, dense_reach_px
    from .windows import window_starts

    loaded = _resolve_model(model)
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
    ys = window_starts(h, patch_px=patch_px, stride=stride)
    xs = window_starts(w, patch_px=patch_px, stride=stride)
    if mode == "dense":
        cell, context = dense_cell_px(loaded), dense_reach_px(loaded)
    else:
        cell, context = 1, 0
    value_range = image_range(image, tile_px=tile_px) if mode == "dense" and normalization == "global" else None
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
            block = _read_block(image, read)
            yield ((rows, cols), _proba_block,
                   (model_arg, block, ys[rows] - read[0].start, xs[cols] - read[1].start, mode, normalization,
                    batch_size, value_range))

    from tqdm.auto import tqdm

    with tqdm(total=len(groups), unit="tile", desc="defocus map", disable=not progress) as bar:
        if client is None and workers == 0:
            for (rows, cols), fn, args in calls(model):
                proba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = fn(*args)
                bar.update(1)
        else:
            with _dask_client(max(workers, 1), client) as (dask_client, _, _):
                if hasattr(model, "predict_patches"):  # an object: send it to every worker once
                    model_arg = dask_client.scatter(model, broadcast=True, hash=False)
                else:
                    from .batch import _check_picklable

                    _check_picklable(model, "model")
                    model_arg = model
                limit = 2 * max(1, sum(dask_client.nthreads().values()))
                for (rows, cols), result in submit_bounded(dask_client, calls(model_arg), limit=limit):
                    proba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = result
                    bar.update(1)
    levels = class_levels[np.argmax(proba, axis=-1)]
    return DefocusMap(levels=levels, proba=proba, class_levels=class_levels, ys=ys, xs=xs, image_shape=(h, w),
                      patch_px=patch_px, stride=stride, mode=mode,
                      normalization=None if mode == "patch" else normalization)


# --------------------------------------------------------------------------------------------- 2. restoration
def restoration_halo_px(psfs, *, patch_px: int = 84, halo_px: int | None = None) -> int:
    """Halo (px) of a restoration tile: ``patch_px - 1`` (so that every window covering a core pixel lies in
    the tile) plus the Richardson-Lucy context of the deepest level (``halo_px``, or by default
    :func:`awdvd.deconv.default_halo_px` of each level's PSF, as whole-image AWDVD uses)."""
    from .deconv import _halos
    from .psf import check_psf_stack

    psfs, _ = check_psf_stack(psfs)
    patch_px = check_positive_int(patch_px, "patch_px")
    return patch_px - 1 + max(_halos(psfs, halo_px))


def _restore_block(block: np.ndarray, origin_yx, *, levels: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                   psfs: np.ndarray, options: dict) -> np.ndarray:
    """AWDVD of one tile (with halo): the whole image's windows that lie inside the block, blended."""
    from .deconv import blend_windows

    oy, ox = origin_yx
    p = options["patch_px"]
    rows = np.nonzero((ys >= oy) & (ys + p <= oy + block.shape[0]))[0]
    cols = np.nonzero((xs >= ox) & (xs + p <= ox + block.shape[1]))[0]
    if rows.size == 0 or cols.size == 0:  # cannot happen with the halo above; say so rather than write zeros
        raise RuntimeError(f"no window lies in the tile at {origin_yx}; the tile halo is too small (a bug in awdvd)")
    out, _ = blend_windows(block, levels[np.ix_(rows, cols)].astype(np.int64), psfs, ys[rows] - oy, xs[cols] - ox,
                           **options)
    return out


def tiled_deconvolve_levels(
    image,
    levels,
    psfs,
    *,
    stride: int,
    patch_px: int = 84,
    iterations: int = 30,
    method: str = "fast",
    weighting: str = "triangular",
    offset: float = 0.0,
    halo_px: int | None = None,
    eps: float | None = None,
    device: str | None = None,
    tile_px: int = _DEFAULT_TILE_PX,
    out=None,
    workers: int = 0,
    client=None,
    progress: bool = False,
):
    """:func:`awdvd.deconv.deconvolve_levels` of a large image, tile by tile, in bounded memory.

    Every pixel gets the whole image's windows, levels and blend weights; each Richardson-Lucy it uses sees at
    least the context whole-image AWDVD gives it, and ``eps`` is the whole image's. The result equals
    whole-image AWDVD up to RL's reach beyond that context (see the module docstring and tests/test_tiling.py).

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask).
    levels : (ny, nx) integer levels of the whole image's windows (``window_starts`` of (H, W) at ``stride``),
        e.g. ``tiled_defocus_map(...).levels``; -1 for background.
    psfs, stride, patch_px, iterations, method, weighting, offset, halo_px, device : as for
        :func:`awdvd.deconv.deconvolve_levels`.
    eps : RL's floor; default ``1e-6 * max(image - offset)`` over the whole image (one extra pass over it).
    tile_px : core tile side (px); each tile is read with :func:`restoration_halo_px` around it.
    out : (H, W) array to fill (e.g. ``awdvd.io.open_ome_zarr_output(...)``, a memmap, or any object with
        ``shape`` and ``__setitem__``); None allocates a numpy float32 array.
    workers, client, progress : as for :func:`awdvd.batch.tiled_map`.

    Returns
    -------
    ``out`` (or the new numpy array), float32 values.
    """
    from .deconv import METHODS, _check_eps, _check_offset, _default_eps, _resolve_device
    from .psf import check_psf_stack
    from .windows import WEIGHTINGS, window_starts
    from .batch import tiled_map

    patch_px = check_positive_int(patch_px, "patch_px")
    h, w = _check_large_image(image, patch_px)
    stride = check_positive_int(stride, "stride")
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    tile_px = check_positive_int(tile_px, "tile_px")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    offset = _check_offset(offset)
    psfs, _ = check_psf_stack(psfs)
    ys = window_starts(h, patch_px=patch_px, stride=stride)
    xs = window_starts(w, patch_px=patch_px, stride=stride)
    grid = np.asarray(levels)
    if grid.shape != (len(ys), len(xs)):
        raise ValueError(f"levels has shape {grid.shape}; a {h} x {w} image at stride {stride} has {len(ys)} x "
                         f"{len(xs)} windows of {patch_px} px (see awdvd.windows.window_starts)")
    if grid.dtype == bool or not np.issubdtype(grid.dtype, np.integer):
        raise TypeError(f"levels must be integers (level, or -1 for background), got dtype {grid.dtype}")
    if grid.size and (grid.min() < -1 or grid.max() >= len(psfs)):
        raise ValueError(f"levels must lie in -1 (background) .. {len(psfs) - 1}, got {grid.min()} .. {grid.max()}")
    if eps is None:
        _, hi = image_range(image, tile_px=tile_px)
        eps = _default_eps(np.array([max(hi - offset, 0.0)], dtype=np.float32))
    else:
        eps = _check_eps(eps)
    halo = restoration_halo_px(psfs, patch_px=patch_px, halo_px=halo_px)
    options = dict(stride=stride, patch_px=patch_px, iterations=iterations, method=method, weighting=weighting,
                   offset=offset, halo_px=halo_px, eps=eps, device=_resolve_device(device))
    # the level grid travels with every tile: the smallest integer type that holds it
    small = grid.astype(np.int16 if len(psfs) < 2**15 else np.int64)
    fn = functools.partial(_restore_block, levels=small, ys=ys, xs=xs, psfs=psfs, options=options)
    return tiled_map(image, fn, tile_px=tile_px, halo_px=halo, out=out, workers=workers, client=client,
                     progress=progress)


# --------------------------------------------------------------------------------------------- 3. both
def tiled_deconvolve(
    image,
    model,
    *,
    stride: int = 42,
    iterations: int = 30,
    method: str = "fast",
    weighting: str = "triangular",
    offset: float = 0.0,
    psfs=None,
    psf_size: int | None = None,
    map_mode: str = "patch",
    normalization: str = "local",
    halo_px: int | None = None,
    device: str | None = None,
    tile_px: int = _DEFAULT_TILE_PX,
    out=None,
    workers: int = 0,
    client=None,
    progress: bool = False,
):
    """:func:`awdvd.deconv.deconvolve` of a large image in tiles: :func:`tiled_defocus_map`, then
    :func:`tiled_deconvolve_levels` (one Dask cluster for both when ``workers`` >= 1).

    ``model`` as for :func:`tiled_defocus_map`; other parameters as for :func:`awdvd.deconv.deconvolve` and
    :func:`tiled_deconvolve_levels`. Returns ``(restored, defocus_map)``: ``out`` (or a new numpy float32
    array) and the whole image's :class:`awdvd.predict.DefocusMap`.
    """
    from .batch import _dask_client

    loaded = _resolve_model(model)
    if psfs is None:
        from .psf import psf_bank

        psfs = psf_bank(loaded.optics, size=psf_size)
    workers = check_positive_int(workers, "workers", minimum=0)

    def run(where, model_arg):
        dmap = tiled_defocus_map(image, model_arg, stride=stride, mode=map_mode, normalization=normalization,
                                 tile_px=tile_px, client=where, progress=progress)
        restored = tiled_deconvolve_levels(image, dmap.levels, psfs, stride=stride, patch_px=dmap.patch_px,
                                           iterations=iterations, method=method, weighting=weighting,
                                           offset=offset, halo_px=halo_px, device=device, tile_px=tile_px,
                                           out=out, client=where, progress=progress)
        return restored, dmap

    if client is None and workers == 0:
        return run(None, loaded)
    with _dask_client(max(workers, 1), client) as (dask_client, _, _):
        return run(dask_client, model)
