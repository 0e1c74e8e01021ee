"""awdvd.restore.rl: Richardson-Lucy's invariants (identity cases, flux, non-negativity), an independent RL, the torch
path, offsets, bad inputs; the halo, the background estimate and the conversion back to an input dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from awdvd.physics.optics import Optics
from awdvd.physics.psf import defocus_psf, psf_bank
from awdvd.restore.rl import (
    blur_radius_px,
    default_halo_px,
    estimate_background,
    halos_px,
    resolve_offset,
    richardson_lucy,
    richardson_lucy_stack,
    to_input_dtype,
)
from awdvd.restore.rl_kernels import rl_numpy, rl_numpy_extended, rl_torch


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bank():
    return psf_bank(Optics(), size=15)


def spots(shape, seed=0, n=12, background=10.0):
    """A sparse object: a few bright Gaussian spots on a flat background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.full(shape, background)
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        out += rng.uniform(200, 1000) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(1, 3) ** 2))
    return out


def even_psf(k, seed=0):
    """A random non-negative PSF, even along both axes, sum 1."""
    p = np.random.default_rng(seed).random((k, k))
    p = p + p[::-1] + p[:, ::-1] + p[::-1, ::-1]
    return p / p.sum()


def reference_rl(image, psf, iterations, eps):
    """Eq. 3 written out directly: float64, np.pad symmetric, scipy.signal.convolve 'valid'."""
    i = np.asarray(image, dtype=np.float64)
    o = i.copy()
    r = psf.shape[0] // 2
    for _ in range(iterations):
        blurred = signal.convolve(np.pad(o, r, mode="symmetric"), psf, mode="valid")
        ratio = i / np.maximum(blurred, eps)
        o = o * signal.convolve(np.pad(ratio, r, mode="symmetric"), psf[::-1, ::-1], mode="valid")
    return o


# --------------------------------------------------------------------------------------------- RL
def test_zero_iterations_and_delta_psf_return_the_input():
    image = spots((30, 41)).astype(np.float32)
    out = richardson_lucy(image, even_psf(7), iterations=0)
    assert out.dtype == np.float32 and np.array_equal(out, image)
    delta = np.zeros((9, 9))
    delta[4, 4] = 3.0
    assert np.array_equal(richardson_lucy(image, delta, iterations=5), image)
    both = richardson_lucy(image.astype(np.uint16), np.stack([delta, even_psf(9)]), iterations=3)
    assert np.array_equal(both[0], image.astype(np.uint16).astype(np.float32))


def test_matches_an_independent_implementation():
    image = spots((33, 40), seed=1)
    for psf in (even_psf(9, seed=2), np.random.default_rng(3).random((7, 7))):  # even and asymmetric PSFs
        psf = psf / psf.sum()
        ours = richardson_lucy(image, psf, iterations=12, device="cpu")
        expected = reference_rl(image, psf, 12, eps=1e-6 * image.max())
        np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-5 * expected.max())


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), half=st.integers(0, 12), seed=st.integers(0, 1000),
       iterations=st.integers(1, 8))
def test_flux_is_conserved_for_any_shape(h, w, half, seed, iterations):
    """Also for images smaller than the PSF (several reflections) and odd shapes."""
    image = np.random.default_rng(seed).uniform(0.5, 100.0, size=(h, w))
    out = richardson_lucy(image, even_psf(2 * half + 1, seed), iterations=iterations, device="cpu")
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0
    assert abs(out.astype(np.float64).sum() / image.sum() - 1) < 2e-5


def test_deconvolution_moves_a_blurred_image_towards_the_truth():
    truth = spots((64, 72), seed=4)
    psf = defocus_psf(6.0, size=21)
    from awdvd.data.synth import blur

    observed = np.random.default_rng(5).poisson(blur(truth, psf)).astype(np.float64)
    restored = richardson_lucy(observed, psf, iterations=30)
    assert np.mean((restored - truth) ** 2) < 0.6 * np.mean((observed - truth) ** 2)


def test_several_psfs_in_one_batch_equal_one_at_a_time(bank):
    image = spots((40, 50), seed=6)
    batch = richardson_lucy(image, bank[[0, 4, 10]], iterations=6)
    assert batch.shape == (3, 40, 50)
    for out, level in zip(batch, (0, 4, 10)):
        np.testing.assert_allclose(out, richardson_lucy(image, bank[level], iterations=6), rtol=1e-6, atol=1e-4)


