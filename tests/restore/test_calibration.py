"""awdvd.restore.calibration and `awdvd calibrate-restoration` on a tiny setting (64 px fields, 1 specimen per level, a
few iterations, 15 px PSFs): they run end to end and write the schedule into a NEW model file."""

from __future__ import annotations

import hashlib

import pytest
from _standins import tiny_delpnet_model

from awdvd.cli import main
from awdvd.restore.plan import RestorationPlan
from awdvd.restore.rl_schedule import INFO_KEY, model_schedule

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = dict(specimens_per_level=1, shape_px=(64, 64), max_iterations=4, variants=("plain", "accelerated"),
            tilted_specimens=1, tilted_shape_px=(84, 264), stride=42)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    # image-range, as the bundled model: the copy must keep it (it once came back window-minmax)
    return tiny_delpnet_model(seed=1, normalization="image-range").save(tmp_path_factory.mktemp("calibrate") / "model.pt")


@pytest.fixture(scope="module")
def calibrated(model_file):
    from awdvd.restore.calibration import CalibrationSpec, calibrate_model

    before, stamp = _digest(model_file), model_file.stat().st_mtime_ns
    messages = []
    path = calibrate_model(model_file, model_file.with_name("calibrated.pt"), spec=CalibrationSpec(**TINY),
                           psf_size=15, progress=messages.append)
    assert _digest(model_file) == before and model_file.stat().st_mtime_ns == stamp  # the input is untouched
    return path, messages


def test_calibrate_model_writes_a_new_model_file_with_its_schedule(model_file, calibrated):
    from awdvd.learn.model_files import load_model
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.pipeline import rl_schedule

    path, messages = calibrated
    assert path != model_file and path.exists()
    assert not [p for p in path.parent.iterdir() if p.name not in ("model.pt", "calibrated.pt")]  # no temporaries
    assert len(messages) == 11 + 2  # one per level, one per variant's tilted stage
    model = load_model(path)
    block = model.info[INFO_KEY]
    assert block["default_variant"] in TINY["variants"] and set(block["schedules"]) == set(TINY["variants"])
    schedule = model_schedule(model)
    assert schedule.source == "model" and schedule.n_levels == 11
    assert schedule.iterations == tuple(block["iterations_per_level"])
    assert schedule.iterations[0] == 0  # level 0 measures no gain: left as it is
    assert all(0 <= n <= TINY["max_iterations"] * 1.5 for n in schedule.iterations)
    assert max(schedule.iterations) > 0  # the deep levels gain from RL even at 4 iterations
    on = block["calibrated_on"]
    assert on["spec"]["shape_px"] == [64, 64] and on["psf_size"] == 15 and on["camera"]["offset_adu"] == 96.0
    assert on["seeds"][:2] == [20_000, 20_100] and on["tilted_seeds"] == [25_000]
    assert rl_schedule(AWDVDOptions(), model) == schedule
    # everything else of the model is the input's
    original = load_model(model_file)
    assert {k: v for k, v in model.info.items() if k != INFO_KEY} == original.info
    assert model.optics == original.optics and list(model.class_levels) == list(original.class_levels)
    assert model.normalization == original.normalization == "image-range"


def test_calibrate_model_never_replaces_without_being_asked(model_file, calibrated, monkeypatch):
    from awdvd.restore import calibration as calibrate

    path, _ = calibrated
    with pytest.raises(FileExistsError, match="--overwrite"):
        calibrate.calibrate_model(model_file, path)
    with pytest.raises(FileExistsError, match="input model"):
        calibrate.calibrate_model(model_file, model_file)
    with pytest.raises(ValueError, match="-o MODEL_OUT"):
        calibrate.calibrate_model(model_file, None)

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(calibrate, "calibrate_schedules", fail)
    target = path.with_name("never.pt")
    with pytest.raises(RuntimeError):
        calibrate.calibrate_model(model_file, target)
    assert not target.exists()


