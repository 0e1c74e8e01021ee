"""Window layout and blending weights: every pixel is covered with positive weight at every stride."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awdvd.restore.windows import (
    axis_weight_matrix,
    rectangular_weights,
    triangular_weights,
    weight_maps,
    window_profile,
    window_starts,
)


def test_window_starts_examples():
    np.testing.assert_array_equal(window_starts(168, stride=84), [0, 84])
    np.testing.assert_array_equal(window_starts(170, stride=84), [0, 84, 86])  # last one flush with the edge
    np.testing.assert_array_equal(window_starts(84, stride=42), [0])
    np.testing.assert_array_equal(window_starts(10, patch_px=4, stride=3), [0, 3, 6])
    with pytest.raises(ValueError, match="at least the patch size"):
        window_starts(83, stride=42)
    with pytest.raises(ValueError):
        window_starts(100, stride=0)
    with pytest.raises(ValueError, match="at most the patch size"):
        window_starts(200, stride=85)


def test_triangle_is_positive_and_sums_to_one_at_half_overlap():
    tri = triangular_weights(84, stride=42)
    assert tri.shape == (84,) and tri.min() > 0 and np.isclose(tri.max(), 1 - 0.5 / 42)
    np.testing.assert_allclose(tri, tri[::-1])
    # interior of a 1-D blend at stride 42: exactly one (the paper's bilinear interpolation)
    total = axis_weight_matrix(420, window_starts(420, stride=42), tri).sum(axis=0)
    np.testing.assert_allclose(total[42:-42], 1.0, rtol=1e-12)
    # at strides dividing 42 the paper's height scaling keeps the interior sum at one
    for stride in (1, 2, 3, 6, 7, 14, 21):
        total = axis_weight_matrix(420, window_starts(420, stride=stride), triangular_weights(84, stride=stride))
        np.testing.assert_allclose(total.sum(axis=0)[84:-84], 1.0, rtol=1e-9)
    assert np.array_equal(rectangular_weights(5), np.ones(5))
    with pytest.raises(ValueError):
        window_profile("hann", stride=42)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(84, 400), w=st.integers(84, 400), stride=st.integers(1, 84),
       weighting=st.sampled_from(["triangular", "rectangular"]))
def test_every_pixel_gets_positive_weight(h, w, stride, weighting):
    ys, xs = window_starts(h, stride=stride), window_starts(w, stride=stride)
    assert ys[0] == 0 and ys[-1] == h - 84 and np.all(np.diff(ys) > 0) and np.all(np.diff(ys) <= stride)
    assert xs[0] == 0 and xs[-1] == w - 84
    grid = np.zeros((len(ys), len(xs)), dtype=int)
    total = weight_maps(grid, (h, w), stride=stride, weighting=weighting)[0]
    assert total.shape == (h, w) and total.min() > 0


def test_weight_maps_split_the_total_by_label():
    grid = np.array([[0, 1, 1, 0], [-1, 0, 1, -1]])
    shape = (126, 170)
    maps = weight_maps(grid, shape, stride=42)
    assert sorted(maps) == [-1, 0, 1]
    ones = weight_maps(np.zeros_like(grid), shape, stride=42)[0]
    np.testing.assert_allclose(sum(maps.values()), ones)
    # a label's weight lives exactly on the union of its windows
    ys, xs = window_starts(126, stride=42), window_starts(170, stride=42)
    union = np.zeros(shape, bool)
    for (j, i), label in np.ndenumerate(grid):
        if label == -1:
            union[ys[j] : ys[j] + 84, xs[i] : xs[i] + 84] = True
    np.testing.assert_array_equal(maps[-1] > 0, union)
    with pytest.raises(ValueError, match="windows"):
        weight_maps(grid, (200, 170), stride=42)


def test_depth_in_um_is_the_probability_weighted_depth_with_its_spread():
    from awdvd.restore.windows import DefocusMap

    dmap = DefocusMap.from_levels(np.array([[0, 3], [-1, 10]]), (126, 126), stride=42, patch_px=84, n_levels=11,
                                  z_step_um=2.0)
    np.testing.assert_allclose(dmap.depth_um, [[0.0, 6.0], [np.nan, 20.0]])
    np.testing.assert_allclose(dmap.depth_spread_um, [[0.0, 0.0], [np.nan, 0.0]])
    # a window split 50 / 50 between levels 2 and 4 (4 and 8 um): mean 6 um, spread 2 um
    proba = dmap.proba.copy()
    proba[0, 1] = 0.0
    proba[0, 1, [2, 4]] = 0.5
    split = DefocusMap(**{**dmap.__dict__, "proba": proba})
    assert split.depth_um[0, 1] == pytest.approx(6.0) and split.depth_spread_um[0, 1] == pytest.approx(2.0)
    # background probability does not pull the depth: it is renormalised over the depth classes
    proba[0, 1, -1] = 0.5
    assert DefocusMap(**{**dmap.__dict__, "proba": proba}).depth_um[0, 1] == pytest.approx(6.0)


def test_depth_per_pixel_follows_the_windows_and_is_nan_under_background_only():
    from awdvd.restore.windows import DefocusMap

    dmap = DefocusMap.from_levels(np.array([[5, 5, -1]]), (84, 168), stride=42, patch_px=84, n_levels=11,
                                  z_step_um=2.0)
    depth, spread = dmap.depth_pixels()
    assert depth.shape == (84, 168)
    np.testing.assert_allclose(depth[:, :126][np.isfinite(depth[:, :126])], 10.0)
    assert np.isnan(depth[:, -1]).all() and np.isfinite(depth[:, 0]).all()
    np.testing.assert_allclose(spread[np.isfinite(spread)], 0.0, atol=1e-5)  # sqrt of a float64 difference
    two = DefocusMap.from_levels(np.array([[0, 10]]), (84, 126), stride=42, patch_px=84, n_levels=11, z_step_um=2.0)
    depth, spread = two.depth_pixels()
    assert depth[0, 0] == pytest.approx(0.0) and depth[0, -1] == pytest.approx(20.0)
    middle = depth[0, 62]  # both windows cover it: a blend of 0 and 20 um, with the spread between them
    assert 0 < middle < 20 and spread[0, 62] > 0


def test_a_map_without_a_depth_step_says_so():
    from awdvd.restore.windows import DefocusMap

    dmap = DefocusMap.from_levels(np.array([[1]]), (84, 84), stride=42, patch_px=84)
    with pytest.raises(ValueError, match="z_step_um"):
        dmap.depth_um
