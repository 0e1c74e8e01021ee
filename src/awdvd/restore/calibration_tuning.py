"""The calibration's second stage (:mod:`awdvd.restore.calibration`): :func:`tune_on_tilted` tunes a first-stage
restoration schedule level by level for AWDVD on procedural tilted specimens, choosing for every level to leave it
or to run a share of its most iterations (:data:`CANDIDATES`), fixed or by the stopping rule, keeping all or a share
of the change (:data:`STRENGTHS`), so that the summed band gains are largest with band losses counted
:data:`LOSS_WEIGHT` times; :func:`rule_gain` scores a discrepancy threshold on measured RL curves, for both stages."""

from __future__ import annotations

import math

import numpy as np

from ..data.patches import PATCH_PX
from ..metrics import band_gains
from .blend import deconvolve_levels
from .plan import RestorationPlan
from .rl import resolve_offset
from .rl_schedule import RLSchedule
from .windows import DefocusMap, window_levels_from_pixels

__all__ = ["tune_on_tilted", "rule_gain", "CANDIDATES", "STRENGTHS", "LOSS_WEIGHT"]

#: the second stage's candidate plans of a level: (name, fraction of the first stage's most iterations,
#: discrepancy threshold change; None: a fixed count, the rule off)
CANDIDATES = (("leave", 0.0, None),) + tuple(
    (f"{name} x{fraction:.2f}", fraction, change)
    for fraction in (1 / 3, 2 / 3, 1.0) for name, change in (("fixed", None), ("rule", 0.0), ("rule+0.05", 0.05)))
#: the shares of its RL's change a level may keep (RLSchedule.strength): AWDVD is linear in a level's term, so
#: a weaker plan costs no RL
STRENGTHS = (1.0, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1)  # 1 first: the first stage reads it at index 0
#: the second stage's objective: summed band gains, band losses beyond ``CalibrationSpec.band_tolerance_db``
#: counted this many times more
LOSS_WEIGHT = 10.0


def rule_gain(gains: np.ndarray, discrepancies: np.ndarray, tau: float, cap: int) -> tuple[float, float]:
    """(mean gain, mean iterations) when every pair stops at its first k <= cap with D_k <= tau (else cap)."""
    met = discrepancies[:, : cap + 1] <= tau
    stops = np.where(met.any(axis=1), met.argmax(axis=1), cap)
    return float(gains[np.arange(len(gains)), stops].mean()), float(stops.mean())


def _plan_name(name: str, strength: float) -> str:
    return name if strength == 1 or name == "leave" else f"{name} s{strength:g}"


def _candidate(schedule: RLSchedule, level: int, candidate, strength: float = 1.0) -> RLSchedule:
    """``schedule`` with every level but ``level`` left as it is and ``level`` run as ``candidate`` says,
    keeping ``strength`` of its change."""
    _, fraction, change = candidate
    iterations = [0] * schedule.n_levels
    iterations[level] = int(math.ceil(schedule.iterations[level] * fraction))
    thresholds = [0.0] * schedule.n_levels  # 0: never met, a fixed count
    if change is not None:
        thresholds[level] = schedule.discrepancy[level] + change
    strengths = [1.0] * schedule.n_levels
    strengths[level] = strength
    return schedule.replace(iterations=tuple(iterations), discrepancy=tuple(thresholds), strength=tuple(strengths),
                            source="options")


def _uniform_gain(uniform, schedule: RLSchedule, level: int, candidate, strength: float) -> float:
    """Mean gain on level ``level``'s uniform fields of a candidate plan (first-stage curves ``uniform[level]``
    = (gains (n, K + 1, len(STRENGTHS)), discrepancies (n, K + 1)))."""
    gains, discrepancies = uniform[level]
    _, fraction, change = candidate
    count = int(math.ceil(schedule.iterations[level] * fraction))
    if count == 0:
        return 0.0
    threshold = -math.inf if change is None else schedule.discrepancy[level] + change  # -inf: never met, fixed
    return rule_gain(gains[..., STRENGTHS.index(strength)], discrepancies, threshold, count)[0]


