"""Defocus maps: window layout, patch mode against the model's own patch predictions, dense mode's trunk
folding and cell geometry, per-pixel maps, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from _standins import RuleModel, tiny_delpnet_model

from awdvd.data.patches import normalize_patches
from awdvd.restore.defocus_maps import (
    DefocusMap,
    compute_map,
    dense_trunk,
    normalize_image,
    trunk_geometry,
    window_patches,
)
from awdvd.restore.windows import window_starts

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def net_model():
    return tiny_delpnet_model(seed=1)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 12, size=(4, 5)), np.ones((40, 40))) * 100.0  # 160 x 200 blocks
    return (base + rng.normal(0, 5, base.shape) + 500).astype(np.float32)


def test_patch_mode_classifies_every_window(image):
    model = RuleModel(step=100.0)
    dmap = compute_map(image, model, stride=30)
    ys, xs = window_starts(160, stride=30), window_starts(200, stride=30)
    assert dmap.levels.shape == (len(ys), len(xs)) and dmap.proba.shape == (len(ys), len(xs), 12)
    np.testing.assert_array_equal(dmap.ys, ys)
    np.testing.assert_array_equal(dmap.xs, xs)
    patches = window_patches(image, ys, xs, 84)
    np.testing.assert_array_equal(patches[len(xs) + 2], image[ys[1] : ys[1] + 84, xs[2] : xs[2] + 84])
    np.testing.assert_array_equal(dmap.levels.ravel(), model.predict_patches(patches))
    assert dmap.positions.shape == (len(ys), len(xs), 2)
    np.testing.assert_allclose(dmap.centres[0, 0], [41.5, 41.5])
    assert sum(dmap.level_counts().values()) == dmap.levels.size
    assert dmap.mode == "patch" and dmap.normalization is None


def test_patch_mode_matches_the_network_on_patches(image, net_model):
    dmap = compute_map(image, net_model, stride=42, batch_size=7)
    patches = window_patches(image, dmap.ys, dmap.xs, 84)
    levels, proba = net_model.predict_patches(patches, return_proba=True)
    np.testing.assert_array_equal(dmap.levels.ravel(), levels)
    np.testing.assert_allclose(dmap.proba.reshape(-1, 12), proba, atol=1e-6)


def test_folded_trunk_equals_the_network(net_model):
    x = torch.rand(2, 1, 96, 104)
    trunk = dense_trunk(net_model)
    assert dense_trunk(net_model) is trunk  # cached: the model's one inference cache
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    with torch.inference_mode():
        expected = net_model.network.features(x)
        got = trunk.features(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()))
        pooled = expected.amax(dim=(2, 3))
        assert torch.allclose(trunk.classify(pooled), net_model.network.classify(pooled))


def test_dense_cells_line_up_with_windows(net_model):
    """Features of a crop starting on a cell boundary equal the whole image's cells away from the crop edges
    (where zero padding differs): the geometry dense mode relies on."""
    step, n = trunk_geometry(net_model.network, 84, "cpu")
    assert (step, n) == (8, 10)
    x = torch.rand(1, 1, 200, 224)
    with torch.inference_mode():
        full = net_model.network.features(x)
        y0, x0 = 8 * 5, 8 * 9
        crop = net_model.network.features(x[:, :, y0 : y0 + 128, x0 : x0 + 128])
    margin = 5  # cells: 4 convs after the last pooling, plus less than a cell from the earlier ones
    inner = crop[..., margin:-margin, margin:-margin]
    ref = full[..., 5 + margin : 5 + 16 - margin, 9 + margin : 9 + 16 - margin]
    assert torch.allclose(inner, ref, atol=1e-5)


@pytest.mark.parametrize("normalization", ["local", "global"])
def test_dense_mode_gives_a_full_map(image, net_model, normalization):
    patch = compute_map(image, net_model, stride=16)
    dense = compute_map(image, net_model, stride=16, mode="dense", normalization=normalization)
    assert dense.levels.shape == patch.levels.shape and dense.proba.shape == patch.proba.shape
    np.testing.assert_allclose(dense.proba.sum(axis=-1), 1.0, rtol=1e-5)
    assert set(np.unique(dense.levels)) <= set(net_model.class_levels)
    assert dense.mode == "dense" and dense.normalization == normalization


def test_local_normalisation_at_a_window_centre_is_the_window_normalisation(image):
    x = normalize_image(image, normalization="local")
    assert x.min() >= 0 and x.max() <= 1
    # an odd box centred on pixel (c, c) covers c - 42 .. c + 41: the window starting at c - 42
    for y, x0 in [(42, 42), (60, 100)]:
        window = normalize_patches(image[None, y - 42 : y + 42, x0 - 42 : x0 + 42])[0]
        assert np.isclose(x[y, x0], window[42, 42], atol=1e-6)
    g = normalize_image(image, normalization="global")
    assert np.isclose(g.min(), 0) and np.isclose(g.max(), 1)
    assert np.array_equal(normalize_image(np.ones((90, 90)), normalization="global"), np.zeros((90, 90)))


def test_per_pixel_maps():
    grid = np.array([[2, 2, 5, 5], [2, 2, 5, 5]])
    dmap = DefocusMap(levels=grid, proba=np.zeros(grid.shape + (12,), np.float32),
                      class_levels=np.array(list(range(11)) + [-1]), ys=window_starts(126, stride=42),
                      xs=window_starts(210, stride=42), image_shape=(126, 210), patch_px=84, stride=42)
    vote = dmap.to_pixels()
    assert vote.shape == (126, 210) and set(np.unique(vote)) == {2, 5}
    assert np.all(vote[:, :80] == 2) and np.all(vote[:, -80:] == 5)
    nearest = dmap.to_pixels(method="nearest")
    centres = dmap.centres
    for (j, i), level in np.ndenumerate(grid):
        cy, cx = np.floor(centres[j, i]).astype(int)
        assert nearest[cy, cx] == level
    with pytest.raises(ValueError):
        dmap.to_pixels(method="mode")


@pytest.mark.parametrize(
    "img, kwargs, error",
    [
        (np.ones((80, 200)), {}, ValueError),
        (np.ones((2, 100, 100)), {}, ValueError),
        (np.full((100, 100), np.nan), {}, ValueError),
        (np.ones((100, 100)), {"mode": "fast"}, ValueError),
        (np.ones((100, 100)), {"normalization": "zscore"}, ValueError),
        (np.ones((100, 100)), {"stride": 0}, ValueError),
        (np.ones((100, 100)), {"stride": 85}, ValueError),
        (np.ones((100, 100)), {"stride": None}, TypeError),
    ],
)
def test_bad_calls(img, kwargs, error):
    with pytest.raises(error):
        compute_map(img, RuleModel(), **{"stride": 42, **kwargs})
