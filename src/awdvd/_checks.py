"""Input checks shared by the public functions: each raises with a sentence that says how to fix the call."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = ["check_odd_size", "check_image", "check_positive_int", "check_known_fields", "check_offset_in_range",
           "OFFSET_MAX_FRACTION_BELOW", "OFFSET_MAX_PEDESTAL"]

#: a camera offset with more than this fraction of an image's pixels below it is refused
OFFSET_MAX_FRACTION_BELOW = 0.75
#: an offset further below an image's darkest pixel than this many times the image's own scale is refused
OFFSET_MAX_PEDESTAL = 100.0


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_odd_size(value, name: str) -> int:
    value = check_positive_int(value, name)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd so that the PSF has a centre pixel, got {value}")
    return value


def check_image(image, name: str = "image", *, ndim: int = 2, min_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``image`` as an ndarray after checking dimensions, dtype and finiteness.

    Raises ``TypeError`` for non-numeric data and ``ValueError`` for a wrong number of dimensions,
    a too-small shape, or NaN/inf values.
    """
    array = np.asarray(image)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real-valued, got dtype {array.dtype}")
    if array.ndim != ndim:
        hint = " (one 2-D plane; pass a z-stack plane by plane)" if ndim == 2 else ""
        raise ValueError(f"{name} must be {ndim}-D{hint}, got shape {array.shape}")
    if min_shape is not None and any(s < m for s, m in zip(array.shape, min_shape)):
        raise ValueError(f"{name} has shape {array.shape}; at least {min_shape} is needed")
    if array.size and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; replace them (e.g. np.nan_to_num) first")
    return array


def check_known_fields(cls, data, what: str) -> None:
    """Raise for a ``from_dict`` payload that is not a dict or names fields the dataclass ``cls`` lacks."""

    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict needs a dict, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")


def check_offset_in_range(offset, image, *, max_samples: int | None = None) -> None:
    """Refuse a camera offset (ADU) that would destroy ``image`` (2-D, numpy or lazy) rather than restore it.

    RL works on ``image - offset`` clipped at 0 and adds the offset back, so an offset above most of the pixels
    turns them into the offset itself (a uint8 image with offset 100 came back 98% exactly 100), and one far
    below the image makes RL work on a huge pedestal in float32 (offset -1e9 gave values from -6976 to 7424).
    Refused, with ValueError naming the image's range:

    - more than :data:`OFFSET_MAX_FRACTION_BELOW` (75%) of the pixels below the offset: an offset is the camera's
      dark level plus background, which at most about half of the pixels (noise around the background) lie
      below;
    - an offset more than :data:`OFFSET_MAX_PEDESTAL` (100) times the image's scale (max(|min|, |max|,
      max - min, 1)) below its darkest pixel.

    ``offset`` "auto" (resolved from the image itself) is not checked. ``max_samples``: decide from a regular
    subsample of about that many pixels (as the "auto" offset does), so large images are not read twice whole.
    """
    if isinstance(offset, str):
        return
    offset = float(offset)
    h, w = (int(s) for s in image.shape[-2:])
    step = 1 if max_samples is None else max(1, math.ceil(math.sqrt(h * w / max_samples)))
    sample = image[::step, ::step]
    if hasattr(sample, "dask"):  # computed here, in this thread (inside a Dask worker too)
        sample = sample.compute(scheduler="sync")
    values = np.asarray(sample, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    spans = f"the image spans {lo:.6g}..{hi:.6g} ADU"
    below = float(np.mean(values < offset))
    if below > OFFSET_MAX_FRACTION_BELOW:
        median = float(np.median(values))
        raise ValueError(f"offset {offset:.6g} ADU is above {below:.0%} of the image's pixels ({spans}, median "
                         f"{median:.6g}): they would come back as the offset itself. Give the camera's dark level "
                         f"(at most the median) or 'auto' (--offset auto, the 1st percentile)")
    scale = max(abs(lo), abs(hi), hi - lo, 1.0)
    if offset < lo - OFFSET_MAX_PEDESTAL * scale:
        raise ValueError(f"offset {offset:.6g} ADU lies far below the image's darkest pixel ({spans}): RL would "
                         "work on a pedestal that float32 cannot hold beside the image. Give the camera's dark "
                         "level or 'auto' (--offset auto, the 1st percentile)")
