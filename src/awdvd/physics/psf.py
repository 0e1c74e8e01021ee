"""Defocus point spread functions: the Born-Wolf scalar model of the paper's Eq. 2.

h(r; z) = | int_0^1 J0(k NA/n r rho) exp(-1/2 j k rho^2 z NA^2/n^2) rho d rho |^2,  k = 2 pi n / lambda,

k the wavenumber in the immersion medium (lambda: the vacuum emission wavelength, ``Optics.wavelength_um``). The
paper's optics are in air (n = 1); for immersion objectives the medium's wavenumber is what makes Eq. 2 the
paraxial PSF (with 2 pi / lambda it came out n times too wide: benchmarks/bench_high_na_psf.py).

The 1-D radial integral is evaluated once per PSF by Gauss-Legendre quadrature on a fine radial grid, then
mapped onto the 2-D pixel grid by cubic interpolation, integrating over each pixel by oversampling (a camera
pixel integrates light; point samples would alias at BBBC006's 0.65 um pixels).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._checks import check_odd_size, check_positive_int
from .optics import Optics

__all__ = ["defocus_psf", "psf_bank", "check_psf_stack", "psf_otfs", "psf_amplitude_integral", "default_psf_size", "encircled_energy"]

_RADIAL_STEP_UM = 0.01  # cubic interpolation error ~ (step * 2 k NA)^4 / 384 ~ 1e-6 of the peak
_ENERGY_FRACTION = 0.99


def _quadrature_nodes(max_phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1], enough for an integrand of total phase ``max_phase`` rad."""
    n = 48 + int(0.75 * max_phase)
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def psf_amplitude_integral(z_um, r_um, optics: Optics) -> np.ndarray:
    """Unnormalised intensity h(r; z) of Eq. 2 at radii ``r_um`` (micrometres) for defocus ``z_um``.

    ``z_um`` may be a scalar (result shaped like ``r_um``) or a 1-D sequence (result (len(z_um), *r.shape)):
    the Bessel factor, the costly part, is then shared by all depths. Gauss-Legendre quadrature over the
    pupil radius rho, with enough nodes for the oscillation of the integrand (accurate to ~1e-12).
    """
    from scipy.special import j0

    r = np.asarray(r_um, dtype=float)
    z = np.atleast_1d(np.asarray(z_um, dtype=float))
    k = 2 * math.pi * optics.n / optics.wavelength_um  # the wavenumber in the immersion medium
    a = k * optics.na / optics.n
    b = 0.5 * k * z * optics.na**2 / optics.n**2
    rho, w = _quadrature_nodes(a * float(np.max(r, initial=0.0)) + float(np.max(np.abs(b))))
    pupil = np.exp(-1j * b[None, :] * rho[:, None] ** 2) * (rho * w)[:, None]  # (nodes, n_z)
    amplitude = j0(a * r.reshape(-1, 1) * rho) @ pupil  # (n_r, n_z)
    intensity = (np.abs(amplitude) ** 2).T.reshape(z.shape + r.shape)
    return intensity[0] if np.ndim(z_um) == 0 else intensity


@functools.lru_cache(maxsize=32)
def _radial_spline(depths_um: tuple[float, ...], r_max_um: float, optics: Optics):
    """Cubic spline of h(r; z) for every depth at once: spline(r) has shape (*r.shape, len(depths_um))."""
    from scipy.interpolate import CubicSpline

    n = int(math.ceil(r_max_um / _RADIAL_STEP_UM)) + 4
    r = np.arange(n) * _RADIAL_STEP_UM
    table = psf_amplitude_integral(depths_um, r, optics).T  # (n_r, n_z)
    # h is even in r: a clamped zero slope at r = 0 keeps the spline exact there
    return CubicSpline(r, table, axis=0, bc_type=((1, np.zeros(table.shape[1])), "not-a-knot"))


def _subpixel_radii_um(size: int, oversample: int, pixel_um: float) -> np.ndarray:
    """Radii (um) of ``oversample`` x ``oversample`` sub-pixel centres of every pixel, grid (size*os, size*os)."""
    half = size // 2
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    u = (np.arange(-half, half + 1)[:, None] + offsets[None, :]).ravel() * pixel_um
    return np.hypot(u[:, None], u[None, :])


def _pixel_integrated(depths_um: tuple[float, ...], size: int, oversample: int, optics: Optics) -> np.ndarray:
    """(len(depths_um), size, size) pixel-integrated PSFs, each normalised to sum 1."""
    radii = _subpixel_radii_um(size, oversample, optics.pixel_um)
    spline = _radial_spline(tuple(abs(float(z)) for z in depths_um), float(radii.max()), optics)
    values = spline(radii)  # (size*os, size*os, n_z)
    psfs = values.reshape(size, oversample, size, oversample, -1).mean(axis=(1, 3))
    psfs = np.moveaxis(psfs, -1, 0)
    return psfs / psfs.sum(axis=(1, 2), keepdims=True)


def encircled_energy(z_um: float, radius_um, *, optics: Optics) -> np.ndarray:
    """Fraction of the PSF's total energy inside discs of radius ``radius_um`` (um; scalar or array).

    The total is analytic: by Parseval for the Hankel transform, int h dA = pi / (k NA / n)^2 at every z.
    """
    from scipy.integrate import cumulative_trapezoid

    a = 2 * math.pi * optics.n / optics.wavelength_um * optics.na / optics.n
    radius = np.asarray(radius_um, dtype=float)
    r = np.arange(0.0, float(radius.max(initial=0.0)) + 0.04, 0.02)
    h = psf_amplitude_integral(float(z_um), r, optics)

    inside = 2 * math.pi * cumulative_trapezoid(h * r, r, initial=0.0)
    return np.interp(radius, r, inside) / (math.pi / a**2)


