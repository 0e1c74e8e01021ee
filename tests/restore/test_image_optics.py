"""The image's optics in, depth in micrometres out: one model for every widefield objective."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _standins import RuleModel

from awdvd import Optics, deconvolve, defocus_map
from awdvd.data.synth import synthetic_nuclei
from awdvd.physics.optical_units import to_grid
from awdvd.restore.image_optics import (
    BeyondRangeWarning,
    ObjectScaleWarning,
    map_on_image_grid,
    object_scale,
    reads_at_object_scale,
    restoration_optics,
    sampling_factor,
)
from awdvd.restore.windows import DefocusMap

MODEL_OPTICS = Optics()
FORTY_X = Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625)
SIXTY_X = Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108)


def test_restoration_optics_carry_the_models_levels_into_the_images_optics():
    assert restoration_optics(MODEL_OPTICS, MODEL_OPTICS) == MODEL_OPTICS
    forty = restoration_optics(FORTY_X, MODEL_OPTICS)
    assert forty.z_step_um == pytest.approx(1.0, abs=0.05) and forty.n_levels == MODEL_OPTICS.n_levels
    assert (forty.na, forty.pixel_um, forty.wavelength_um) == (0.75, 0.1625, 0.52)
    assert sampling_factor(MODEL_OPTICS, MODEL_OPTICS) == 1.0
    assert sampling_factor(FORTY_X, MODEL_OPTICS) == pytest.approx(1.47 / 4.53, rel=0.02)


@pytest.mark.parametrize("factor", [0.5, 0.3246, 1.7])
def test_a_map_carried_back_to_the_image_grid_covers_every_pixel(factor):
    shape = (300, 410)
    small = tuple(int(round(s * factor)) for s in shape)
    model_map = DefocusMap.from_levels(np.zeros((1, 1), np.int64), (84, 84), stride=42, patch_px=84, n_levels=11)
    if min(small) >= 84:
        from awdvd.restore.windows import window_starts

        ny, nx = (len(window_starts(n, stride=42)) for n in small)
        model_map = DefocusMap.from_levels(np.arange(ny * nx).reshape(ny, nx) % 11, small, stride=42, patch_px=84,
                                           n_levels=11)
    image_map = map_on_image_grid(model_map, factor, shape, z_step_um=1.0)
    assert image_map.image_shape == shape and image_map.patch_px == round(84 / factor)
    assert image_map.ys[0] == 0 and image_map.ys[-1] + image_map.patch_px == shape[0]
    assert image_map.xs[0] == 0 and image_map.xs[-1] + image_map.patch_px == shape[1]
    assert np.all(np.diff(image_map.ys) >= 0) and np.all(np.diff(image_map.xs) >= 0)
    assert (image_map.to_pixels() >= 0).all()  # every pixel lies under some window
    np.testing.assert_array_equal(image_map.levels, model_map.levels)
    np.testing.assert_allclose(image_map.depth_um, model_map.levels * 1.0)


def test_the_map_of_a_finer_image_is_made_on_the_models_sampling():
    """RuleModel reads the level from a window's brightness: the map of a field recorded at half the model's pixel
    size, given with its optics, must be the map of that field brought to the model's sampling."""
    model = RuleModel()
    field = synthetic_nuclei((400, 520), n_nuclei=20, seed=1) + 100.0
    fine = Optics(pixel_um=MODEL_OPTICS.pixel_um / 2)
    dmap = defocus_map(field, model, optics=fine)
    reference = defocus_map(to_grid(field, 0.5), model)
    np.testing.assert_array_equal(dmap.levels, reference.levels)
    assert dmap.image_shape == field.shape and dmap.patch_px == 168
    assert dmap.z_step_um == pytest.approx(MODEL_OPTICS.z_step_um)  # the same NA and wavelength: the same depths
    out = deconvolve(field, model, optics=fine, iterations=2)
    assert out.shape == field.shape and out.dtype == np.float32


