"""The patch vocabulary shared by data, learning and restoration: labels, splits, the network's input
normalisation, the paper's background rule and :class:`PatchSet`, the patches of one split.

numpy only: nothing here imports torch, reads files or synthesises images (see :mod:`awdvd.synth` and
:mod:`awdvd.data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["BACKGROUND", "SPLITS", "PatchSet", "normalize_patches", "is_background", "fingerprint"]

BACKGROUND = -1  # label of a background patch or window wherever levels are stored as integers
SPLITS = ("train", "val", "test")


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
    """

    raw: np.ndarray
    truth: np.ndarray
    level: np.ndarray
    background: np.ndarray
    source: np.ndarray
    image: np.ndarray
    yx: np.ndarray

    def __len__(self) -> int:
        return len(self.level)

    @property
    def labels(self) -> np.ndarray:
        """Class labels as the model predicts them: the level, or -1 for a background patch."""
        return np.where(self.background, BACKGROUND, self.level).astype(np.int64)

    def normalized(self) -> np.ndarray:
        """(N, p, p) float32 network input: per-patch min-max to [0, 1]."""
        return normalize_patches(self.raw)

    def class_counts(self, n_levels: int) -> dict[str, int]:
        """Patches per class: {"0": n, ..., str(n_levels - 1): n, "bg": n}."""
        labels = self.labels
        counts = {str(level): int(np.sum(labels == level)) for level in range(n_levels)}
        counts["bg"] = int(np.sum(labels == BACKGROUND))
        return counts

    def subset(self, index) -> PatchSet:
        """The patches at ``index`` (an integer array, a slice or a boolean mask over N), in that order."""
        return PatchSet(*(getattr(self, f.name)[index] for f in dataclasses.fields(PatchSet)))

    @classmethod
    def concatenate(cls, parts: Sequence[PatchSet], patch_px: int) -> PatchSet:
        """One PatchSet of ``parts`` in order; an empty one of ``patch_px`` x ``patch_px`` patches if none."""
        if not parts:
            empty = np.zeros((0, patch_px, patch_px), np.float32)
            return cls(empty, empty.copy(), np.zeros(0, np.int16), np.zeros(0, bool), np.zeros(0, np.int32),
                       np.zeros(0, np.int32), np.zeros((0, 2), np.int32))
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))


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
