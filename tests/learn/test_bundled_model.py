"""The model that ships with awdvd: present, small, self-describing, and able to tell defocus levels apart on
images it was never trained on (procedural nuclei) and on the real shared images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from awdvd.data.patches import image_range, is_background
from awdvd.data.synth import CameraNoise, blur, forward_bank, synthetic_nuclei
from awdvd.learn.model_files import bundled_model_path, load_model
from awdvd.physics.optics import Optics


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_bundled_model_ships_small_and_self_describing(model):
    path = bundled_model_path()
    assert path.is_file() and path.stat().st_size <= 10 * 2**20
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "awdvd-range-extended-model" and payload["near"]["architecture"] == "delpnet"
    near, far = model.range_parts  # 0-20 um read by the near network, beyond it by the far one (0-40 um)
    assert list(near.class_levels) == list(range(11)) + [-1] and near.optics == Optics()
    assert list(model.class_levels) == list(range(21)) + [-1] and model.optics == Optics(n_levels=21)
    assert far.optics == model.optics and model.consult_from == 8 and model.switch == 0.5
    assert model.architecture == "delpnet" and model.normalization == "image-range"
    schedule = model.info["restoration"]["schedules"][model.info["restoration"]["default_variant"]]
    assert len(schedule["iterations"]) == 21 and schedule["iterations"][:11] == near.info["restoration"][
        "schedules"][model.info["restoration"]["default_variant"]]["iterations"]
    far_sources = set(model.info["range_extension"]["far_data"]["sources"])  # the same fields held out of both
    assert not any("__a07__" in source for source in far_sources)
    assert not set(near.info["data"]["held_out"]["bbbc039"]) & far_sources
    metrics = model.info["test_metrics"]  # the paper split's test patches
    assert 0 <= metrics["accuracy"] <= 1 and metrics["within_one_level"] >= metrics["accuracy"]
    held_out = model.info["held_out"]  # the robustness matrix on the one shared field it never trained on
    assert not any(f"__{held_out['field']}__" in source for source in model.info["data"]["sources"])
    assert held_out["field"] in model.info["data"]["held_out"]["bbbc006"]
    assert all(0 <= row["top1"] <= row["within1"] <= 1 for row in held_out["cameras"].values())
    assert model.info["recipe"]["name"] == "deep-range" and near.optics.n_levels == 11  # train_bundled_model.py
    assert [stage["stage"] for stage in model.info["lineage"]] == [1, 2, 3, 4, 5]
    assert model.info["interpolation"]["alpha"] == model.info["lineage"][-1]["alpha"]
    held_b039 = set(model.info["data"]["held_out"]["bbbc039"])
    assert len(held_b039) == 20 and not held_b039 & set(model.info["data"]["sources"])


def test_bundled_model_ranks_defocus_on_unseen_nuclei(model):
    """Procedural nuclei (never seen in training) at levels 0, 3, 6, 10: the mean predicted level of the
    foreground tiles rises with the true level and stays within one level of it (measured 0.08 / 3.03 / 5.95 /
    9.38; the paper-recipe model this one replaced under-called level 10 at 7.4)."""
    bank = forward_bank(Optics(), size=None)
    means = {}
    for level in (0, 3, 6, 10):
        values = []
        for seed in range(2):
            truth = synthetic_nuclei((336, 420), seed=seed)
            blurred = truth if level == 0 else blur(truth, bank[level])
            image = CameraNoise().apply(blurred, np.random.default_rng([seed, level]))
            tiles = image.reshape(4, 84, 5, 84).swapaxes(1, 2).reshape(-1, 84, 84)
            tiles = tiles[~is_background(tiles)]
            predicted = model.range_parts[0].predict_patches(tiles, value_range=image_range(image))  # the near network
            values.extend(predicted[predicted >= 0].tolist())
        assert len(values) >= 10, f"level {level}: only {len(values)} foreground tiles called a level"
        means[level] = float(np.mean(values))
    assert means[0] < means[3] < means[6] < means[10], means
    for level in (0, 3, 6, 10):
        assert abs(means[level] - level) <= 1.0, means


def test_bundled_model_on_the_real_shared_images(model, bbbc006_dir):
    """The model card's real-data checks: in-focus fields are called level 0-1, z00 fields (about 32 um out of
    focus) 24 um or deeper (levels 12-20). Measured: 0.891 (five of the six fields were training sources; the
    held-out a07 alone 0.79, most of its other tiles called bg) and 1.000 of the 20 z00 fields (the range-extended
    model; its near network alone called 0.993 of them its deepest levels 8-10)."""
    from awdvd.io import find_images, read_image
    from awdvd.validate.real_data import real_data_checks

    def images(folder):
        return [read_image(path).data for path in find_images(bbbc006_dir / folder)]

    checks = real_data_checks(model, in_focus=images("in_focus"), defocused=images("defocus_z00"),
                              deep_levels=range(12, 21))
    assert checks["in_focus"]["fraction_expected"] >= 0.85
    assert checks["defocused"]["fraction_expected"] >= 0.97
