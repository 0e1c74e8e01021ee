"""One model for every widefield objective (DESIGN section 7): the image's optics against the model's.

The model judges depth in its own optical units: the image is brought to the model's sampling (area-weighted
resampling of pixel-integrated camera data, :func:`awdvd.physics.optical_units.to_grid`), its windows are
classified there, and the map is carried back to the image's pixel grid (:func:`map_on_image_grid`), with every
level's depth in the image's optics (:func:`awdvd.physics.optical_units.level_step_um`). Restoration then runs on
the image's own grid with the PSFs of the image's optics at those depths (:func:`restoration_optics`). An
objective that would show cells much larger in optical units than the model learned them (a 60x / 1.4 oil) is
read at its own scale in micrometres instead (:func:`reads_at_object_scale`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..physics.optical_units import grid_factor, grid_shape, level_step_um, overlap_matrix, to_grid
from ..physics.optics import Optics
from .windows import DefocusMap

__all__ = ["BeyondRangeWarning", "warn_beyond_range", "depth_at_least_um", "ObjectScaleWarning", "OBJECT_SCALE_LIMIT",
           "object_scale", "reads_at_object_scale", "warn_object_scale", "SAME_GRID_TOLERANCE",
           "image_optics_or_model", "sampling_factor", "restoration_optics", "to_model_grid", "map_on_image_grid"]


class BeyondRangeWarning(UserWarning):
    """Most of the image's foreground sits at the model's deepest level: it is at least that deep."""


class ObjectScaleWarning(UserWarning):
    """The image's objective would show cells much larger in optical units than the nuclei the model learned from,
    so it is read at its own scale in micrometres (:func:`reads_at_object_scale`), assuming nuclei of that size."""


#: above this :func:`object_scale` an image is read at its own scale in micrometres (:func:`reads_at_object_scale`).
#: Read in optical units, measured on synthetic defocus of real nuclei never trained on with the bundled model
#: (``python benchmarks/bench_object_scale.py``): at 1.3 (a 40x / 0.75) 86% of windows within one
#: level-equivalent and -0.6 dB for in-focus images; at 1.6, 64% and -4.7 dB; at 2.4 (a 60x / 1.4 oil), 12% and
#: -11 dB: the model reads the cells' size as blur
OBJECT_SCALE_LIMIT = 1.4


#: a sampling within this relative difference of the model's is used as it is (no resampling)
SAME_GRID_TOLERANCE = 0.02


def object_scale(image_optics: Optics, model_optics: Optics) -> float:
    """How many times larger the same cells look on the model's sampling than under the model's own optics:
    ``(wavelength / NA)_model / (wavelength / NA)_image`` (lengths are read in units of wavelength / NA, whatever
    the pixel size). The model learned nuclei at its own optics' scale (and, in part, 0.55-2.5 times it)."""
    return (model_optics.wavelength_um / model_optics.na) / (image_optics.wavelength_um / image_optics.na)


def reads_at_object_scale(image_optics: Optics, model_optics: Optics) -> bool:
    """Whether an image of ``image_optics`` is read at its own scale in micrometres rather than in optical units:
    when its objective would show cells more than :data:`OBJECT_SCALE_LIMIT` times larger than the model learned
    them (:func:`object_scale`; a 60x / 1.4 oil objective, for instance). It is then brought to the model's pixel
    size, so that nuclei are as large as in training, and a level means the blur radius (Eq. 2's z NA / n) of the
    model's level at the model's optics (:func:`restoration_optics`)."""
    return object_scale(image_optics, model_optics) > OBJECT_SCALE_LIMIT


def warn_object_scale(image_optics: Optics | None, model_optics: Optics) -> None:
    """One :class:`ObjectScaleWarning` line when an image of ``image_optics`` is read at its own scale
    (:func:`reads_at_object_scale`; None: the model's own optics, no warning): what that assumes."""
    if image_optics is None or not reads_at_object_scale(image_optics, model_optics):
        return
    scale = object_scale(image_optics, model_optics)
    warnings.warn(f"at NA {image_optics.na:g} and {image_optics.wavelength_um:g} um emission, cells would look "
                  f"{scale:.1f}x larger to the model than it learned them, so the image is read at "
                  f"{model_optics.pixel_um:g} um pixels with depth from the blur radius (z NA / n); this assumes "
                  "cells about as large as cultured human nuclei (10-20 um), and depth is coarser than with an "
                  "objective the model was trained for", ObjectScaleWarning, stacklevel=3)


def image_optics_or_model(optics: Optics | None, model_optics: Optics) -> Optics:
    """The image's optics, or the model's when they are not given (the caller warns where that was assumed)."""
    if optics is None:
        return model_optics
    if not isinstance(optics, Optics):
        raise TypeError(f"optics must be an awdvd Optics (wavelength_um, na, n, pixel_um), got {type(optics).__name__}")
    return optics


