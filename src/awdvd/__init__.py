"""awdvd: depth-variant deconvolution of out-of-focus widefield fluorescence images (He et al. 2019)."""

from __future__ import annotations

from .optics import Optics
from .psf import defocus_psf, psf_bank

__version__ = "0.1.0"
__all__ = ["Optics", "defocus_psf", "psf_bank", "richardson_lucy", "deconvolve", "defocus_map", "load_model",
           "__version__"]

# heavier parts load on first use, so that `import awdvd` stays light (no torch, no matplotlib)
_LAZY = {
    "richardson_lucy": "deconv",
    "deconvolve": "deconv",
    "defocus_map": "predict",
    "load_model": "model",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
