"""Defocus maps: the defocus level (or background) of every 84 x 84 window of an image (paper Fig. 2(c)).

Two ways to get them, and which one is exact depends on how the model normalises its input
(``model.normalization``, :mod:`awdvd.data.patches`):

``mode="patch"`` (the reference): every window is cut out and classified on its own.

``mode="dense"``: DelpNet is convolutional and ends in a global max pool, so the conv trunk is run once over
the whole image and every window's feature vector is the max over the trunk cells under it (cells are ``S`` px
apart, 8 for DelpNet).

- "image-range" models (the bundled one) normalise every window by its image's range, and their trunk has no
  padding: a window's trunk cells depend on its own pixels only. A dense pass then gives every window exactly
  what patch mode gives (:func:`exact_dense`); windows whose start is not a multiple of S are served by a pass
  over the image shifted to their grid, or, where few windows share a shift, one by one. ``mode="auto"`` (the
  default) is dense for these models.
- "window-minmax" models (the paper's) normalise each window by its own min and max, which cannot be applied to
  a shared feature map, so the image is normalised once, per pixel, by the min and max over the ``patch_px``
  box centred on the pixel (``normalization="local"``) or by the image's min and max (``"global"``); windows take
  the cells nearest to them, and near the borders see real image context where a lone patch sees the conv's
  zero padding: an approximation (``benchmarks/bench_deconv.py`` measures it). ``mode="auto"`` is patch mode.

Both modes can average the 8 dihedral transforms of the image (``tta``) and combine each window's probabilities
with its neighbours' (``smoothing_px``: depth varies smoothly across a specimen). An exactly constant window is
background (:func:`awdvd.learn.model.constant_windows_are_background`).

Arrays in, arrays out; torch is imported only when a map is computed.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from .._checks import check_image, check_positive_int
from ..data.patches import PATCH_PX, image_range, normalize_windows
from ..learn.model import constant_windows_are_background
from .options import MAP_MODES, NORMALIZATIONS, TTA_CHOICES
from .windows import DefocusMap, window_starts

__all__ = ["DefocusMap", "compute_map", "window_proba", "window_patches", "dense_cell_px", "dense_reach_px",
           "dense_trunk", "trunk_geometry", "normalize_image", "exact_dense", "resolve_map_mode", "smooth_proba",
           "classify_windows", "model_z_step_um",]

def model_z_step_um(model) -> float | None:
    """The depth between the model's levels (um, in its own optics), or None for a model without optics."""
    optics = getattr(model, "optics", None)
    return None if optics is None else float(optics.z_step_um)


def exact_dense(model) -> bool:
    """True if a dense pass gives ``model``'s windows exactly what patch mode gives: DelpNet without padding
    ("valid" convolutions) and windows normalised by their image's range."""
    config = getattr(model, "config", None)
    return (getattr(model, "normalization", "window-minmax") == "image-range"
            and getattr(model, "architecture", None) == "delpnet" and getattr(config, "padding", 1) == 0)


def resolve_map_mode(mode: str, model) -> str:
    """"patch" or "dense" for ``mode`` (:data:`MAP_MODES`): "auto" is dense where it is exact, else patch."""
    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")
    if mode == "auto":
        return "dense" if exact_dense(model) else "patch"
    return mode


def window_patches(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch_px: int) -> np.ndarray:
    """(len(ys) * len(xs), patch_px, patch_px) copies of the windows, row-major over the grid."""
    view = np.lib.stride_tricks.sliding_window_view(image, (patch_px, patch_px))
    return view[ys[:, None], xs[None, :]].reshape(-1, patch_px, patch_px)


