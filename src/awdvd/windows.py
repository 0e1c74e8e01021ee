"""Window geometry shared by defocus maps and AWDVD: where the 84 x 84 windows sit, and their blending weights.

Windows start at 0, s, 2s, ... along each axis; when the stride s does not divide ``length - patch_px``, one
more window is placed flush with the far edge, so every pixel, borders included, lies in at least one window.
Blending weights are separable: the 2-D weight of a window is ``profile[y] * profile[x]``.

The paper's (2.3) profiles: case (i) rectangular (1 inside the window), case (ii) triangular with base
``patch_px`` and height ``stride / (patch_px / 2)``. The triangle is sampled at pixel centres,
``1 - |i - (p - 1) / 2| / (p / 2)`` for ``i = 0 .. p - 1``, so it is positive on every pixel of the window
(the edge pixels get 1 / p) and, at a stride dividing ``p / 2``, overlapping windows sum to exactly 1 in the
interior. Nothing relies on that: blends always divide by the accumulated weight.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int

__all__ = [
    "WEIGHTINGS",
    "window_starts",
    "triangular_weights",
    "rectangular_weights",
    "window_profile",
    "axis_weight_matrix",
    "weight_maps",
]

WEIGHTINGS = ("triangular", "rectangular")


def window_starts(length: int, *, patch_px: int = 84, stride: int) -> np.ndarray:
    """First index of every window along an axis of ``length`` pixels.

    Returns ``0, stride, 2 stride, ...`` up to ``length - patch_px``, plus ``length - patch_px`` itself when
    the stride does not land there (the last window is then flush with the edge). int64, strictly increasing.

    Raises
    ------
    ValueError if ``length < patch_px`` (no window fits), or the stride is not an integer in 1 .. patch_px
    (a longer step would leave pixels between windows).
    """
    patch_px = check_positive_int(patch_px, "patch_px")
    stride = check_positive_int(stride, "stride")
    length = check_positive_int(length, "length")
    if stride > patch_px:
        raise ValueError(f"stride must be at most the patch size ({patch_px} px) so that windows cover every "
                         f"pixel, got {stride}")
    if length < patch_px:
        raise ValueError(f"the image is {length} px along one axis; at least the patch size {patch_px} px is needed")
    starts = np.arange(0, length - patch_px + 1, stride, dtype=np.int64)
    if starts[-1] != length - patch_px:
        starts = np.append(starts, length - patch_px)
    return starts


def triangular_weights(patch_px: int = 84, *, stride: int | None = None) -> np.ndarray:
    """1-D triangle of base ``patch_px`` sampled at pixel centres: (patch_px,) float64, all > 0.

    With ``stride`` the height is ``stride / (patch_px / 2)`` (the paper's scaling), else 1.
    """
    patch_px = check_positive_int(patch_px, "patch_px")
    i = np.arange(patch_px, dtype=np.float64)
    half = patch_px / 2
    profile = 1.0 - np.abs(i - (patch_px - 1) / 2) / half
    if stride is not None:
        profile *= check_positive_int(stride, "stride") / half
    return profile


def rectangular_weights(patch_px: int = 84) -> np.ndarray:
    """1-D box: (patch_px,) ones."""
    return np.ones(check_positive_int(patch_px, "patch_px"), dtype=np.float64)


def window_profile(weighting: str, *, patch_px: int = 84, stride: int) -> np.ndarray:
    """The 1-D profile of ``weighting`` ("triangular" or "rectangular")."""
    if weighting == "triangular":
        return triangular_weights(patch_px, stride=stride)
    if weighting == "rectangular":
        return rectangular_weights(patch_px)
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def axis_weight_matrix(length: int, starts: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """(len(starts), length) float64: row j holds ``profile`` placed at ``starts[j]``, zeros elsewhere."""
    starts = np.asarray(starts, dtype=np.int64)
    p = len(profile)
    if starts.size and (starts.min() < 0 or starts.max() + p > length):
        raise ValueError(f"windows of {p} px starting at {starts.min()}..{starts.max()} do not fit in {length} px")
    matrix = np.zeros((len(starts), length), dtype=np.float64)
    rows = np.repeat(np.arange(len(starts)), p)
    cols = (starts[:, None] + np.arange(p)[None, :]).ravel()
    matrix[rows, cols] = np.tile(profile, len(starts))
    return matrix


def weight_maps(
    grid: np.ndarray,
    shape: tuple[int, int],
    *,
    stride: int,
    patch_px: int = 84,
    weighting: str = "triangular",
    labels=None,
) -> dict[int, np.ndarray]:
    """Per-label accumulated window weights W_label(x) = sum over windows w with grid[w] == label of weight_w(x).

    Parameters
    ----------
    grid : (ny, nx) integer label of every window, laid out as ``window_starts`` of ``shape`` and ``stride``.
    shape : (H, W) of the image.
    labels : the labels to return (default: those present in ``grid``).

    Returns
    -------
    {label: (H, W) float64}. Computed exactly as ``Ty.T @ [grid == label] @ Tx`` with the axis weight
    matrices, so the cost does not depend on how many windows there are per label.
    """
    grid = np.asarray(grid)
    ys = window_starts(shape[0], patch_px=patch_px, stride=stride)
    xs = window_starts(shape[1], patch_px=patch_px, stride=stride)
    if grid.shape != (len(ys), len(xs)):
        raise ValueError(
            f"the window grid has shape {grid.shape}, but a {shape[0]} x {shape[1]} image at stride {stride} has "
            f"{len(ys)} x {len(xs)} windows of {patch_px} px"
        )
    profile = window_profile(weighting, patch_px=patch_px, stride=stride)
    ty = axis_weight_matrix(shape[0], ys, profile)
    tx = axis_weight_matrix(shape[1], xs, profile)
    labels = np.unique(grid) if labels is None else labels
    return {int(label): ty.T @ (grid == label).astype(np.float64) @ tx for label in labels}
