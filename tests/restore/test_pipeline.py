"""awdvd.restore.pipeline: the options object (validated, JSON-able, the one place of the defaults), the pipeline (model's
map -> blend, the "auto" offset, the stride checked against the model, the pixel-size check, known levels, whole
vs tiled, writing into ``out``), per-level iterations and the depth-invariant baseline."""

from __future__ import annotations

import dataclasses
import inspect
import json
import warnings

import numpy as np
import pytest
from _standins import RuleModel, blend_plan, level_map, tiny_delpnet_model

import awdvd
from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_bank
from awdvd.restore.blend import deconvolve_levels
from awdvd.restore.defocus_maps import compute_map
from awdvd.restore.options import AWDVDOptions
from awdvd.restore.pipeline import deconvolve, deconvolve_invariant, iterations_per_level, restore_image
from awdvd.restore.rl import estimate_background, richardson_lucy


@pytest.fixture(scope="module")
def bank():
    return psf_bank(Optics(), size=15)


def spots(shape, seed=0, n=12, background=10.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.full(shape, background)
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        out += rng.uniform(200, 1000) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(1, 3) ** 2))
    return out


@pytest.fixture(scope="module")
def two_halves():
    """Left half flat (RuleModel: background), right half at mean ~250 (level 2), with some spots."""
    image = np.zeros((126, 168))
    image[:, 84:] = 250.0
    return image + spots((126, 168), seed=18, n=10, background=0.0) * 0.2


# --------------------------------------------------------------------------------------------- options
def test_options_defaults_validation_and_json():
    options = AWDVDOptions()
    assert (options.stride, options.iterations, options.offset, options.method) == (42, None, "auto", "fast")
    again = AWDVDOptions.from_json(options.to_json())
    assert again == options
    custom = AWDVDOptions(stride=21, iterations=[0] + [5] * 10, offset=96, psf_size=31, device="cuda:1")
    assert custom.iterations == (0,) + (5,) * 10 and custom.offset == 96.0
    assert AWDVDOptions.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    assert options.replace(stride=21).stride == 21 and options.stride == 42
    bad = [({"stride": 0}, ValueError, "stride"), ({"stride": 2.5}, TypeError, "stride"),
           ({"iterations": -1}, ValueError, "iterations"), ({"iterations": ()}, ValueError, "empty"),
           ({"method": "magic"}, ValueError, "method"), ({"weighting": "gauss"}, ValueError, "weighting"),
           ({"offset": "dark"}, ValueError, "'auto'"), ({"offset": float("nan")}, ValueError, "finite"),
           ({"psf_size": 30}, ValueError, "odd"), ({"halo_px": -1}, ValueError, "halo_px"),
           ({"map_mode": "fast"}, ValueError, "map_mode"), ({"normalization": "z"}, ValueError, "normalization"),
           ({"device": "tpu"}, ValueError, "device")]
    for change, error, match in bad:
        with pytest.raises(error, match=match):
            AWDVDOptions(**change)
    with pytest.raises(ValueError, match="unknown"):
        AWDVDOptions.from_dict({"strides": 4})
    with pytest.raises(TypeError, match="no field"):
        options.replace(stride_px=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.stride = 3


def test_the_options_are_the_one_place_of_the_defaults():
    """The CLI's defaults are the options' field defaults; defocus_map's mode defaults agree with them."""
    from awdvd.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["deconvolve", "x.tif", "-o", "out"])
    defaults = AWDVDOptions()
    for name in ("stride", "iterations", "method", "weighting", "offset", "psf_size", "halo_px", "map_mode", "device"):
        assert getattr(args, name) == getattr(defaults, name), name
    predict_args = parser.parse_args(["predict", "x.tif", "-o", "out"])
    assert (predict_args.stride, predict_args.mode, predict_args.normalization) == (
        defaults.stride, defaults.map_mode, defaults.normalization)
    # the engine under the pipeline has no defaults of its own for what the options decide
    engine = inspect.signature(compute_map).parameters
    assert engine["stride"].default is inspect.Parameter.empty
    # the public map takes every option from AWDVDOptions: no second set of defaults in its signature
    public = inspect.signature(awdvd.defocus_map).parameters
    assert not set(public) & set(AWDVDOptions.__dataclass_fields__)


