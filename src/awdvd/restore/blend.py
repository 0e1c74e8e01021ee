"""AWDVD from a defocus map (paper 2.3): every window is deconvolved with its level's PSF and the windows are
blended with triangular (or rectangular) weights; patch-wise (the paper's algorithm, kept as the reference) and
fast (regrouped by level, DESIGN 4).

The window grid comes with the :class:`awdvd.restore.windows.DefocusMap` (positions, size, step), so it is laid out
once, by whoever made the map. This module knows neither the model nor how the map was made, and takes every
option explicitly: the defaults, and the pipeline that resolves them (the "auto" offset, per-level iterations,
the device), are :mod:`awdvd.restore.pipeline`'s.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._checks import check_image, check_positive_int
from .._device import resolve_device
from .._threads import allowed_threads
from ..physics.psf import check_psf_stack
from .options import LEVEL_BLENDS
from .plan import RestorationPlan
from .rl import CHUNK_PIXELS, eps_floor, halos_px, is_delta_psf, richardson_lucy_batches
from .rl_schedule import RLSchedule, keep_share, level_schedule
from .windows import DefocusMap, axis_weight_matrix, window_profile

__all__ = ["deconvolve_levels", "blend_windows", "check_levels", "per_level_iterations", "window_label_weights",
           "label_shares", "MIN_PROBABILITY"]

#: "probability": classes below this probability are dropped (the rest renormalised; the most likely is kept).
#: Every kept level costs an RL of its windows: on the tilted specimens of the six shared fields (bundled model,
#: defaults; benchmarks/bench_blend_threshold.py --repeats 3) 0.1 / 0.2 / 0.3 give whole-image gains of +8.23 /
#: +8.22 / +8.16 dB and worst bands -0.11 / -0.10 / -0.11 dB, for 1.01 / 0.87 / 0.83 the CPU time of 30 plain
#: iterations with argmax levels
MIN_PROBABILITY = 0.2


def per_level_iterations(iterations, n_levels: int):
    """``iterations`` (one int >= 0 for every level, or a sequence of one per level) as a tuple of ``n_levels``
    ints; an :class:`awdvd.restore.rl_schedule.RLSchedule` is checked against ``n_levels`` and returned as it is."""
    if isinstance(iterations, RLSchedule):
        return level_schedule(iterations, n_levels)
    if isinstance(iterations, (list, tuple, np.ndarray)):
        values = tuple(check_positive_int(v, "iterations", minimum=0) for v in iterations)
        if len(values) != n_levels:
            raise ValueError(f"iterations has {len(values)} entries; give one per level ({n_levels}) or one int")
        return values
    return (check_positive_int(iterations, "iterations", minimum=0),) * n_levels


def check_levels(dmap: DefocusMap, n_levels: int) -> np.ndarray:
    """The map's (ny, nx) levels as int64 after checking them against its window positions and the PSFs."""
    grid = np.asarray(dmap.levels)
    if grid.dtype == bool or not np.issubdtype(grid.dtype, np.integer):
        raise TypeError(f"levels must be integers (level, or -1 for background), got dtype {grid.dtype}")
    if grid.shape != (len(dmap.ys), len(dmap.xs)):
        raise ValueError(f"levels has shape {grid.shape} for {len(dmap.ys)} x {len(dmap.xs)} window positions")
    if grid.size and (grid.min() < -1 or grid.max() >= n_levels):
        raise ValueError(f"levels must lie in -1 (background) .. {n_levels - 1}, got {grid.min()} .. {grid.max()}")
    return grid.astype(np.int64)