def test_torch_path_matches_the_scipy_path(bank):
    """The CUDA implementation, run on the CPU."""
    images = np.stack([spots((37, 45), seed=s) for s in (7, 8)]).astype(np.float32)
    psfs = bank[[3, 9]]
    ours = rl_numpy(images, psfs, 10, 1e-3)
    torch_out = rl_torch(images, psfs, 10, 1e-3, "cpu")
    np.testing.assert_allclose(torch_out, ours, rtol=0, atol=1e-5 * ours.max())


@pytest.mark.parametrize("variant", ["plain", "accelerated", "tv"])
@pytest.mark.parametrize("boundary", ["symmetric", "extended"])
def test_torch_loop_matches_the_numpy_loops_for_each_boundary_and_variant(bank, boundary, variant):
    """The CUDA implementation of both boundaries, run on the CPU, against the numpy loops; with a stopping rule
    under which one image stops early."""
    images = np.stack([spots((37, 45), seed=s) for s in (7, 8)]).astype(np.float32) + 5.0
    psfs = bank[[3, 9]]
    variance = np.ones_like(images)
    weights = np.ones_like(images)
    extra = {"variant": variant, "tv_weight": 0.002 if variant == "tv" else 0.0}
    numpy_loop = rl_numpy_extended if boundary == "extended" else rl_numpy
    seen = []  # image 1's discrepancy at each iteration, with a rule that never stops
    numpy_loop(images, psfs, 12, 1e-3, stop=(variance, weights, np.zeros(2)),
               observe=lambda k, x, d: seen.append(d[1]), **extra)
    stop = (variance, weights, np.array([0.0, seen[5] * 1.0001]))  # image 1 stops at iteration 5
    ran_np, ran_torch = np.zeros(2, np.int64), np.zeros(2, np.int64)
    ours = numpy_loop(images, psfs, 12, 1e-3, stop=stop, iterations_run=ran_np, **extra)
    torch_out = rl_torch(images, psfs, 12, 1e-3, "cpu", boundary=boundary, stop=stop, iterations_run=ran_torch,
                         **extra)
    assert np.array_equal(ran_np, ran_torch) and ran_np[1] < 12  # the rule stopped image 1 in both
    np.testing.assert_allclose(torch_out, ours, rtol=0, atol=2e-5 * ours.max())


def test_offset_is_subtracted_and_added_back(bank):
    image = spots((30, 30), seed=9)
    plain = richardson_lucy(image, bank[5], iterations=8)
    shifted = richardson_lucy(image + 96.0, bank[5], iterations=8, offset=96.0)
    np.testing.assert_allclose(shifted - 96.0, plain, rtol=0, atol=1e-3)
    assert shifted.min() >= 96.0


def test_pixels_below_the_offset_count_as_zero_photons(bank):
    image = spots((30, 30), seed=10) - 50.0  # negative values
    out = richardson_lucy(image, bank[3], iterations=5)
    np.testing.assert_allclose(out, richardson_lucy(np.maximum(image, 0), bank[3], iterations=5), atol=1e-5)
    assert out.min() >= 0


def test_constant_image_stays_constant(bank):
    out = richardson_lucy(np.full((25, 31), 120.0), bank[10], iterations=10)
    np.testing.assert_allclose(out, 120.0, rtol=1e-5)
    zeros = richardson_lucy(np.zeros((10, 10)), bank[2], iterations=3)
    assert np.array_equal(zeros, np.zeros((10, 10), np.float32))


@pytest.mark.parametrize(
    "image, psf, kwargs, error",
    [
        (np.full((8, 8), np.nan), np.ones((3, 3)), {}, ValueError),
        (np.ones((2, 8, 8)), np.ones((3, 3)), {}, ValueError),
        (np.ones((0, 8)), np.ones((3, 3)), {}, ValueError),
        (np.array([["a"]]), np.ones((3, 3)), {}, TypeError),
        (np.ones((8, 8)), np.ones((4, 4)), {}, ValueError),
        (np.ones((8, 8)), np.ones((3, 5)), {}, ValueError),
        (np.ones((8, 8)), -np.ones((3, 3)), {}, ValueError),
        (np.ones((8, 8)), np.zeros((3, 3)), {}, ValueError),
        (np.ones((8, 8)), np.ones((3, 3)), {"iterations": -1}, ValueError),
        (np.ones((8, 8)), np.ones((3, 3)), {"iterations": 2.5}, TypeError),
        (np.ones((8, 8)), np.ones((3, 3)), {"offset": np.nan}, ValueError),
        (np.ones((8, 8)), np.ones((3, 3)), {"eps": 0.0}, ValueError),
        (np.ones((8, 8)), np.ones((3, 3)), {"device": "tpu"}, ValueError),
    ],
)
def test_bad_calls_raise_clear_errors(image, psf, kwargs, error):
    with pytest.raises(error):
        richardson_lucy(image, psf, **kwargs)


