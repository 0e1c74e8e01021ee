"""Per-level Richardson-Lucy schedules: which RL variant every defocus level gets, for how many iterations, and
when it stops; stored in the model file by :mod:`awdvd.restore.calibration`, resolved from the options by
:mod:`awdvd.restore.pipeline`, run by :mod:`awdvd.restore.blend`.

One iteration count for every depth over-fits the noise where the blur is mild and under-restores where it is
deep (DESIGN 6). A schedule gives each level its own count, or, with a stopping rule, its own most iterations
and a threshold: level l's RL of a region stops at the first iteration k whose *discrepancy*

    D_k = sum_x w(x) (i(x) - (h_l conv y_k)(x))^2 / var(x)  /  sum_x w(x)

falls to ``discrepancy[l]`` (w: the blend weights of the pixels the region's RL serves; var: the camera's noise
variance of each pixel, ``gain * (i - camera offset) + read_noise^2`` ADU^2; y_k: the point the k-th step starts
from). D is about 1 when the residual is at the noise level. The expectation behind the rule: the threshold
that gives the best restoration depends less on the specimen than the best count does, so a rule calibrated on
procedural specimens should carry over to real images better than a count (not yet measured on the shared
fields; the calibration's per-level numbers are kept in the model file's ``validation`` block).

The model file holds the schedules under ``model.info["restoration"]`` (JSON types only):
``{"format": "awdvd-restoration", "format_version": 1, "default_variant", "iterations_per_level" (the default
variant's), "method", "schedules": {variant: RLSchedule.to_dict()}, "validation": ..., "calibrated_on": ...}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_positive_int
from .._config import FrozenConfig
from .rl import DEFAULT_ITERATIONS, RL_VARIANTS, check_variant

__all__ = ["RLSchedule", "keep_share", "level_schedule", "model_schedules", "model_schedule", "default_schedule", "INFO_KEY", "INFO_FORMAT",
           "DEFAULT_TV_WEIGHT"]

#: where a model file keeps its restoration schedules: ``model.info[INFO_KEY]``
INFO_KEY = "restoration"
INFO_FORMAT = "awdvd-restoration"
INFO_FORMAT_VERSION = 1
#: TV weight of ``rl="tv"`` when neither the options nor a schedule give one
DEFAULT_TV_WEIGHT = 0.006


@dataclass(frozen=True)
class RLSchedule(FrozenConfig):
    """How every defocus level's Richardson-Lucy runs. Frozen, validated, JSON-able.

    Parameters
    ----------
    iterations : (n_levels,) ints >= 0: the iterations of each level (with ``discrepancy``: the most); 0 leaves
        the level as it is.
    variant : "plain", "accelerated" or "tv" (:func:`awdvd.restore.rl.richardson_lucy`).
    tv_weight : weight of the TV prior ("tv" only).
    discrepancy : None (fixed counts) or (n_levels,) thresholds of the stopping rule (module docstring); a
        threshold of 0 is a fixed count for that level.
    strength : None (every level 1) or (n_levels,) numbers in 0..1: the share of its RL's change a level keeps,
        ``out = observed + strength * (RL - observed)`` (0 leaves the level as it is). Below 1 where the blur
        is so mild that a window's level cannot be told from in focus: a level-1 window over in-focus pixels
        then sharpens them only a little, while a truly level-1 window still gains (the calibration measures
        both, :mod:`awdvd.restore.calibration`).
    gain_adu_per_e, offset_adu, read_noise_adu : the camera whose noise variance the rule uses (ADU = gain *
        photons + offset + read noise; :class:`awdvd.data.synth.CameraNoise`).
    source : where it came from: "model" (the model file's calibrated schedule), "options" (counts given by
        the caller) or "default" (30 iterations, neither given).
    """

    iterations: tuple[int, ...]
    variant: str = "plain"
    tv_weight: float = 0.0
    discrepancy: tuple[float, ...] | None = None
    gain_adu_per_e: float = 0.33
    offset_adu: float = 96.0
    read_noise_adu: float = 0.0
    source: str = "options"
    strength: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, (tuple, list)) or not self.iterations:
            raise TypeError("RLSchedule.iterations must be a non-empty sequence of one int per level")
        object.__setattr__(self, "iterations",
                           tuple(check_positive_int(v, "iterations", minimum=0) for v in self.iterations))
        variant, weight = check_variant(self.variant, self.tv_weight)
        object.__setattr__(self, "tv_weight", weight)
        if self.discrepancy is not None:
            values = tuple(float(v) for v in self.discrepancy)
            if len(values) != len(self.iterations) or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"RLSchedule.discrepancy needs {len(self.iterations)} finite thresholds >= 0 "
                                 f"(one per level), got {self.discrepancy!r}")
            object.__setattr__(self, "discrepancy", values)
        if self.strength is not None:
            values = tuple(float(v) for v in self.strength)
            if len(values) != len(self.iterations) or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
                raise ValueError(f"RLSchedule.strength needs {len(self.iterations)} numbers in 0..1 (one per "
                                 f"level), got {self.strength!r}")
            object.__setattr__(self, "strength", None if all(v == 1 for v in values) else values)
        for name in ("gain_adu_per_e", "offset_adu", "read_noise_adu"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RLSchedule.{name} must be a finite number >= 0, got {value!r}")
        if self.gain_adu_per_e <= 0:
            raise ValueError(f"RLSchedule.gain_adu_per_e must be positive, got {self.gain_adu_per_e}")
        if self.source not in ("model", "options", "default"):
            raise ValueError(f"RLSchedule.source must be 'model', 'options' or 'default', got {self.source!r}")

    @property
    def n_levels(self) -> int:
        return len(self.iterations)

    def level_strength(self, level: int) -> float:
        """The share of its RL's change level ``level`` keeps (1 unless ``strength`` says otherwise)."""
        return 1.0 if self.strength is None else self.strength[level]

    def leaves(self, level: int) -> bool:
        """True when level ``level`` is left as it is (no iterations, or strength 0)."""
        return self.iterations[level] == 0 or self.level_strength(level) == 0

    @property
    def stopping(self) -> bool:
        """True when a discrepancy rule decides where some level's RL stops."""
        return self.discrepancy is not None and any(v > 0 for v in self.discrepancy)

    @classmethod
    def fixed(cls, iterations, n_levels: int, *, variant: str = "plain", tv_weight: float = 0.0,
              source: str = "options") -> RLSchedule:
        """Fixed counts: one int for every level, or one per level."""
        n_levels = check_positive_int(n_levels, "n_levels")
        if isinstance(iterations, (list, tuple, np.ndarray)):
            values = tuple(check_positive_int(v, "iterations", minimum=0) for v in iterations)
            if len(values) != n_levels:
                raise ValueError(f"iterations has {len(values)} entries; give one per level ({n_levels}) or one int")
        else:
            values = (check_positive_int(iterations, "iterations", minimum=0),) * n_levels
        return cls(iterations=values, variant=variant, tv_weight=tv_weight, source=source)

    def noise_variance(self, raw) -> np.ndarray:
        """(H, W) float32 noise variance (ADU^2) of the raw pixels ``raw`` under the schedule's camera, at least
        one photon's."""
        signal = np.maximum(np.asarray(raw, dtype=np.float64) - self.offset_adu, self.gain_adu_per_e)
        return (self.gain_adu_per_e * signal + self.read_noise_adu**2).astype(np.float32)

    def stop_rule(self, level: int, variance: np.ndarray, weights: np.ndarray) -> tuple | None:
        """The stopping rule of one batch of RLs of ``level`` for :func:`awdvd.restore.rl.richardson_lucy_batches`:
        ``variance`` and ``weights`` (B, h, w) (or (h, w) for one), or None for fixed counts."""
        if self.discrepancy is None or self.discrepancy[level] <= 0:
            return None
        variance = np.asarray(variance, dtype=np.float32)
        weights = np.asarray(weights, dtype=np.float32)
        if variance.ndim == 2:
            variance, weights = variance[None], weights[None]
        return variance, weights, np.full(len(variance), self.discrepancy[level])

    def describe(self) -> dict:
        """JSON-ready summary for sidecars: variant, iterations, where they came from and the rule."""
        return {"rl": self.variant, "tv_weight": self.tv_weight if self.variant == "tv" else None,
                "iterations": list(self.iterations), "iterations_source": self.source,
                "stopping": "discrepancy" if self.stopping else None,
                "discrepancy": list(self.discrepancy) if self.discrepancy is not None else None,
                "strength": list(self.strength) if self.strength is not None else None}


