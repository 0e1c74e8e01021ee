"""How well AWDVD restores: the paper's Fig. 7-8 (held-out patches per level) and Fig. 9 (whole images).

Patches (:func:`evaluate_patches`): for each level, up to ``per_level`` non-background test patches; PSNR and
SSIM against the in-focus patch of the noisy defocused patch, of depth-variant RL with the true level's PSF (and
with the model's predicted level, when a model is given; a patch predicted as background stays undeconvolved,
as in AWDVD) and of depth-invariant RL with the level-0 (in-focus) PSF. Each 84 x 84 patch is deconvolved on
its own with symmetric boundaries, as the paper does. Two data ranges: 65535 (the paper's absolute numbers) and
the in-focus patch's own max - min (numbers that do not depend on the 16-bit container).

Whole images (:func:`evaluate_whole_image`): a synthetic tilted specimen built from a real in-focus image, the
defocus level increasing across the field (:func:`tilted_specimen`), restored by case (i) (stride = window side,
rectangular, patch-wise), case (ii) (stride = half the window, triangular, patch-wise) and the fast method at
several strides, with the true levels (and a model's levels when given), scored by PSNR/SSIM and a seam measure
(:func:`seam_ratio`). Windows are the model's (``model.patch_px``), or the paper's 84 px without a model.

Both take :class:`awdvd.restore.options.AWDVDOptions` (and keyword overrides of its fields: ``iterations``, ``offset``,
``device``, ...); the offset defaults to "auto" as everywhere (per patch for patches: each is its own image).
The figures are :func:`awdvd.plots.plot_patch_metrics` and :func:`awdvd.plots.plot_whole_image`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .._checks import check_image, check_positive_int
from .._device import resolve_device
from ..data.datasets import load_in_focus_images, read_dataset
from ..data.patches import PATCH_PX
from ..data.synth import CameraNoise, DatasetSpec, TiltedSpecimen, make_patch_dataset, tilted_specimen
from ..io import write_json
from ..learn.model_files import bundled_model_path, load_model
from ..metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range
from ..physics.optics import Optics
from ..physics.psf import psf_bank
from ..plots import plot_patch_metrics, plot_whole_image
from ..restore.blend import label_shares
from ..restore.options import options_with
from ..restore.pipeline import deconvolve_invariant, iterations_per_level, restore_image, rl_schedule
from ..restore.rl import eps_floor, estimate_background, resolve_offset, richardson_lucy_batches
from ..restore.rl_schedule import keep_share
from ..restore.windows import DefocusMap, window_levels_from_pixels, window_starts
from .restoration_bands import write_band_report

__all__ = ["deepest_optics", 
    "seam_ratio",
    "case_i_boundaries",
    "evaluate_patches",
    "evaluate_whole_image",
    "write_restoration_report",
]

# the figures moved to awdvd.plots (wave 2); these names stay importable from here until the other branches
# (awdvd.reproduce) are merged


# --------------------------------------------------------------------------------------------- specimens
# --------------------------------------------------------------------------------------------- seams
def case_i_boundaries(length: int, *, patch_px: int = PATCH_PX) -> np.ndarray:
    """Positions b (0 < b < length) where case (i) windows meet: a seam lies between pixels b - 1 and b."""

    starts = window_starts(length, patch_px=patch_px, stride=patch_px)
    edges = np.concatenate([starts, starts + patch_px])
    return np.unique(edges[(edges > 0) & (edges < length)])


def seam_ratio(image, *, boundaries_y: Sequence[int], boundaries_x: Sequence[int]) -> float:
    """Gradient energy across window boundaries over gradient energy elsewhere.

    With d_x(y, x) = image(y, x) - image(y, x - 1) (and d_y alike), the ratio of the mean of d^2 over the
    differences that straddle a boundary (x in ``boundaries_x``, y in ``boundaries_y``) to the mean over all
    other differences. About 1 for an image without seams at those positions; seams push it above 1. Apply it
    to the error image (restored - truth) to remove the specimen's own structure.
    """
    x = check_image(image, "image", min_shape=(2, 2)).astype(np.float64)
    dx = np.diff(x, axis=1) ** 2  # column c holds the step between pixels c and c + 1
    dy = np.diff(x, axis=0) ** 2
    bx = np.zeros(dx.shape[1], bool)
    bx[np.asarray(boundaries_x, dtype=int) - 1] = True
    by = np.zeros(dy.shape[0], bool)
    by[np.asarray(boundaries_y, dtype=int) - 1] = True
    on = np.concatenate([dx[:, bx].ravel(), dy[by, :].ravel()])
    off = np.concatenate([dx[:, ~bx].ravel(), dy[~by, :].ravel()])
    if on.size == 0 or off.size == 0:
        raise ValueError("need at least one boundary and one non-boundary position")
    return float(on.mean() / off.mean()) if off.mean() > 0 else math.inf


# --------------------------------------------------------------------------------------------- patches
def _finite_or_none(value: float):
    return None if not math.isfinite(value) else float(value)


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    finite = a[np.isfinite(a)]
    return {
        "mean": _finite_or_none(float(finite.mean())) if finite.size else None,
        "std": _finite_or_none(float(finite.std())) if finite.size else None,
        "n": int(a.size),
        "n_infinite": int(np.sum(~np.isfinite(a))),
    }


def _paired_ci95(values: np.ndarray, baseline: np.ndarray):
    """Half-width of the normal 95% interval of the mean per-patch difference ``values - baseline`` (finite
    pairs; None under two)."""
    with np.errstate(invalid="ignore"):  # a copy of a copy: inf - inf
        difference = values - baseline
    difference = difference[np.isfinite(difference)]
    if difference.size < 2:
        return None
    return float(1.96 * difference.std(ddof=1) / math.sqrt(difference.size))


def deepest_optics(optics: Optics, model=None) -> Optics:
    """``optics``, or the model's where they are the same optics over more levels (a range-extended model reads the
    patches of an 11-level dataset, and may call them deeper: every level it can call needs its PSF)."""
    theirs = getattr(model, "optics", None)
    if theirs is not None and theirs.n_levels > optics.n_levels and theirs.replace(n_levels=optics.n_levels) == optics:
        return theirs
    return optics


def evaluate_patches(patches, psfs, *, model=None, options=None, per_level: int = 45, seed: int = 0,
                     include_background: bool = False, **overrides) -> dict:
    """Per-level PSNR/SSIM of noisy, depth-variant and depth-invariant patches (paper Fig. 8).

    Parameters
    ----------
    patches : a :class:`awdvd.data.synth.PatchSet` (the test split: ``raw`` noisy, ``truth`` in-focus, ``level``).
    psfs : (n_levels, k, k) deconvolution PSFs (``psf_bank``; level 0 = in-focus PSF, the invariant baseline).
    model : optional defocus model; adds "variant_predicted" (levels from ``model.predict_patches``, blended by
        probability as ``options.level_blend`` says; a patch predicted background stays as it is), and its
        calibrated schedule is the default RL schedule (``iterations=None``).
    options, overrides : :class:`awdvd.restore.options.AWDVDOptions` and keyword overrides of its fields; the patches
        use its ``iterations`` / ``rl`` (resolved by :func:`awdvd.restore.pipeline.rl_schedule`: per level, with its
        stopping rule over the whole patch), ``offset`` ("auto": each patch's own 1st percentile) and ``device``.
        The depth-invariant baseline runs the true level's schedule with the level-0 PSF (the same iterations
        as the depth-variant restoration, the in-focus PSF).
    per_level : patches drawn (without replacement, seeded) per level.

    Returns
    -------
    JSON-ready dict: {"levels": [{"level", "n", "psnr": {variant: {data range: summary}}, "ssim": ...,
    "psnr_gain_db": {...}, "psnr_gain_ci95_db": {...} (half-width of the 95% interval of the mean per-patch
    gain), "ssim_ratio": ...}], "settings": {...}}. PSNR of an exact copy is infinite: the
    summaries count such patches in ``n_infinite`` and average the finite ones (level 0's noisy patch is the
    in-focus image itself in awdvd's synthetic data).
    """

    options = options_with(options, overrides)
    n_levels = len(psfs)
    psfs = np.asarray(psfs)
    schedule = rl_schedule(options, model, n_levels=n_levels)

    def restore(raw, psf_level, plan_level):  # RL of a stack of patches, each with its own offset
        if options.offset == "auto":
            offsets = np.array([estimate_background(p) for p in raw], dtype=np.float64)[:, None, None]
        else:
            offsets = np.full((len(raw), 1, 1), options.offset)
        iterations = schedule.iterations[plan_level]
        if schedule.leaves(plan_level):
            return raw.astype(np.float32)
        data = np.maximum(raw.astype(np.float64) - offsets, 0.0).astype(np.float32)
        stop = None
        if schedule.stopping:
            variance = np.stack([schedule.noise_variance(p) for p in raw])
            stop = schedule.stop_rule(plan_level, variance, np.ones_like(variance))
        out = richardson_lucy_batches(data, psfs[psf_level][None], iterations, eps_floor(data),
                                      resolve_device(options.device), variant=schedule.variant,
                                      tv_weight=schedule.tv_weight, stop=stop)
        kept = keep_share(out.astype(np.float64) + offsets, raw, schedule.level_strength(plan_level))
        return kept.astype(np.float32)

    per_level = check_positive_int(per_level, "per_level")
    rng = np.random.default_rng(seed)
    chosen = []
    for level in range(n_levels):
        candidates = np.nonzero((patches.level == level) & (include_background | ~patches.background))[0]
        chosen.append(np.sort(rng.choice(candidates, size=min(per_level, len(candidates)), replace=False)))
    rows = []
    for level, index in enumerate(chosen):
        if len(index) == 0:
            rows.append({"level": level, "n": 0})
            continue
        raw, truth = patches.raw[index], patches.truth[index]
        variants = {
            "noisy": raw.astype(np.float32),
            "variant_true": restore(raw, level, level),
            "invariant": restore(raw, 0, level),
        }
        if model is not None:
            ranges = {}  # image-range models read a patch with its synthetic image's range, as awdvd evaluate does
            if getattr(model, "normalization", None) == "image-range" and patches.image_range is not None:
                ranges = {"value_range": patches.image_range[index]}
            predicted, proba = model.predict_patches(raw, return_proba=True, **ranges)
            shares = label_shares(predicted, proba, model.class_levels, n_levels, options.level_blend)
            out = np.zeros(raw.shape, dtype=np.float64)
            for value, share in shares.items():
                chosen = share > 0
                part = raw[chosen].astype(np.float32) if value < 0 else restore(raw[chosen], value, value)
                out[chosen] += share[chosen][:, None, None] * part
            variants["variant_predicted"] = out.astype(np.float32)
        row = {"level": level, "n": int(len(index)), "psnr": {}, "ssim": {}}
        per_patch = {}  # PSNR of every patch at 65535, for the gains' confidence intervals
        if model is not None:
            row["predicted_levels"] = {str(int(v)): int(np.sum(predicted == v)) for v in np.unique(predicted)}
        for name, images in variants.items():
            row["psnr"][name], row["ssim"][name] = {}, {}
            for range_name in ("paper_65535", "truth_range"):
                p, s = [], []
                for t, x in zip(truth, images):
                    data_range = PAPER_DATA_RANGE if range_name == "paper_65535" else truth_data_range(t)
                    p.append(psnr(t, x, data_range=data_range))
                    s.append(ssim(t, x, data_range=data_range))
                row["psnr"][name][range_name] = _summary(p)
                row["ssim"][name][range_name] = _summary(s)
                if range_name == "paper_65535":
                    per_patch[name] = np.asarray(p, dtype=np.float64)
        noisy = row["psnr"]["noisy"]["paper_65535"]["mean"]
        row["psnr_gain_db"] = {
            name: (None if noisy is None or row["psnr"][name]["paper_65535"]["mean"] is None
                   else row["psnr"][name]["paper_65535"]["mean"] - noisy)
            for name in variants if name != "noisy"
        }
        row["psnr_gain_ci95_db"] = {name: _paired_ci95(per_patch[name], per_patch["noisy"])
                                    for name in variants if name != "noisy"}
        row["ssim_ratio"] = {
            range_name: {name: row["ssim"][name][range_name]["mean"] / row["ssim"]["noisy"][range_name]["mean"]
                         for name in variants if name != "noisy"}
            for range_name in ("paper_65535", "truth_range")
        }
        rows.append(row)
    settings = {"per_level": per_level, "iterations": list(schedule.iterations), "seed": seed,
                "schedule": schedule.describe(), "level_blend": options.level_blend if model is not None else None,
                "offset": "auto (each patch's 1st percentile)" if options.offset == "auto" else options.offset,
                "include_background": include_background, "psf_size": int(np.shape(psfs)[-1]),
                "data_ranges": {"paper_65535": PAPER_DATA_RANGE, "truth_range": "max - min of each in-focus patch"}}
    return {"levels": rows, "settings": settings}


# --------------------------------------------------------------------------------------------- images
def evaluate_whole_image(specimen: TiltedSpecimen, psfs, *, strides: Sequence[int] | None = None, model=None,
                         options=None, patch_px: int | None = None, keep_images: bool = False, **overrides) -> dict:
    """Fig. 9 on a synthetic specimen with known levels: PSNR/SSIM and seam ratio of

    - observed (no restoration) and depth-invariant RL (level-0 PSF),
    - case (i): stride = window side, rectangular weights, patch-wise; case (ii): stride = half the window,
      triangular, patch-wise,
    - fast (triangular) at every stride of ``strides`` (default: a half, a quarter of the window, and 8 px),

    with the true window levels, and again with the model's levels when ``model`` is given. Windows are
    ``patch_px`` (default: the model's, else the paper's 84). ``options`` / ``overrides``
    (:class:`awdvd.restore.options.AWDVDOptions`) give iterations, offset ("auto": once, on the observed image, for
    every run), halo and device; each run sets its own stride, weighting and method. Seam ratios are measured
    on the error image at case (i)'s window boundaries. Returns a JSON-ready dict (and the restored images
    under "images" when ``keep_images``).
    """

    options = options_with(options, overrides)
    truth, observed = specimen.truth, specimen.observed
    p = int(patch_px or (model.patch_px if model is not None else PATCH_PX))
    strides = [p // 2, p // 4, 8] if strides is None else [int(s) for s in strides]
    for stride in strides:
        options.replace(stride=stride).check_patch_px(p)
    options = options.replace(offset=resolve_offset(options.offset, observed))
    by = case_i_boundaries(truth.shape[0], patch_px=p)
    bx = case_i_boundaries(truth.shape[1], patch_px=p)
    results, images = [], {"truth": truth}

    def score(name, image, seconds, **extra):
        record = {"name": name, "seconds": round(seconds, 4), **extra,
                  "psnr_paper_65535": psnr(truth, image, data_range=PAPER_DATA_RANGE),
                  "psnr_truth_range": psnr(truth, image, data_range=truth_data_range(truth)),
                  "ssim_truth_range": ssim(truth, image, data_range=truth_data_range(truth)),
                  "seam_ratio_error": seam_ratio(image - truth, boundaries_y=by, boundaries_x=bx)}
        results.append(record)
        if keep_images:
            images[name] = image

    score("observed", observed, 0.0)
    start = time.perf_counter()
    in_focus_iterations = iterations_per_level(options, n_levels=len(psfs))[0]
    invariant = deconvolve_invariant(observed, psfs[0], options.replace(iterations=in_focus_iterations))
    score("invariant_level0", invariant, time.perf_counter() - start)
    sources = [("true", None)]
    if model is not None:
        sources.append(("model", model))
    runs = [("case_i", p, "rectangular", "patchwise"), ("case_ii", p // 2, "triangular", "patchwise")]
    runs += [(f"fast_s{s}", s, "triangular", "fast") for s in strides]
    for source, source_model in sources:
        for name, stride, weighting, method in runs:
            run = options.replace(stride=stride, weighting=weighting, method=method)
            dmap = None
            if source_model is None:
                grid = window_levels_from_pixels(specimen.levels, stride=stride, patch_px=p)
                dmap = DefocusMap.from_levels(grid, observed.shape, stride=stride, patch_px=p, n_levels=len(psfs))
            result = restore_image(observed, source_model, run, dmap=dmap, psfs=psfs)
            score(f"{name}_{source}", result.image, result.timings_s["deconvolution"], stride=stride,
                  weighting=weighting, method=method, levels=source, map_seconds=result.timings_s["defocus_map"])
    report = {"results": results, "settings": {"iterations": options.iterations, "offset": options.offset,
                                               "strides": list(strides), "patch_px": p,
                                               "psf_size": int(np.shape(psfs)[-1]), "shape": list(truth.shape)}}
    if keep_images:
        report["images"] = images
    return report


# --------------------------------------------------------------------------------------------- reports
def write_restoration_report(output, *, dataset=None, in_focus=(), model=None, options=None, per_level: int = 45,
                             strides: Sequence[int] | None = None, seed: int = 0, overwrite: bool = False,
                             bands: bool = False, simulate_patches: bool = False, command: str = "",
                             split: str = "test", **overrides) -> list:
    """``awdvd evaluate-restoration``: the paper's Fig. 8 on a dataset's test patches (``patches.json``,
    ``patches.png``) and/or Fig. 9 on a tilted specimen per in-focus image (``whole.json``, ``whole.png``, the
    figure of the first), written into the folder ``output``.

    Parameters
    ----------
    dataset : a patch dataset folder (``awdvd simulate``); its ``split`` (default "test") is scored by
        :func:`evaluate_patches`.
    in_focus : in-focus images (files, folders, globs; :func:`awdvd.data.datasets.load_in_focus_images`), each tilted
        (:func:`tilted_specimen`, seeds ``seed``, ``seed + 1``, ...) and scored by :func:`evaluate_whole_image`.
    model : a model file path or :class:`awdvd.learn.model.DefocusModel`: also score with its levels.
    options, overrides : :class:`awdvd.restore.options.AWDVDOptions` (iterations, offset, psf_size, device, ...).
    per_level, strides, seed : as for :func:`evaluate_patches` / :func:`evaluate_whole_image`.
    overwrite : replace existing outputs (otherwise FileExistsError before anything is computed).
    bands : also issue 12's per level band table on the in-focus images' tilted specimens, with the true-level
        ceilings and the floors (``bands.json``, ``REPORT.md``: :func:`awdvd.validate.restoration_bands.write_band_report`; with the
        Fig. 8 table when patches are scored). Needs a model (default: the bundled one).
    simulate_patches : without ``dataset``, score Fig. 8 on the test split of a patch dataset simulated from the
        in-focus images (reproduce's cpu scale: 20 crops x 8 realizations per image and level, seed 0).
    command : the command line to record in the report.

    Returns the paths written.
    """

    options = options_with(options, overrides)
    output = Path(output)
    in_focus = [in_focus] if isinstance(in_focus, (str, Path)) else list(in_focus or ())
    if dataset is None and not in_focus:
        raise ValueError("give a dataset (patch evaluation, --dataset) and/or in-focus images (whole-image "
                         "evaluation, --in-focus)")
    if simulate_patches and dataset is None and not in_focus:
        raise ValueError("simulate_patches needs in-focus images (--in-focus)")
    patch_run = dataset is not None or simulate_patches
    targets = ([output / "patches.json", output / "patches.png"] if patch_run else [])
    targets += [output / "whole.json", output / "whole.png"] if in_focus else []
    targets += [output / "bands.json", output / "REPORT.md"] if bands and in_focus else []
    for target in targets:
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another -o folder or pass --overwrite")
    model_source = "none"
    if model is not None and not hasattr(model, "predict_patches"):
        model_source = str(model)
        model = load_model(model)
    elif model is not None:
        model_source = "given DefocusModel"
    if bands and model is None:
        model, model_source = load_model(), f"bundled model ({bundled_model_path().name})"
    images = names = None
    if in_focus:
        images, names = load_in_focus_images(in_focus)
    patch_report = None
    if patch_run:
        if dataset is not None:
            patches, metadata = read_dataset(dataset, split)
            if not np.any(~patches.background):
                raise ValueError(f"the {split} split of {dataset} holds no foreground patch to score; choose another "
                                 "split (--split) or dataset")
        else:
            optics = model.optics if model is not None else Optics()
            splits, metadata = make_patch_dataset(images, optics=optics, noise=CameraNoise(), source_names=names,
                                                  spec=DatasetSpec(crops_per_image=20, realizations=8, seed=0))
            patches = splits["test"]
        psfs = psf_bank(deepest_optics(Optics.from_dict(metadata["optics"]), model), size=options.psf_size)
        patch_report = evaluate_patches(patches, psfs, model=model, options=options, per_level=per_level, seed=seed)
        patch_report["settings"]["dataset"] = f"{dataset} ({split} split)" if dataset is not None else (
            "simulated from the in-focus images: 20 crops x 8 realizations, seed 0, test split")
        write_json(output / "patches.json", patch_report, overwrite=overwrite)
        plot_patch_metrics(patch_report, output / "patches.png", overwrite=overwrite)
    if in_focus:
        optics = model.optics if model is not None else Optics()
        psfs = psf_bank(optics, size=options.psf_size)
        reports = []
        for index, (image, name) in enumerate(zip(images, names)):
            specimen = tilted_specimen(image, optics=optics, psf_size=options.psf_size, seed=seed + index)
            report = evaluate_whole_image(specimen, psfs, strides=strides, model=model, options=options,
                                          keep_images=index == 0)
            if index == 0:
                plot_whole_image(report, output / "whole.png", overwrite=overwrite)
                del report["images"]
            reports.append({"image": name, **report})
        write_json(output / "whole.json", {"images": reports}, overwrite=overwrite)
        if bands:
            write_band_report(output, images=images, names=names, model=model, model_source=model_source,
                              options=options, seed=seed, patches=patch_report, command=command,
                              overwrite=overwrite, device=resolve_device(options.device))
    return targets
