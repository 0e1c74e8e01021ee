"""Defocus maps of image-range models: dense passes equal patch mode, transforms, smoothing, constant windows."""

import numpy as np
import pytest
from _standins import RuleModel, tiny_delpnet_model, tiny_exact_model

from awdvd.data.patches import BACKGROUND, image_range
from awdvd.data.synth import synthetic_nuclei
from awdvd.restore.defocus_maps import (
    classify_windows,
    compute_map,
    exact_dense,
    resolve_map_mode,
    smooth_proba,
    window_patches,
)


@pytest.fixture(scope="module")
def model():
    return tiny_exact_model(1)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (synthetic_nuclei((170, 213), seed=2) + rng.normal(0, 3, (170, 213))).astype(np.float32)


def test_auto_mode_is_dense_only_where_dense_is_exact(model):
    assert exact_dense(model) and resolve_map_mode("auto", model) == "dense"
    legacy = tiny_delpnet_model(0)
    assert not exact_dense(legacy) and resolve_map_mode("auto", legacy) == "patch"
    assert resolve_map_mode("auto", RuleModel()) == "patch"
    with pytest.raises(ValueError, match="mode must be one of"):
        resolve_map_mode("fast", model)


@pytest.mark.parametrize("stride", [8, 13, 42])
def test_dense_equals_patch_for_exact_models(model, image, stride):
    dense = compute_map(image, model, stride=stride, mode="dense")
    patch = compute_map(image, model, stride=stride, mode="patch")
    np.testing.assert_allclose(dense.proba, patch.proba, atol=2e-5)
    np.testing.assert_array_equal(dense.levels, patch.levels)
    assert dense.mode == "dense" and dense.normalization is None


def test_patch_mode_normalises_windows_by_the_image_range(model, image):
    dmap = compute_map(image, model, stride=42, mode="patch")
    lo, hi = image_range(image)
    windows = window_patches(image, dmap.ys, dmap.xs, 84)
    x = (windows - lo) / (hi - lo)
    expected = model.predict_proba_normalized(x.astype(np.float32)).reshape(dmap.proba.shape)
    np.testing.assert_allclose(dmap.proba, expected, atol=1e-6)


@pytest.mark.parametrize("tta", [2, 8])
def test_transforms_average_equally_in_both_modes(model, image, tta):
    dense = compute_map(image, model, stride=21, mode="dense", tta=tta)
    patch = compute_map(image, model, stride=21, mode="patch", tta=tta)
    np.testing.assert_allclose(dense.proba, patch.proba, atol=2e-5)
    plain = compute_map(image, model, stride=21, mode="patch")
    assert not np.allclose(plain.proba, patch.proba, atol=1e-4)  # a random network is not symmetric


def test_transforms_of_a_symmetric_image_change_nothing(model):
    """An image with the symmetries of the square: each window's transforms are windows of the same image."""
    rng = np.random.default_rng(3)
    quarter = rng.gamma(2.0, 50.0, size=(84, 84)).astype(np.float32)
    quarter = quarter + quarter.T
    image = np.block([[quarter, quarter[:, ::-1]], [quarter[::-1], quarter[::-1, ::-1]]])
    a = compute_map(image, model, stride=84, mode="patch", tta=8)
    b = compute_map(image, model, stride=84, mode="dense", tta=8)
    np.testing.assert_allclose(a.proba, b.proba, atol=2e-5)
    # the four windows are transforms of each other: with all 8 transforms averaged they read alike
    np.testing.assert_allclose(a.proba.reshape(-1, a.proba.shape[-1]), np.broadcast_to(a.proba[0, 0], (4, 12)),
                               atol=2e-5)


def test_constant_windows_are_background(model):
    legacy = tiny_delpnet_model(0)
    for m in (model, legacy):
        for value in (0.0, 100.0, 4095.0):
            image = np.full((100, 130), value, np.float32)
            assert np.all(compute_map(image, m, stride=42).levels == BACKGROUND)
    image = synthetic_nuclei((120, 250), n_nuclei=2, seed=0)
    image[:, :90] = 200.0  # a flat plateau: its windows are background, the others are classified
    dmap = compute_map(image, model, stride=42, mode="dense")
    assert np.all(dmap.levels[:, 0] == BACKGROUND)
    assert np.all(dmap.proba[:, 0, -1] == 1.0)


def test_classify_windows_matches_the_map(model, image):
    dmap = compute_map(image, model, stride=42, mode="patch", tta=2)
    yy, xx = np.meshgrid(dmap.ys, dmap.xs, indexing="ij")
    proba = classify_windows(image, model, yy.ravel(), xx.ravel(), tta=2)
    np.testing.assert_allclose(proba, dmap.proba.reshape(len(proba), -1), atol=1e-6)
    with pytest.raises(ValueError, match="one length"):
        classify_windows(image, model, [0, 1], [0])


def test_smoothing_follows_the_neighbours():
    proba = np.full((5, 5, 3), 0.05, np.float32)
    proba[..., 0] = 0.9
    proba[2, 2] = [0.3, 0.6, 0.1]  # an uncertain outlier among confident neighbours
    starts = np.arange(5) * 42
    smoothed = smooth_proba(proba, starts, starts, smoothing_px=42.0)
    assert np.argmax(smoothed[2, 2]) == 0
    np.testing.assert_allclose(smoothed.sum(axis=-1), 1.0, rtol=1e-5)
    assert smooth_proba(proba, starts, starts, smoothing_px=0.0) is proba
    certain = proba.copy()
    certain[0, 0] = [0.0, 0.0, 1.0]
    assert np.array_equal(smooth_proba(certain, starts, starts, smoothing_px=42.0)[0, 0], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="smoothing_px"):
        smooth_proba(proba, starts, starts, smoothing_px=-1.0)


def test_tta_choices_are_checked(model, image):
    with pytest.raises(ValueError, match="tta must be one of"):
        compute_map(image, model, stride=42, tta=3)


def test_tiles_give_the_whole_image_map(model, image):
    from awdvd.restore.tiles import tiled_defocus_map

    whole = compute_map(image, model, stride=16, mode="dense")
    tiled = tiled_defocus_map(image, model, stride=16, mode="dense", tile_px=64)
    np.testing.assert_allclose(tiled.proba, whole.proba, atol=2e-5)
    np.testing.assert_array_equal(tiled.levels, whole.levels)


def test_model_file_keeps_the_normalisation(model, tmp_path):
    from awdvd.learn.model_files import load_model

    model.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.normalization == "image-range" and exact_dense(loaded)
    assert load_model().normalization in ("window-minmax", "image-range")
