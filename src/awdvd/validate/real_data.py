"""Checks of a defocus model on real images whose defocus is known only roughly.

Synthetic test accuracy says how well a model separates the levels it was trained on; it does not say that the
model transfers to real microscope images. The shared BBBC006 sample gives two real checks with a known answer:

- in-focus images (plane of maximum sharpness): foreground patches should be called level 0 or 1;
- plane z00, about 32 um from focus (beyond the deepest level, 20 um): foreground should be called the deepest
  levels.

:func:`level_census` tiles images into non-overlapping patches, keeps the foreground ones (not background by the
dataset rule, :func:`awdvd.data.synth.is_background`), and counts the levels the model gives them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.patches import is_background
from ..restore.defocus_maps import classify_windows
from .foreground import cell_test

__all__ = ["level_census", "real_data_checks"]


def _tile_starts(shape: tuple[int, int], patch_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (ys, xs) of the non-overlapping patch_px x patch_px tiles of an image (the remainder at
    the far edges is dropped), row-major."""
    yy, xx = np.meshgrid(np.arange(shape[0] // patch_px) * patch_px, np.arange(shape[1] // patch_px) * patch_px,
                         indexing="ij")
    return yy.ravel(), xx.ravel()


def level_census(model, images: Sequence[np.ndarray], *, bg_max_below: float = 230.0,
                 bg_range_below: float = 30.0, rule: str = "paper") -> dict:
    """Levels the model gives the foreground tiles of ``images``.

    ``rule``: which tiles are foreground. "paper": not background by the dataset rule (max below
    ``bg_max_below`` and max - min below ``bg_range_below`` ADU). "cells": that, and the tile holds cells by
    the training stream's noise-relative rule (:func:`awdvd.validate.foreground.cell_test`, BBBC006's camera), as the
    robustness matrix chooses its windows: the paper's rule alone admits nearly empty tiles whose hot pixels or
    shot noise span 30 ADU.

    Each tile is classified as it would be inside its image's defocus map (:func:`awdvd.restore.defocus_maps.classify_windows`:
    its image's range for "image-range" models).

    Returns a JSON-ready dict: ``n_images``, ``n_tiles``, ``n_foreground`` (tiles not background by the dataset
    rule), ``histogram`` {level or "bg": count over foreground tiles}, and ``mean_level`` over the foreground
    tiles the model gave a level.
    """

    if rule not in ("paper", "cells"):
        raise ValueError(f"rule must be 'paper' or 'cells', got {rule!r}")
    p = model.patch_px
    n_tiles, levels = 0, []
    class_levels = np.asarray(model.class_levels)
    for image in images:
        image = np.asarray(image, dtype=np.float32)
        ys, xs = _tile_starts(image.shape, p)
        n_tiles += len(ys)
        if not len(ys):
            continue
        tiles = np.stack([image[y : y + p, x : x + p] for y, x in zip(ys, xs)])
        foreground = ~is_background(tiles, max_below=bg_max_below, range_below=bg_range_below)
        if rule == "cells":
            holds = cell_test(image, patch_px=p)
            foreground &= np.array([holds(int(y), int(x)) for y, x in zip(ys, xs)], dtype=bool)
        if foreground.any():
            proba = classify_windows(image, model, ys[foreground], xs[foreground])
            levels.append(class_levels[np.argmax(proba, axis=1)])
    if n_tiles == 0:
        raise ValueError(f"no {p} x {p} tile fits in the images")
    levels = np.concatenate(levels) if levels else np.zeros(0, np.int64)
    names = [str(level) for level in range(model.optics.n_levels)] + ["bg"]
    counts = np.bincount(np.where(levels < 0, len(names) - 1, levels), minlength=len(names))
    called = levels[levels >= 0]
    return {
        "n_images": len(images),
        "n_tiles": int(n_tiles),
        "n_foreground": int(len(levels)),
        "foreground_rule": rule,
        "histogram": {name: int(c) for name, c in zip(names, counts)},
        "mean_level": float(called.mean()) if called.size else None,
    }


def _fraction(census: dict, levels: Sequence[int]) -> float | None:
    n = census["n_foreground"]
    return sum(census["histogram"][str(level)] for level in levels) / n if n else None


def real_data_checks(model, *, in_focus: Sequence[np.ndarray] = (), defocused: Sequence[np.ndarray] = (),
                     in_focus_levels: Sequence[int] = (0, 1), deep_levels: Sequence[int] | None = None,
                     rule: str = "paper") -> dict:
    """The two real-data checks of the model card.

    ``in_focus``: images at best focus; the check is the fraction of foreground tiles called ``in_focus_levels``.
    ``defocused``: images beyond the deepest level; the check is the fraction called ``deep_levels`` (default:
    the three deepest). Either may be empty (its entry is then None). ``rule``: which tiles are foreground
    (:func:`level_census`).
    """
    n_levels = model.optics.n_levels
    deep = tuple(range(max(0, n_levels - 3), n_levels)) if deep_levels is None else tuple(deep_levels)
    result: dict = {"in_focus": None, "defocused": None}
    if len(in_focus):
        census = level_census(model, in_focus, rule=rule)
        result["in_focus"] = {**census, "levels_expected": list(in_focus_levels),
                              "fraction_expected": _fraction(census, in_focus_levels)}
    if len(defocused):
        census = level_census(model, defocused, rule=rule)
        result["defocused"] = {**census, "levels_expected": list(deep),
                               "fraction_expected": _fraction(census, deep)}
    return result
