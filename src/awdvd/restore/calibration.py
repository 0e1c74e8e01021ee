"""Calibrate a model's restoration schedule (:mod:`awdvd.restore.rl_schedule`) on held-out procedural specimens under the
model's optics and camera, and store it in a new model file (``awdvd calibrate-restoration``).

Validation data (never the shared BBBC006 in-focus fields, on which the floors of the restoration benchmark are
measured): for every level l, ``specimens_per_level`` procedural fields (:func:`validation_field`: nuclei 13-29
um across, 3 um thick, imaged in widefield, seeds ``seed + 100 l + i``), each recorded by the model's camera as
an "in-focus" reference (noisy, as a real reference is), then defocused by the forward model of the tilted
specimens (:func:`awdvd.data.synth.forward_bank`: level 0 untouched, level l the Eq. 2 PSF at l x z_step) and
recorded again. For every RL variant and level, one run of ``max_iterations`` iterations on all of the level's
specimens scores every iteration count at once: the PSNR gain over the observation of every iterate x_k and
the discrepancy D_k of the stopping rule. From these:

- the best fixed count k* (largest mean gain; 0 when no count gains ``min_gain_db``: the level is left as it
  is, which is what level 0 measures);
- the most iterations ``ceil(cap_factor * k*)``, and the discrepancy threshold that maximises the mean gain
  when each specimen's RL stops by the rule (ties: the larger threshold, which stops sooner);
- the default variant: the largest mean rule gain over the levels, within ``tie_db`` the one with the fewest
  iterations.

Then the second stage (:func:`awdvd.restore.calibration_tuning.tune_on_tilted`) runs AWDVD with the true levels
on procedural tilted specimens and chooses, level by level, to leave it, or a third, two thirds or all of those
most iterations (fixed, or by the rule), keeping all or a share (:data:`awdvd.restore.calibration_tuning.STRENGTHS`,
``RLSchedule.strength``) of the change: a level's windows also cover the sharper band beside it, where a full
restoration of a mild level costs more than it gains in its own band. The objective: the summed band gains, band
losses beyond ``band_tolerance_db`` counted ten times, and a level that can gain ``level_gain_db`` on its uniform
fields must gain it there (its shortfall counted ten times), so that no level is left unrestored merely to spare
its neighbour.

Every number behind the choice is kept in the model file (``info["restoration"]["validation"]``) beside what
the specimens were (``calibrated_on``), so the schedule can be re-derived, and recomputed with one command when
the model changes.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .._checks import check_positive_int
from .._config import FrozenConfig
from ..data.synth import CameraNoise, blur, forward_bank, tilted_specimen
from ..learn.model import DefocusModel
from ..learn.model_files import load_model
from ..metrics import psnr, truth_data_range
from ..physics.optics import Optics
from ..physics.psf import default_psf_size, defocus_psf, psf_bank
from .calibration_tuning import STRENGTHS, rule_gain, tune_on_tilted
from .rl import RL_VARIANTS, check_variant, eps_floor, resolve_offset, richardson_lucy_batches
from .rl_schedule import INFO_FORMAT, INFO_FORMAT_VERSION, INFO_KEY, RLSchedule, keep_share

__all__ = ["CalibrationSpec", "validation_field", "validation_specimens", "rl_curves", "calibrate_schedules",
           "calibrate_model", "model_camera"]


@dataclass(frozen=True)
class CalibrationSpec(FrozenConfig):
    """What the calibration measures on. Frozen, validated, JSON-able.

    specimens_per_level : procedural fields per level. shape_px : their (rows, columns).
    seed : the fields of level l use seeds ``seed + 100 l + i`` (held out from everything else awdvd seeds).
    max_iterations : iterations scored per run. variants : the RL variants calibrated (the default is chosen
    among them). tv_weight : the TV prior's weight for "tv". offset : the background offset policy of RL
    ("auto" or ADU). min_gain_db : a level gaining less than this at its best count is left as it is.
    cap_factor : the rule's most iterations, as a multiple of the best fixed count. tie_db : variants whose
    mean gains lie within this (per level band) are ranked by their iterations, and so are a level's plans in
    the second stage whose objective (summed over the bands) lies within this of the best.
    tilted_specimens, tilted_shape_px, stride : the second stage's procedural tilted specimens (levels 0 to the
    deepest across the field, as the restoration benchmark's) and the AWDVD stride they are restored at.
    band_tolerance_db : the second stage counts a band's loss beyond this ten times (:data:`LOSS_WEIGHT`): a
    mild level may cost its sharper neighbour a little where it gains more itself. Half the restoration
    benchmark's 0.3 dB floor, so that what validation allows leaves a margin on other specimens.
    level_gain_db : a level whose uniform fields gain at least this at some plan must keep a plan that gains it
    there; its shortfall counts ten times. The paper reports a gain of 0.3 dB or more at every level (Fig. 8);
    0.5 leaves a margin for specimens other than the procedural ones (the shared fields' level-1 patches gain
    less than the procedural fields at the same plan).
    """

    specimens_per_level: int = 3
    shape_px: tuple[int, int] = (256, 256)
    seed: int = 20_000
    max_iterations: int = 150
    variants: tuple[str, ...] = RL_VARIANTS
    tv_weight: float = 0.006
    offset: float | str = "auto"
    min_gain_db: float = 0.05
    cap_factor: float = 1.5
    tie_db: float = 0.1
    tilted_specimens: int = 2
    tilted_shape_px: tuple[int, int] = (260, 696)
    stride: int = 42
    band_tolerance_db: float = 0.15
    level_gain_db: float = 0.5

    def __post_init__(self) -> None:
        check_positive_int(self.specimens_per_level, "specimens_per_level")
        if len(self.shape_px) != 2:
            raise ValueError(f"shape_px must be (rows, columns), got {self.shape_px!r}")
        object.__setattr__(self, "shape_px", tuple(check_positive_int(v, "shape_px", minimum=64) for v in self.shape_px))
        check_positive_int(self.seed, "seed", minimum=0)
        check_positive_int(self.max_iterations, "max_iterations")
        variants = tuple(self.variants)
        if not variants or any(v not in RL_VARIANTS for v in variants):
            raise ValueError(f"variants must be one or more of {RL_VARIANTS}, got {self.variants!r}")
        object.__setattr__(self, "variants", variants)
        object.__setattr__(self, "tv_weight", check_variant("tv", self.tv_weight)[1])
        if isinstance(self.offset, str) and self.offset != "auto":
            raise ValueError(f"offset must be a number (ADU) or 'auto', got {self.offset!r}")
        for name in ("min_gain_db", "cap_factor", "tie_db", "band_tolerance_db", "level_gain_db"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"CalibrationSpec.{name} must be a number >= 0, got {value!r}")
        if self.cap_factor < 1:
            raise ValueError(f"CalibrationSpec.cap_factor must be >= 1, got {self.cap_factor}")
        check_positive_int(self.tilted_specimens, "tilted_specimens", minimum=0)
        if len(self.tilted_shape_px) != 2:
            raise ValueError(f"tilted_shape_px must be (rows, columns), got {self.tilted_shape_px!r}")
        object.__setattr__(self, "tilted_shape_px",
                           tuple(check_positive_int(v, "tilted_shape_px", minimum=84) for v in self.tilted_shape_px))
        check_positive_int(self.stride, "stride")


# --------------------------------------------------------------------------------------------- specimens
def _slice_psfs(optics, size: int, thickness_um: float, n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(-thickness_um / 2, thickness_um / 2, n_slices + 2)[1:-1]
    return z, np.stack([defocus_psf(abs(float(v)), optics=optics, size=size) for v in z])


def validation_field(shape_px=(256, 256), *, seed: int, optics=None, psf_size: int | None = None,
                     diameter_px: tuple[float, float] = (20.0, 45.0), coverage: float = 0.25,
                     brightness_adu: tuple[float, float] = (300.0, 900.0), background_adu: float = 125.0,
                     thickness_um: float = 3.0, n_slices: int = 9, texture_px: float = 1.5,
                     texture: float = 0.2, edge_fraction: float = 0.05, slice_psfs=None) -> np.ndarray:
    """A procedural widefield image of U2OS-like nuclei in focus, noise-free, in ADU: (H, W) float32.

    Ellipsoidal nuclei (``diameter_px`` across, 13-29 um at 0.65 um/px; ``coverage`` of the field) with a
    chromatin texture (Gaussian-smoothed noise, ``texture_px`` px, ``texture`` relative amplitude) and soft
    edges (``edge_fraction`` of the radius wide), ``thickness_um`` thick: each of ``n_slices`` slices through them is blurred
    by the PSF of its distance from focus (Eq. 2 of ``optics``) and the slices are averaged, as a widefield
    microscope focused on the nuclei's middle records them; on a flat ``background_adu``.
    """
    from scipy import ndimage as ndi

    optics = Optics() if optics is None else optics
    h, w = (check_positive_int(v, "shape_px") for v in shape_px)
    rng = np.random.default_rng(seed)
    if slice_psfs is None:
        size = default_psf_size(optics) if psf_size is None else psf_size
        z, slice_psfs = _slice_psfs(optics, size, thickness_um, n_slices)
    else:
        z = np.linspace(-thickness_um / 2, thickness_um / 2, len(slice_psfs) + 2)[1:-1]
    mean_area = math.pi / 4 * float(np.mean(diameter_px)) ** 2 * 1.1
    n = max(1, int(round(h * w * coverage / mean_area)))
    chromatin = ndi.gaussian_filter(rng.standard_normal((h, w)), texture_px)
    chromatin = 1.0 + texture * chromatin / (chromatin.std() + 1e-12)
    yy, xx = np.mgrid[0:h, 0:w]
    nuclei = []
    for _ in range(n):
        d = rng.uniform(*diameter_px)
        nuclei.append((d / 2 * rng.uniform(1.0, 1.35), d / 2 * rng.uniform(0.75, 1.0), rng.uniform(0, np.pi),
                       rng.uniform(0, h), rng.uniform(0, w), rng.uniform(*brightness_adu)))
    out = np.zeros((h, w))
    for depth, psf in zip(z, slice_psfs):
        scale = math.sqrt(max(1.0 - (2.0 * depth / thickness_um) ** 2, 1e-6))  # the ellipsoid's cross-section
        layer = np.zeros((h, w))
        for a, b, theta, cy, cx, level in nuclei:
            r = int(math.ceil(max(a, b) * scale)) + 4
            y0, y1, x0, x1 = max(0, int(cy) - r), min(h, int(cy) + r + 1), max(0, int(cx) - r), min(w, int(cx) + r + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
            u = (dx * math.cos(theta) + dy * math.sin(theta)) / (a * scale)
            v = (-dx * math.sin(theta) + dy * math.cos(theta)) / (b * scale)
            body = 1.0 / (1.0 + np.exp((np.sqrt(u * u + v * v) - 1.0) / edge_fraction))
            layer[y0:y1, x0:x1] = np.maximum(layer[y0:y1, x0:x1], level * body * chromatin[y0:y1, x0:x1])
        out += blur(layer, psf)
    return (out / len(z) + background_adu).astype(np.float32)


def validation_specimens(level: int, spec: CalibrationSpec, *, optics, camera, forward: np.ndarray,
                         slice_psfs=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(truth, observed) pairs of ``level``: :func:`validation_field` recorded by ``camera`` (the reference,
    noisy like a real one), defocused by ``forward[level]`` above the camera offset and recorded again (the
    forward model of :func:`awdvd.data.synth.tilted_specimen`). float32 (H, W) each."""

    pairs = []
    for index in range(spec.specimens_per_level):
        seed = spec.seed + 100 * level + index
        field = validation_field(spec.shape_px, seed=seed, optics=optics, slice_psfs=slice_psfs)
        truth = camera.apply(field, np.random.default_rng([seed, 1]))
        offset = min(camera.offset_adu, float(truth.min()))
        expected = blur(truth.astype(np.float64) - offset, forward[level]) + offset
        pairs.append((truth, camera.apply(expected, np.random.default_rng([seed, 2]))))
    return pairs