def compute_map(
    image,
    model,
    *,
    stride: int,
    mode: str = "auto",
    normalization: str = "local",
    batch_size: int = 256,
    value_range: tuple[float, float] | None = None,
    tta: int = 1,
    smoothing_px: float = 0.0,
) -> DefocusMap:
    """Defocus level and class probabilities of every ``model.patch_px`` window of ``image``.

    Parameters
    ----------
    image : (H, W) raw intensities, H and W >= ``model.patch_px``.
    model : a :class:`awdvd.learn.model.DefocusModel` (or any object with ``predict_patches``, ``class_levels``,
        ``patch_px`` and, for dense mode, ``network``, ``device`` and ``inference_network``).
    stride : window step in px (1 .. ``model.patch_px``; ``AWDVDOptions().stride`` is awdvd's default); windows
        start at 0, stride, ... and the last one is flush with the far edge, so every pixel is covered.
    mode : "auto" (dense where that is exact, :func:`exact_dense`, else patch), "patch" (each window
        classified on its own; the reference) or "dense" (one trunk pass over the whole image; see the module
        docstring).
    normalization : dense mode of "window-minmax" models only: "local" (min/max over the window-sized box
        centred on each pixel) or "global" (the image's min/max).
    batch_size : windows per forward pass (patch mode).
    value_range : "image-range" models: the (low, high) range of the image the windows belong to (default: this
        image's, :func:`awdvd.data.patches.image_range`; a tile of a larger image passes the larger image's).
    tta : average the class probabilities over 1, 2, 4 or 8 dihedral transforms of the image (:data:`TTA_CHOICES`).
    smoothing_px : combine each window's log-probabilities with its neighbours' by a Gaussian of this sigma
        (px, between window centres); 0 keeps every window on its own.

    Returns
    -------
    :class:`DefocusMap`.
    """
    array = check_image(image, "image")
    patch_px = int(model.patch_px)
    stride = check_positive_int(stride, "stride")
    batch_size = check_positive_int(batch_size, "batch_size")
    if min(array.shape) < patch_px:
        raise ValueError(f"image is {array.shape[0]} x {array.shape[1]} px; a defocus map needs at least one "
                         f"{patch_px} x {patch_px} window")
    mode = resolve_map_mode(mode, model)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    ys = window_starts(array.shape[0], patch_px=patch_px, stride=stride)
    xs = window_starts(array.shape[1], patch_px=patch_px, stride=stride)
    class_levels = np.asarray(model.class_levels, dtype=np.int64)
    proba = window_proba(array, model, ys, xs, mode=mode, normalization=normalization, batch_size=batch_size,
                         value_range=value_range, tta=tta)
    proba = smooth_proba(proba, ys, xs, smoothing_px=smoothing_px, patch_px=patch_px)
    used_normalization = None if mode == "patch" or exact_dense(model) else normalization
    levels = class_levels[np.argmax(proba, axis=-1)]
    return DefocusMap(levels=levels, proba=proba, class_levels=class_levels, ys=ys, xs=xs,
                      image_shape=tuple(int(s) for s in array.shape), patch_px=patch_px, stride=stride, mode=mode,
                      normalization=used_normalization, z_step_um=model_z_step_um(model))


def smooth_proba(proba: np.ndarray, ys: np.ndarray, xs: np.ndarray, *, smoothing_px: float,
                 patch_px: int = 84) -> np.ndarray:
    """Window probabilities (ny, nx, C) combined with their neighbours': the log-probabilities averaged with
    Gaussian weights of sigma ``smoothing_px`` over the distances between window centres (separable over rows and
    columns), renormalised. Background stays a class like the others, so a region of background stays one;
    exactly constant windows (probability exactly 1 for bg) keep theirs. ``smoothing_px`` 0 returns ``proba``."""
    if not np.isfinite(smoothing_px) or smoothing_px < 0:
        raise ValueError(f"smoothing_px must be a finite number >= 0, got {smoothing_px!r}")
    if smoothing_px == 0 or proba.size == 0:
        return proba
    log_p = np.log(np.clip(proba.astype(np.float64), 1e-6, None))
    for axis, starts in ((0, ys), (1, xs)):
        log_p = np.moveaxis(_gaussian_rows(np.moveaxis(log_p, axis, 0), np.asarray(starts, np.float64),
                                           smoothing_px), 0, axis)
    log_p -= log_p.max(axis=-1, keepdims=True)
    out = np.exp(log_p)
    out /= out.sum(axis=-1, keepdims=True)
    certain = proba.max(axis=-1) == 1.0  # constant windows (and other certain calls) keep their probabilities
    out[certain] = proba[certain]
    return out.astype(np.float32)


