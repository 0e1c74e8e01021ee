"""`awdvd deconvolve` with a model file that carries a calibrated schedule: used by default, `--iterations N`
forces one count, the sidecar says which; and the one offset policy ("auto") of every entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _standins import RuleModel, level_map, tiny_delpnet_model

from awdvd.cli import build_parser, main
from awdvd.io import write_tiff
from awdvd.restore.rl_schedule import INFO_FORMAT, INFO_KEY, RLSchedule

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SCHEDULE = RLSchedule(iterations=(0,) + (4,) * 10, variant="accelerated", discrepancy=(0.0,) + (1.0,) * 10)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("schedule_cli")
    model = tiny_delpnet_model(seed=2)
    stored = SCHEDULE.to_dict()
    del stored["source"]
    model.info[INFO_KEY] = {"format": INFO_FORMAT, "format_version": 1, "default_variant": "accelerated",
                            "iterations_per_level": list(SCHEDULE.iterations), "method": "test",
                            "schedules": {"accelerated": stored}}
    model_path = model.save(root / "scheduled.pt")
    inputs = root / "in"
    inputs.mkdir()
    image = (np.random.default_rng(0).poisson(200, size=(100, 130)) + 96).astype(np.uint16)
    image[30:50, 40:70] += 3000
    write_tiff(inputs / "a.tif", image, pixel_um=0.65)
    return root, model_path, inputs


def _run(workspace, name, *extra):
    root, model_path, inputs = workspace
    out = root / name
    argv = ["deconvolve", str(inputs), "-o", str(out), "--model", str(model_path), "--psf-size", "15",
            "--stride", "42", "--device", "cpu", "--workers", "0", *extra]
    assert main(argv) == 0
    return json.loads((out / "a.awdvd.json").read_text())


def test_the_models_schedule_is_the_default_and_iterations_forces_one_count(workspace):
    meta = _run(workspace, "default")
    p = meta["parameters"]
    assert meta["options"]["iterations"] is None
    assert p["iterations_source"] == "model" and p["rl"] == "accelerated" and p["stopping"] == "discrepancy"
    assert p["iterations"] == list(SCHEDULE.iterations)
    assert all(1 <= n <= 4 for runs in p["iterations_run"].values() for n in runs)
    assert "0" not in p["iterations_run"] or p["iterations_run"]["0"] == []  # level 0 is never run
    forced = _run(workspace, "forced", "--iterations", "3")["parameters"]
    assert forced["iterations_source"] == "options" and forced["iterations"] == [3] * 11
    assert forced["rl"] == "plain" and forced["stopping"] is None
    assert all(n == 3 for runs in forced["iterations_run"].values() for n in runs)
    variant = _run(workspace, "tv", "--iterations", "3", "--rl", "tv", "--level-blend", "argmax")
    assert variant["parameters"]["rl"] == "tv" and variant["options"]["level_blend"] == "argmax"


def test_one_offset_policy_everywhere():
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.calibration import CalibrationSpec
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.pipeline import deconvolve, deconvolve_invariant, restore_image

    assert AWDVDOptions().offset == "auto" and CalibrationSpec().offset == "auto"
    parser = build_parser()
    for command in (["deconvolve", "x", "-o", "y"], ["evaluate-restoration", "-o", "y"]):
        assert parser.parse_args(command).offset == "auto"
    rng = np.random.default_rng(4)
    image = rng.poisson(150, size=(168, 168)).astype(np.float64) + 96
    image[50:100, 60:120] += 2500
    psfs = psf_bank(Optics(), size=15)
    dmap = level_map(np.full((3, 3), 5), image.shape, stride=42)
    kw = dict(dmap=dmap, psfs=psfs, iterations=5, stride=42, device="cpu")
    result = restore_image(image, RuleModel(), **kw)
    assert result.offset == pytest.approx(np.percentile(image, 1))
    library = deconvolve(image, RuleModel(), **kw)
    np.testing.assert_array_equal(library, result.image)
    explicit = deconvolve(image, RuleModel(), offset=float(np.percentile(image, 1)), **kw)
    np.testing.assert_allclose(library, explicit, rtol=1e-6, atol=1e-3)
    assert np.abs(deconvolve(image, RuleModel(), offset=0.0, **kw) - library).max() > 1.0
    invariant = deconvolve_invariant(image, 5, iterations=5, psf_size=15, device="cpu")
    np.testing.assert_allclose(invariant, deconvolve_invariant(image, 5, iterations=5, psf_size=15, device="cpu",
                                                               offset=float(np.percentile(image, 1))),
                               rtol=1e-6, atol=1e-3)