def tilted_validation_specimens(spec: CalibrationSpec, *, optics, camera, psf_size: int, slice_psfs=None) -> list:
    """The second stage's specimens: :func:`validation_field` (seeds ``spec.seed + 5000 + i``) recorded by the
    camera, tilted by :func:`awdvd.data.synth.tilted_specimen` (levels 0 to the deepest, left to
    right)."""

    out = []
    for index in range(spec.tilted_specimens):
        seed = spec.seed + 5000 + index
        field = validation_field(spec.tilted_shape_px, seed=seed, optics=optics, slice_psfs=slice_psfs)
        reference = camera.apply(field, np.random.default_rng([seed, 1]))
        out.append(tilted_specimen(reference, optics=optics, noise=camera, psf_size=psf_size, seed=seed))
    return out


# --------------------------------------------------------------------------------------------- curves
def rl_curves(pairs, psf: np.ndarray, *, variant: str, tv_weight: float, iterations: int, offset, camera,
              device: str = "cpu", strengths=None) -> tuple[np.ndarray, np.ndarray]:
    """(gains, discrepancies), each (n_pairs, iterations + 1): PSNR gain (dB) over the observation of the RL
    iterate x_k of every (truth, observed) pair, k = 0 .. iterations, and the stopping rule's discrepancy D_k
    (uniform weights, ``camera``'s noise variance), as AWDVD's RL of a region computes it. With ``strengths``
    (a sequence of shares in 0..1, ``RLSchedule.strength``), gains is (n_pairs, iterations + 1, len(strengths)):
    the gain of observed + s (x_k - observed) for every s."""

    truths = [t.astype(np.float64) for t, _ in pairs]
    observed = [o for _, o in pairs]
    offsets = np.array([resolve_offset(offset, o) for o in observed])
    data = np.stack([np.maximum(o.astype(np.float64) - v, 0.0) for o, v in zip(observed, offsets)]).astype(np.float32)
    schedule = RLSchedule(iterations=(iterations + 1,), gain_adu_per_e=camera.gain_adu_per_e,
                          offset_adu=camera.offset_adu, read_noise_adu=camera.read_noise_adu)
    variance = np.stack([schedule.noise_variance(o) for o in observed])
    stop = (variance, np.ones_like(variance), np.full(len(pairs), -1.0))  # scored, never met
    ranges = [truth_data_range(t) for t in truths]
    base = np.array([psnr(t, o, data_range=r) for t, o, r in zip(truths, observed, ranges)])
    shares = (1.0,) if strengths is None else tuple(float(v) for v in strengths)
    gains = np.zeros((len(pairs), iterations + 1, len(shares)))
    discrepancies = np.zeros((len(pairs), iterations + 1))

    def observe(k, estimate, discrepancy):
        for i, (t, o, r) in enumerate(zip(truths, observed, ranges)):
            restored = estimate[i].astype(np.float64) + offsets[i]
            for j, share in enumerate(shares):
                gains[i, k, j] = psnr(t, keep_share(restored, o, share), data_range=r) - base[i]
        discrepancies[:, k] = discrepancy

    richardson_lucy_batches(data, psf[None], iterations + 1, eps_floor(data), device, variant=variant,
                            tv_weight=tv_weight, stop=stop, observe=observe)
    return (gains[..., 0] if strengths is None else gains), discrepancies