def test_depth_is_given_in_the_images_optics():
    model = RuleModel()
    field = synthetic_nuclei((200, 260), n_nuclei=8, seed=2) + 100.0
    other = Optics(wavelength_um=0.6, na=0.5, n=1.0, pixel_um=MODEL_OPTICS.pixel_um * 0.6 / 0.451)  # same du
    same = defocus_map(field, model)
    shifted = defocus_map(field, model, optics=other)
    np.testing.assert_array_equal(shifted.levels, same.levels)  # the same sampling in optical units
    assert shifted.z_step_um == pytest.approx(2.0 * 0.6 / 0.451)  # the same defocus phase at a longer wavelength


def test_an_image_past_the_models_range_says_how_deep_it_is_at_least():
    class Deepest(RuleModel):
        def predict_patches(self, patches, *, return_proba=False, **kwargs):
            levels, proba = super().predict_patches(patches, return_proba=True, **kwargs)
            proba = np.zeros_like(proba)
            proba[:, self.class_levels.tolist().index(10)] = 1.0
            levels = np.full(len(patches), 10)
            return (levels, proba) if return_proba else levels

    field = synthetic_nuclei((200, 260), n_nuclei=8, seed=2) + 100.0
    with pytest.warns(BeyondRangeWarning, match="at least 20 um"):
        defocus_map(field, Deepest())
    with warnings.catch_warnings():
        warnings.simplefilter("error", BeyondRangeWarning)
        defocus_map(field, RuleModel())  # a map over several levels: no warning


def test_the_scale_at_which_cells_reach_the_model_depends_on_wavelength_over_na_only():
    assert object_scale(MODEL_OPTICS, MODEL_OPTICS) == pytest.approx(1.0)
    assert object_scale(FORTY_X, MODEL_OPTICS) == pytest.approx(1.30, abs=0.01)
    assert object_scale(SIXTY_X, MODEL_OPTICS) == pytest.approx(2.43, abs=0.01)
    assert object_scale(SIXTY_X.replace(pixel_um=0.05), MODEL_OPTICS) == pytest.approx(2.43, abs=0.01)


def test_an_objective_that_would_show_cells_much_larger_is_read_at_its_own_scale_in_micrometres():
    assert not reads_at_object_scale(FORTY_X, MODEL_OPTICS)  # 1.3x: optical units, as measured to read well
    assert sampling_factor(FORTY_X, MODEL_OPTICS) == pytest.approx(1.47 / 4.53, rel=0.02)
    assert reads_at_object_scale(SIXTY_X, MODEL_OPTICS)
    assert sampling_factor(SIXTY_X, MODEL_OPTICS) == pytest.approx(0.108 / 0.65)  # to the model's pixel size
    # a level is the model's blur radius z NA / n: 2 um at NA 0.5 in air is 1.08 um at NA 1.4 in oil
    sixty = restoration_optics(SIXTY_X, MODEL_OPTICS)
    assert sixty.z_step_um == pytest.approx(2.0 * 0.5 / (1.4 / 1.518)) and sixty.n_levels == MODEL_OPTICS.n_levels


def test_reading_at_the_object_scale_is_said_once_with_what_it_assumes():
    field = synthetic_nuclei((520, 560), n_nuclei=6, seed=2) + 100.0
    said = r"cells would look 2\.4x larger.*assumes cells about as large"
    with pytest.warns(ObjectScaleWarning, match=said) as caught:
        dmap = defocus_map(field, RuleModel(), optics=SIXTY_X)
    assert len([w for w in caught if w.category is ObjectScaleWarning]) == 1
    assert dmap.patch_px == round(84 * 0.65 / 0.108)  # the model's windows, at 0.65 um, on the image's pixels
    assert dmap.z_step_um == pytest.approx(1.0844, abs=1e-3)
    with pytest.warns(ObjectScaleWarning):
        deconvolve(field, RuleModel(), optics=SIXTY_X, iterations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectScaleWarning)
        defocus_map(field, RuleModel())  # the model's own optics
        defocus_map(to_grid(field[:300, :400], 0.65 / 0.1625), RuleModel(), optics=FORTY_X)


def test_optics_must_be_an_optics():
    with pytest.raises(TypeError, match="optics must be an awdvd Optics"):
        defocus_map(np.ones((100, 100)), RuleModel(), optics={"pixel_um": 0.1})