def window_label_weights(dmap: DefocusMap, n_levels: int, level_blend: str = "argmax",
                         min_probability: float = MIN_PROBABILITY) -> dict[int, np.ndarray]:
    """How much of each window's restoration every label (level 0 .. n_levels - 1, -1 background) makes:
    {label: (ny, nx) float64 weights}, summing to 1 over the labels of every window.

    "argmax": the map's levels (one-hot). "probability": the map's class probabilities (``dmap.proba``, columns
    in ``dmap.class_levels`` order) with the classes below ``min_probability`` dropped (the most likely one is
    always kept) and the rest renormalised, so that a window split between neighbouring levels gets both
    levels' restorations in proportion. Only labels with some weight are returned.
    """
    grid = check_levels(dmap, n_levels)
    return label_shares(grid, dmap.proba, dmap.class_levels, n_levels, level_blend, min_probability)


def label_shares(levels: np.ndarray, proba, class_levels, n_levels: int, level_blend: str = "argmax",
                 min_probability: float = MIN_PROBABILITY) -> dict[int, np.ndarray]:
    """:func:`window_label_weights` of any array of windows: ``levels`` (...) ints, ``proba`` (..., n_classes)
    probabilities in ``class_levels`` order (only read for "probability")."""
    levels = np.asarray(levels, dtype=np.int64)
    if level_blend == "argmax":
        return {int(label): (levels == label).astype(np.float64) for label in np.unique(levels)}
    if level_blend != "probability":
        raise ValueError(f"level_blend must be one of {LEVEL_BLENDS}, got {level_blend!r}")
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(class_levels, dtype=np.int64)
    if proba.shape != levels.shape + (len(classes),):
        raise ValueError(f"level_blend='probability' needs the map's probabilities ({levels.shape + (len(classes),)}), "
                         f"got shape {proba.shape}; use level_blend='argmax' for a map without them")
    if classes.size and (classes.min() < -1 or classes.max() >= n_levels):
        raise ValueError(f"the map's class levels {classes.tolist()} do not fit {n_levels} PSFs")
    keep = proba >= min_probability
    keep |= proba == proba.max(axis=-1, keepdims=True)
    kept = np.where(keep, proba, 0.0)
    kept /= kept.sum(axis=-1, keepdims=True)
    out: dict[int, np.ndarray] = {}
    for column, label in enumerate(classes):
        if kept[..., column].any():
            out[int(label)] = out.get(int(label), 0.0) + kept[..., column]
    return dict(sorted(out.items()))


def deconvolve_levels(image, dmap: DefocusMap, psfs, plan: RestorationPlan, *, record: dict | None = None) -> np.ndarray:
    """AWDVD of an image whose windows' defocus levels are given by ``dmap`` (a model's map, or known levels:
    :meth:`awdvd.restore.windows.DefocusMap.from_levels`).

    out(x) = sum_w weight_w(x) D_w(x) / sum_w weight_w(x) over the map's ``patch_px`` windows w, where D_w is
    the RL of the image with the PSF of the window's level, or the image itself for a background window
    (level -1).

    Parameters
    ----------
    image : (H, W) intensities, the map's ``image_shape``.
    dmap : the :class:`awdvd.restore.windows.DefocusMap` of ``image``: window positions, size, stride and levels.
    psfs : (L, k, k) deconvolution PSF of every level (e.g. ``psf_bank(optics)``).
    plan : the :class:`awdvd.restore.plan.RestorationPlan`: every level's RL (counts or stopping rule, and the
        share of its change each level keeps), the method ("fast": per level l, D_l = RL of the image with PSF l,
        computed only over the pixels that level-l windows cover plus a halo, out = sum_l W_l D_l / sum_l W_l with
        W_l the summed weights of level-l windows (DESIGN 4), a small multiple of one whole-image RL at any
        stride; "patchwise": the paper's algorithm, one RL per window on the window plus a margin of image
        context, the reference), the weighting (blends always divide by the accumulated weight, positive on
        every pixel), the offset (a number), the halo, the device, RL's floor (None: ``1e-6 * max(image -
        offset)``) and the level blend ("argmax", or "probability": :func:`window_label_weights`).
    record : a dict that receives ``"iterations_run"``: {level: [iterations of each of its RLs]} (a stopping
        rule decides them per region).

    Returns
    -------
    (H, W) float32. Background windows enter unchanged; where only background windows cover a pixel, the
    output is the input there.
    """
    array = check_image(image, "image")
    if tuple(array.shape) != tuple(dmap.image_shape):
        raise ValueError(f"the defocus map is of a {dmap.image_shape[0]} x {dmap.image_shape[1]} image; this image "
                         f"is {array.shape[0]} x {array.shape[1]}")
    if min(array.shape) < dmap.patch_px:
        raise ValueError(
            f"image is {array.shape[0]} x {array.shape[1]} px; AWDVD needs at least one {dmap.patch_px} x "
            f"{dmap.patch_px} window (use richardson_lucy or deconvolve_invariant for smaller images)"
        )
    out, covered = blend_windows(array, dmap, psfs, plan, record=record)
    if not covered.all():  # cannot happen with window_starts; a guard against silent NaNs
        raise RuntimeError("some pixels got no window weight; this is a bug in awdvd")
    return out


