"""The model card quotes committed benchmark records; these tests keep the quoted figures and the records equal."""

from __future__ import annotations

import json

import pytest

from conftest import REPO

LEVERS = REPO / "benchmarks" / "results" / "robustness_levers_a07.json"


def _top1(run: str, camera: str) -> float:
    record = json.loads(LEVERS.read_text())["runs"][run]["fold"]["fields"]["cameras"][camera]
    return record["top1"]


@pytest.mark.parametrize("run, camera", [("dim_camera_only", "dim-high-gain"), ("noiseless_only", "noiseless"),
                                         ("hard_biased_range", "dim-high-gain"),
                                         ("control_default_range", "dim-high-gain"),
                                         ("bbbc006_camera_only", "bbbc006")])
def test_model_card_quotes_the_lever_records(run, camera):
    card = (REPO / "MODEL_CARD.md").read_text()
    assert f"{_top1(run, camera):.3f}" in card, f"MODEL_CARD.md does not quote {run}'s top-1 under {camera}"


def test_specialists_trained_on_the_camera_they_were_judged_under_and_not_on_the_held_out_field():
    runs = json.loads(LEVERS.read_text())["runs"]
    for name, run in runs.items():
        assert "a07" not in run["fold"]["trained_on"], name
        assert run["fold"]["fields"]["settings"]["fields"] == ["a07"], name
    dim = runs["dim_camera_only"]["fold"]
    camera, cameras = dim["fields"]["settings"]["cameras"]["dim-high-gain"], dim["recipe"]["cameras"]
    for name in ("gain_adu_per_e", "intensity_scale", "offset_adu", "read_noise_adu"):
        assert cameras[name] == [camera[name], camera[name]], name
    assert cameras["noiseless_probability"] == 0.0 and cameras["pedestal_probability"] == 0.0
    assert runs["noiseless_only"]["fold"]["recipe"]["cameras"]["noiseless_probability"] == 1.0


def test_model_card_quotes_the_specialists_paper_split_accuracy():
    record = json.loads(LEVERS.read_text())
    card = (REPO / "MODEL_CARD.md").read_text()
    for run in ("bbbc006_camera_only", "control_default_range"):
        split = record["runs"][run]["paper_split_test"]
        assert split["n"] == 1060 and f"{split['accuracy']:.3f}" in card, run
