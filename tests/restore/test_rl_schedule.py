"""Per-level RL schedules (awdvd.restore.rl_schedule): validation, JSON round trip, storage in a model file, how the
options resolve them (awdvd.restore.pipeline.rl_schedule), level 0 left as it is, and the probability level blend."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _standins import RuleModel, blend_args, level_map

from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_bank
from awdvd.restore.blend import deconvolve_levels
from awdvd.restore.options import AWDVDOptions
from awdvd.restore.pipeline import restore_image, rl_schedule
from awdvd.restore.plan import RestorationPlan
from awdvd.restore.rl_schedule import INFO_FORMAT, INFO_KEY, RLSchedule, model_schedule, model_schedules

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N = 11
CALIBRATED = RLSchedule(iterations=(0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), variant="accelerated",
                        discrepancy=(0.0,) + (1.0,) * 10, source="model")


def _block(schedule: RLSchedule) -> dict:
    stored = schedule.to_dict()
    del stored["source"]
    return {"format": INFO_FORMAT, "format_version": 1, "default_variant": schedule.variant,
            "iterations_per_level": list(schedule.iterations), "method": "test", "schedules": {schedule.variant: stored}}


class ScheduledRuleModel(RuleModel):
    """RuleModel whose 'file' carries a calibrated schedule."""

    def __init__(self, schedule: RLSchedule | None = CALIBRATED, **kwargs):
        super().__init__(**kwargs)
        self.info = {} if schedule is None else {INFO_KEY: _block(schedule)}


@pytest.fixture(scope="module")
def psfs():
    return psf_bank(Optics(), size=15)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"iterations": ()}, TypeError, "non-empty sequence"),
    ({"iterations": (1, -2)}, ValueError, "iterations"),
    ({"iterations": (1, 2), "discrepancy": (1.0,)}, ValueError, "needs 2 finite thresholds"),
    ({"iterations": (1, 2), "discrepancy": (1.0, float("nan"))}, ValueError, "needs 2 finite thresholds"),
    ({"iterations": (1,), "variant": "fast"}, ValueError, "variant must be one of"),
    ({"iterations": (1,), "variant": "tv", "tv_weight": 0.9}, ValueError, "tv_weight"),
    ({"iterations": (1,), "gain_adu_per_e": 0.0}, ValueError, "gain_adu_per_e must be positive"),
    ({"iterations": (1,), "read_noise_adu": -1.0}, ValueError, "read_noise_adu"),
    ({"iterations": (1,), "source": "guess"}, ValueError, "source must be"),
    ({"iterations": (1, 2), "strength": (0.5,)}, ValueError, "needs 2 numbers in 0..1"),
    ({"iterations": (1, 2), "strength": (0.5, 1.5)}, ValueError, "needs 2 numbers in 0..1"),
    ({"iterations": (1, 2), "strength": (0.5, float("nan"))}, ValueError, "needs 2 numbers in 0..1"),
])
def test_schedule_validation_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        RLSchedule(**kwargs)


def test_schedule_round_trips_through_json_and_rejects_unknown_fields():
    again = RLSchedule.from_dict(CALIBRATED.to_dict())
    assert again == CALIBRATED and isinstance(again.iterations, tuple)
    assert RLSchedule.from_json(CALIBRATED.to_json()) == CALIBRATED
    with pytest.raises((TypeError, ValueError), match="unknown"):
        RLSchedule.from_dict({**CALIBRATED.to_dict(), "speed": 3})
    assert CALIBRATED.stopping and not RLSchedule.fixed(5, 3).stopping
    assert RLSchedule.fixed(5, 3).iterations == (5, 5, 5)
    with pytest.raises(ValueError, match="one per level"):
        RLSchedule.fixed((1, 2), 3)


def test_schedule_is_stored_in_and_read_back_from_a_model_file(tmp_path):
    pytest.importorskip("torch")
    from _standins import tiny_delpnet_model

    from awdvd.learn.model_files import load_model

    model = tiny_delpnet_model(seed=1)
    assert model_schedule(model) is None  # no schedule: the options' or the default
    model.info[INFO_KEY] = _block(CALIBRATED)
    path = model.save(tmp_path / "scheduled.pt")
    loaded = load_model(path)
    assert model_schedules(loaded)["iterations_per_level"] == list(CALIBRATED.iterations)
    assert model_schedule(loaded) == CALIBRATED
    assert rl_schedule(AWDVDOptions(), loaded) == CALIBRATED
    assert model_schedule(loaded, "plain") is None  # the file has only the accelerated one
    loaded.info[INFO_KEY] = {"format": "something else"}
    with pytest.raises(ValueError, match="calibrate-restoration"):
        model_schedule(loaded)


def test_options_resolve_the_schedule():
    model = ScheduledRuleModel()
    assert rl_schedule(AWDVDOptions(), model).source == "model"
    forced = rl_schedule(AWDVDOptions(iterations=4), model)
    assert forced.iterations == (4,) * N and forced.source == "options" and forced.variant == "plain"
    assert forced.discrepancy is None
    per_level = rl_schedule(AWDVDOptions(iterations=tuple(range(N)), rl="accelerated"), model)
    assert per_level.iterations == tuple(range(N)) and per_level.variant == "accelerated"
    default = rl_schedule(AWDVDOptions(), ScheduledRuleModel(None))
    assert default.iterations == (30,) * N and default.source == "default" and default.variant == "plain"
    with pytest.raises(ValueError, match="entries but there are 11 levels"):
        rl_schedule(AWDVDOptions(iterations=(1, 2)), model)


def _image(shape=(168, 252), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.poisson(300, size=shape).astype(np.float64) + 96
    image[40:80, 30:70] += 2000
    image[60:120, 150:220] += 1500
    return image


def test_level_zero_windows_are_left_as_they_are_by_the_calibrated_schedule(psfs):
    image = _image()
    levels = np.zeros((3, 5), dtype=np.int64)
    levels[:, 4] = 6  # the last window column is deep
    dmap = level_map(levels, image.shape, stride=42, n_levels=N)
    out = deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=CALIBRATED, **blend_args(offset=96.0)))
    # pixels covered only by level-0 windows (columns < 168, where the level-6 windows start) are the input
    np.testing.assert_array_equal(out[:, :168], image[:, :168].astype(np.float32))
    assert np.abs(out[:, 210:] - image[:, 210:]).max() > 10.0  # the deep windows were restored
    # the pipeline with the model's schedule does the same, and says where its iterations came from
    result = restore_image(image, ScheduledRuleModel(), dmap=dmap, psfs=psfs, stride=42, offset=96.0, device="cpu")
    np.testing.assert_array_equal(result.image[:, :168], image[:, :168].astype(np.float32))
    resolved = result.resolved()
    assert resolved["iterations_source"] == "model" and resolved["rl"] == "accelerated"
    assert resolved["iterations"] == list(CALIBRATED.iterations) and resolved["stopping"] == "discrepancy"
    assert all(1 <= n <= CALIBRATED.iterations[6] for n in resolved["iterations_run"]["6"])
    forced = restore_image(image, ScheduledRuleModel(), dmap=dmap, psfs=psfs, stride=42, offset=96.0,
                           device="cpu", iterations=5).resolved()
    assert forced["iterations_source"] == "options" and forced["iterations"] == [5] * N
    assert forced["rl"] == "plain" and forced["stopping"] is None


def test_probability_blend_with_one_hot_probabilities_is_the_argmax_blend(psfs):
    image = _image(seed=1)
    rng = np.random.default_rng(2)
    dmap = level_map(rng.integers(-1, N, size=(3, 5)), image.shape, stride=42, n_levels=N)
    args = blend_args(offset=96.0)
    argmax = deconvolve_levels(image, dmap, psfs, RestorationPlan(**{**args, "iterations": 6, "level_blend": "argmax"}))
    proba = deconvolve_levels(image, dmap, psfs, RestorationPlan(**{**args, "iterations": 6, "level_blend": "probability"}))
    np.testing.assert_array_equal(proba, argmax)


def test_probability_blend_of_split_windows_is_the_mix_of_their_levels(psfs):
    image = _image(seed=3)
    args = blend_args(offset=96.0)
    maps = {level: level_map(np.full((3, 5), level), image.shape, stride=42, n_levels=N) for level in (3, 4)}
    pure = {level: deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=6, **args)) for level, dmap in maps.items()}
    split = np.zeros_like(maps[3].proba)
    split[..., 3], split[..., 4] = 0.7, 0.3
    dmap = dataclasses.replace(maps[3], proba=split)
    mixed = deconvolve_levels(image, dmap, psfs, RestorationPlan(**{**args, "iterations": 6, "level_blend": "probability"}))
    np.testing.assert_allclose(mixed, 0.7 * pure[3] + 0.3 * pure[4], rtol=1e-5, atol=1e-2)
    # the argmax ignores the split
    np.testing.assert_array_equal(deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=6, **args)), pure[3])
    # a class under MIN_PROBABILITY (20%) is dropped and the rest renormalised
    split[..., 3], split[..., 4] = 0.95, 0.05
    nearly = deconvolve_levels(image, dataclasses.replace(maps[3], proba=split), psfs, RestorationPlan(**{**args, "iterations": 6, "level_blend": "probability"}))
    np.testing.assert_allclose(nearly, pure[3], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("method", ["fast", "patchwise"])
def test_a_level_with_a_strength_keeps_that_share_of_its_change(psfs, method):
    image = _image(seed=4)
    rng = np.random.default_rng(5)
    dmap = level_map(rng.integers(-1, 4, size=(3, 5)), image.shape, stride=42, n_levels=N)
    args = blend_args(offset=96.0, method=method)
    full = RLSchedule.fixed(4, N)
    whole = deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=full, **args))
    strength = (1.0, 0.25) + (1.0,) * (N - 2)
    weak = deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=full.replace(strength=strength), **args))
    only = deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=RLSchedule.fixed([0, 4] + [0] * (N - 2), N), **args))
    # AWDVD is linear in a level's restoration: level 1 keeps a quarter of its term, the others all of theirs
    np.testing.assert_allclose(weak, whole - 0.75 * (only - image), rtol=1e-5, atol=1e-2)
    assert np.abs(only - image).max() > 10.0  # level 1's windows were restored at all
    # strength 0 leaves the level as it is, exactly as 0 iterations do
    zero = full.replace(strength=(1.0, 0.0) + (1.0,) * (N - 2))
    assert zero.leaves(1) and not zero.leaves(2)
    np.testing.assert_array_equal(deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=zero, **args)),
                                  deconvolve_levels(image, dmap, psfs, RestorationPlan(iterations=full.replace(
                                      iterations=(4, 0) + (4,) * (N - 2)), **args)))


def test_strength_round_trips_and_is_recorded():
    weak = RLSchedule(iterations=(0, 2, 5), strength=(1.0, 0.2, 1.0), source="model")
    assert RLSchedule.from_json(weak.to_json()) == weak
    assert weak.describe()["strength"] == [1.0, 0.2, 1.0] and weak.level_strength(1) == 0.2
    # all ones is no strength at all: the same schedule as one without
    assert RLSchedule(iterations=(0, 2, 5), strength=(1, 1, 1)) == RLSchedule(iterations=(0, 2, 5))
    assert RLSchedule(iterations=(0, 2, 5)).describe()["strength"] is None
