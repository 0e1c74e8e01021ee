"""awdvd.restore.blend: the fast and patch-wise AWDVD blends against whole-image RL, background pass-through, identity
cases, per-level iterations, windows at any positions, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from _standins import blend_plan, level_map

from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_bank
from awdvd.restore.blend import blend_windows, deconvolve_levels
from awdvd.restore.rl import richardson_lucy
from awdvd.restore.windows import DefocusMap, window_starts


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


def map_for(shape, stride, level_of_window) -> DefocusMap:
    ys = window_starts(shape[0], stride=stride)
    xs = window_starts(shape[1], stride=stride)
    return level_map([[level_of_window(y, x) for x in xs] for y in ys], shape, stride=stride)


def awdvd(image, dmap, bank, **changes):
    return deconvolve_levels(image, dmap, bank, blend_plan(**{"iterations": 30, **changes}))


@pytest.mark.parametrize("stride", [42, 50])
def test_one_level_everywhere_fast_is_whole_image_rl(bank, stride):
    image = spots((130, 150), seed=11, n=30)
    dmap = map_for(image.shape, stride, lambda y, x: 6)
    whole = richardson_lucy(image, bank[6], iterations=10, boundary="extended")  # the plan's default boundary
    fast = awdvd(image, dmap, bank, iterations=10, method="fast")
    np.testing.assert_allclose(fast, whole, rtol=1e-5, atol=1e-5 * whole.max())
    mirrored = awdvd(image, dmap, bank, iterations=10, method="fast", boundary="symmetric")
    whole = richardson_lucy(image, bank[6], iterations=10)
    np.testing.assert_allclose(mirrored, whole, rtol=1e-5, atol=1e-5 * whole.max())


def test_one_level_everywhere_patchwise_agrees_in_the_interior(bank):
    image = spots((160, 170), seed=12, n=40)
    dmap = map_for(image.shape, 42, lambda y, x: 8)
    whole = richardson_lucy(image, bank[8], iterations=10)
    patchwise = awdvd(image, dmap, bank, iterations=10, method="patchwise")
    span = np.ptp(whole)
    assert np.abs(patchwise - whole).max() < 1e-3 * span
    # with a short margin the patches see less context and disagree more, so the test is not vacuous
    short = awdvd(image, dmap, bank, iterations=10, method="patchwise", halo_px=1)
    assert np.abs(short - whole).max() > np.abs(patchwise - whole).max()


@pytest.mark.parametrize("method", ["fast", "patchwise"])
def test_background_windows_pass_through_unchanged(bank, method):
    image = spots((120, 200), seed=13)
    all_bg = map_for(image.shape, 42, lambda y, x: -1)
    out = awdvd(image, all_bg, bank, method=method)
    np.testing.assert_allclose(out, image, rtol=1e-6)
    # background on the left, level 5 on the right: pixels only background windows cover are untouched
    dmap = map_for(image.shape, 42, lambda y, x: -1 if x < 60 else 5)
    out = awdvd(image, dmap, bank, iterations=5, method=method)
    first_level_window = min(x for x in window_starts(200, stride=42) if x >= 60)
    np.testing.assert_allclose(out[:, :first_level_window], image[:, :first_level_window], rtol=1e-6)
    assert not np.allclose(out[:, first_level_window + 84 :], image[:, first_level_window + 84 :], rtol=1e-3)


def test_fast_and_patchwise_agree_with_mixed_levels(bank):
    image = spots((150, 190), seed=14, n=40)
    dmap = map_for(image.shape, 21, lambda y, x: min(10, x // 10) if y < 40 else -1 if y > 60 else 2)
    fast = awdvd(image, dmap, bank, iterations=8, weighting="triangular", method="fast", boundary="symmetric")
    patchwise = awdvd(image, dmap, bank, iterations=8, weighting="triangular", method="patchwise")
    assert np.abs(fast - patchwise).max() < 2e-3 * np.ptp(image)
    # the default boundary: the outside unknown for fast's RLs (patchwise mirrors the image, the paper's); the two
    # then differ near the edges only
    extended = awdvd(image, dmap, bank, iterations=8, weighting="triangular", method="fast")
    inner = (slice(30, -30), slice(30, -30))
    assert np.abs(extended - patchwise)[inner].max() < 2e-3 * np.ptp(image)
    assert np.abs(extended - patchwise).max() > 2e-3 * np.ptp(image)


def test_case_i_is_non_overlapping_patchwise_rl(bank):
    """Stride 84, rectangular weights: each 84 x 84 block is its own window's RL (with image context)."""
    image = spots((168, 168), seed=15, n=30)
    grid = np.array([[1, 7], [4, 10]])
    dmap = level_map(grid, image.shape, stride=84)
    out = awdvd(image, dmap, bank, weighting="rectangular", iterations=6, method="fast")
    for (j, i), level in np.ndenumerate(grid):
        whole = richardson_lucy(image, bank[level], iterations=6, boundary="extended")
        block = (slice(84 * j, 84 * j + 84), slice(84 * i, 84 * i + 84))
        np.testing.assert_allclose(out[block], whole[block], rtol=0, atol=2e-3 * np.ptp(whole))


