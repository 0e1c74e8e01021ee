"""How well AWDVD restores: the paper's Fig. 7-8 (held-out patches per level) and Fig. 9 (whole images).

Patches (:func:`evaluate_patches`): for each level, up to ``per_level`` non-background test patches; PSNR and
SSIM against the in-focus patch of the noisy defocused patch, of depth-variant RL with the true level's PSF (and
with the model's predicted level, when a model is given; a patch predicted as background stays undeconvolved,
as in AWDVD) and of depth-invariant RL with the level-0 (in-focus) PSF. Each 84 x 84 patch is deconvolved on
its own with symmetric boundaries, as the paper does. Two data ranges: 65535 (the paper's absolute numbers) and
the in-focus patch's own max - min (numbers that do not depend on the 16-bit container).

Whole images (:func:`evaluate_whole_image`): a synthetic tilted specimen built from a real in-focus image, the
defocus level increasing across the field (:func:`tilted_specimen`), restored by case (i) (stride 84,
rectangular, patch-wise), case (ii) (stride 42, triangular, patch-wise) and the fast method at several strides,
with the true levels (and a model's levels when given), scored by PSNR/SSIM and a seam measure
(:func:`seam_ratio`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._checks import check_image, check_positive_int
from .metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range

__all__ = [
    "TiltedSpecimen",
    "tilted_specimen",
    "window_levels_from_pixels",
    "seam_ratio",
    "case_i_boundaries",
    "evaluate_patches",
    "evaluate_whole_image",
    "plot_patch_metrics",
    "plot_whole_image",
]


# --------------------------------------------------------------------------------------------- specimens
@dataclass
class TiltedSpecimen:
    """truth: (H, W) in-focus image (ADU); observed: (H, W) float32 defocused and noisy; levels: (H, W) int64
    true defocus level of every pixel."""

    truth: np.ndarray
    observed: np.ndarray
    levels: np.ndarray


def tilted_specimen(in_focus, *, optics=None, noise=None, psf_size: int | None = None, seed: int = 0,
                    first_level: int = 0, last_level: int | None = None) -> TiltedSpecimen:
    """A specimen tilted along x: the level grows in equal bands from ``first_level`` at the left edge to
    ``last_level`` (default the deepest) at the right. Forward model: :func:`awdvd.synth.depth_variant_blur`
    with :func:`awdvd.synth.forward_bank` (level 0 = no blur), then camera noise."""
    from .optics import Optics
    from .synth import CameraNoise, depth_variant_blur, forward_bank

    truth = check_image(in_focus, "in_focus", min_shape=(1, 1)).astype(np.float32)
    optics = Optics() if optics is None else optics
    noise = CameraNoise() if noise is None else noise
    last_level = optics.n_levels - 1 if last_level is None else int(last_level)
    if not 0 <= first_level <= last_level < optics.n_levels:
        raise ValueError(f"need 0 <= first_level <= last_level < {optics.n_levels}, got {first_level}, {last_level}")
    width = truth.shape[1]
    bands = last_level - first_level + 1
    column_levels = first_level + np.minimum(np.arange(width) * bands // width, bands - 1)
    levels = np.broadcast_to(column_levels[None, :], truth.shape).astype(np.int64)
    # the camera offset is electronic, not light: only what lies above it is blurred (blurring a constant
    # offset band by band would draw false edges into the background where the level changes)
    offset = min(noise.offset_adu, float(truth.min()))
    expected = depth_variant_blur(truth - offset, levels, forward_bank(optics, size=psf_size)) + offset
    observed = noise.apply(expected, np.random.default_rng(seed))
    return TiltedSpecimen(truth=truth, observed=observed, levels=levels.copy())


def window_levels_from_pixels(levels, *, stride: int, patch_px: int = 84) -> np.ndarray:
    """(ny, nx) grid of the true level at each window's centre pixel (row/column start + patch_px // 2)."""
    from .windows import window_starts

    levels = np.asarray(levels)
    ys = window_starts(levels.shape[0], patch_px=patch_px, stride=stride)
    xs = window_starts(levels.shape[1], patch_px=patch_px, stride=stride)
    return levels[(ys + patch_px // 2)[:, None], (xs + patch_px // 2)[None, :]].astype(np.int64)


# --------------------------------------------------------------------------------------------- seams
def case_i_boundaries(length: int, *, patch_px: int = 84) -> np.ndarray:
    """Positions b (0 < b < length) where case (i) windows meet: a seam lies between pixels b - 1 and b."""
    from .windows import window_starts

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


def evaluate_patches(patches, psfs, *, model=None, per_level: int = 45, iterations: int = 30, seed: int = 0,
                     offset: float = 0.0, include_background: bool = False, device: str | None = None) -> dict:
    """Per-level PSNR/SSIM of noisy, depth-variant and depth-invariant patches (paper Fig. 8).

    Parameters
    ----------
    patches : a :class:`awdvd.synth.PatchSet` (the test split: ``raw`` noisy, ``truth`` in-focus, ``level``).
    psfs : (n_levels, k, k) deconvolution PSFs (``psf_bank``; level 0 = in-focus PSF, the invariant baseline).
    model : optional defocus model; adds "variant_predicted" (level from ``model.predict_patches``).
    per_level : patches drawn (without replacement, seeded) per level.

    Returns
    -------
    JSON-ready dict: {"levels": [{"level", "n", "psnr": {variant: {data range: summary}}, "ssim": ...,
    "psnr_gain": {...}, "ssim_ratio": ...}], "settings": {...}}. PSNR of an exact copy is infinite: the
    summaries count such patches in ``n_infinite`` and average the finite ones (level 0's noisy patch is the
    in-focus image itself in awdvd's synthetic data).
    """
    from .deconv import richardson_lucy_stack

    per_level = check_positive_int(per_level, "per_level")
    rng = np.random.default_rng(seed)
    n_levels = len(psfs)
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
        rl = dict(iterations=iterations, offset=offset, device=device)
        variants = {
            "noisy": raw.astype(np.float32),
            "variant_true": richardson_lucy_stack(raw, psfs[level], **rl),
            "invariant": richardson_lucy_stack(raw, psfs[0], **rl),
        }
        if model is not None:
            predicted = np.asarray(model.predict_patches(raw))
            out = raw.astype(np.float32).copy()
            for value in np.unique(predicted):
                if value >= 0:
                    out[predicted == value] = richardson_lucy_stack(raw[predicted == value], psfs[value], **rl)
            variants["variant_predicted"] = out
        row = {"level": level, "n": int(len(index)), "psnr": {}, "ssim": {}}
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
        noisy = row["psnr"]["noisy"]["paper_65535"]["mean"]
        row["psnr_gain_db"] = {
            name: (None if noisy is None or row["psnr"][name]["paper_65535"]["mean"] is None
                   else row["psnr"][name]["paper_65535"]["mean"] - noisy)
            for name in variants if name != "noisy"
        }
        row["ssim_ratio"] = {
            range_name: {name: row["ssim"][name][range_name]["mean"] / row["ssim"]["noisy"][range_name]["mean"]
                         for name in variants if name != "noisy"}
            for range_name in ("paper_65535", "truth_range")
        }
        rows.append(row)
    settings = {"per_level": per_level, "iterations": iterations, "seed": seed, "offset": offset,
                "include_background": include_background, "psf_size": int(np.shape(psfs)[-1]),
                "data_ranges": {"paper_65535": PAPER_DATA_RANGE, "truth_range": "max - min of each in-focus patch"}}
    return {"levels": rows, "settings": settings}


# --------------------------------------------------------------------------------------------- images
def evaluate_whole_image(specimen: TiltedSpecimen, psfs, *, strides: Sequence[int] = (42, 21, 8),
                         iterations: int = 30, model=None, offset: float = 0.0, device: str | None = None,
                         keep_images: bool = False) -> dict:
    """Fig. 9 on a synthetic specimen with known levels: PSNR/SSIM and seam ratio of

    - observed (no restoration) and depth-invariant RL (level-0 PSF),
    - case (i): stride 84, rectangular weights, patch-wise; case (ii): stride 42, triangular, patch-wise,
    - fast (triangular) at every stride of ``strides``,

    with the true window levels, and again with the model's levels when ``model`` is given. Seam ratios are
    measured on the error image at case (i)'s window boundaries. Returns a JSON-ready dict (and the restored
    images under "images" when ``keep_images``).
    """
    from .deconv import deconvolve_invariant, deconvolve_levels
    from .predict import defocus_map

    truth, observed = specimen.truth, specimen.observed
    by = case_i_boundaries(truth.shape[0])
    bx = case_i_boundaries(truth.shape[1])
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
    invariant = deconvolve_invariant(observed, psfs[0], iterations=iterations, offset=offset, device=device)
    score("invariant_level0", invariant, time.perf_counter() - start)
    sources = [("true", None)]
    if model is not None:
        sources.append(("model", model))
    runs = [("case_i", 84, "rectangular", "patchwise"), ("case_ii", 42, "triangular", "patchwise")]
    runs += [(f"fast_s{s}", s, "triangular", "fast") for s in strides]
    for source, source_model in sources:
        for name, stride, weighting, method in runs:
            if source_model is None:
                grid = window_levels_from_pixels(specimen.levels, stride=stride)
                map_seconds = 0.0
            else:
                t0 = time.perf_counter()
                grid = defocus_map(observed, source_model, stride=stride).levels
                map_seconds = time.perf_counter() - t0
            start = time.perf_counter()
            out = deconvolve_levels(observed, grid, psfs, stride=stride, iterations=iterations, method=method,
                                    weighting=weighting, offset=offset, device=device)
            score(f"{name}_{source}", out, time.perf_counter() - start, stride=stride, weighting=weighting,
                  method=method, levels=source, map_seconds=round(map_seconds, 4))
    report = {"results": results, "settings": {"iterations": iterations, "offset": offset, "strides": list(strides),
                                               "psf_size": int(np.shape(psfs)[-1]), "shape": list(truth.shape)}}
    if keep_images:
        report["images"] = images
    return report


# --------------------------------------------------------------------------------------------- figures
def plot_patch_metrics(report: dict, path, *, ssim_range: str = "truth_range", overwrite: bool = False):
    """Fig. 8: (a) PSNR gain over the noisy patch (the same for any data range), (b) SSIM and the SSIM ratio
    (depth-variant / noisy) per level, with SSIM's data range ``ssim_range`` ("truth_range" by default: at
    65535 SSIM's stabilising constants dwarf 12-bit signals and every SSIM is about 1)."""
    from .plots import figure, save_figure

    rows = [r for r in report["levels"] if r.get("n")]
    levels = [r["level"] for r in rows]
    names = [n for n in ("variant_true", "variant_predicted", "invariant") if n in rows[0]["psnr_gain_db"]]
    labels = {"variant_true": "depth-variant (true level)", "variant_predicted": "depth-variant (predicted level)",
              "invariant": "depth-invariant (level-0 PSF)", "noisy": "noisy defocused"}
    colours = {"variant_true": "tab:blue", "variant_predicted": "tab:green", "invariant": "tab:red", "noisy": "grey"}
    fig, (a, b) = figure(1, 2, figsize=(11, 4))
    for name in names:
        gains = [np.nan if r["psnr_gain_db"][name] is None else r["psnr_gain_db"][name] for r in rows]
        a.plot(levels, gains, marker="o", label=labels[name], color=colours[name])
    a.axhline(0, color="grey", lw=0.8)
    a.set_xlabel("defocus level")
    a.set_ylabel("PSNR gain over noisy (dB)")
    a.set_title("(a) PSNR improvement", fontsize=10)
    a.legend(fontsize=8)
    for name in ["noisy"] + names:
        values = [r["ssim"][name][ssim_range]["mean"] for r in rows]
        b.plot(levels, values, marker="o", label=labels[name], color=colours[name])
    b.set_xlabel("defocus level")
    b.set_ylabel(f"SSIM (data range: {'65535' if ssim_range == 'paper_65535' else 'in-focus patch max - min'})")
    b.set_title("(b) SSIM; ratio = depth-variant (true level) / noisy", fontsize=10)
    twin = b.twinx()
    ratio = [r["ssim_ratio"][ssim_range]["variant_true"] for r in rows]
    twin.plot(levels, ratio, color="tab:orange", ls="--", marker="s", label="SSIM ratio (true level)")
    for x, y in zip(levels, ratio):
        twin.annotate(f"{100 * (y - 1):+.1f}%", (x, y), fontsize=7, color="tab:orange", ha="center",
                      xytext=(0, 5), textcoords="offset points")
    twin.set_ylabel("SSIM ratio", color="tab:orange")
    b.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path, overwrite=overwrite)


def plot_whole_image(report: dict, path, *, names: Sequence[str] = ("truth", "observed", "case_i_true",
                                                                      "case_ii_true", "fast_s8_true"), crop=None,
                     overwrite: bool = False):
    """Fig. 9: crops of the truth and of restorations (from a report made with ``keep_images=True``), titled
    with PSNR (truth range) and the seam ratio."""
    from .plots import figure, save_figure

    images = report["images"]
    names = [n for n in names if n in images]
    by_name = {r["name"]: r for r in report["results"]}
    first = images[names[0]]
    crop = crop or (slice(0, min(260, first.shape[0])), slice(0, min(260, first.shape[1])))
    reference = np.concatenate([images[n][crop].ravel() for n in names])
    lo, hi = np.percentile(reference, [0.5, 99.8])
    fig, axes = figure(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.imshow(np.clip((images[name][crop] - lo) / (hi - lo), 0, 1), cmap="gray", interpolation="nearest")
        r = by_name.get(name)
        ax.set_title(name if r is None else
                     f"{name}\nPSNR {r['psnr_truth_range']:.2f} dB, seam {r['seam_ratio_error']:.2f}", fontsize=8)
        ax.set_axis_off()
    return save_figure(fig, path, overwrite=overwrite)
