"""Atomic writers of records beside the images: PNG pictures (figures, overlays), JSON (sidecars) and CSV tables."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from .writers import atomic_path

__all__ = ["write_png", "write_json", "write_csv"]


def write_png(path: str | os.PathLike, data: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write an 8-bit grey or RGB(A) PNG (figures, overlays, montages)."""

    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise ValueError(f"write_png writes uint8 pictures, got {data.dtype}; scale the data first")
    with atomic_path(path, overwrite=overwrite) as tmp:
        iio.imwrite(tmp, data, extension=".png")
    return Path(path)


def write_json(path: str | os.PathLike, payload: dict, *, overwrite: bool = False) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True)
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text + "\n")
    return Path(path)


def write_csv(path: str | os.PathLike, header: list[str], rows, *, overwrite: bool = False) -> Path:
    """Write a table as comma-separated text (one header line, then one line per row), atomically.
    Floats are written with full precision (``repr``); NaN as "nan"."""

    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])
    return Path(path)