def test_blur_radius_and_default_halo(bank):
    assert blur_radius_px(np.pad([[1.0]], 7)) == 0.0
    radii = [blur_radius_px(p) for p in psf_bank(Optics(), size=61)]
    assert all(b >= a for a, b in zip(radii[1:], radii[2:]))  # grows with defocus beyond level 1
    assert default_halo_px(bank[10]) == int(np.ceil(3 * blur_radius_px(bank[10])))
    assert halos_px(bank, None) == [default_halo_px(p) for p in bank] and halos_px(bank[:2], 5) == [5, 5]


def test_stack_of_patches_equals_one_at_a_time(bank):
    stack = np.stack([spots((84, 84), seed=s) for s in (20, 21, 22)])
    out = richardson_lucy_stack(stack, bank[4], iterations=5, offset=10.0, eps=1e-3)
    for patch, restored in zip(stack, out):
        np.testing.assert_allclose(restored, richardson_lucy(patch, bank[4], iterations=5, offset=10.0, eps=1e-3),
                                   rtol=1e-6, atol=1e-4)
    assert np.array_equal(richardson_lucy_stack(stack, bank[4], iterations=0), stack.astype(np.float32))
    with pytest.raises(ValueError):
        richardson_lucy_stack(stack[0], bank[4])
    with pytest.raises(ValueError):
        richardson_lucy_stack(stack, bank)


def test_to_input_dtype_rounds_clips_and_counts():
    values = np.array([[-3.2, 0.4, 1.6], [65535.4, 70000.0, 12.5]], dtype=np.float32)
    out, clipped = to_input_dtype(values, np.uint16)
    assert out.dtype == np.uint16 and clipped == 2
    np.testing.assert_array_equal(out, [[0, 0, 2], [65535, 65535, 12]])
    out, clipped = to_input_dtype(values, np.float32)
    assert clipped == 0 and out.dtype == np.float32
    with pytest.raises(TypeError):
        to_input_dtype(values, bool)


def test_background_estimate_and_auto_offset():
    image = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    assert estimate_background(image) == pytest.approx(np.percentile(image, 1))
    assert resolve_offset("auto", image) == estimate_background(image)
    assert resolve_offset(12, image) == 12.0
    # a regular subsample of about max_samples pixels: close to the full estimate, and one value for all tiles
    sub = resolve_offset("auto", image, max_samples=2500)
    assert sub == estimate_background(image[::2, ::2]) and abs(sub - estimate_background(image)) < 100
    with pytest.raises(ValueError, match="'auto'"):
        resolve_offset("dark", image)
    with pytest.raises(ValueError, match="percentile"):
        estimate_background(image, percentile=101)


def test_the_extended_boundary_restores_a_cropped_fields_border_like_its_interior():
    """A field blurred whole, then cropped (the light of spots outside the crop is in it, as in a real field of
    view): mirrored at its edges RL restores the outer band worse than the interior; with the outside unknown the
    band is restored about as well as the interior (issue 26's borders)."""
    from scipy.signal import fftconvolve

    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:220, :220]
    truth = 10.0 + sum(800 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0) for y, x in rng.uniform(0, 220, (90, 2)))
    psf = psf_bank(Optics(), size=31)[5]
    observed = rng.poisson(fftconvolve(truth, psf, mode="same")).astype(np.float32)
    crop = (slice(40, -40), slice(40, -40))
    truth, observed = truth[crop], observed[crop]
    band = np.zeros(truth.shape, bool)
    band[:15], band[-15:], band[:, :15], band[:, -15:] = True, True, True, True

    def error(restored, where):
        return float(np.sqrt(np.mean((restored[where] - truth[where]) ** 2)))

    mirrored = richardson_lucy(observed, psf, iterations=20)
    extended = richardson_lucy(observed, psf, iterations=20, boundary="extended")
    # measured: band 52.1 (mirrored 61.6), interior 51.8 (mirrored 51.8)
    assert error(extended, band) < 0.9 * error(mirrored, band)
    assert error(extended, band) < 1.1 * error(extended, ~band)  # the band about as good as the interior
    assert abs(error(extended, ~band) - error(mirrored, ~band)) < 0.1 * error(mirrored, ~band)
    with pytest.raises(ValueError, match="boundary must be one of"):
        richardson_lucy(observed, psf, iterations=2, boundary="periodic")