def sampling_factor(image_optics: Optics, model_optics: Optics) -> float:
    """How the image is scaled to reach the model's sampling (1.0 within :data:`SAME_GRID_TOLERANCE`): in optical
    units, or to the model's pixel size where it is read at its own scale (:func:`reads_at_object_scale`)."""
    if reads_at_object_scale(image_optics, model_optics):
        factor = image_optics.pixel_um / model_optics.pixel_um
    else:
        factor = grid_factor(image_optics, model_optics)
    return 1.0 if abs(factor - 1.0) <= SAME_GRID_TOLERANCE else float(factor)


def restoration_optics(image_optics: Optics, model_optics: Optics) -> Optics:
    """The image's optics with the model's levels carried into them: ``n_levels`` of the model, each one
    level-equivalent (the model's z step at the same defocus phase) apart; where the image is read at its own
    scale (:func:`reads_at_object_scale`), the model's step at the same blur radius, z NA / n. Its PSF bank
    restores the image."""
    if reads_at_object_scale(image_optics, model_optics):
        step = model_optics.z_step_um * (model_optics.na / model_optics.n) / (image_optics.na / image_optics.n)
    else:
        step = level_step_um(image_optics, model_optics)
    return image_optics.replace(z_step_um=float(step), n_levels=int(model_optics.n_levels))


def to_model_grid(image, factor: float, *, block_rows: int = 1024) -> np.ndarray:
    """The image resampled by ``factor`` (float32 numpy), or as it is when the factor is 1. A lazy image (dask,
    zarr, memmap) is read ``block_rows`` rows at a time, so only the resampled image is ever whole in memory."""
    if factor == 1.0:
        return image
    if isinstance(image, np.ndarray):
        return to_grid(image, factor)
    h, w = (int(v) for v in image.shape)
    out_h, out_w = grid_shape((h, w), factor)
    rows_matrix, cols_matrix = overlap_matrix(h, out_h).tocsc(), overlap_matrix(w, out_w)
    out = np.zeros((out_h, out_w), dtype=np.float64)
    for start in range(0, h, block_rows):
        block = np.asarray(image[start:start + block_rows], dtype=np.float64)
        if not np.isfinite(block).all():
            raise ValueError("image holds NaN or infinite values")
        out += rows_matrix[:, start:start + len(block)] @ (cols_matrix @ block.T).T
    return out.astype(np.float32)


def map_on_image_grid(dmap: DefocusMap, factor: float, image_shape: tuple[int, int], *,
                      z_step_um: float) -> DefocusMap:
    """A map computed on the model's grid (an image resampled by ``factor``) carried back to the image's pixels:
    the same windows, each ``patch_px / factor`` image pixels wide, placed where they lay in the image (the last
    one flush with the far edge, so every pixel is covered), with their levels and probabilities, and depths
    in the image's optics (``z_step_um`` between levels)."""
    h, w = (int(v) for v in image_shape)
    patch = max(1, int(round(dmap.patch_px / factor)))
    if patch > min(h, w):
        raise ValueError(f"the image is {h} x {w} px; in the model's sampling one window is {patch} px of it")
    stride = max(1, int(round(dmap.stride / factor)))

    def starts(model_starts, length):
        placed = np.round(np.asarray(model_starts, dtype=np.float64) / factor).astype(np.int64)
        placed = np.clip(placed, 0, length - patch)
        placed[-1] = length - patch
        placed[0] = 0
        return np.maximum.accumulate(placed)

    return DefocusMap(levels=dmap.levels, proba=dmap.proba, class_levels=dmap.class_levels,
                      ys=starts(dmap.ys, h), xs=starts(dmap.xs, w), image_shape=(h, w), patch_px=patch,
                      stride=stride, mode=dmap.mode, normalization=dmap.normalization, z_step_um=float(z_step_um))


def depth_at_least_um(dmap: DefocusMap) -> float | None:
    """The depth (um) of the deepest class when most foreground windows sit there (the image is at least that
    deep: past the model's range), else None."""
    foreground = dmap.levels[dmap.levels >= 0]
    if foreground.size == 0 or dmap.z_step_um is None:
        return None
    deepest = int(max(level for level in np.asarray(dmap.class_levels) if level >= 0))
    if np.mean(foreground == deepest) < 0.5:
        return None
    return float(deepest * dmap.z_step_um) if math.isfinite(dmap.z_step_um) else None


def warn_beyond_range(dmap: DefocusMap) -> None:
    """One :class:`BeyondRangeWarning` line when :func:`depth_at_least_um` finds the image past the model's range."""
    depth = depth_at_least_um(dmap)
    if depth is not None:
        warnings.warn(f"most of the image's foreground is at the model's deepest level: it is at least {depth:.3g} "
                      "um out of focus, beyond the depths this model tells apart; restored as if that deep",
                      BeyondRangeWarning, stacklevel=3)
