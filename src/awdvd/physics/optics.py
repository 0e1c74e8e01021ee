"""Microscope optics: the few numbers that fix the defocus PSF model (paper Eq. 2)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .._config import FrozenConfig

__all__ = ["Optics", "UndersamplingWarning"]


class UndersamplingWarning(UserWarning):
    """The camera pixel is coarser than the Nyquist limit of the optics."""


@dataclass(frozen=True)
class Optics(FrozenConfig):
    """Widefield optics and the defocus levels that awdvd distinguishes.

    Defaults are the paper's (He et al. 2019) and BBBC006's acquisition: 451 nm emission, NA 0.5 in air,
    20x objective with 2x2 binning (0.65 um per pixel), 11 levels 2 um apart (0, 2, ..., 20 um).

    Parameters
    ----------
    wavelength_um : emission wavelength in micrometres.
    na : numerical aperture of the objective.
    n : refractive index of the immersion medium (1.0 for air).
    pixel_um : pixel size in the specimen plane, in micrometres.
    z_step_um : defocus between neighbouring levels, in micrometres.
    n_levels : number of defocus levels; level ``l`` is ``l * z_step_um`` out of focus.

    Raises
    ------
    ValueError
        If a value is not finite and positive, ``na >= n``, or ``n_levels < 1``.

    Warns
    -----
    UndersamplingWarning
        When ``pixel_um`` exceeds the Nyquist pixel ``wavelength_um / (4 na)``. The PSF is then
        pixel-integrated, which is the right model for such a camera, but fine detail is aliased.
        BBBC006 (0.65 um against 0.23 um) is such a case.
    """

    wavelength_um: float = 0.451
    na: float = 0.5
    n: float = 1.0
    pixel_um: float = 0.65
    z_step_um: float = 2.0
    n_levels: int = 11

    def __post_init__(self) -> None:
        for name in ("wavelength_um", "na", "n", "pixel_um", "z_step_um"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Optics.{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Optics.{name} must be a finite positive number, got {value!r}")
        if isinstance(self.n_levels, bool) or not isinstance(self.n_levels, int) or self.n_levels < 1:
            raise ValueError(f"Optics.n_levels must be a positive integer, got {self.n_levels!r}")
        if self.na >= self.n:
            raise ValueError(
                f"Optics.na ({self.na}) must be smaller than the refractive index n ({self.n}): "
                "an objective cannot collect light beyond the medium's index"
            )
        if self.pixel_um > self.nyquist_pixel_um * (1 + 1e-9):
            warnings.warn(
                f"pixel {self.pixel_um:g} um is coarser than the Nyquist pixel {self.nyquist_pixel_um:.3g} um "
                f"(wavelength / 4 NA); the PSF is pixel-integrated, but detail finer than 2 pixels is aliased",
                UndersamplingWarning,
                stacklevel=3,
            )

    @property
    def depths_um(self) -> tuple[float, ...]:
        """Defocus of each level in micrometres: ``(0, z_step_um, ..., (n_levels - 1) * z_step_um)``."""
        return tuple(level * self.z_step_um for level in range(self.n_levels))

    @property
    def nyquist_pixel_um(self) -> float:
        """Largest pixel (um) that samples the in-focus widefield PSF without aliasing: lambda / (4 NA)."""
        return self.wavelength_um / (4 * self.na)

    @property
    def airy_radius_um(self) -> float:
        """Radius of the first dark ring of the in-focus PSF: 0.61 lambda / NA (um)."""
        return 0.6098 * self.wavelength_um / self.na
