"""benchmarks/interpolate_models.py, the last stage of the bundled model: weights between a parent and the model
trained on from it, everything else from the latter, and a refusal of models that are not of one kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _standins import tiny_delpnet_model
from conftest import load_script

from awdvd.learn.model_files import load_model
from awdvd.physics.optics import Optics

interpolate_models = load_script("benchmarks/interpolate_models.py")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    parent, tuned = tiny_delpnet_model(seed=1), tiny_delpnet_model(seed=2)
    tuned.info = {"name": "tuned", "restoration": {"iterations_per_level": [0, 1, 2]}}
    return parent.save(folder / "parent.pt"), tuned.save(folder / "tuned.pt")


def test_the_ends_are_the_two_models_and_between_is_the_weighted_sum(pair, tmp_path):
    parent_path, tuned_path = pair
    parent = torch.load(parent_path, weights_only=True)
    tuned = torch.load(tuned_path, weights_only=True)
    for alpha, expected in ((0.0, parent), (1.0, tuned)):
        out = interpolate_models.interpolate(parent, tuned, alpha)
        assert all(torch.equal(out["state_dict"][k], expected["state_dict"][k]) for k in expected["state_dict"])
    out = interpolate_models.interpolate(parent, tuned, 0.3)
    weight = next(k for k, v in tuned["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    np.testing.assert_allclose(out["state_dict"][weight].numpy(), 0.7 * parent["state_dict"][weight].numpy()
                               + 0.3 * tuned["state_dict"][weight].numpy(), rtol=1e-6, atol=1e-7)
    counters = [k for k, v in tuned["state_dict"].items() if not v.is_floating_point()]
    assert counters and all(torch.equal(out["state_dict"][k], tuned["state_dict"][k]) for k in counters)

    path = tmp_path / "between.pt"
    assert interpolate_models.main([str(parent_path), str(tuned_path), "--alpha", "0.3", "-o", str(path)]) == 0
    model = load_model(path)  # a model file like any other, the tuned model's record kept
    assert model.info["restoration"] == {"iterations_per_level": [0, 1, 2]}
    assert model.info["interpolation"]["alpha"] == 0.3 and model.info["interpolation"]["parent"] == "parent.pt"
    with pytest.raises(SystemExit, match="exists"):
        interpolate_models.main([str(parent_path), str(tuned_path), "--alpha", "0.3", "-o", str(path)])


def test_models_of_other_optics_or_alpha_outside_0_1_are_refused(pair):
    parent_path, tuned_path = pair
    parent = torch.load(parent_path, weights_only=True)
    tuned = torch.load(tuned_path, weights_only=True)
    other = dict(tuned, optics=Optics(pixel_um=0.325).to_dict())
    with pytest.raises(ValueError, match="differ in optics"):
        interpolate_models.interpolate(parent, other, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_models.interpolate(parent, tuned, 1.5)
