"""awdvd: depth-variant deconvolution of out-of-focus widefield fluorescence images (He et al. 2019).

>>> from awdvd import Optics, defocus_psf, psf_bank, richardson_lucy, load_model, defocus_map, deconvolve
>>> from awdvd import AWDVDOptions, DefocusMap
>>> from awdvd import read_image, write_tiff

``import awdvd`` is light: torch, dask and matplotlib load only when a function that needs them is used.
"""

from __future__ import annotations

import importlib

from .physics.optics import Optics
from .physics.psf import defocus_psf, psf_bank

__version__ = "0.1.0"

# public names that live in heavier modules, imported on first use (PEP 562)
_LAZY = {
    "load_model": "learn.model_files",
    "DefocusModel": "learn.model",
    "richardson_lucy": "restore.rl",
    "deconvolve": "restore.pipeline",
    "AWDVDOptions": "restore.options",
    "defocus_map": "restore.pipeline",
    "restore_channels": "restore.channels",
    "DefocusMap": "restore.windows",
    "read_image": "io",
    "write_tiff": "io",
}

__all__ = ["Optics", "defocus_psf", "psf_bank", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'awdvd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
