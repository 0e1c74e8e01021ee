"""Which windows of an in-focus field hold cells: the foreground rule of the robustness matrix and the other
held-out measurements (:mod:`awdvd.validate.robustness`, :mod:`awdvd.validate.real_data`)."""

from __future__ import annotations

import numpy as np

from .._checks import check_image

__all__ = ["cell_test", "foreground_windows"]

_PAPER_BG = (230.0, 30.0)  # max below, range below (raw ADU): the paper's background rule


def cell_test(image: np.ndarray, *, patch_px: int = 84, source_offset_adu: float = 96.0,
              source_gain_adu_per_e: float = 0.33, bg_sigmas: float = 4.0):
    """``holds(y, x)``: whether the ``patch_px`` window at top-left (y, x) of an in-focus ``image`` holds cells.

    A window holds cells when it is not background under the paper's rule (max >= 230 or max - min >= 30 ADU)
    and its brightest point after a Gaussian smoothing (sigma 1.5 px, so that one hot pixel or the shot noise of
    an empty window does not count) rises ``bg_sigmas`` noise standard deviations of the image's camera
    (``source_gain_adu_per_e``, ``source_offset_adu``) above the image's background (the 1st percentile of the
    smoothed image): the training stream's background rule. The paper's rule alone lets noise-only windows of a
    field whose background sits ~30 ADU above the offset through (about 15% of BBBC006 a07's windows), whose
    "true level" is then meaningless."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image)
    smooth = gaussian_filter(image.astype(np.float64), 1.5)
    background = float(np.percentile(smooth, 1.0))
    sigma = float(np.sqrt(source_gain_adu_per_e * max(background - source_offset_adu, 1.0)))

    def holds(y: int, x: int) -> bool:
        window = image[y : y + patch_px, x : x + patch_px]
        hi, lo = float(window.max()), float(window.min())
        paper_foreground = hi >= _PAPER_BG[0] or hi - lo >= _PAPER_BG[1]
        return paper_foreground and float(smooth[y : y + patch_px, x : x + patch_px].max()) - background \
            >= bg_sigmas * sigma

    return holds


def foreground_windows(in_focus: np.ndarray, n: int, *, patch_px: int = 84, seed=0, max_tries: int = 100_000,
                       source_offset_adu: float = 96.0, source_gain_adu_per_e: float = 0.33,
                       bg_sigmas: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (ys, xs) of ``n`` random windows of ``in_focus`` that hold cells (:func:`cell_test`). Raises if
    the field has none."""
    image = check_image(in_focus, "in_focus", min_shape=(patch_px, patch_px))
    holds = cell_test(image, patch_px=patch_px, source_offset_adu=source_offset_adu,
                      source_gain_adu_per_e=source_gain_adu_per_e, bg_sigmas=bg_sigmas)
    rng = np.random.default_rng(seed)
    span = (image.shape[0] - patch_px + 1, image.shape[1] - patch_px + 1)
    ys, xs = [], []
    for _ in range(max_tries):
        if len(ys) == n:
            break
        y, x = int(rng.integers(0, span[0])), int(rng.integers(0, span[1]))
        if holds(y, x):
            ys.append(y)
            xs.append(x)
    if len(ys) < n:
        raise ValueError(f"found only {len(ys)} foreground windows of {n} in the field; is it empty?")
    return np.array(ys, np.int64), np.array(xs, np.int64)
