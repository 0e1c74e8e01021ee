"""Window geometry shared by defocus maps and AWDVD: where the 84 x 84 windows sit, their blending weights, and
:class:`DefocusMap`, the grid of windows with a level for each (what :mod:`awdvd.restore.defocus_maps` makes and
:mod:`awdvd.restore.blend` restores from, so the grid travels once).

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

from dataclasses import dataclass

import numpy as np

from .._checks import check_positive_int
from ..data.patches import BACKGROUND, PATCH_PX

__all__ = [
    "DefocusMap",
    "WEIGHTINGS",
    "window_starts",
    "triangular_weights",
    "rectangular_weights",
    "window_profile",
    "axis_weight_matrix",
    "weight_maps", "window_levels_from_pixels"]

WEIGHTINGS = ("triangular", "rectangular")
#: the paper's window side (px), DelpNet's input; a model's own is ``model.patch_px``
def window_starts(length: int, *, patch_px: int = PATCH_PX, stride: int) -> np.ndarray:
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


def triangular_weights(patch_px: int = PATCH_PX, *, stride: int | None = None) -> np.ndarray:
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


def rectangular_weights(patch_px: int = PATCH_PX) -> np.ndarray:
    """1-D box: (patch_px,) ones."""
    return np.ones(check_positive_int(patch_px, "patch_px"), dtype=np.float64)


def window_profile(weighting: str, *, patch_px: int = PATCH_PX, stride: int) -> np.ndarray:
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
    patch_px: int = PATCH_PX,
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


# --------------------------------------------------------------------------------------------- defocus maps
@dataclass
class DefocusMap:
    """Per-window defocus levels of one image: the window grid (positions, size, step) and a level per window.

    Attributes
    ----------
    levels : (ny, nx) int64, level 0 .. n_levels - 1 of each window, -1 for background.
    proba : (ny, nx, n_classes) float32 class probabilities, columns in ``class_levels`` order.
    class_levels : (n_classes,) int64, the level of each class (-1: background).
    ys, xs : (ny,), (nx,) int64 first row / column of the windows; for a whole image's map
        :func:`window_starts` of ``image_shape`` at ``stride`` (a map of a block of a larger image, see
        :meth:`window_subset`, holds the larger image's windows that lie in the block).
    image_shape : (H, W) of the image.
    patch_px, stride : window side and step (px).
    mode, normalization : how the map was computed ("patch" / "dense" / "given"; ``normalization`` is None
        outside dense mode).
    z_step_um : defocus between neighbouring levels in the image's optics (um): level l is ``l * z_step_um`` out
        of focus. The model's step when the image has the model's optics; another objective's level-equivalent
        otherwise (:func:`awdvd.physics.optical_units.level_step_um`). None: unknown (no depths).

    Depth in micrometres, with its uncertainty: :attr:`depth_um` and :attr:`depth_spread_um` per window,
    :meth:`depth_pixels` per pixel. The levels are a view of the depth (the class whose depth is nearest).
    """

    levels: np.ndarray
    proba: np.ndarray
    class_levels: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    image_shape: tuple[int, int]
    patch_px: int
    stride: int
    mode: str = "patch"
    normalization: str | None = None
    z_step_um: float | None = None

    @classmethod
    def from_levels(cls, levels, image_shape: tuple[int, int], *, stride: int, patch_px: int,
                    n_levels: int | None = None, mode: str = "given", z_step_um: float | None = None) -> DefocusMap:
        """A map holding known levels (e.g. a specimen's true levels), certain (probability 1 for each).

        levels : (ny, nx) integers, laid out as :func:`window_starts` of ``image_shape`` at ``stride``; -1 for
            background. n_levels : number of levels (classes 0 .. n_levels - 1, plus "bg"); default the
            largest level + 1. z_step_um : defocus between levels (um), for :attr:`depth_um`.
        """
        grid = np.asarray(levels)
        if grid.dtype == bool or not np.issubdtype(grid.dtype, np.integer):
            raise TypeError(f"levels must be integers (level, or -1 for background), got dtype {grid.dtype}")
        h, w = (int(s) for s in image_shape)
        ys = window_starts(h, patch_px=patch_px, stride=stride)
        xs = window_starts(w, patch_px=patch_px, stride=stride)
        if grid.shape != (len(ys), len(xs)):
            raise ValueError(f"levels has shape {grid.shape}; a {h} x {w} image at stride {stride} has {len(ys)} x "
                             f"{len(xs)} windows of {patch_px} px (see awdvd.restore.windows.window_starts)")
        n_levels = int(grid.max(initial=-1)) + 1 if n_levels is None else check_positive_int(n_levels, "n_levels")
        if grid.size and (grid.min() < BACKGROUND or grid.max() >= n_levels):
            raise ValueError(f"levels must lie in -1 (background) .. {n_levels - 1}, got {grid.min()} .. {grid.max()}")
        class_levels = np.array(list(range(n_levels)) + [BACKGROUND], dtype=np.int64)
        proba = np.eye(len(class_levels), dtype=np.float32)[np.where(grid < 0, n_levels, grid)]
        return cls(levels=grid.astype(np.int64), proba=proba, class_levels=class_levels, ys=ys, xs=xs,
                   image_shape=(h, w), patch_px=int(patch_px), stride=int(stride), mode=mode, z_step_um=z_step_um)

    @property
    def positions(self) -> np.ndarray:
        """(ny, nx, 2) int64 top-left (row, column) of every window."""
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="ij")
        return np.stack([yy, xx], axis=-1)

    @property
    def centres(self) -> np.ndarray:
        """(ny, nx, 2) float64 centre (row, column) of every window, in pixel coordinates."""
        return self.positions + (self.patch_px - 1) / 2

    @property
    def confidence(self) -> np.ndarray:
        """(ny, nx) float32 probability of the predicted class."""
        return self.proba.max(axis=-1)

    def _depth_moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean depth, spread, foreground weight) per window over the depth classes, by their probabilities."""
        if self.z_step_um is None:
            raise ValueError("this map holds levels without a depth step (z_step_um is None): no depth in um")
        classes = np.asarray(self.class_levels)
        depth_classes = classes != BACKGROUND
        p = np.asarray(self.proba, dtype=np.float64)[..., depth_classes]
        z = classes[depth_classes].astype(np.float64) * float(self.z_step_um)
        total = p.sum(axis=-1)
        safe = np.where(total > 0, total, 1.0)
        mean = (p * z).sum(axis=-1) / safe
        spread = np.sqrt(np.maximum((p * (z - mean[..., None]) ** 2).sum(axis=-1) / safe, 0.0))
        return mean, spread, total

    @property
    def depth_um(self) -> np.ndarray:
        """(ny, nx) float64 defocus of every window in um (the probability-weighted mean depth of its depth
        classes, in the image's optics); NaN for background windows."""
        mean, _, _ = self._depth_moments()
        return np.where(self.levels == BACKGROUND, np.nan, mean)

    @property
    def depth_spread_um(self) -> np.ndarray:
        """(ny, nx) float64 uncertainty of :attr:`depth_um` (um): the probability-weighted standard deviation of
        the depth classes' depths; NaN for background windows."""
        _, spread, _ = self._depth_moments()
        return np.where(self.levels == BACKGROUND, np.nan, spread)

    def depth_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (depth_um, depth_spread_um), each (H, W) float64: the foreground windows' depths averaged
        with their triangular AWDVD weights (base ``patch_px``); NaN where only background windows cover a
        pixel."""
        mean, spread, _ = self._depth_moments()
        foreground = (self.levels != BACKGROUND).astype(np.float64)
        profile = window_profile("triangular", patch_px=self.patch_px, stride=self.stride)
        ty = axis_weight_matrix(self.image_shape[0], self.ys, profile)
        tx = axis_weight_matrix(self.image_shape[1], self.xs, profile)
        weight = ty.T @ foreground @ tx
        covered = weight > 0
        safe = np.where(covered, weight, 1.0)
        depth = ty.T @ (foreground * mean) @ tx / safe
        second = ty.T @ (foreground * (spread**2 + mean**2)) @ tx / safe
        spread_px = np.sqrt(np.maximum(second - depth**2, 0.0))  # the mixture's spread: windows' and between them
        return np.where(covered, depth, np.nan), np.where(covered, spread_px, np.nan)

    def level_counts(self) -> dict[str, int]:
        """Number of windows per predicted class name ("0" .. "10", "bg"), for reports."""
        names = ["bg" if v == BACKGROUND else str(int(v)) for v in self.class_levels]
        return {name: int(np.sum(self.levels == level)) for name, level in zip(names, self.class_levels)}

    def window_subset(self, origin_yx: tuple[int, int], shape: tuple[int, int]) -> DefocusMap:
        """The map of a block of the image: the windows that lie wholly inside the ``shape`` block whose
        top-left pixel is ``origin_yx``, with positions relative to the block (how a tile of a large image is
        restored with the whole image's windows, :mod:`awdvd.restore.tiles`). May hold no window."""
        oy, ox = (int(v) for v in origin_yx)
        h, w = (int(v) for v in shape)
        p = self.patch_px
        rows = np.nonzero((self.ys >= oy) & (self.ys + p <= oy + h))[0]
        cols = np.nonzero((self.xs >= ox) & (self.xs + p <= ox + w))[0]
        return DefocusMap(levels=self.levels[np.ix_(rows, cols)], proba=self.proba[np.ix_(rows, cols)],
                          class_levels=self.class_levels, ys=self.ys[rows] - oy, xs=self.xs[cols] - ox,
                          image_shape=(h, w), patch_px=p, stride=self.stride, mode=self.mode,
                          normalization=self.normalization, z_step_um=self.z_step_um)

    def to_pixels(self, *, method: str = "vote") -> np.ndarray:
        """Per-pixel level map (H, W) int64, -1 for background.

        method : "vote" (default): every window votes for its level with its triangular AWDVD weight (base
            ``patch_px``), and a pixel takes the level with the largest summed weight (ties: the smaller level,
            background first); this is the map AWDVD's weights imply. "nearest": the level of the window whose
            centre is nearest (ties: the earlier window).
        """
        if method == "vote":
            profile = window_profile("triangular", patch_px=self.patch_px, stride=self.stride)
            ty = axis_weight_matrix(self.image_shape[0], self.ys, profile)
            tx = axis_weight_matrix(self.image_shape[1], self.xs, profile)
            labels = np.unique(self.levels)
            stacked = np.stack([ty.T @ (self.levels == label).astype(np.float64) @ tx for label in labels])
            return labels[np.argmax(stacked, axis=0)].astype(np.int64)
        if method == "nearest":
            cy = self.ys + (self.patch_px - 1) / 2
            cx = self.xs + (self.patch_px - 1) / 2
            iy = _nearest(np.arange(self.image_shape[0]), cy)
            ix = _nearest(np.arange(self.image_shape[1]), cx)
            return self.levels[iy[:, None], ix[None, :]].astype(np.int64)
        raise ValueError(f"method must be 'vote' or 'nearest', got {method!r}")


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (sorted ascending) for every point; ties go to the earlier centre."""
    right = np.clip(np.searchsorted(centres, points, side="left"), 1, max(len(centres) - 1, 1))
    left = right - 1
    if len(centres) == 1:
        return np.zeros(len(points), dtype=np.int64)
    return np.where(np.abs(points - centres[left]) <= np.abs(centres[right] - points), left, right)


def window_levels_from_pixels(levels, *, stride: int, patch_px: int = PATCH_PX) -> np.ndarray:
    """(ny, nx) grid of the true level at each window's centre pixel (row/column start + patch_px // 2)."""

    levels = np.asarray(levels)
    ys = window_starts(levels.shape[0], patch_px=patch_px, stride=stride)
    xs = window_starts(levels.shape[1], patch_px=patch_px, stride=stride)
    return levels[(ys + patch_px // 2)[:, None], (xs + patch_px // 2)[None, :]].astype(np.int64)