def blend_windows(array: np.ndarray, dmap: DefocusMap, psfs, plan: RestorationPlan, *,
                  record: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The AWDVD blend of :func:`deconvolve_levels` for windows at any positions: ``dmap``'s windows (top-left
    corners ``(dmap.ys[j], dmap.xs[i])``, all inside ``array``, levels ``dmap.levels[j, i]``), which need not
    cover the whole array.

    This is how a tile of a large image is restored with the whole image's windows (:mod:`awdvd.restore.tiles`, with
    :meth:`awdvd.restore.windows.DefocusMap.window_subset`): given the windows that lie in the tile, the blend weights of
    every pixel those windows cover are the whole image's. ``dmap.stride`` only scales the triangular weights'
    height (the paper's s / 42), which the blend divides out. ``plan`` and ``record`` as for :func:`deconvolve_levels`.

    Returns
    -------
    (out, covered): (H, W) float32 blend, and (H, W) bool, True where some window covers the pixel (``out`` is
    0 elsewhere).
    """
    array = np.asarray(array)
    psfs, _ = check_psf_stack(psfs)
    labels = window_label_weights(dmap, len(psfs), plan.level_blend)
    ys, xs = np.asarray(dmap.ys, dtype=np.int64), np.asarray(dmap.xs, dtype=np.int64)
    patch_px = check_positive_int(dmap.patch_px, "patch_px")
    stride = check_positive_int(dmap.stride, "stride")
    if not isinstance(plan, RestorationPlan):
        raise TypeError(f"plan must be a RestorationPlan, got {type(plan).__name__}")
    schedule = level_schedule(plan.iterations, len(psfs))
    offset = plan.offset
    device = resolve_device(plan.device)
    halos = halos_px(psfs, plan.halo_px)
    raw = array.astype(np.float32)
    data = np.maximum(array.astype(np.float64) - offset, 0.0).astype(np.float32)
    eps = eps_floor(data) if plan.eps is None else plan.eps
    identity = [schedule.leaves(level) or is_delta_psf(p) for level, p in enumerate(psfs)]
    profile = window_profile(plan.weighting, patch_px=patch_px, stride=stride)
    ty = axis_weight_matrix(array.shape[0], ys, profile)
    tx = axis_weight_matrix(array.shape[1], xs, profile)
    numerator = np.zeros(array.shape, dtype=np.float64)
    denominator = np.zeros(array.shape, dtype=np.float64)
    rl = dict(schedule=schedule, eps=eps, device=device, offset=offset, runs={}, boundary=plan.boundary,
              variance=schedule.noise_variance(array) if schedule.stopping else None)
    if plan.method == "fast":
        _fast(raw, data, labels, psfs, ty, tx, halos, identity, numerator, denominator, rl)
    else:  # the paper's per-window RLs see the image mirrored at its edges, whatever the plan's boundary
        rl["boundary"] = "symmetric"
        _patchwise(raw, data, labels, psfs, profile, ys, xs, patch_px, halos, identity, numerator, denominator, rl)
    covered = denominator > 0
    out = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=covered)
    if record is not None:
        record["iterations_run"] = {int(level): sorted(runs) for level, runs in sorted(rl["runs"].items())}
    return out.astype(np.float32), covered


def _restore(data: np.ndarray, psf: np.ndarray, level: int, rl: dict, workers: int | None = None,
             variance: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """RL of a batch (B, h, w) of offset-free data with level ``level``'s schedule, returned with the offset
    added back (float64); ``variance`` and ``weights`` (B, h, w) feed the schedule's stopping rule."""
    schedule = rl["schedule"]
    ran = np.zeros(len(data), dtype=np.int64)
    stop = schedule.stop_rule(level, variance, weights) if schedule.stopping else None
    out = richardson_lucy_batches(data, psf[None], schedule.iterations[level], rl["eps"], rl["device"], workers,
                                  variant=schedule.variant, tv_weight=schedule.tv_weight, stop=stop,
                                  iterations_run=ran, boundary=rl["boundary"])
    rl["runs"].setdefault(level, []).extend(int(n) for n in ran)  # list.extend is atomic under the GIL
    return out.astype(np.float64) + rl["offset"]


def _kept(restored: np.ndarray, raw: np.ndarray, level: int, rl: dict) -> np.ndarray:
    """A level's restoration of some pixels with only its schedule's ``strength`` of the change kept."""
    return keep_share(restored, raw, rl["schedule"].level_strength(level))


def _map_jobs(function, jobs: list, device: str):
    """Results of ``function(job, workers)`` for every job, in order. On the CPU, independent RLs run in a
    thread pool of up to :func:`awdvd._threads.allowed_threads` threads, each with a single-threaded FFT:
    pocketfft and numpy's array loops release the GIL, so all cores stay busy also during the element-wise
    steps (which a multi-threaded FFT leaves to one core). Inside a batch worker that allows one thread, the
    jobs run one after another on one core."""
    threads = min(len(jobs), allowed_threads()) if device == "cpu" else 1
    if threads <= 1:
        yield from (function(job, None) for job in jobs)
        return

    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(lambda job: function(job, 1), jobs)


def _fast(raw, data, labels, psfs, ty, tx, halos, identity, numerator, denominator, rl) -> None:
    jobs = []
    for label, share in labels.items():
        weight = ty.T @ share @ tx
        denominator += weight
        if label < 0 or identity[label]:
            numerator += weight * raw
            continue
        for core, outer, mask in _support_regions(weight > 0, halos[label]):
            jobs.append((label, core, outer, np.where(mask, weight[core], 0.0)))
    # the longest RLs first (pixels x iterations), so that no thread is left with one long run at the end
    jobs.sort(key=lambda job: -_pixels(job[2]) * rl["schedule"].iterations[job[0]])

    def restore(job, workers):
        label, core, outer, weight = job
        variance = weights = None
        if rl["variance"] is not None:  # the rule weighs the core pixels this RL serves by their blend weights
            variance = rl["variance"][outer][None]
            weights = np.zeros(variance.shape, dtype=np.float32)
            inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
            weights[(0,) + inner] = weight
        return _restore(data[outer][None], psfs[label], label, rl, workers, variance, weights)[0]

    for (label, core, outer, weight), restored in zip(jobs, _map_jobs(restore, jobs, rl["device"])):
        inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
        numerator[core] += weight * _kept(restored[inner], raw[core], label, rl)


def _pixels(box) -> int:
    return (box[0].stop - box[0].start) * (box[1].stop - box[1].start)


def _support_regions(support: np.ndarray, halo: int):
    """Rectangles to run RL over so that every pixel of ``support`` has ``halo`` px of context.

    Yields (core, outer, mask): ``core`` slices bound a group of connected components of the support,
    ``outer`` is ``core`` grown by ``halo`` (clipped to the image), ``mask`` marks the core pixels that
    belong to the group (components are pixel-disjoint, so every support pixel is served exactly once).
    Components are merged greedily while one rectangle costs no more pixels than two.
    """
    from scipy import ndimage as ndi

    labels, n = ndi.label(support, structure=np.ones((3, 3), dtype=bool))
    height, width = support.shape

    def grow(box):
        y0, y1, x0, x1 = box
        return max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)

    def area(box):
        y0, y1, x0, x1 = grow(box)
        return (y1 - y0) * (x1 - x0)

    groups = [([i + 1], (s[0].start, s[0].stop, s[1].start, s[1].stop)) for i, s in enumerate(ndi.find_objects(labels))]
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                (ia, ba), (ib, bb) = groups[a], groups[b]
                union = (min(ba[0], bb[0]), max(ba[1], bb[1]), min(ba[2], bb[2]), max(ba[3], bb[3]))
                if area(union) <= area(ba) + area(bb):
                    groups[a] = (ia + ib, union)
                    del groups[b]
                    merged = True
                    break
            if merged:
                break
    for ids, box in groups:
        y0, y1, x0, x1 = box
        g0, g1, h0, h1 = grow(box)
        core = (slice(y0, y1), slice(x0, x1))
        yield core, (slice(g0, g1), slice(h0, h1)), np.isin(labels[core], ids)


