"""PSF invariants and an independent check of Eq. 2 by adaptive quadrature."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from awdvd import Optics, defocus_psf, psf_bank
from awdvd.physics.psf import _cached_bank, default_psf_size, encircled_energy

OPTICS = Optics()


def quad_intensity(z_um: float, r_um: float, optics: Optics = OPTICS) -> float:
    """Eq. 2 by scipy's adaptive quadrature, written independently of awdvd.physics.psf."""
    k = 2 * math.pi / optics.wavelength_um
    a, b = k * optics.na / optics.n, 0.5 * k * z_um * optics.na**2 / optics.n**2
    opts = dict(limit=400, epsabs=1e-13, epsrel=1e-12)
    re = integrate.quad(lambda p: special.j0(a * r_um * p) * math.cos(b * p * p) * p, 0, 1, **opts)[0]
    im = integrate.quad(lambda p: special.j0(a * r_um * p) * math.sin(b * p * p) * p, 0, 1, **opts)[0]
    return re * re + im * im


@pytest.mark.parametrize("z_um", [0.0, 2.0, 10.0, 20.0])
def test_matches_adaptive_quadrature(z_um):
    psf = defocus_psf(z_um, optics=OPTICS, size=61, oversample=1)  # point samples at pixel centres
    c = 30
    ref = np.unravel_index(np.argmax(psf), psf.shape)
    q_ref = quad_intensity(z_um, math.hypot(ref[0] - c, ref[1] - c) * OPTICS.pixel_um)
    points = [(0, 0), (0, 1), (1, 1), (0, 3), (2, 5), (7, 11), (13, 4), (20, 20), (29, 30), (0, 18), (17, 0)]
    for dy, dx in points:
        expected = quad_intensity(z_um, math.hypot(dy, dx) * OPTICS.pixel_um) / q_ref
        assert abs(psf[c + dy, c + dx] / psf[ref] - expected) <= 1e-4, (dy, dx)


@pytest.mark.parametrize("z_um", [0.0, 3.0, 20.0])
@pytest.mark.parametrize("size", [15, 61])
def test_sum_odd_centred_symmetric(z_um, size):
    psf = defocus_psf(z_um, optics=OPTICS, size=size)
    assert psf.shape == (size, size) and psf.dtype == np.float64
    assert psf.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(psf, psf[::-1, :], atol=1e-15)
    np.testing.assert_allclose(psf, psf[:, ::-1], atol=1e-15)
    np.testing.assert_allclose(psf, psf.T, atol=1e-15)
    yy, xx = np.mgrid[:size, :size]
    assert (psf * yy).sum() == pytest.approx(size // 2, abs=1e-9)  # centroid on the centre pixel
    assert (psf * xx).sum() == pytest.approx(size // 2, abs=1e-9)


def test_sign_of_defocus_does_not_matter():
    np.testing.assert_array_equal(defocus_psf(-6.0, size=31), defocus_psf(6.0, size=31))


def rms_radius_px(psf):
    c = psf.shape[0] // 2
    yy, xx = np.mgrid[: psf.shape[0], : psf.shape[1]]
    return math.sqrt((psf * ((yy - c) ** 2 + (xx - c) ** 2)).sum())


def test_in_focus_first_dark_ring_at_airy_radius():
    # Point samples on a fine grid (pixel 0.02 um) resolve the Airy pattern: first minimum at 0.61 lambda / NA.
    fine = Optics(pixel_um=0.02)
    psf = defocus_psf(0.0, optics=fine, size=101, oversample=1)
    profile = psf[50, 50:]
    first_min = np.argmax(np.diff(profile) > 0)  # first index where the profile rises again
    assert first_min * fine.pixel_um == pytest.approx(fine.airy_radius_um, abs=fine.pixel_um)


def test_spread_grows_with_defocus():
    bank = psf_bank(OPTICS, size=61)
    radii = [rms_radius_px(p) for p in bank]
    assert all(b > a for a, b in zip(radii, radii[1:]))
    # the z = 20 um disc has a geometric radius z tan(asin(NA)) = 11.5 um = 17.8 px
    edge = 20 * math.tan(math.asin(0.5)) / OPTICS.pixel_um
    profile = bank[-1][30, 30:]
    assert profile[int(edge) + 4] < 0.1 * profile[: int(edge)].max()


def test_bank_matches_single_psfs():
    bank = psf_bank(OPTICS, size=41)
    assert bank.shape == (11, 41, 41)
    for level in (0, 4, 10):
        np.testing.assert_allclose(bank[level], defocus_psf(OPTICS.depths_um[level], optics=OPTICS, size=41), atol=1e-15)


def test_a_bank_is_made_once_and_every_caller_gets_its_own_copy():
    optics = Optics(z_step_um=1.5, n_levels=4)
    first = psf_bank(optics, size=21)
    first[:] = 0  # a caller that writes into its bank
    hits = _cached_bank.cache_info().hits
    second = psf_bank(optics, size=21)
    assert _cached_bank.cache_info().hits == hits + 1
    assert second.flags.writeable and second.sum() == pytest.approx(4.0)
    singles = np.stack([defocus_psf(z, optics=optics, size=21) for z in optics.depths_um])
    np.testing.assert_allclose(second, singles, atol=1e-15)


def test_default_size_holds_99_percent_energy():
    size = default_psf_size(OPTICS)
    assert size % 2 == 1
    r = (size // 2 + 0.5) * OPTICS.pixel_um
    assert encircled_energy(20.0, r, optics=OPTICS) >= 0.99
    assert encircled_energy(20.0, r - OPTICS.pixel_um, optics=OPTICS) < 0.99  # the smallest such size
    assert psf_bank(OPTICS).shape == (11, size, size)


def test_energy_total_is_analytic():
    # a disc far larger than the PSF holds (almost) all of the analytic total pi / (k NA)^2
    assert encircled_energy(4.0, 200.0, optics=OPTICS) == pytest.approx(1.0, abs=2e-3)


def test_oversampling_converges():
    coarse, fine = defocus_psf(2.0, size=31, oversample=5), defocus_psf(2.0, size=31, oversample=15)
    assert np.abs(coarse - fine).max() < 0.01 * fine.max()


@pytest.mark.parametrize("size, message", [(0, "size must be >= 1"), (4, "size must be odd"), (60, "size must be odd"),
                                           (-3, "size must be >= 1")])
def test_bad_size(size, message):
    with pytest.raises(ValueError, match=message):
        defocus_psf(2.0, size=size)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_bad_depth(bad):
    with pytest.raises(ValueError, match="finite"):
        defocus_psf(bad, size=11)


@settings(max_examples=15, deadline=None)
@given(z=st.floats(0, 25), size=st.integers(2, 20).map(lambda k: 2 * k + 1))
def test_property_normalised_and_positive(z, size):
    psf = defocus_psf(z, size=size, oversample=3)
    assert psf.min() >= 0 and psf.sum() == pytest.approx(1.0, abs=1e-12)