def keep_share(restored, observed, strength: float):
    """``observed + strength * (restored - observed)``: a restoration with only ``strength`` of its change kept
    (``restored`` itself at 1), as :attr:`RLSchedule.strength` defines it."""
    return restored if strength == 1 else observed + strength * (restored - observed)


def level_schedule(iterations, n_levels: int) -> RLSchedule:
    """``iterations`` (an :class:`RLSchedule`, one int for every level or one per level) as an RLSchedule of
    ``n_levels`` levels (ints: fixed counts of plain RL)."""
    if isinstance(iterations, RLSchedule):
        if iterations.n_levels != n_levels:
            raise ValueError(f"the RL schedule has {iterations.n_levels} levels; the PSFs {n_levels}")
        return iterations
    return RLSchedule.fixed(iterations, n_levels)


def model_schedules(model) -> dict | None:
    """The restoration block of a model's file (``model.info["restoration"]``), checked, or None if it has none.
    Raises ValueError (one sentence) for a block this awdvd cannot read."""
    info = getattr(model, "info", None) or {}
    block = info.get(INFO_KEY)
    if block is None:
        return None
    if not isinstance(block, dict) or block.get("format") != INFO_FORMAT:
        raise ValueError(f"the model's info[{INFO_KEY!r}] is not an awdvd restoration schedule; recalibrate it "
                         "with `awdvd calibrate-restoration`")
    if block.get("format_version") != INFO_FORMAT_VERSION:
        raise ValueError(f"the model's restoration schedule has format {block.get('format_version')}; this awdvd "
                         f"reads {INFO_FORMAT_VERSION} (recalibrate it with `awdvd calibrate-restoration`)")
    return block