def test_iterations_per_level():
    model = RuleModel()
    assert iterations_per_level(AWDVDOptions(), model) == (30,) * 11  # no schedule in the model: 30
    assert iterations_per_level(AWDVDOptions(iterations=7), n_levels=3) == (7, 7, 7)
    assert iterations_per_level(AWDVDOptions(iterations=(0, 4, 9)), n_levels=3) == (0, 4, 9)
    with pytest.raises(ValueError, match="3 entries but there are 11 levels"):
        iterations_per_level(AWDVDOptions(iterations=(0, 4, 9)), model)
    with pytest.raises(ValueError, match="model or n_levels"):
        iterations_per_level(AWDVDOptions())


# --------------------------------------------------------------------------------------------- the pipeline
def test_deconvolve_with_a_model_uses_its_levels(bank, two_halves):
    image, model = two_halves, RuleModel()
    out = deconvolve(image, model, stride=42, iterations=5, psfs=bank, offset=0.0)
    dmap = compute_map(image, model, stride=42)
    expected = deconvolve_levels(image, dmap, bank, blend_plan(iterations=5))
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    # the same through an options object
    options = AWDVDOptions(stride=42, iterations=5, offset=0.0)
    np.testing.assert_array_equal(deconvolve(image, model, options, psfs=bank), expected)
    with pytest.raises(ValueError, match="at least one 84 x 84"):
        deconvolve(np.ones((50, 50)), model, psfs=bank)


def test_auto_offset_is_the_default_and_is_recorded(bank, two_halves):
    image, model = two_halves + 100.0, RuleModel()
    result = restore_image(image, model, stride=42, iterations=5, psfs=bank)
    assert result.options.offset == "auto" and result.offset == estimate_background(image)
    by_hand = deconvolve_levels(image, compute_map(image, model, stride=42), bank, blend_plan(iterations=5, offset=estimate_background(image)))
    np.testing.assert_array_equal(result.image, by_hand)
    runs = result.iterations_run
    assert result.resolved() == {"offset": result.offset, "iterations": [5] * 11, "device": "cpu", "psf_size": 15,
                                 "tiled": False, "method": "fast", "weighting": "triangular", "boundary": "extended",
                                 "level_blend": "probability", "halo_px": None, "rl": "plain", "tv_weight": None, "iterations_source": "options",
                                 "stopping": None, "discrepancy": None, "strength": None,
                                 "iterations_run": {str(level): n for level, n in runs.items()}}
    assert runs and all(n == 5 for counts in runs.values() for n in counts)
    assert set(result.timings_s) == {"defocus_map", "deconvolution"}


def test_stride_is_checked_against_the_models_windows(bank):
    small = RuleModel()
    small.patch_px = 32
    with pytest.raises(ValueError, match="stride 50 px is larger than the model's 32 px windows.*1..32"):
        deconvolve(np.ones((100, 100)), small, stride=50, psfs=bank)
    with pytest.raises(ValueError, match="stride 85 px is larger than the model's 84 px"):
        deconvolve(np.ones((100, 100)), RuleModel(), stride=85, psfs=bank)


def test_known_levels_without_a_model(bank, two_halves):
    """A given map (e.g. true levels) is restored with its own grid; no model is loaded."""
    image = two_halves
    dmap = level_map([[2, 5, 5], [2, -1, 5]], image.shape, stride=42)
    result = restore_image(image, dmap=dmap, psfs=bank, iterations=4, offset=0.0, stride=21)
    assert result.options.stride == 42  # the map's grid wins
    np.testing.assert_array_equal(result.image, deconvolve_levels(image, dmap, bank, blend_plan(iterations=4)))
    with pytest.raises(ValueError, match="defocus map is of a 126 x 168 image"):
        restore_image(image[:100], dmap=dmap, psfs=bank)


def test_pixel_size_is_checked_when_given(bank, two_halves):
    from awdvd.io import PixelSizeWarning

    model = RuleModel()
    with pytest.warns(PixelSizeWarning, match="0.325 um"):
        deconvolve(two_halves, model, iterations=1, psfs=bank, pixel_um=0.325)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PixelSizeWarning)
        deconvolve(two_halves, model, iterations=1, psfs=bank, pixel_um=0.65)


