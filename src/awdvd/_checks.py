"""Input checks shared by the public functions: each raises with a sentence that says how to fix the call."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_odd_size", "check_image", "check_positive_int", "check_known_fields"]


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
    import dataclasses

    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict needs a dict, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")