def test_calibrate_restoration_command(model_file, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    argv = ["calibrate-restoration", str(model_file), "-o", str(out), "--specimens", "1", "--tilted", "0",
            "--max-iterations", "3", "--psf-size", "15", "--variants", "plain", "--field-px", "64"]
    before = _digest(model_file)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}: default plain RL, iterations per level [0," in captured.out
    assert "level 10:" in captured.err and _digest(model_file) == before
    from awdvd.learn.model_files import load_model

    assert model_schedule(load_model(out)).variant == "plain"
    # an existing output is refused in one line, and replaced with --overwrite
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and "Traceback" not in err
    assert main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("args,code,message", [
    (["{model}", "-o", "{model}"], 1, "input model"),
    (["{tmp}/missing.pt", "-o", "{tmp}/x.pt"], 1, "no such model file"),
    (["{model}", "-o", "{tmp}/x.pt", "--field-px", "10"], 2, "at least 64"),
    (["{model}", "-o", "{tmp}/x.pt", "--variants", "fast"], 2, "invalid choice"),
    (["{model}", "-o", "{tmp}/x.pt", "--psf-size", "14", "--variants", "plain", "--field-px", "64",
      "--specimens", "1", "--tilted", "0", "--max-iterations", "1"], 1, "odd"),
])
def test_calibrate_restoration_bad_input_is_one_line(model_file, tmp_path, capsys, args, code, message):
    argv = ["calibrate-restoration"] + [a.format(model=model_file, tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) if code == 2 else _nothing() as raised:
        result = main(argv)
    result = raised.value.code if code == 2 else result
    err = capsys.readouterr().err.strip()
    assert result == code and message in err and "Traceback" not in err
    if code == 1:
        assert len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_tilted_stage_scores_what_awdvd_then_restores():
    # the second stage adds per-level terms (scaled by a strength) instead of restoring every combination: the
    # band gains it records must be those of AWDVD run with the schedule it returns
    import numpy as np

    from awdvd.data.synth import CameraNoise
    from awdvd.metrics import band_gains
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.blend import deconvolve_levels
    from awdvd.restore.calibration import CalibrationSpec, tilted_validation_specimens
    from awdvd.restore.calibration_tuning import STRENGTHS, tune_on_tilted
    from awdvd.restore.rl import resolve_offset
    from awdvd.restore.rl_schedule import RLSchedule
    from awdvd.restore.windows import DefocusMap, window_levels_from_pixels

    spec = CalibrationSpec(**{**TINY, "tilted_specimens": 2})
    psfs = psf_bank(Optics(), size=15)
    specimens = tilted_validation_specimens(spec, optics=Optics(), camera=CameraNoise(), psf_size=15)
    first = RLSchedule(iterations=(0,) + (6,) * 10, variant="plain", discrepancy=(0.0,) + (0.9,) * 10)
    tuned, record = tune_on_tilted(first, specimens, psfs, stride=42)
    assert len(record["choice"]) == 11 and record["objective"] >= record["objective_first_stage"]
    assert all(v in STRENGTHS for v in (tuned.strength or (1.0,)))
    gains = []
    for specimen in specimens:
        grid = window_levels_from_pixels(specimen.levels, stride=42)
        dmap = DefocusMap.from_levels(grid, specimen.observed.shape, stride=42, patch_px=84, n_levels=11)
        out = deconvolve_levels(specimen.observed, dmap, psfs, RestorationPlan(
            iterations=tuned, method="fast", weighting="triangular", level_blend="argmax",
            offset=resolve_offset("auto", specimen.observed), halo_px=None, device="cpu"))
        gains.append(band_gains(specimen, out)[0])
    np.testing.assert_allclose(np.mean(gains, axis=0), record["band_gain_db"], atol=2e-3)


def test_uniform_curves_with_strengths_and_the_every_level_gain_constraint():
    import numpy as np

    from awdvd.data.synth import CameraNoise, forward_bank
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.calibration import (
        CalibrationSpec,
        rl_curves,
        tilted_validation_specimens,
        validation_specimens,
    )
    from awdvd.restore.calibration_tuning import STRENGTHS, tune_on_tilted
    from awdvd.restore.rl_schedule import RLSchedule

    spec = CalibrationSpec(**TINY)
    optics, camera = Optics(), CameraNoise()
    psfs, forward = psf_bank(optics, size=15), forward_bank(optics, size=15)
    curves = []
    for level in range(11):
        pairs = validation_specimens(level, spec, optics=optics, camera=camera, forward=forward)
        args = dict(variant="plain", tv_weight=0.0, iterations=6, offset="auto", camera=camera)
        gains, discrepancies = rl_curves(pairs, psfs[level], strengths=STRENGTHS, **args)
        plain, same = rl_curves(pairs, psfs[level], **args)
        assert gains.shape == (1, 7, len(STRENGTHS))
        np.testing.assert_allclose(gains[..., 0], plain)  # strength 1 is the RL iterate itself
        np.testing.assert_array_equal(discrepancies, same)
        curves.append((gains, discrepancies))
    first = RLSchedule(iterations=(0,) + (6,) * 10, variant="plain", discrepancy=(0.0,) + (0.9,) * 10)
    specimens = tilted_validation_specimens(spec, optics=optics, camera=camera, psf_size=15)
    free, free_record = tune_on_tilted(first, specimens, psfs, stride=42, uniform=curves, level_gain_db=0.0)
    bound, record = tune_on_tilted(first, specimens, psfs, stride=42, uniform=curves, level_gain_db=0.3)
    reachable = [level for level in range(11) if curves[level][0][:, 1:].mean(axis=0).max() >= 0.3]
    assert reachable  # the deep levels gain at 6 iterations
    # every level that can gain 0.3 dB on its uniform fields does under the constraint, leaving none unrestored
    assert all(record["uniform_gain_db"][level] >= 0.3 - 1e-9 for level in reachable)
    assert not all(free_record["uniform_gain_db"][level] >= 0.3 - 1e-9 for level in reachable)  # it binds
    assert all(bound.iterations[level] > 0 for level in reachable)
    assert record["objective"] <= free_record["objective"] + 1e-9  # a constraint never scores higher