def _level_choice(gains: np.ndarray, discrepancies: np.ndarray, spec: CalibrationSpec) -> dict:
    """Best fixed count, the rule's most iterations and threshold for one level and variant (module docstring)."""
    mean = gains.mean(axis=0)
    best = int(np.argmax(mean))
    if mean[best] < spec.min_gain_db:
        return {"best_count": 0, "best_count_gain_db": 0.0, "max_iterations": 0, "discrepancy": 0.0,
                "rule_gain_db": 0.0, "rule_mean_iterations": 0.0, "gain_at_count_db": _marks(mean)}
    cap = min(spec.max_iterations, max(best + 1, math.ceil(spec.cap_factor * best)))
    candidates = np.unique(np.quantile(discrepancies[:, 1 : cap + 1], np.linspace(0, 1, 201)))
    scored = [(*rule_gain(gains, discrepancies, float(tau), cap), float(tau)) for tau in candidates]
    top = max(g for g, _, _ in scored)
    gain, iterations, tau = max((s for s in scored if s[0] >= top - 1e-9), key=lambda s: s[2])
    return {"best_count": best, "best_count_gain_db": round(float(mean[best]), 4), "max_iterations": int(cap),
            "discrepancy": round(tau, 6), "rule_gain_db": round(gain, 4), "rule_mean_iterations": round(iterations, 2),
            "gain_at_count_db": _marks(mean)}


