"""Image-quality metrics for restorations: PSNR and SSIM against a reference (scikit-image's, with the data
range always explicit: scikit-image would otherwise guess it from the dtype, and 16-bit camera data stored as
float would be judged against a range of 2, or of 65535 stored as uint16, silently)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "ssim", "truth_data_range", "PAPER_DATA_RANGE"]

PAPER_DATA_RANGE = 65535.0  # the paper's absolute numbers (Fig. 7-8) use the 16-bit container's range


def _pair(reference, image) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    if ref.shape != img.shape:
        raise ValueError(f"reference {ref.shape} and image {img.shape} must have the same shape")
    if ref.ndim != 2:
        raise ValueError(f"expected 2-D images, got shape {ref.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(img).all()):
        raise ValueError("images contain NaN or infinite values")
    return ref, img


def _check_range(data_range) -> float:
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return value


def truth_data_range(reference) -> float:
    """max - min of the reference: the honest data range for relative comparisons (1.0 if constant)."""
    ref = np.asarray(reference, dtype=np.float64)
    span = float(ref.max() - ref.min())
    return span if span > 0 else 1.0


def psnr(reference, image, *, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) of ``image`` against ``reference`` (both (H, W)); ``inf`` if equal.

    ``data_range`` (same units as the images) is required: 65535 reproduces the paper's absolute numbers,
    :func:`truth_data_range` gives numbers that do not depend on the container.
    """
    ref, img = _pair(reference, image)
    data_range = _check_range(data_range)
    mse = float(np.mean((ref - img) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(reference, image, *, data_range: float) -> float:
    """Structural similarity (skimage.metrics.structural_similarity, 7 x 7 uniform window) with an explicit
    ``data_range``; images must be at least 7 x 7."""
    from skimage.metrics import structural_similarity

    ref, img = _pair(reference, image)
    data_range = _check_range(data_range)
    if min(ref.shape) < 7:
        raise ValueError(f"SSIM needs images of at least 7 x 7 px, got {ref.shape}")
    return float(structural_similarity(ref, img, data_range=data_range))