def _gaussian_rows(values: np.ndarray, starts: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted average of ``values`` (n, ...) over its first axis, weights of sigma ``sigma`` over the
    distances between the (sorted) window starts, each row's weights summing to 1. Neighbours further than 8
    sigma (weight < 1.3e-14 of the row's own) are left out, so the cost is n x (neighbours within 8 sigma),
    not n x n: a large image's map at a small stride has tens of thousands of windows a side."""
    n = len(starts)
    gaps = np.diff(starts)
    reach = 8.0 * sigma
    band = n - 1 if n < 2 or gaps.min() <= 0 else min(n - 1, int(np.ceil(reach / gaps.min())))
    total = np.zeros(values.shape, np.float64)
    norm = np.zeros(n, np.float64)
    shape = (-1,) + (1,) * (values.ndim - 1)
    for shift in range(-band, band + 1):
        lo, hi = max(0, -shift), min(n, n - shift)  # rows i with neighbour i + shift inside the grid
        if lo >= hi:
            continue
        rows = np.arange(lo, hi)
        weight = np.exp(-0.5 * ((starts[rows + shift] - starts[rows]) / sigma) ** 2)
        weight[np.abs(starts[rows + shift] - starts[rows]) > reach] = 0.0
        total[lo:hi] += weight.reshape(shape) * values[lo + shift : hi + shift]
        norm[lo:hi] += weight
    return total / norm.reshape(shape)


def window_proba(
    image: np.ndarray,
    model,
    ys: np.ndarray,
    xs: np.ndarray,
    *,
    mode: str = "patch",
    normalization: str = "local",
    batch_size: int = 256,
    value_range: tuple[float, float] | None = None,
    tta: int = 1,
) -> np.ndarray:
    """Class probabilities (len(ys), len(xs), n_classes) float32 of the ``model.patch_px`` windows starting at
    rows ``ys`` and columns ``xs`` of ``image`` (any positions inside the image, e.g. a large image's global
    window grid shifted into one tile). :func:`defocus_map` with ``window_starts`` positions is this.

    ``value_range``: for "image-range" models the range of the image the windows belong to (default this
    image's); for dense "global" normalisation of "window-minmax" models the (min, max) replacing the image's
    own. Dense mode of "window-minmax" models reads the trunk cells nearest to each window on a grid anchored at
    the image's (0, 0): a tile of a larger image gives the large image's cells if its origin is a multiple of
    the trunk's cell size and it holds enough context around its windows (awdvd.restore.tiles takes care of both).
    """

    array = np.asarray(image)
    patch_px = int(model.patch_px)
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    n_classes = len(model.class_levels)
    mode = resolve_map_mode(mode, model)
    if tta not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {TTA_CHOICES} (dihedral transforms averaged), got {tta!r}")
    if ys.size == 0 or xs.size == 0:
        return np.zeros((len(ys), len(xs), n_classes), dtype=np.float32)
    parts = getattr(model, "range_parts", None)
    if parts is not None:  # a range-extended model (awdvd.learn.range_extension): each network, then combined
        def read(part):
            return window_proba(array, part, ys, xs, mode=mode, normalization=normalization, batch_size=batch_size,
                                value_range=value_range, tta=tta)

        near = read(parts[0])
        return model.combine(near, read(parts[1]) if model.consults_far(near).any() else None)
    if ys.min() < 0 or xs.min() < 0 or ys.max() + patch_px > array.shape[0] or xs.max() + patch_px > array.shape[1]:
        raise ValueError(f"windows of {patch_px} px at rows {ys.min()}..{ys.max()}, columns {xs.min()}..{xs.max()} "
                         f"do not fit in a {array.shape[0]} x {array.shape[1]} image")
    if getattr(model, "normalization", "window-minmax") == "image-range":
        bounds = image_range(array) if value_range is None else value_range
        if mode == "dense":
            x = normalize_windows(array[None], "image-range", value_range=bounds)[0]
            proba = _shifted_dense_proba(x, model, ys, xs, tta=tta, batch_size=batch_size)
        else:
            proba = _patch_proba(array, model, ys, xs, tta=tta, batch_size=batch_size, value_range=bounds)
    elif mode == "patch":
        proba = _patch_proba(array, model, ys, xs, tta=tta, batch_size=batch_size)
    elif mode == "dense":
        proba = np.mean([_dihedral_proba(_dense_proba, array, model, ys, xs, t, normalization, value_range)
                         for t in _transforms(tta)], axis=0)
    else:  # pragma: no cover - resolve_map_mode raised
        raise ValueError(mode)
    constant = _constant_windows(array, ys, xs, patch_px)
    proba = constant_windows_are_background(proba.reshape(-1, n_classes), constant.ravel(), model.class_levels)
    return proba.reshape(len(ys), len(xs), n_classes).astype(np.float32)


def classify_windows(image, model, ys, xs, *, tta: int = 1, value_range=None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, n_classes) float32 of N windows of ``image`` at the top-left corners
    (ys[i], xs[i]) (paired positions, not a grid): each window classified as it would be inside the image's
    defocus map (its image's range for "image-range" models, ``value_range`` replacing it), averaged over
    ``tta`` dihedral transforms."""
    array = check_image(image, "image")
    patch_px = int(model.patch_px)
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    if ys.shape != xs.shape or ys.ndim != 1:
        raise ValueError(f"ys and xs must be 1-D and of one length, got shapes {ys.shape} and {xs.shape}")
    if tta not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {TTA_CHOICES} (dihedral transforms averaged), got {tta!r}")
    windows = np.stack([array[y : y + patch_px, x : x + patch_px] for y, x in zip(ys, xs)]) if len(ys) else \
        np.zeros((0, patch_px, patch_px), array.dtype)
    extra = {}
    if getattr(model, "normalization", "window-minmax") == "image-range":
        extra["value_range"] = image_range(array) if value_range is None else value_range
    proba = np.zeros((len(ys), len(model.class_levels)), dtype=np.float64)
    for t in _transforms(tta):
        _, p = model.predict_patches(np.ascontiguousarray(_dihedral(windows, t)), return_proba=True,
                                     batch_size=batch_size, **extra)
        proba += p
    return (proba / len(_transforms(tta))).astype(np.float32)


def _constant_windows(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch_px: int) -> np.ndarray:
    """(len(ys), len(xs)) bool: windows whose pixels are all equal."""
    from scipy import ndimage as ndi

    x = np.asarray(image)
    if x.dtype.kind not in "iuf":
        x = x.astype(np.float32)
    # box min and max with the box's top-left at each pixel: origin shifts the centred filters
    shift = -(patch_px // 2) + (1 if patch_px % 2 == 0 else 0)
    lo = ndi.minimum_filter(x, size=patch_px, mode="nearest", origin=shift)
    hi = ndi.maximum_filter(x, size=patch_px, mode="nearest", origin=shift)
    grid = (slice(None), None)
    return (lo[ys[grid], xs[None, :]] == hi[ys[grid], xs[None, :]])


# --------------------------------------------------------------------------------------------- transforms
def _transforms(tta: int) -> tuple[int, ...]:
    """The dihedral transforms averaged for ``tta``: 1 identity; 2 + transpose; 4 + the 180 degree turn and
    its transpose; 8 all (``transform`` t: transpose if t >= 4, then t % 4 quarter turns)."""
    return {1: (0,), 2: (0, 4), 4: (0, 2, 4, 6), 8: tuple(range(8))}[tta]


def _dihedral(x: np.ndarray, t: int) -> np.ndarray:
    """Transform t of the last two axes (transpose if t >= 4, then t % 4 counter-clockwise quarter turns)."""
    if t >= 4:
        x = np.swapaxes(x, -2, -1)
    return np.rot90(x, t % 4, axes=(-2, -1))


def _dihedral_positions(ys, xs, shape, patch_px: int, t: int):
    """Top-left (Y, X) (ny, nx) in the transformed image of windows at rows ys, columns xs of an image of
    ``shape``, and the transformed shape."""
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    h, w = shape
    if t >= 4:
        yy, xx, h, w = xx, yy, w, h
    for _ in range(t % 4):  # one counter-clockwise turn: (y, x) in (h, w) -> (w - x - p, y) in (w, h)
        yy, xx, h, w = w - xx - patch_px, yy, w, h
    return yy, xx, (h, w)


def _patch_proba(image: np.ndarray, model, ys, xs, *, tta: int, batch_size: int, value_range=None) -> np.ndarray:
    """Probabilities (ny, nx, C) of the raw windows of ``image`` classified one by one
    (``model.predict_patches``, with the image's ``value_range`` for "image-range" models), averaged over
    ``tta`` transforms."""
    patch_px = int(model.patch_px)
    n_classes = len(model.class_levels)
    extra = {} if value_range is None else {"value_range": value_range}
    proba = np.zeros((len(ys), len(xs), n_classes), dtype=np.float64)
    rows_per_batch = max(1, batch_size // len(xs))
    for start in range(0, len(ys), rows_per_batch):
        rows = ys[start : start + rows_per_batch]
        windows = window_patches(image, rows, xs, patch_px)
        for t in _transforms(tta):
            _, p = model.predict_patches(np.ascontiguousarray(_dihedral(windows, t)), return_proba=True,
                                         batch_size=batch_size, **extra)
            proba[start : start + len(rows)] += p.reshape(len(rows), len(xs), -1)
    return (proba / len(_transforms(tta))).astype(np.float32)


def _shifted_dense_proba(x: np.ndarray, model, ys, xs, *, tta: int, batch_size: int) -> np.ndarray:
    """Exact dense probabilities (:func:`exact_dense` models) of windows of the normalised image ``x``: for
    each transform, windows are grouped by the residue of their start modulo the trunk's cell size S; a group
    is served by one trunk pass over the image shifted onto its grid, or window by window where that is
    cheaper (a pass costs the image's area, a window its own)."""
    import torch

    patch_px = int(model.patch_px)
    step, n = _trunk_geometry(model)
    trunk = dense_trunk(model)
    device = model.device
    n_classes = len(model.class_levels)
    out = np.zeros((len(ys), len(xs), n_classes), dtype=np.float64)
    for t in _transforms(tta):
        xt = np.ascontiguousarray(_dihedral(x, t))
        yy, xx, (h, w) = _dihedral_positions(ys, xs, x.shape, patch_px, t)
        residue = (yy % step) * step + (xx % step)
        for r in np.unique(residue):
            sel = residue == r
            dy, dx = divmod(int(r), step)
            ty, tx = yy[sel], xx[sel]
            if sel.sum() * patch_px * patch_px < (h - dy) * (w - dx):  # cheaper one by one
                windows = np.stack([xt[a : a + patch_px, b : b + patch_px] for a, b in zip(ty, tx)])
                out[sel] += model.predict_proba_normalized(windows, batch_size=batch_size)
                continue
            with torch.inference_mode():
                tensor = torch.from_numpy(np.ascontiguousarray(xt[dy:, dx:]))[None, None].to(device)
                if device.type == "cpu":
                    tensor = tensor.contiguous(memory_format=torch.channels_last)
                features = trunk.features(tensor)
                pooled = torch.nn.functional.max_pool2d(features, kernel_size=n, stride=1)[0]
                jy = torch.from_numpy((ty - dy) // step).to(device)
                jx = torch.from_numpy((tx - dx) // step).to(device)
                vectors = pooled[:, jy, jx].T.contiguous()
                out[sel] += torch.softmax(trunk.classify(vectors), dim=1).double().cpu().numpy()
    return (out / len(_transforms(tta))).astype(np.float32)


def _dihedral_proba(fn, image, model, ys, xs, t: int, *args) -> np.ndarray:
    """``fn(image, model, ys, xs, *args)`` evaluated on transform t of the image: the windows' positions in the
    transformed image form a grid again (rows and columns swapped and reversed), which ``fn`` gets."""
    if t == 0:
        return fn(image, model, ys, xs, *args)
    transformed = np.ascontiguousarray(_dihedral(np.asarray(image), t))
    yy, xx, _ = _dihedral_positions(ys, xs, np.shape(image), int(model.patch_px), t)
    rows, cols = np.unique(yy), np.unique(xx)
    proba = fn(transformed, model, rows, cols, *args)
    return proba[np.searchsorted(rows, yy), np.searchsorted(cols, xx)]


# --------------------------------------------------------------------------------------------- dense mode
def normalize_image(image: np.ndarray, *, patch_px: int = PATCH_PX, normalization: str = "local",
                    value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) float32 in [0, 1]: min-max normalised per pixel over the centred ``patch_px`` box ("local")
    or over the whole image ("global"; ``value_range`` = (min, max) replaces the image's own); 0 where the box
    (image) is constant."""
    from scipy import ndimage as ndi

    x = np.asarray(image, dtype=np.float32)
    if normalization == "global":
        lo, hi = (x.min(), x.max()) if value_range is None else value_range
        lo = np.float32(lo)
        span = np.float32(hi) - lo
    elif normalization == "local":
        lo = ndi.minimum_filter(x, size=patch_px, mode="nearest")
        span = ndi.maximum_filter(x, size=patch_px, mode="nearest") - lo
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return np.divide(x - lo, span, out=np.zeros_like(x), where=np.asarray(span > 0)).astype(np.float32)


def dense_trunk(model):
    """The network dense maps run: the model's BatchNorm-folded eager copy (``features`` and ``classify``
    kept; channels-last on a CPU), from the model's own inference cache
    (:meth:`awdvd.learn.model.DefocusModel.inference_network`)."""
    return model.inference_network(backend="eager", channels_last=True)


def trunk_geometry(network, patch_px: int, device, *, padded: bool = True) -> tuple[int, int]:
    """(S, n): the trunk's cell size in px and the number of cells across one ``patch_px`` window.

    ``padded`` (DelpNet's "same" convolutions): cells must tile the input (h = H / S); otherwise ("valid"
    convolutions) the trunk loses its receptive field at the edges (h = (H - RF) / S + 1) and only S is checked."""
    import torch

    sizes = (128, 256)
    with torch.inference_mode():
        cells = [network.features(torch.zeros(1, 1, s, s, device=device)).shape[-1] for s in sizes]
        n = int(network.features(torch.zeros(1, 1, patch_px, patch_px, device=device)).shape[-1])
    step = (sizes[1] - sizes[0]) / max(cells[1] - cells[0], 1)
    if step != int(step) or (padded and cells[0] * int(step) != sizes[0]) or n < 1:
        raise ValueError("dense defocus maps need a trunk whose cells tile the input (a power-of-two stride); "
                         "use mode='patch'")
    return int(step), n


def dense_cell_px(model) -> int:
    """Cell size S (px) of ``model``'s conv trunk: dense maps read trunk cells S px apart."""
    return _trunk_geometry(model)[0]


def dense_reach_px(model) -> int:
    """How far (px) beyond a window dense mode looks: half the trunk's receptive field (the zero padding at
    the edges of what the trunk is given reaches that far into its cells), plus half a window for the local
    normalisation box, plus a cell for the rounding of window starts to cells. A tile holding this much
    context around its windows, from an origin on the cell grid, gives them the whole image's cells."""
    size, jump = 1, 1
    for module in model.network.modules():  # registration order: the trunk's layers in sequence
        kernel = getattr(module, "kernel_size", None)
        if kernel is None:
            continue
        kernel = int(max(np.atleast_1d(kernel)))
        dilation = int(max(np.atleast_1d(getattr(module, "dilation", 1))))
        stride = getattr(module, "stride", None)
        stride = kernel if stride is None else int(max(np.atleast_1d(stride)))
        size += (kernel - 1) * dilation * jump
        jump *= stride
    return int(math.ceil(size / 2) + int(model.patch_px) // 2 + dense_cell_px(model))


_GEOMETRY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> (patch_px, (S, n))


def _trunk_geometry(model) -> tuple[int, int]:
    model = getattr(model, "range_parts", (model,))[0]  # a range-extended model's networks share one geometry
    network = model.network
    patch_px = int(model.patch_px)
    cached = _GEOMETRY.get(network)
    if cached is None or cached[0] != patch_px:
        cached = _GEOMETRY[network] = (patch_px, trunk_geometry(dense_trunk(model), patch_px, model.device,
                                                                padded=not exact_dense(model)))
    return cached[1]


def _dense_proba(image: np.ndarray, model, ys: np.ndarray, xs: np.ndarray, normalization: str,
                 value_range: tuple[float, float] | None = None) -> np.ndarray:
    import torch

    patch_px = int(model.patch_px)
    device = model.device
    step, n = _trunk_geometry(model)
    trunk = dense_trunk(model)
    x = normalize_image(image, patch_px=patch_px, normalization=normalization, value_range=value_range)
    with torch.inference_mode():
        tensor = torch.from_numpy(x)[None, None].to(device)
        if device.type == "cpu":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        features = trunk.features(tensor)  # (1, C, h, w)
        h, w = features.shape[-2:]
        if h < n or w < n:
            raise ValueError(f"image too small for the trunk: {h} x {w} cells, a window needs {n}")
        pooled = torch.nn.functional.max_pool2d(features, kernel_size=n, stride=1)[0]  # (C, h - n + 1, w - n + 1)
        jy = torch.from_numpy(np.clip(np.floor(ys / step + 0.5).astype(np.int64), 0, h - n)).to(device)
        jx = torch.from_numpy(np.clip(np.floor(xs / step + 0.5).astype(np.int64), 0, w - n)).to(device)
        vectors = pooled.index_select(1, jy).index_select(2, jx)  # (C, ny, nx)
        vectors = vectors.permute(1, 2, 0).reshape(len(ys) * len(xs), -1).contiguous()
        proba = torch.softmax(trunk.classify(vectors), dim=1).float().cpu().numpy()
    return proba.reshape(len(ys), len(xs), -1)
