"""Defocus maps: the defocus level (or background) of every 84 x 84 window of an image (paper Fig. 2(c)).

Two ways to get them:

``mode="patch"`` (the reference): every window is cut out, min-max normalised on its own (as in training) and
classified by the model, exactly as :meth:`DefocusModel.predict_patches` does.

``mode="dense"``: DelpNet is convolutional and ends in a global max pool, so the conv trunk is run once over
the whole image and every window's feature vector is the max over the trunk cells under it (cells are
``S`` = 8 px apart for the default DelpNet). Per-window min-max normalisation cannot be applied to a shared
feature map, so the image is normalised once, per pixel, by the min and max over the ``patch_px`` box centred
on the pixel (``normalization="local"``: the box of a window's centre pixel is the window itself) or by the
image's min and max (``"global"``). A window whose start is not a multiple of S takes the cells nearest to
it (at most S / 2 px away); windows near the borders see real image context where a lone patch sees the
conv's zero padding. How far the two modes agree is measured in ``benchmarks/bench_deconv.py``.

Arrays in, arrays out; torch is imported only when a map is computed.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from ._checks import check_image, check_positive_int
from .windows import PATCH_PX, DefocusMap, window_starts

__all__ = ["DefocusMap", "defocus_map", "window_proba", "window_patches", "dense_cell_px", "dense_reach_px",
           "dense_trunk", "trunk_geometry", "normalize_image", "MAP_MODES", "NORMALIZATIONS"]

MAP_MODES = ("patch", "dense")
NORMALIZATIONS = ("local", "global")


def window_patches(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch_px: int) -> np.ndarray:
    """(len(ys) * len(xs), patch_px, patch_px) copies of the windows, row-major over the grid."""
    view = np.lib.stride_tricks.sliding_window_view(image, (patch_px, patch_px))
    return view[ys[:, None], xs[None, :]].reshape(-1, patch_px, patch_px)


def defocus_map(
    image,
    model,
    *,
    stride: int,
    mode: str = "patch",
    normalization: str = "local",
    batch_size: int = 256,
) -> DefocusMap:
    """Defocus level and class probabilities of every ``model.patch_px`` window of ``image``.

    Parameters
    ----------
    image : (H, W) raw intensities, H and W >= ``model.patch_px``.
    model : a :class:`awdvd.model.DefocusModel` (or any object with ``predict_patches``, ``class_levels``,
        ``patch_px`` and, for dense mode, ``network``, ``device`` and ``inference_network``).
    stride : window step in px (1 .. ``model.patch_px``; ``AWDVDOptions().stride`` is awdvd's default); windows
        start at 0, stride, ... and the last one is flush with the far edge, so every pixel is covered.
    mode : "patch" (each window normalised and classified on its own; the reference) or "dense" (one trunk
        pass over the whole image; see the module docstring).
    normalization : dense mode only: "local" (min/max over the window-sized box centred on each pixel) or
        "global" (the image's min/max).
    batch_size : windows per forward pass (patch mode).

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
    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    ys = window_starts(array.shape[0], patch_px=patch_px, stride=stride)
    xs = window_starts(array.shape[1], patch_px=patch_px, stride=stride)
    class_levels = np.asarray(model.class_levels, dtype=np.int64)
    proba = window_proba(array, model, ys, xs, mode=mode, normalization=normalization, batch_size=batch_size)
    used_normalization = None if mode == "patch" else normalization
    levels = class_levels[np.argmax(proba, axis=-1)]
    return DefocusMap(levels=levels, proba=proba, class_levels=class_levels, ys=ys, xs=xs,
                      image_shape=tuple(int(s) for s in array.shape), patch_px=patch_px, stride=stride, mode=mode,
                      normalization=used_normalization)


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
) -> np.ndarray:
    """Class probabilities (len(ys), len(xs), n_classes) float32 of the ``model.patch_px`` windows starting at
    rows ``ys`` and columns ``xs`` of ``image`` (any positions inside the image, e.g. a large image's global
    window grid shifted into one tile). :func:`defocus_map` with ``window_starts`` positions is this.

    Dense mode reads the trunk cells nearest to each window on a grid anchored at the image's (0, 0): a tile
    of a larger image gives the large image's cells if its origin is a multiple of the trunk's cell size and
    it holds enough context around its windows (awdvd.tiles takes care of both). ``value_range`` (dense,
    "global" normalization) replaces the image's own min and max, e.g. by those of the whole large image.
    """
    array = np.asarray(image)
    patch_px = int(model.patch_px)
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    n_classes = len(model.class_levels)
    if ys.size == 0 or xs.size == 0:
        return np.zeros((len(ys), len(xs), n_classes), dtype=np.float32)
    if ys.min() < 0 or xs.min() < 0 or ys.max() + patch_px > array.shape[0] or xs.max() + patch_px > array.shape[1]:
        raise ValueError(f"windows of {patch_px} px at rows {ys.min()}..{ys.max()}, columns {xs.min()}..{xs.max()} "
                         f"do not fit in a {array.shape[0]} x {array.shape[1]} image")
    if mode == "patch":
        proba = np.empty((len(ys), len(xs), n_classes), dtype=np.float32)
        rows_per_batch = max(1, batch_size // len(xs))
        for start in range(0, len(ys), rows_per_batch):
            rows = ys[start : start + rows_per_batch]
            _, p = model.predict_patches(window_patches(array, rows, xs, patch_px), return_proba=True,
                                         batch_size=batch_size)
            proba[start : start + len(rows)] = p.reshape(len(rows), len(xs), -1)
        return proba
    if mode == "dense":
        return _dense_proba(array, model, ys, xs, normalization, value_range)
    raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")


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
    (:meth:`awdvd.model.DefocusModel.inference_network`)."""
    return model.inference_network(backend="eager", channels_last=True)


def trunk_geometry(network, patch_px: int, device) -> tuple[int, int]:
    """(S, n): the trunk's cell size in px and the number of cells across one ``patch_px`` window."""
    import torch

    sizes = (128, 256)
    with torch.inference_mode():
        cells = [network.features(torch.zeros(1, 1, s, s, device=device)).shape[-1] for s in sizes]
        n = int(network.features(torch.zeros(1, 1, patch_px, patch_px, device=device)).shape[-1])
    step = (sizes[1] - sizes[0]) / max(cells[1] - cells[0], 1)
    if step != int(step) or cells[0] * int(step) != sizes[0]:
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
    network = model.network
    patch_px = int(model.patch_px)
    cached = _GEOMETRY.get(network)
    if cached is None or cached[0] != patch_px:
        cached = _GEOMETRY[network] = (patch_px, trunk_geometry(dense_trunk(model), patch_px, model.device))
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