def test_identity_cases_of_awdvd(bank):
    image = spots((100, 100), seed=16)
    dmap = map_for(image.shape, 16, lambda y, x: (x // 16) % 11)
    for method in ("fast", "patchwise"):
        np.testing.assert_allclose(awdvd(image, dmap, bank, iterations=0, method=method), image, rtol=1e-6)
        # per-level iterations: 0 for a level leaves its windows' pixels as they are
        only_zero = map_for(image.shape, 16, lambda y, x: 0)
        assert np.array_equal(awdvd(image, only_zero, bank, iterations=(0,) + (5,) * 10, method=method),
                              image.astype(np.float32))


def test_a_map_and_its_levels_are_checked(bank):
    with pytest.raises(ValueError, match="windows"):  # a grid that is not the image's at this stride
        level_map(np.zeros((3, 3), int), (100, 100), stride=42)
    with pytest.raises(TypeError, match="integers"):
        level_map(np.zeros((2, 2)), (100, 100), stride=42)
    with pytest.raises(ValueError, match="levels must lie"):
        level_map(np.full((2, 2), 11), (100, 100), stride=42)
    with pytest.raises(ValueError, match="stride"):
        level_map(np.zeros((2, 2), int), (100, 100), stride=0)


@pytest.mark.parametrize(
    "image, kwargs, error, match",
    [
        (np.ones((3, 100, 100)), {}, ValueError, "2-D"),
        (np.full((100, 100), np.nan), {}, ValueError, "NaN"),
        (np.ones((100, 101)), {}, ValueError, "defocus map is of a 100 x 100 image"),
        (np.ones((100, 100)), {"method": "magic"}, ValueError, "method"),
        (np.ones((100, 100)), {"weighting": "gauss"}, ValueError, "weighting"),
        (np.ones((100, 100)), {"iterations": (3, 4)}, ValueError, "one per level"),
        (np.ones((100, 100)), {"iterations": -1}, ValueError, "iterations"),
        (np.ones((100, 100)), {"offset": "auto"}, TypeError, "offset must be a number"),
    ],
)
def test_awdvd_bad_calls(bank, image, kwargs, error, match):
    dmap = level_map(np.zeros((2, 2), int), (100, 100), stride=42)
    with pytest.raises(error, match=match):
        awdvd(image, dmap, bank, **kwargs)
    with pytest.raises(ValueError, match="levels must lie"):  # a level the PSF bank has no PSF for
        awdvd(np.ones((100, 100)), level_map(np.full((2, 2), 5), (100, 100), stride=42), bank[:3])


def test_windows_at_any_positions_blend_like_the_whole_image(bank):
    """A block's windows (window_subset) cover exactly their own pixels, and where every window covering a pixel
    lies in the block (and RL there has its context), the block's blend is the whole image's."""
    image = spots((250, 300), seed=24, n=40)
    dmap = map_for(image.shape, 21, lambda y, x: (x // 21) % 11)
    whole = awdvd(image, dmap, bank, iterations=3)
    origin = (50, 70)  # not on the 21 px grid: the first rows and columns of the block are left uncovered
    block = image[origin[0]:, origin[1]:]
    inside = dmap.window_subset(origin, block.shape)
    out, covered = blend_windows(block, inside, bank, blend_plan(iterations=3))
    expected = np.zeros(block.shape, bool)
    for y in inside.ys:
        for x in inside.xs:
            expected[y : y + 84, x : x + 84] = True
    assert np.array_equal(covered, expected) and not covered.all() and np.all(out[~covered] == 0)
    margin = 84 + 30  # all windows over these pixels start inside the block, and RL sees 30 px of context
    interior = (slice(margin, None), slice(margin, None))
    np.testing.assert_allclose(out[interior], whole[origin[0]:, origin[1]:][interior], rtol=0,
                               atol=1e-4 * float(whole.max()))


def test_awdvd_handles_negative_and_constant_images(bank):
    dmap = map_for((100, 120), 42, lambda y, x: 3)
    constant = awdvd(np.full((100, 120), 7.0), dmap, bank)
    np.testing.assert_allclose(constant, 7.0, rtol=1e-4)  # float32 transforms over the extended domain
    negative = spots((100, 120), seed=17) - 20.0
    out = awdvd(negative, dmap, bank, iterations=4)
    assert out.min() >= 0  # below-offset pixels are zero photons (see richardson_lucy)


