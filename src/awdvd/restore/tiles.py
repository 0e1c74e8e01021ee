"""AWDVD of large images in tiles (the tile machinery is :mod:`awdvd.restore.tiling`): AWDVD's two steps with the
result of the whole image (defocus maps on the whole image's window grid, then
restoration tile by tile with the whole image's blend weights).

Cutting a large image into tiles and restoring each on its own would not do: every tile would lay out its own
windows from its own edges (the last one flush with the tile's edge), so the windows, their predictions and
their blend weights would all differ from the whole image's, and seams would show. Instead:

1. :func:`tiled_defocus_map` classifies the windows of the WHOLE image (:func:`awdvd.restore.windows.window_starts`
   of its full size) a group of windows at a time: each group is read with just the pixels its windows
   cover (patch mode: the same patches as whole-image patch mode) or, in dense mode, with
   :func:`awdvd.restore.defocus_maps.dense_reach_px` of context around them, from an origin on the trunk's cell grid, so
   the trunk's cells are the whole image's. The map is small (one entry per window) and lives in memory.
2. :func:`tiled_deconvolve_levels` restores core tiles with :func:`awdvd.restore.tiling.tiled_map`. Each tile is read with a halo
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

import numpy as np
from tqdm.auto import tqdm

from .._checks import check_positive_int
from .._cluster import check_picklable, dask_client
from .._device import resolve_device
from ..data.patches import image_range as normalisation_range
from ..physics.psf import check_psf_stack
from . import defocus_maps
from .blend import blend_windows, check_levels, per_level_iterations
from .defocus_maps import window_proba
from .options import MAP_MODES, NORMALIZATIONS
from .plan import RestorationPlan
from .rl import eps_floor, halos_px
from .tiling import DEFAULT_TILE_PX, image_min_max, read_block, submit_bounded, tiled_map
from .windows import DefocusMap, window_starts

__all__ = [
    "resolve_model",
    "tiled_defocus_map",
    "tiled_deconvolve_levels",
    "restoration_halo_px",
]


# --------------------------------------------------------------------------------------------- defocus maps
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
    """:func:`awdvd.restore.defocus_maps.compute_map` of a large image, computed a tile of windows at a time.

    Equal to ``compute_map(image, model, ...)`` of the whole image: the same windows (the whole image's
    grid), the same patches (patch mode) or the same trunk cells (dense mode, see the module docstring), so
    the same levels and, to float32 rounding, the same probabilities.

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask), H and W >= ``patch_px``.
    model : a :class:`awdvd.learn.model.DefocusModel`, or a picklable zero-argument callable that returns one (e.g.
        :class:`awdvd.batch.jobs.ModelFile`, which loads the model file once per Dask worker). A model object is
        sent to each Dask worker once.
    stride, mode, normalization, batch_size : as for :func:`awdvd.restore.defocus_maps.compute_map`; "global"
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
                      normalization=None if mode == "patch" or defocus_maps.exact_dense(loaded) else normalization,
                      z_step_um=defocus_maps.model_z_step_um(loaded))


# --------------------------------------------------------------------------------------------- restoration
def restoration_halo_px(psfs, *, patch_px: int, halo_px: int | None = None) -> int:
    """Halo (px) of a restoration tile: ``patch_px - 1`` (so that every window covering a core pixel lies in
    the tile) plus the Richardson-Lucy context of the deepest level (``halo_px``, or by default
    :func:`awdvd.restore.rl.default_halo_px` of each level's PSF, as whole-image AWDVD uses)."""

    psfs, _ = check_psf_stack(psfs)
    patch_px = check_positive_int(patch_px, "patch_px")
    return patch_px - 1 + max(halos_px(psfs, halo_px))


def _restore_block(block: np.ndarray, origin_yx, *, dmap: DefocusMap, psfs: np.ndarray,
                   plan: RestorationPlan) -> np.ndarray:
    """AWDVD of one tile (with halo): the whole image's windows that lie inside the block, blended."""

    inside = dmap.window_subset(origin_yx, block.shape)
    if inside.levels.size == 0:  # cannot happen with the halo above; say so rather than write zeros
        raise RuntimeError(f"no window lies in the tile at {origin_yx}; the tile halo is too small (a bug in awdvd)")
    out, _ = blend_windows(block, inside, psfs, plan)
    return out


def tiled_deconvolve_levels(image, dmap: DefocusMap, psfs, plan: RestorationPlan, *, tile_px: int = DEFAULT_TILE_PX,
                            out=None, workers: int = 0, client=None, progress: bool = False):
    """:func:`awdvd.restore.blend.deconvolve_levels` of a large image, tile by tile, in bounded memory.

    Every pixel gets the whole image's windows, levels and blend weights; each Richardson-Lucy it uses sees at
    least the context whole-image AWDVD gives it, and ``eps`` is the whole image's. The result equals
    whole-image AWDVD up to RL's reach beyond that context (see the module docstring and tests/restore/test_tiles.py).

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy (numpy, memmap, zarr, dask).
    dmap : the whole image's :class:`awdvd.restore.windows.DefocusMap` (e.g. :func:`tiled_defocus_map`'s).
    psfs, plan : as for :func:`awdvd.restore.blend.deconvolve_levels`; ``plan.eps`` None is the whole image's
        ``1e-6 * max(image - offset)`` (one extra pass over it).
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
    if not isinstance(plan, RestorationPlan):
        raise TypeError(f"plan must be a RestorationPlan, got {type(plan).__name__}")
    psfs, _ = check_psf_stack(psfs)
    check_levels(dmap, len(psfs))
    plan = plan.replace(iterations=per_level_iterations(plan.iterations, len(psfs)), device=resolve_device(plan.device))
    if plan.eps is None:
        _, hi = image_min_max(image, tile_px=tile_px)
        plan = plan.replace(eps=eps_floor(np.array([max(hi - plan.offset, 0.0)], dtype=np.float32)))
    halo = restoration_halo_px(psfs, patch_px=patch_px, halo_px=plan.halo_px)
    # the map travels with every tile: levels in the smallest integer type that holds them, probabilities only
    # when the blend uses them
    proba = (np.asarray(dmap.proba, np.float32) if plan.level_blend == "probability"
             else np.zeros(dmap.levels.shape + (0,), np.float32))
    small = DefocusMap(levels=dmap.levels.astype(np.int16 if len(psfs) < 2**15 else np.int64),
                       proba=proba, class_levels=dmap.class_levels,
                       ys=np.asarray(dmap.ys), xs=np.asarray(dmap.xs), image_shape=(h, w), patch_px=patch_px,
                       stride=int(dmap.stride), mode=dmap.mode, normalization=dmap.normalization,
                       z_step_um=dmap.z_step_um)
    fn = functools.partial(_restore_block, dmap=small, psfs=psfs, plan=plan)
    return tiled_map(image, fn, tile_px=tile_px, halo_px=halo, out=out, workers=workers, client=client,
                     progress=progress)