def tune_on_tilted(schedule: RLSchedule, specimens, psfs: np.ndarray, *, stride: int, offset="auto",
                   device: str = "cpu", band_tolerance_db: float = 0.15, uniform=None,
                   level_gain_db: float = 0.0, tie_db: float = 0.0) -> tuple[RLSchedule, dict]:
    """Second stage: tune ``schedule`` level by level for AWDVD (fast, triangular, ``stride``, true levels) on
    tilted specimens (:class:`awdvd.data.synth.TiltedSpecimen`).

    A level's windows also cover their neighbours' bands: a count that is right for a uniform field can ruin the
    sharper band beside it. AWDVD's output is the observation plus one term per level (the blend is linear in the
    levels' restorations), so every candidate plan of :data:`CANDIDATES` is run once per level with the other
    levels left as they are, a weaker plan (:data:`STRENGTHS`) is its term scaled, and any combination is scored
    by adding terms. Coordinate ascent (two sweeps over the levels) maximises the mean over specimens of the
    summed band gains, band losses beyond ``band_tolerance_db`` counted :data:`LOSS_WEIGHT` times. With the
    first stage's curves ``uniform`` (per level, :func:`_uniform_gain`), a level whose uniform fields can gain
    ``level_gain_db`` must gain it there too (every level restored, the paper's Fig. 8): a plan's shortfall
    counts :data:`LOSS_WEIGHT` times. Among a level's plans that score within ``tie_db`` of its best, the one
    with the fewest iterations is taken. Returns (the tuned schedule, a JSON-ready record of the choice)."""

    terms = []
    for specimen in specimens:
        grid = window_levels_from_pixels(specimen.levels, stride=stride, patch_px=PATCH_PX)
        dmap = DefocusMap.from_levels(grid, specimen.observed.shape, stride=stride, patch_px=PATCH_PX,
                                      n_levels=len(psfs))
        raw = specimen.observed.astype(np.float64)
        value = resolve_offset(offset, specimen.observed)
        term = {}
        for level in range(schedule.n_levels):
            for candidate in CANDIDATES:
                plan = _candidate(schedule, level, candidate)
                if plan.iterations[level] == 0:
                    term[level, candidate[0]] = 0.0
                    continue
                out = deconvolve_levels(specimen.observed, dmap, psfs, RestorationPlan(
                    iterations=plan, method="fast", weighting="triangular", level_blend="argmax", offset=value,
                    halo_px=None, device=device))
                term[level, candidate[0]] = out.astype(np.float64) - raw
        terms.append(term)

    def restored(specimen, term, choice):
        return specimen.observed + sum(strength * term[level, name] for level, (name, strength) in choice.items())

    by_name = {c[0]: c for c in CANDIDATES}
    plans = [("leave", 1.0)] + [(c[0], strength) for c in CANDIDATES[1:] for strength in STRENGTHS]
    uniform_gain, shortfall = {}, {}
    for level in range(schedule.n_levels):
        for name, strength in plans:
            gain = 0.0 if uniform is None else _uniform_gain(uniform, schedule, level, by_name[name], strength)
            uniform_gain[level, name, strength] = gain
        reachable = max(uniform_gain[level, name, strength] for name, strength in plans) >= level_gain_db > 0
        for name, strength in plans:
            short = level_gain_db - uniform_gain[level, name, strength] if reachable else 0.0
            shortfall[level, name, strength] = max(short, 0.0)

    def objective(choice) -> float:
        total = 0.0
        for specimen, term in zip(specimens, terms):
            gains = np.array(band_gains(specimen, restored(specimen, term, choice))[0])
            total += float(gains.sum() + LOSS_WEIGHT * np.minimum(gains + band_tolerance_db, 0.0).sum())
        return total / max(len(specimens), 1) - LOSS_WEIGHT * sum(shortfall[level, name, strength]
                                                                  for level, (name, strength) in choice.items())

    def cost(level, plan) -> int:  # the most iterations a plan runs
        return _candidate(schedule, level, by_name[plan[0]]).iterations[level]

    choice = {level: (CANDIDATES[-2][0], 1.0) for level in range(schedule.n_levels)}  # the first stage's rule
    start = objective(choice)
    for _ in range(2):
        for level in range(schedule.n_levels):
            scored = [(objective({**choice, level: plan}), plan) for plan in plans]
            top = max(score for score, _ in scored)
            # within tie_db of the best, the plan that iterates least (then the better, then the earlier)
            choice[level] = min((item for item in scored if item[0] >= top - tie_db),
                                key=lambda item: (cost(level, item[1]), -item[0], plans.index(item[1])))[1]
    iterations, thresholds, strengths = [], [], []
    for level in range(schedule.n_levels):
        name, strength = choice[level]
        plan = _candidate(schedule, level, by_name[name], strength)
        iterations.append(plan.iterations[level])
        thresholds.append(plan.discrepancy[level])
        strengths.append(strength if plan.iterations[level] else 1.0)
    tuned = schedule.replace(iterations=tuple(iterations), discrepancy=tuple(thresholds), strength=tuple(strengths))
    bands, wholes = [], []
    for specimen, term in zip(specimens, terms):
        gains, whole = band_gains(specimen, restored(specimen, term, choice))
        bands.append(gains)
        wholes.append(whole)
    record = {"objective_first_stage": round(start, 3), "objective": round(objective(choice), 3),
              "choice": [_plan_name(*choice[level]) for level in range(schedule.n_levels)],
              "band_gain_db": [round(float(v), 3) for v in np.mean(bands, axis=0)] if bands else [],
              "uniform_gain_db": ([round(uniform_gain[(level, *choice[level])], 3) for level in range(schedule.n_levels)]
                                  if uniform is not None else None),
              "whole_gain_db": round(float(np.mean(wholes)), 3) if wholes else None}
    return tuned, record