@functools.lru_cache(maxsize=32)
def default_psf_size(optics: Optics, fraction: float = _ENERGY_FRACTION) -> int:
    """Smallest odd size (px) whose inscribed disc holds ``fraction`` of the energy at the deepest level."""
    z = max(optics.depths_um)
    a = 2 * math.pi * optics.n / optics.wavelength_um * optics.na / optics.n
    # geometric blur radius plus a generous allowance for the Airy-like tail, in pixels
    max_half = int((z * optics.na / math.sqrt(optics.n**2 - optics.na**2) + 400 / a) / optics.pixel_um) + 2
    halves = np.arange(1, max_half + 1)
    energy = encircled_energy(z, (halves + 0.5) * optics.pixel_um, optics=optics)
    reached = np.nonzero(energy >= fraction)[0]
    if reached.size == 0:
        raise ValueError(f"no PSF size up to {2 * max_half + 1} px holds {fraction:.0%} of the energy; check the optics")
    return 2 * int(halves[reached[0]]) + 1


def defocus_psf(
    z_um: float, *, optics: Optics | None = None, size: int | None = None, oversample: int = 7
) -> np.ndarray:
    """2-D defocus PSF of Eq. 2, pixel-integrated, normalised to sum 1.

    Parameters
    ----------
    z_um : defocus in micrometres (the sign does not matter in this model).
    optics : microscope optics; ``Optics()`` (the paper's) when omitted.
    size : odd side length in pixels; by default the smallest size holding 99% of the energy of the
        deepest level of ``optics`` (so every PSF of a bank has the same size).
    oversample : sub-samples per pixel side used to integrate over the pixel area; 1 gives point samples
        at the pixel centres.

    Returns
    -------
    psf : (size, size) float64, sums to 1, centred on pixel (size // 2, size // 2), symmetric under
        flips and transposition.
    """
    optics = Optics() if optics is None else optics
    z = float(z_um)
    if not math.isfinite(z):
        raise ValueError(f"z_um must be finite, got {z_um!r}")
    size = default_psf_size(optics) if size is None else check_odd_size(size, "size")
    _check_oversample(oversample)
    return _pixel_integrated((z,), size, oversample, optics)[0]


def psf_bank(optics: Optics | None = None, *, size: int | None = None, oversample: int = 7) -> np.ndarray:
    """The PSFs of every defocus level of ``optics``: (n_levels, size, size) float64, each summing to 1.

    Level ``l`` has defocus ``optics.depths_um[l]``; see :func:`defocus_psf` for the arguments.
    """
    optics = Optics() if optics is None else optics
    size = default_psf_size(optics) if size is None else check_odd_size(size, "size")
    _check_oversample(oversample)
    return _cached_bank(optics, size, oversample).copy()


@functools.lru_cache(maxsize=8)
def _cached_bank(optics: Optics, size: int, oversample: int) -> np.ndarray:
    """:func:`psf_bank`'s PSFs, made once per optics and size (0.12 s for 21 levels of 79 px, 4% of restoring a
    696 x 520 field 30-40 um deep, saved on every image after the first of a script), read-only; callers get a
    copy."""
    bank = _pixel_integrated(optics.depths_um, size, oversample, optics)
    bank.flags.writeable = False
    return bank


def _check_oversample(oversample) -> None:
    check_positive_int(oversample, "oversample")


def check_psf_stack(psf) -> tuple[np.ndarray, bool]:
    """Validate a (k, k) PSF or an (L, k, k) stack (square, odd, finite, non-negative, non-zero): returns the
    (L, k, k) float64 PSFs normalised to sum 1, and whether a single 2-D PSF was given."""
    psfs = np.asarray(psf)
    if psfs.dtype == object or not np.issubdtype(psfs.dtype, np.number) or np.iscomplexobj(psfs):
        raise TypeError(f"psf must be a real numeric array, got dtype {psfs.dtype}")
    single = psfs.ndim == 2
    if single:
        psfs = psfs[None]
    if psfs.ndim != 3 or psfs.shape[1] != psfs.shape[2] or psfs.shape[1] % 2 == 0 or psfs.shape[0] == 0:
        raise ValueError(f"psf must be square with an odd side, (k, k) or (L, k, k); got shape {np.shape(psf)}")
    psfs = psfs.astype(np.float64)
    if not np.isfinite(psfs).all() or (psfs < 0).any():
        raise ValueError("psf values must be finite and non-negative")
    sums = psfs.sum(axis=(1, 2))
    if np.any(sums <= 0):
        raise ValueError("a psf sums to zero; it must hold some positive weight")
    return psfs / sums[:, None, None], single


def psf_otfs(psfs: np.ndarray, fft_shape: tuple[int, int], *, dtype=np.complex64) -> np.ndarray:
    """rfft2 of PSFs (L, k, k) centred on the origin of an ``fft_shape`` grid (for circular convolution):
    (L, Fh, Fw // 2 + 1) of ``dtype``."""
    from scipy import fft

    k = psfs.shape[-1]
    grid = np.zeros((len(psfs),) + tuple(fft_shape), dtype=np.float64)
    grid[:, :k, :k] = psfs
    grid = np.roll(grid, (-(k // 2), -(k // 2)), axis=(1, 2))
    return fft.rfft2(grid, axes=(1, 2)).astype(dtype, copy=False)
