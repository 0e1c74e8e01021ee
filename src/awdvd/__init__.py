"""awdvd: depth-variant deconvolution of out-of-focus widefield fluorescence images (He et al. 2019)."""

from __future__ import annotations

from .optics import Optics
from .psf import defocus_psf, psf_bank

__version__ = "0.1.0"
__all__ = ["Optics", "defocus_psf", "psf_bank", "__version__"]