def model_schedule(model, variant: str | None = None) -> RLSchedule | None:
    """The model's calibrated schedule of ``variant`` (default: the file's default variant), or None when the
    model file has no schedule (or none for that variant)."""
    block = model_schedules(model)
    if block is None:
        return None
    variant = block.get("default_variant") if variant is None else variant
    if variant not in RL_VARIANTS:
        raise ValueError(f"the RL variant must be one of {RL_VARIANTS}, got {variant!r}")
    stored = block.get("schedules", {}).get(variant)
    if stored is None:
        return None
    schedule = RLSchedule.from_dict({**stored, "source": "model"})
    n_levels = model.optics.n_levels
    if schedule.n_levels != n_levels:
        raise ValueError(f"the model's {variant} schedule has {schedule.n_levels} levels; its optics {n_levels}")
    return schedule


def default_schedule(n_levels: int, *, variant: str | None = None, tv_weight: float | None = None) -> RLSchedule:
    """No counts given and no calibrated schedule: :data:`awdvd.restore.rl.DEFAULT_ITERATIONS` for every level (the
    paper's behaviour), plain RL unless ``variant`` says otherwise."""
    variant = variant or "plain"
    weight = (DEFAULT_TV_WEIGHT if variant == "tv" else 0.0) if tv_weight is None else tv_weight
    return RLSchedule.fixed(DEFAULT_ITERATIONS, n_levels, variant=variant, tv_weight=weight, source="default")
