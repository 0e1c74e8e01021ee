"""The range-extended model: a near network for its own range, a far one beyond it, read as one model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from _standins import tiny_range_extended_model

import awdvd
from awdvd.learn.model import ModelFileError
from awdvd.learn.model_files import load_model
from awdvd.learn.range_extension import RangeExtendedModel, extend_range, near_optics
from awdvd.physics.optics import Optics

NEAR = np.array(list(range(11)) + [-1])
FAR = np.array(list(range(21)) + [-1])


def _one_hot(levels, level_of_class, weight=1.0):
    out = np.full((len(levels), len(level_of_class)), (1 - weight) / (len(level_of_class) - 1))
    for row, level in enumerate(levels):
        out[row, int(np.flatnonzero(level_of_class == level)[0])] = weight
    return out


def test_extend_range_takes_the_far_reading_only_at_the_end_of_the_near_range_and_beyond_it():
    near = _one_hot([9, 9, 3, -1, 10], NEAR, 0.9)
    far = _one_hot([16, 6, 16, 16, 19], FAR, 0.9)
    out = extend_range(near, far, NEAR, FAR, switch=0.5, consult_from=8)
    assert out.shape == (5, 22) and np.allclose(out.sum(axis=1), 1, atol=1e-6)
    called = FAR[np.argmax(out, axis=1)]
    # 9 & far deep: far; 9 & far shallow: near; 3 (not asked) and bg (not asked): near; 10 & far deep: far
    assert called.tolist() == [16, 9, 3, -1, 19]
    np.testing.assert_allclose(out[0], far[0], atol=1e-6)
    assert np.all(out[1, 11:21] == 0)  # the near reading has no level beyond its range
    # an image inside the near range (under a quarter of its foreground at level 10): the near reading everywhere
    inside = extend_range(_one_hot([10, 3, 3, 3, 3], NEAR, 0.9), _one_hot([19] * 5, FAR, 0.9), NEAR, FAR,
                          consult_from=8)
    assert FAR[np.argmax(inside, axis=1)].tolist() == [10, 3, 3, 3, 3]
    # no far reading at all: the near reading in the whole model's columns
    alone = extend_range(near, None, NEAR, FAR, consult_from=8)
    np.testing.assert_allclose(alone[:, :11], near[:, :11], atol=1e-6)
    np.testing.assert_allclose(alone[:, -1], near[:, -1], atol=1e-6)


def test_a_range_extended_model_is_one_model_over_the_far_range(tmp_path):
    model = tiny_range_extended_model()
    assert model.optics == Optics(n_levels=21) and model.class_levels.tolist() == FAR.tolist()
    assert model.consult_from == 8 and model.patch_px == 84 and model.normalization == "image-range"
    assert near_optics(model) == Optics() and near_optics(model.near) == Optics()  # the range read level by level
    path = model.save(tmp_path / "m.pt")
    loaded = load_model(path)
    assert isinstance(loaded, RangeExtendedModel) and loaded.consult_from == 8 and loaded.switch == 0.5
    patches = np.random.default_rng(0).uniform(0, 1000, size=(6, 84, 84)).astype(np.float32)
    for other in (loaded, pickle.loads(pickle.dumps(model))):
        a = model.predict_patches(patches, return_proba=True, value_range=(0, 1000))[1]
        b = other.predict_patches(patches, return_proba=True, value_range=(0, 1000))[1]
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(FileExistsError):
        model.save(path)


def test_its_defocus_map_is_its_parts_maps_combined_and_the_far_network_runs_only_when_asked():
    model = tiny_range_extended_model(consult_from=0, switch=0.0, image_share=0.0)  # every window asked and taken
    rng = np.random.default_rng(1)
    image = rng.uniform(100, 900, size=(200, 260)).astype(np.float32)
    whole = awdvd.defocus_map(image, model)
    near = awdvd.defocus_map(image, model.near)
    far = awdvd.defocus_map(image, model.far)
    assert whole.proba.shape == near.proba.shape[:2] + (22,)
    np.testing.assert_allclose(whole.proba, model.combine(near.proba, far.proba), atol=1e-5)
    np.testing.assert_array_equal(whole.levels, far.levels)
    assert set(np.unique(far.levels)) - set(range(11)), "the far network should call some window beyond 20 um"
    np.testing.assert_allclose(awdvd.defocus_map(image, tiny_range_extended_model()).proba,
                               tiny_range_extended_model().combine(near.proba, far.proba), atol=1e-5)
    # nothing asked about: the far network is not run (a broken one would raise) and the map is the near one's
    nobody = tiny_range_extended_model(consult_from=10)
    nobody.consults_far = lambda proba: np.zeros(np.shape(proba)[:-1], bool)

    def broken(**kwargs):
        raise AssertionError("the far network ran")

    nobody.far.inference_network = broken
    only_near = awdvd.defocus_map(image, nobody)
    np.testing.assert_allclose(only_near.proba[..., :11], awdvd.defocus_map(image, nobody.near).proba[..., :11],
                               atol=1e-5)


def test_it_restores_with_psfs_over_its_whole_range():
    model = tiny_range_extended_model()
    image = np.random.default_rng(2).uniform(100, 900, size=(170, 170)).astype(np.float32)
    restored = awdvd.deconvolve(image, model)
    assert restored.shape == image.shape and restored.dtype == np.float32 and np.isfinite(restored).all()


def test_mismatched_parts_and_damaged_files_are_refused(tmp_path):
    model = tiny_range_extended_model()
    with pytest.raises(ValueError, match="extend the near model's optics"):
        RangeExtendedModel(model.near, model.near)
    with pytest.raises(ValueError, match="consult_from"):
        RangeExtendedModel(model.near, model.far, consult_from=11)
    payload = model.to_file_dict()
    del payload["far"]["state_dict"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="far model"):
        load_model(tmp_path / "bad.pt")
    torch.save(dict(model.to_file_dict(), format_version=99), tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format 99"):
        load_model(tmp_path / "future.pt")