def _marks(mean: np.ndarray) -> dict:
    return {str(k): round(float(mean[k]), 3) for k in (1, 2, 3, 5, 10, 20, 30, 50, 100, 150, 200) if k < len(mean)}


# --------------------------------------------------------------------------------------------- calibration
def model_camera(model):
    """The camera a model's training data were recorded with (its file's ``info["data"]["noise"]``), else
    :class:`awdvd.data.synth.CameraNoise` (BBBC006's)."""

    noise = ((getattr(model, "info", None) or {}).get("data") or {}).get("noise")
    return CameraNoise.from_dict(noise) if isinstance(noise, dict) else CameraNoise()


def calibrate_schedules(optics, camera, spec: CalibrationSpec | None = None, *, psf_size: int | None = None,
                        device: str = "cpu", progress=None) -> dict:
    """The restoration block of a model file (``model.info["restoration"]``, :mod:`awdvd.restore.rl_schedule`) for
    ``optics`` and ``camera`` (:class:`awdvd.data.synth.CameraNoise`), measured as the module docstring says.
    ``psf_size`` as for :func:`awdvd.physics.psf.psf_bank` (default: 99% energy). ``progress(message)`` is called
    per level. Returns a JSON-ready dict."""

    spec = CalibrationSpec() if spec is None else spec
    started = time.perf_counter()
    psfs = psf_bank(optics, size=psf_size)
    forward = forward_bank(optics, size=psf_size)
    _, slices = _slice_psfs(optics, psfs.shape[-1], 3.0, 9)
    levels = {variant: [] for variant in spec.variants}
    curves = {variant: [] for variant in spec.variants}  # per level: gains with every strength, discrepancies
    for level in range(optics.n_levels):
        pairs = validation_specimens(level, spec, optics=optics, camera=camera, forward=forward, slice_psfs=slices)
        for variant in spec.variants:
            weight = spec.tv_weight if variant == "tv" else 0.0
            gains, discrepancies = rl_curves(pairs, psfs[level], variant=variant, tv_weight=weight,
                                             iterations=spec.max_iterations, offset=spec.offset, camera=camera,
                                             device=device, strengths=STRENGTHS)
            curves[variant].append((gains, discrepancies))
            levels[variant].append({"level": level, **_level_choice(gains[..., 0], discrepancies, spec)})
        if progress is not None:
            progress(f"level {level}: " + ", ".join(
                f"{v} {levels[v][-1]['rule_gain_db']:+.2f} dB ({levels[v][-1]['rule_mean_iterations']:.0f} it)"
                for v in spec.variants))
    tilted = tilted_validation_specimens(spec, optics=optics, camera=camera, psf_size=int(psfs.shape[-1]),
                                         slice_psfs=slices)
    schedules, summary, tuning = {}, {}, {}
    for variant, rows in levels.items():
        schedule = RLSchedule(iterations=tuple(r["max_iterations"] for r in rows), variant=variant,
                              tv_weight=spec.tv_weight if variant == "tv" else 0.0,
                              discrepancy=tuple(r["discrepancy"] for r in rows),
                              gain_adu_per_e=camera.gain_adu_per_e, offset_adu=camera.offset_adu,
                              read_noise_adu=camera.read_noise_adu, source="model")
        if tilted:
            schedule, tuning[variant] = tune_on_tilted(schedule, tilted, psfs, stride=spec.stride,
                                                       offset=spec.offset, device=device,
                                                       band_tolerance_db=spec.band_tolerance_db,
                                                       uniform=curves[variant], level_gain_db=spec.level_gain_db,
                                                       tie_db=spec.tie_db)
            if progress is not None:
                progress(f"tilted specimens, {variant}: band gains {tuning[variant]['band_gain_db']} dB, "
                         f"iterations {list(schedule.iterations)}")
        d = schedule.to_dict()
        del d["source"]
        schedules[variant] = d
        summary[variant] = {"mean_rule_gain_db": round(float(np.mean([r["rule_gain_db"] for r in rows])), 4),
                            "mean_best_count_gain_db": round(float(np.mean([r["best_count_gain_db"] for r in rows])), 4),
                            "mean_iterations": round(float(np.mean([r["rule_mean_iterations"] for r in rows])), 2),
                            "tilted_objective": tuning.get(variant, {}).get("objective"),
                            "iterations_sum": int(sum(schedule.iterations))}
    # the variant that restores the tilted specimens best (the uniform fields' mean gain without them); among
    # those within tie_db per band, the one that iterates least
    if tilted:
        n_bands = optics.n_levels
        score = {v: summary[v]["tilted_objective"] / n_bands for v in spec.variants}
    else:
        score = {v: summary[v]["mean_rule_gain_db"] for v in spec.variants}
    top = max(score.values())
    default = min((v for v in spec.variants if score[v] >= top - spec.tie_db),
                  key=lambda v: (summary[v]["iterations_sum"], -score[v]))
    return {
        "format": INFO_FORMAT,
        "format_version": INFO_FORMAT_VERSION,
        "default_variant": default,
        "iterations_per_level": list(schedules[default]["iterations"]),
        "method": (f"per level: {default} RL stopped by the discrepancy rule (awdvd.restore.rl_schedule) at most "
                   "iterations_per_level iterations, threshold and most iterations chosen on procedural validation "
                   "specimens (awdvd.restore.calibration); level counts gaining < "
                   f"{spec.min_gain_db} dB are 0 (left as they are)"),
        "schedules": schedules,
        "validation": {"summary": summary, "uniform_fields": levels, "tilted_specimens": tuning},
        "calibrated_on": {
            "specimens": "awdvd.restore.calibration.validation_field (procedural widefield nuclei, 3 um thick), recorded by "
                         "the camera as the reference, defocused by awdvd.data.synth.forward_bank and recorded again: "
                         "uniform fields per level, then tilted specimens (levels 0 to the deepest across the field) "
                         f"restored by AWDVD at stride {spec.stride} with their true levels",
            "spec": spec.to_dict(), "seeds": [spec.seed + 100 * level + i for level in range(optics.n_levels)
                                              for i in range(spec.specimens_per_level)],
            "tilted_seeds": [spec.seed + 5000 + i for i in range(spec.tilted_specimens)],
            "optics": optics.to_dict(), "camera": camera.to_dict(), "psf_size": int(psfs.shape[-1]),
            "awdvd_version": __version__, "seconds": round(time.perf_counter() - started, 1),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def calibrate_model(model=None, output=None, *, spec: CalibrationSpec | None = None, overwrite: bool = False,
                    psf_size: int | None = None, device: str = "cpu", progress=None) -> Path:
    """``awdvd calibrate-restoration``: compute the restoration schedules of a model (:func:`calibrate_schedules`
    under its optics and camera) and write the model with them, as a NEW model file ``output``.

    model : a model file path, a :class:`awdvd.learn.model.DefocusModel`, or None (the bundled model).
    output : the model file to write; never replaced unless ``overwrite`` (FileExistsError before any work).
    Returns the path written.
    """

    if output is None:
        raise ValueError("give the output model file (-o MODEL_OUT); the input is never changed in place")
    output = Path(output)
    if not isinstance(model, DefocusModel) and model is not None and output.resolve() == Path(model).resolve() \
            and not overwrite:
        raise FileExistsError(f"{output} is the input model; write a new file (or pass --overwrite to replace it)")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; choose another output file or pass --overwrite")
    loaded = model if isinstance(model, DefocusModel) else load_model(model)
    block = calibrate_schedules(loaded.optics, model_camera(loaded), spec, psf_size=psf_size, device=device,
                                progress=progress)
    calibrated = DefocusModel(loaded.network, optics=loaded.optics, class_levels=loaded.class_levels,
                              patch_px=loaded.patch_px, info={**loaded.info, INFO_KEY: block},
                              inference_backend=loaded.inference_backend, normalization=loaded.normalization)
    return calibrated.save(output, overwrite=overwrite)
