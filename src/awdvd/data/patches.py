"""The patch vocabulary shared by data, learning and restoration: labels, splits, the network's input
normalisation, the paper's background rule and :class:`PatchSet`, the patches of one split.

numpy only: nothing here imports torch, reads files or synthesises images (see :mod:`awdvd.data.synth` and
:mod:`awdvd.data.datasets`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["BACKGROUND", "SPLITS", "PatchSet", "normalize_patches", "normalize_windows", "image_range",
           "is_background", "fingerprint", "NORMALIZATIONS", "RANGE_SMOOTHING_PX", "RANGE_PERCENTILES", "PATCH_PX"]

BACKGROUND = -1  # label of a background patch or window wherever levels are stored as integers
SPLITS = ("train", "val", "test")

#: How a model's input windows are normalised (recorded in the model file):
#: "window-minmax" - each window min-max to [0, 1] on its own (the paper, 2.1);
#: "image-range" - every window of an image by the image's range (:func:`image_range`), so a window reads the
#: same cut out alone or inside a whole-image (dense) pass.
NORMALIZATIONS = ("window-minmax", "image-range")

#: :func:`image_range`: percentiles of the image smoothed by a Gaussian of this sigma (px), so that one camera's
#: noise or another's hardly moves them.
RANGE_SMOOTHING_PX = 1.5
RANGE_PERCENTILES = (1.0, 99.9)
_RANGE_MAX_PIXELS = 1 << 22  # a larger image's range comes from a regular subsample of its smoothed pixels


def image_range(image, *, smoothing_px: float = RANGE_SMOOTHING_PX,
                percentiles: tuple[float, float] = RANGE_PERCENTILES) -> tuple[float, float]:
    """(low, high) of ``image`` (2-D, raw units, possibly lazy) for window normalisation: the ``percentiles``
    of the image smoothed by a Gaussian of ``smoothing_px``; ``high >= low`` (equal for a constant image).

    Large images are smoothed in row bands and sampled on a regular grid of at most about 4 M pixels, so one
    value serves every tile of a large image.
    """
    from scipy import ndimage as ndi

    shape = np.shape(image)
    if len(shape) != 2:
        raise ValueError(f"image must be 2-D, got shape {shape}")
    h, w = shape
    step = max(1, math.ceil(math.sqrt(h * w / _RANGE_MAX_PIXELS)))
    margin = int(math.ceil(4 * smoothing_px))
    band = max(step, (2048 // step) * step)
    samples = []
    for top in range(0, h, band):
        lo, hi = max(0, top - margin), min(h, top + band + margin)
        block = ndi.gaussian_filter(np.asarray(image[lo:hi], dtype=np.float32), smoothing_px, mode="reflect")
        samples.append(block[top - lo : top - lo + min(band, h - top) : step, ::step].ravel())
    low, high = np.percentile(np.concatenate(samples), percentiles)
    return float(low), float(max(high, low))


def normalize_windows(windows: np.ndarray, normalization: str = "window-minmax", *,
                      value_range=None) -> np.ndarray:
    """Network input (N, h, w) float32 of raw windows (N, h, w) under ``normalization`` (:data:`NORMALIZATIONS`).

    "image-range": ``value_range`` is the windows' image's (low, high) - one pair, or (N, 2) one per window; None
    takes each window alone as its image (:func:`image_range` of the window). Constant ranges give 0.
    """
    x = np.asarray(windows, dtype=np.float32)
    if normalization == "window-minmax":
        return normalize_patches(x)
    if normalization != "image-range":
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if value_range is None:
        value_range = np.array([image_range(window) for window in x.reshape((-1,) + x.shape[-2:])])
    bounds = np.asarray(value_range, dtype=np.float64).reshape(-1, 2)
    lo = bounds[:, 0].astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    span = (bounds[:, 1] - bounds[:, 0]).astype(np.float32).reshape(lo.shape)
    return np.divide(x - lo, span, out=np.zeros_like(x), where=np.broadcast_to(span > 0, x.shape))


def normalize_patches(patches: np.ndarray) -> np.ndarray:
    """Per-patch min-max normalisation to [0, 1] (paper 2.1): (N, h, w) -> float32; constant patches -> 0."""
    x = np.asarray(patches, dtype=np.float32)
    lo = x.min(axis=(-2, -1), keepdims=True)
    span = x.max(axis=(-2, -1), keepdims=True) - lo
    return np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)


def is_background(patches: np.ndarray, *, max_below: float = 230.0, range_below: float = 30.0) -> np.ndarray:
    """The paper's background rule in raw units: max < ``max_below`` and max - min < ``range_below``.

    ``patches`` (..., h, w) raw intensities (ADU); returns a bool array of the leading shape.
    """
    x = np.asarray(patches)
    hi = x.max(axis=(-2, -1))
    return (hi < max_below) & (hi - x.min(axis=(-2, -1)) < range_below)


@dataclass
class PatchSet:
    """Patches of one split. All arrays share the first axis N.

    raw : (N, p, p) float32, noisy defocused patches in camera units (ADU).
    truth : (N, p, p) float32, the in-focus patch at the same place (the synthesis input).
    level : (N,) int16, the defocus level the patch was synthesised at (0 .. n_levels - 1).
    background : (N,) bool, the paper's background rule on ``raw``.
    source : (N,) int32, index of the source image; image : (N,) int32, index of the synthetic image.
    yx : (N, 2) int32, top-left corner of the crop in the source image.
    image_range : (N, 2) float32 or None, (low, high) of the synthetic image each patch was cut from
        (:func:`image_range`), for models whose normalisation is "image-range"; None in older datasets.
    """

    raw: np.ndarray
    truth: np.ndarray
    level: np.ndarray
    background: np.ndarray
    source: np.ndarray
    image: np.ndarray
    yx: np.ndarray
    image_range: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.level)

    @property
    def labels(self) -> np.ndarray:
        """Class labels as the model predicts them: the level, or -1 for a background patch."""
        return np.where(self.background, BACKGROUND, self.level).astype(np.int64)

    def normalized(self, normalization: str = "window-minmax") -> np.ndarray:
        """(N, p, p) float32 network input under ``normalization`` (:func:`normalize_windows`; "image-range" uses
        the stored image ranges, or each patch's own where the dataset has none)."""
        return normalize_windows(self.raw, normalization, value_range=self.image_range)

    def class_counts(self, n_levels: int) -> dict[str, int]:
        """Patches per class: {"0": n, ..., str(n_levels - 1): n, "bg": n}."""
        labels = self.labels
        counts = {str(level): int(np.sum(labels == level)) for level in range(n_levels)}
        counts["bg"] = int(np.sum(labels == BACKGROUND))
        return counts

    def subset(self, index) -> PatchSet:
        """The patches at ``index`` (an integer array, a slice or a boolean mask over N), in that order."""
        return PatchSet(*(None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                          for f in dataclasses.fields(PatchSet)))

    @classmethod
    def concatenate(cls, parts: Sequence[PatchSet], patch_px: int) -> PatchSet:
        """One PatchSet of ``parts`` in order; an empty one of ``patch_px`` x ``patch_px`` patches if none."""
        if not parts:
            empty = np.zeros((0, patch_px, patch_px), np.float32)
            return cls(empty, empty.copy(), np.zeros(0, np.int16), np.zeros(0, bool), np.zeros(0, np.int32),
                       np.zeros(0, np.int32), np.zeros((0, 2), np.int32))
        def joined(name):
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(*(joined(f.name) for f in dataclasses.fields(cls)))


def fingerprint(*parts: PatchSet) -> str:
    """A short hash of the patches' raw values, levels and background flags (20 hex digits).

    Training records it (``info["training"]["data_fingerprint"]``) and a checkpoint is resumed only on the
    same data; :func:`awdvd.reproduce.reproduce` uses it to tell whether a given model was trained on its data.
    """
    digest = hashlib.sha256()
    for patches in parts:
        digest.update(np.ascontiguousarray(patches.raw).tobytes())
        digest.update(np.ascontiguousarray(patches.level.astype(np.int64)).tobytes())
        digest.update(np.ascontiguousarray(patches.background.astype(np.uint8)).tobytes())
    return digest.hexdigest()[:20]


PATCH_PX = 84
