"""Time-lapses: the depth maps of neighbouring frames combined (a specimen's depth changes slowly between frames,
the noise of one frame's map does not)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .windows import DefocusMap

__all__ = ["smooth_over_frames"]


def smooth_over_frames(maps: Sequence[DefocusMap], frames: float) -> list[DefocusMap]:
    """Each frame's map with its neighbours': the window log-probabilities averaged over the frames with Gaussian
    weights of sigma ``frames`` (renormalised, levels the most likely class), as
    :func:`awdvd.restore.defocus_maps.smooth_proba` does over space. The maps must share their window grid.
    ``frames`` 0 returns the maps as they are.

    Examples
    --------
    >>> import numpy as np
    >>> maps = [DefocusMap.from_levels(np.array([[level]]), (84, 84), stride=42, patch_px=84, n_levels=5)
    ...         for level in (2, 2, 4, 2, 2)]
    >>> [int(m.levels[0, 0]) for m in smooth_over_frames(maps, 1.0)]
    [2, 2, 2, 2, 2]
    """
    maps = list(maps)
    if not np.isfinite(frames) or frames < 0:
        raise ValueError(f"frames must be a finite number >= 0, got {frames!r}")
    if frames == 0 or len(maps) < 2:
        return maps
    shapes = {m.proba.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"the frames' maps have different window grids: {sorted(shapes)}")
    log_p = np.log(np.clip(np.stack([m.proba for m in maps]).astype(np.float64), 1e-6, None))
    t = np.arange(len(maps), dtype=np.float64)
    weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / frames) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    mixed = np.tensordot(weights, log_p, axes=(1, 0))
    mixed -= mixed.max(axis=-1, keepdims=True)
    proba = np.exp(mixed)
    proba /= proba.sum(axis=-1, keepdims=True)
    class_levels = np.asarray(maps[0].class_levels)
    return [dataclasses.replace(m, proba=p.astype(np.float32), levels=class_levels[np.argmax(p, axis=-1)])
            for m, p in zip(maps, proba)]