def _patchwise(raw, data, labels, psfs, profile, ys, xs, patch_px, halos, identity, numerator, denominator, rl) -> None:
    p = patch_px
    weight = np.outer(profile, profile)
    margin = max((halos[label] for label in labels if label >= 0), default=0)
    padded = np.pad(data, margin, mode="symmetric") if margin else data
    padded_variance = None
    if rl["variance"] is not None:
        padded_variance = np.pad(rl["variance"], margin, mode="symmetric") if margin else rl["variance"]
    jobs = []
    for label, share in labels.items():
        rows, cols = np.nonzero(share > 0)
        if label < 0 or identity[label]:
            for j, i in zip(rows, cols):
                y, x = ys[j], xs[i]
                numerator[y : y + p, x : x + p] += share[j, i] * weight * raw[y : y + p, x : x + p]
                denominator[y : y + p, x : x + p] += share[j, i] * weight
            continue
        side = p + 2 * halos[label] + 2 * (psfs.shape[-1] // 2)
        chunk = max(1, min(CHUNK_PIXELS // side**2, -(-len(rows) // 2)))  # at least two jobs per level
        jobs += [(label, rows[start : start + chunk], cols[start : start + chunk])
                 for start in range(0, len(rows), chunk)]

    def restore(job, workers):
        label, rows, cols = job
        c = halos[label]
        window = [(slice(ys[j] + margin - c, ys[j] + margin + p + c), slice(xs[i] + margin - c, xs[i] + margin + p + c))
                  for j, i in zip(rows, cols)]
        crops = np.stack([padded[box] for box in window])
        variance = weights = None
        if padded_variance is not None:
            variance = np.stack([padded_variance[box] for box in window])
            weights = np.zeros(variance.shape, dtype=np.float32)
            weights[:, c : c + p, c : c + p] = weight
        return _restore(crops, psfs[label], label, rl, workers, variance, weights)[:, c : c + p, c : c + p]

    for (label, rows, cols), restored in zip(jobs, _map_jobs(restore, jobs, rl["device"])):
        for j, i, patch in zip(rows, cols, restored):
            y, x = ys[j], xs[i]
            patch = _kept(patch, raw[y : y + p, x : x + p], label, rl)
            numerator[y : y + p, x : x + p] += labels[label][j, i] * weight * patch
            denominator[y : y + p, x : x + p] += labels[label][j, i] * weight
