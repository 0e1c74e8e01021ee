"""The restoration items of the reproduction: Fig. 7-9, each a function of the
:class:`~awdvd.reproduce.experiments.Reproduction` whose main model is ready (``job``), returning its part of
results.json and writing its figure."""

from __future__ import annotations

import math

import numpy as np

from ..data.synth import blur, forward_bank, tilted_specimen
from ..metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range
from ..plots import plot_patch_metrics
from ..restore.rl import richardson_lucy
from ..validate.restoration import evaluate_patches, evaluate_whole_image
from . import figures
from .paper import FIGURES, PAPER

__all__ = ["fig7", "fig8", "fig9"]


def fig7(job) -> dict:
    """Fig. 7: one test patch (the paper's: true and predicted level 4, with structure), deconvolved with the
    PSF of its predicted level and with the level-0 PSF, with PSNR and SSIM against its in-focus patch."""
    test, main = job.splits["test"], job.runs["main"].model
    predicted = np.asarray(main.predict_patches(test.raw)) if len(test) else np.zeros(0, np.int64)
    # the paper's patch: true and predicted level 4, with structure; fall back step by step
    target = min(PAPER["fig7"]["predicted_level"], job.optics.n_levels - 1)
    signal = test.truth.std(axis=(1, 2))
    foreground = ~test.background
    for mask in (foreground & (test.level == target) & (predicted == target), foreground & (test.level == target),
                 foreground & (test.level > 0), foreground, np.ones(len(test), bool)):
        if mask.any():
            break
    index = int(np.flatnonzero(mask)[np.argmax(signal[mask])])
    level, level_predicted = int(test.level[index]), int(predicted[index])
    source, (y, x) = int(test.source[index]), test.yx[index]
    p = test.raw.shape[1]
    offset = job.noise.offset_adu
    clean = blur(np.asarray(job.images[source], dtype=np.float64),
                 forward_bank(job.optics, size=job.metadata["psf_size"])[level])[y : y + p, x : x + p]
    raw, truth = test.raw[index], test.truth[index]
    it = job.scale.iterations
    variant = raw if level_predicted < 0 else richardson_lucy(raw, job.psfs[level_predicted], iterations=it,
                                                              offset=offset, device=job.device)
    invariant = richardson_lucy(raw, job.psfs[0], iterations=it, offset=offset, device=job.device)
    panels = {"in_focus": truth, "defocused": clean, "noisy": raw, "variant": variant, "invariant": invariant}
    metrics = {}
    for name, image in panels.items():
        metrics[name] = {"psnr_65535": psnr(truth, image, data_range=PAPER_DATA_RANGE),
                         "psnr_truth_range": psnr(truth, image, data_range=truth_data_range(truth)),
                         "ssim_65535": ssim(truth, image, data_range=PAPER_DATA_RANGE),
                         "ssim_truth_range": ssim(truth, image, data_range=truth_data_range(truth))}
    row = int(np.argmax(truth.mean(axis=1)))
    figures.plot_fig7(panels, metrics, row, job.folder / FIGURES["fig7"], level=level, predicted=level_predicted)
    return {"paper": PAPER["fig7"],
            "awdvd": {"metrics": metrics, "true_level": level, "predicted_level": level_predicted,
                      "source": job.names[source], "yx": [int(y), int(x)], "profile_row": row,
                      "iterations": it, "offset_adu": offset},
            "figure": FIGURES["fig7"], "model": "main"}


def fig8(job) -> dict:
    """Fig. 8: PSNR gain and SSIM per defocus level over up to ``scale.per_level`` test patches per level."""
    report = evaluate_patches(job.splits["test"], job.psfs, model=job.runs["main"].model,
                              per_level=job.scale.per_level, iterations=job.scale.iterations, seed=job.scale.seed,
                              offset=job.noise.offset_adu, device=job.device)
    rows = [r for r in report["levels"] if r.get("n")]
    if rows:
        plot_patch_metrics(report, job.folder / FIGURES["fig8"])
    else:
        figures.placeholder_figure(job.folder / FIGURES["fig8"], "Fig. 8: no non-background test patches at any level")

    def span(values):
        values = [v for v in values if v is not None and math.isfinite(v)]
        return [min(values), max(values)] if values else None

    summary = {}
    for name in ("variant_predicted", "variant_true", "invariant"):
        summary[name] = {
            "psnr_gain_db": span([r["psnr_gain_db"].get(name) for r in rows]),
            "ssim_truth_range": span([r["ssim"][name]["truth_range"]["mean"] for r in rows]),
            "ssim_ratio_gain_percent": span([100 * (r["ssim_ratio"]["truth_range"][name] - 1) for r in rows
                                             if r["ssim_ratio"]["truth_range"][name] is not None]),
        }
    summary["noisy"] = {"ssim_truth_range": span([r["ssim"]["noisy"]["truth_range"]["mean"] for r in rows])}
    per_level = [{"level": r["level"], "n": r["n"], "psnr_gain_db": r["psnr_gain_db"],
                  "ssim_truth_range": {k: v["truth_range"]["mean"] for k, v in r["ssim"].items()},
                  "ssim_ratio_truth_range": r["ssim_ratio"]["truth_range"],
                  "predicted_levels": r.get("predicted_levels")} for r in report["levels"] if r.get("n")]
    return {"paper": PAPER["fig8"], "awdvd": {"summary": summary, "per_level": per_level,
                                              "settings": report["settings"], "levels": report["levels"]},
            "figure": FIGURES["fig8"], "model": "main"}


def fig9(job) -> dict:
    """Fig. 9: a whole tilted specimen restored by AWDVD, case (i) (stride 84, rectangular) against case (ii)
    (stride 42, triangular) and the scale's other strides, with the main DelpNet's levels and the true ones."""
    specimen = tilted_specimen(job.images[0], optics=job.optics, noise=job.noise,
                               psf_size=job.metadata["psf_size"], seed=job.scale.seed)
    report = evaluate_whole_image(specimen, job.psfs, strides=job.scale.strides, iterations=job.scale.iterations,
                                  model=job.runs["main"].model, offset=job.noise.offset_adu, device=job.device,
                                  keep_images=True)
    images = report.pop("images")
    by_name = {r["name"]: r for r in report["results"]}
    box = figures.plot_fig9(images, by_name, job.folder / FIGURES["fig9"])
    return {"paper": PAPER["fig9"], "awdvd": {"results": report["results"], "settings": report["settings"],
                                              "source": job.names[0], "zoom_box_yx_hw": box},
            "figure": FIGURES["fig9"], "model": "main"}