def test_large_and_lazy_images_go_through_tiles_and_into_out(bank):
    """Over max_px (or lazy): tiled, equal to whole to the tiles' tolerance; ``out`` is filled and returned."""
    import dask.array as da

    image = spots((260, 300), seed=25, n=40) + 50.0
    model = RuleModel(step=40.0)
    args = dict(stride=42, iterations=3, psfs=bank)
    whole = restore_image(image, model, **args)
    tiled = restore_image(image, model, max_px=10_000, tile_px=128, **args)
    lazy = restore_image(da.from_array(image, chunks=100), model, tile_px=128, **args)
    assert not whole.tiled and tiled.tiled and lazy.tiled
    for result in (tiled, lazy):
        assert result.offset == whole.offset  # one offset for the whole image: 260 x 300 < 4e6 px, exact
        np.testing.assert_array_equal(result.dmap.levels, whole.dmap.levels)
        np.testing.assert_allclose(result.image, whole.image, rtol=0, atol=1e-5 * float(whole.image.max()))
    out = np.zeros(image.shape, np.float32)
    assert deconvolve(image, model, out=out, **args) is out
    np.testing.assert_array_equal(out, whole.image)


def test_dense_map_from_a_network(bank):
    image = spots((100, 130), seed=23, n=20)
    model = tiny_delpnet_model(seed=3)
    result = restore_image(image, model, stride=16, iterations=3, psfs=bank, map_mode="dense")
    assert result.dmap.mode == "dense" and result.dmap.levels.shape == (2, 4)
    whole_map = compute_map(image, model, stride=16, mode="dense")
    np.testing.assert_array_equal(result.dmap.levels, whole_map.levels)  # through tiles, the same map
    assert result.image.shape == image.shape and result.image.dtype == np.float32
    assert np.isfinite(result.image).all()


def test_the_bundled_model_is_the_default(bank):
    from awdvd.learn.model_files import bundled_model_path

    if not bundled_model_path().is_file():
        pytest.skip("no bundled model in this installation")
    image = spots((90, 90), seed=26)
    result = restore_image(image, iterations=1)  # the bundled model's PSFs: its 21 levels, 0-40 um
    assert result.dmap.levels.shape == (2, 2) and len(result.dmap.class_levels) == 22


# --------------------------------------------------------------------------------------------- baseline
def test_depth_invariant_baseline(bank):
    image = spots((50, 60), seed=19)
    out = deconvolve_invariant(image, 0, iterations=5, psf_size=15, offset=0.0)
    np.testing.assert_allclose(out, richardson_lucy(image, bank[0], iterations=5), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(deconvolve_invariant(image, bank[7], iterations=5, offset=0.0),
                               richardson_lucy(image, bank[7], iterations=5), rtol=1e-6)
    # the default offset is "auto", as for deconvolve
    np.testing.assert_array_equal(deconvolve_invariant(image, bank[7], iterations=5),
                                  richardson_lucy(image, bank[7], iterations=5, offset=estimate_background(image)))
    assert np.array_equal(deconvolve_invariant(image, 2, iterations=(0, 3, 4), psf_size=15, offset=0.0,
                                               optics=Optics(n_levels=3)),
                          richardson_lucy(image, psf_bank(Optics(n_levels=3), size=15)[2], iterations=4))
    with pytest.raises(ValueError, match="level must be in"):
        deconvolve_invariant(image, 11)
    with pytest.raises(ValueError, match="2-D PSF"):
        deconvolve_invariant(image, bank)
    with pytest.raises(ValueError, match="per-level iterations need a level"):
        deconvolve_invariant(image, bank[0], iterations=(1, 2))


def test_psfs_are_as_large_as_the_deepest_level_the_map_calls():
    """A model whose levels reach 40 um restores an image that stays shallow with the PSFs of a shallow bank."""
    from _standins import level_map, tiny_range_extended_model

    from awdvd.physics.psf import default_psf_size
    from awdvd.restore.pipeline import map_psf_size

    image = spots((168, 168), seed=27)
    shallow = level_map([[0, 1], [3, 2]], image.shape, stride=84, n_levels=21)
    deep = level_map([[0, 1], [3, 18]], image.shape, stride=84, n_levels=21)
    optics = Optics(n_levels=21)
    assert map_psf_size(optics, shallow) == default_psf_size(Optics(n_levels=4)) < default_psf_size(optics)
    assert map_psf_size(optics, deep) == default_psf_size(Optics(n_levels=19))
    # a level probability blending may use (>= 0.2 somewhere) counts as well as the most likely ones
    proba = shallow.proba.copy()
    proba[0, 0, :] = 0.0
    proba[0, 0, [0, 9]] = (0.7, 0.3)
    blended = dataclasses.replace(shallow, proba=proba)
    assert map_psf_size(optics, blended) == default_psf_size(Optics(n_levels=10))
    result = restore_image(image, tiny_range_extended_model(), dmap=shallow, iterations=2)
    assert result.psf_size == default_psf_size(Optics(n_levels=4))
