"""Restoration per level band of a tilted specimen (issue 12's table): the PSNR change of every band of columns
that share one true level, against the recorded image, for what the model gives with the library defaults, for
the paper's one count, and for the ceiling (true levels, the best count of every level).

The ceiling uses that AWDVD (fast) is linear in the levels' restorations: with the window levels fixed,
``out = observed + sum_l T_l`` where T_l is what level l's RLs add (the blend weights of level l times its
restoration minus the observation, over the summed weights). So every candidate count of every level is run
once, with the other levels left as they are, and the best count of each level is found by coordinate ascent
over the summed band gains (two sweeps), as :func:`awdvd.restore.calibration_tuning.tune_on_tilted` does on
procedural specimens.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from .._checks import check_positive_int
from .._provenance import git_state
from ..data.synth import CameraNoise, tilted_specimen
from ..io import atomic_path, write_json
from ..learn.range_extension import near_optics
from ..metrics import band_gains
from ..physics.psf import psf_bank
from ..restore.blend import deconvolve_levels
from ..restore.options import AWDVDOptions, options_with
from ..restore.pipeline import restore_image, rl_schedule
from ..restore.plan import RestorationPlan
from ..restore.rl import resolve_offset
from ..restore.rl_schedule import RLSchedule
from ..restore.windows import DefocusMap, window_levels_from_pixels

__all__ = [ "ceiling", "evaluate_bands", "PLAIN_COUNTS", "ACCELERATED_COUNTS", "FLOORS"]

#: candidate counts of the ceiling search, per variant
PLAIN_COUNTS = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150)
ACCELERATED_COUNTS = (0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50)
#: issue 12's floors: no band loses more than this (dB); whole-image gain at least this share of the ceiling's
FLOORS = {"band_loss_db": -0.3, "ceiling_share": 0.9}


def _true_map(specimen, stride: int, patch_px: int, n_levels: int):
    grid = window_levels_from_pixels(specimen.levels, stride=stride, patch_px=patch_px)
    return DefocusMap.from_levels(grid, specimen.observed.shape, stride=stride, patch_px=patch_px, n_levels=n_levels)


def ceiling(specimen, psfs, *, variant: str = "plain", counts: Sequence[int] | None = None, stride: int = 42,
            patch_px: int = 84, offset="auto", tv_weight: float = 0.0, device: str = "cpu") -> dict:
    """The true-level ceiling of a tilted specimen: AWDVD (fast, triangular, ``stride``) with the true window
    levels and the best count of every level among ``counts`` (default :data:`PLAIN_COUNTS`, or
    :data:`ACCELERATED_COUNTS` for "accelerated"), chosen by coordinate ascent over the summed band gains
    (module docstring). Returns {"variant", "counts": [...], "band_gain_db", "whole_gain_db", "seconds"}."""

    start = time.perf_counter()
    counts = tuple(counts if counts is not None else (ACCELERATED_COUNTS if variant == "accelerated" else PLAIN_COUNTS))
    n_levels = len(psfs)
    dmap = _true_map(specimen, stride, patch_px, n_levels)
    value = resolve_offset(offset, specimen.observed)
    raw = specimen.observed.astype(np.float64)
    present = sorted(int(v) for v in np.unique(dmap.levels) if v >= 0)
    terms = {}
    for level in present:
        for count in counts:
            if count == 0:
                terms[level, count] = 0.0
                continue
            iterations = [0] * n_levels
            iterations[level] = count
            plan = RLSchedule(iterations=tuple(iterations), variant=variant, tv_weight=tv_weight)
            out = deconvolve_levels(specimen.observed, dmap, psfs, RestorationPlan(
                iterations=plan, method="fast", weighting="triangular", level_blend="argmax", offset=value, halo_px=None,
                device=device))
            terms[level, count] = out.astype(np.float64) - raw

    def total(choice):
        restored = specimen.observed + sum(terms[level, choice[level]] for level in present)
        gains, whole = band_gains(specimen, restored)
        return float(np.sum(gains)), gains, whole

    choice = {level: counts[0] for level in present}
    for _ in range(2):
        for level in present:
            choice[level] = max(counts, key=lambda c: (total({**choice, level: c})[0], -c))
    _, gains, whole = total(choice)
    return {"variant": variant, "counts": [choice.get(level, 0) for level in range(n_levels)],
            "band_gain_db": gains, "whole_gain_db": whole, "seconds": round(time.perf_counter() - start, 2)}


def evaluate_bands(specimen, psfs, model, *, options=None, stride: int = 42, ceilings: Sequence[str] = ("plain",),
                   device: str = "cpu", timing_repeats: int = 3) -> dict:
    """Issue 12's table for one tilted specimen: band gains and whole-image gain of

    - ``model_defaults``: ``model``'s levels, ``options`` (default: the library defaults) at ``stride``;
    - ``model_paper``: the model's levels, 30 plain RL iterations for every level, argmax levels (the paper's,
      and awdvd's before the calibrated schedule);
    - ``true_defaults`` and ``true_paper``: the same with the true window levels;
    - ``ceiling_<variant>`` for every variant of ``ceilings``: :func:`ceiling`.

    with the seconds of each whole restoration (map included for the model's): the median of
    ``timing_repeats`` runs, the four rows' runs interleaved (one run each is a fraction of a second, and the
    first of a process pays for its FFT plans). Returns a JSON-ready dict."""

    options = options_with(options, {"stride": stride, "device": device})
    paper = options.replace(iterations=30, rl="plain", level_blend="argmax")
    true_map = _true_map(specimen, options.stride, int(model.patch_px), len(psfs))
    rows, results, seconds = {}, {}, {}
    runs = (("model_defaults", options, None, model), ("model_paper", paper, None, model),
            ("true_defaults", options, true_map, model), ("true_paper", paper, true_map, model))
    for _ in range(check_positive_int(timing_repeats, "timing_repeats")):  # interleaved: drifts hit every row alike
        for name, run, dmap, source in runs:
            start = time.perf_counter()
            results[name] = restore_image(specimen.observed, source, run, dmap=dmap, psfs=psfs)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
    for name, result in results.items():
        gains, whole = band_gains(specimen, result.image)
        rows[name] = {"band_gain_db": gains, "whole_gain_db": whole, "seconds": round(float(np.median(seconds[name])), 3),
                      "seconds_each": [round(v, 3) for v in seconds[name]], "timings_s": result.timings_s,
                      **result.schedule.describe()}
    for variant in ceilings:
        rows[f"ceiling_{variant}"] = ceiling(specimen, psfs, variant=variant, stride=options.stride,
                                             patch_px=int(model.patch_px), offset=options.offset, device=device)
    return {"rows": rows, "options": AWDVDOptions.to_dict(options)}


# --------------------------------------------------------------------------------------------- report
ROW_TITLES = {
    "model_defaults": "bundled model, library defaults",
    "model_paper": "bundled model, 30 iterations (paper)",
    "true_defaults": "true levels, library defaults",
    "true_paper": "true levels, 30 iterations",
    "ceiling_plain": "ceiling: true levels, best count per level (plain RL)",
    "ceiling_accelerated": "ceiling: true levels, best count per level (accelerated RL)",
}


def summarize(fields: list[dict]) -> dict:
    """Means over the fields of every row's band and whole-image gains, and issue 12's floors checked on them."""
    names = list(fields[0]["rows"]) if fields else []
    mean = {}
    for name in names:
        rows = [f["rows"][name] for f in fields]
        mean[name] = {"band_gain_db": np.mean([r["band_gain_db"] for r in rows], axis=0).tolist(),
                      "whole_gain_db": float(np.mean([r["whole_gain_db"] for r in rows])),
                      "seconds": float(np.mean([r["seconds"] for r in rows]))}
    floors = {}
    if "model_defaults" in mean:
        worst = min(mean["model_defaults"]["band_gain_db"])
        ceilings = {k: v["whole_gain_db"] for k, v in mean.items() if k.startswith("ceiling_")}
        share = {k: mean["model_defaults"]["whole_gain_db"] / v for k, v in ceilings.items() if v > 0}
        floors = {"worst_band_gain_db": worst, "bands_pass": worst >= FLOORS["band_loss_db"],
                  "worst_band_any_field_db": min(min(f["rows"]["model_defaults"]["band_gain_db"]) for f in fields),
                  "ceiling_share": share,
                  "ceiling_pass": {k: v >= FLOORS["ceiling_share"] for k, v in share.items()}}
        if "model_paper" in mean:
            floors["time_ratio_defaults_over_paper"] = mean["model_defaults"]["seconds"] / mean["model_paper"]["seconds"]
    return {"mean": mean, "floors": floors}


def _fmt(value, digits=2, sign=True):
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def render_markdown(report: dict, patches: dict | None = None) -> str:
    """The restoration report (Markdown) of :func:`write_band_report`'s results (and a Fig. 8 patch report)."""
    s = report["settings"]
    summary = report["summary"]
    n_bands = len(next(iter(summary["mean"].values()))["band_gain_db"]) if summary["mean"] else 0
    lines = ["# Restoration per level band and per level (issue 12)", "",
             f"Made by `{s['command']}` ({s['date']}, awdvd {s['awdvd_version']}, git {s['git']}).", "",
             f"- model: {s['model']}", f"- schedule: {s['schedule']}",
             f"- specimens: a tilted specimen (levels 0 to {n_bands - 1} in equal bands from left to right, "
             f"awdvd.data.synth.tilted_specimen, seeds {s['seeds']}) from each of {len(report['fields'])} "
             f"in-focus fields ({', '.join(f['image'] for f in report['fields'])}); camera {s['camera']}",
             f"- options: {s['options']}", "",
             "## PSNR change per level band against the recorded image (dB, mean over the fields)", "",
             "| level band | " + " | ".join(str(b) for b in range(n_bands)) + " | whole | s |",
             "| --- |" + " --- |" * (n_bands + 2)]
    for name, row in summary["mean"].items():
        counts = ""
        first = report["fields"][0]["rows"][name]
        if name.startswith("ceiling_"):
            counts = " (counts of the first field: " + ", ".join(map(str, first["counts"])) + ")"
        lines.append(f"| {ROW_TITLES.get(name, name)}{counts} | " + " | ".join(_fmt(v) for v in row["band_gain_db"])
                     + f" | {_fmt(row['whole_gain_db'])} | {row['seconds']:.1f} |")
    f = summary["floors"]
    if f:
        lines += ["", "## Floors (issue 12)", "",
                  f"- no level band loses more than {abs(FLOORS['band_loss_db'])} dB (mean over fields): worst band "
                  f"{_fmt(f['worst_band_gain_db'])} dB: **{'pass' if f['bands_pass'] else 'FAIL'}** (worst band of any "
                  f"single field {_fmt(f['worst_band_any_field_db'])} dB)"]
        for name, share in f["ceiling_share"].items():
            lines.append(f"- whole-image gain >= {FLOORS['ceiling_share']:.0%} of {ROW_TITLES.get(name, name)}: "
                         f"{share:.0%}: **{'pass' if f['ceiling_pass'][name] else 'FAIL'}**")
        if "time_ratio_defaults_over_paper" in f:
            ratio = f["time_ratio_defaults_over_paper"]
            lines.append(f"- time, library defaults / 30 iterations (map included, median of interleaved runs per field): {ratio:.2f}: "
                         f"**{'pass' if ratio <= 1.0 else 'FAIL'}**")
    lines += ["", "## Whole-image gain per field (dB)", "", "| field | " + " | ".join(
        ROW_TITLES.get(n, n) for n in summary["mean"]) + " |", "| --- |" + " --- |" * len(summary["mean"])]
    for field in report["fields"]:
        lines.append(f"| {field['image']} | " + " | ".join(_fmt(field["rows"][n]["whole_gain_db"])
                                                          for n in summary["mean"]) + " |")
    if patches is not None:
        lines += _fig8_lines(patches)
    return "\n".join(lines) + "\n"


def _fig8_lines(patches: dict) -> list[str]:
    rows = [r for r in patches["levels"] if r.get("n")]
    lines = ["", "## Fig. 8: PSNR gain and SSIM ratio per level on dataset patches", "",
             f"Up to {patches['settings']['per_level']} non-background patches per level of "
             f"{patches['settings'].get('dataset', 'the test split')}, each restored on its "
             f"own with the library defaults (schedule: {patches['settings']['schedule']['rl']} RL, iterations "
             f"{patches['settings']['schedule']['iterations']}; level blend {patches['settings'].get('level_blend')}). "
             "Gains over the noisy patch at data range 65535 (with predicted levels: +/- the 95% interval of the mean "
             "per-patch gain, which says how far a level's few patches decide it); SSIM at each in-focus patch's "
             "range. The paper: "
             "depth-variant gain 0.3 to 6.6 dB at every level, SSIM ratio up to +11%.", "",
             "| level | n | gain, predicted levels (dB) | gain, true level (dB) | gain, depth-invariant (dB) | "
             "SSIM ratio, predicted | SSIM ratio, true |", "| --- | --- | --- | --- | --- | --- | --- |"]
    failing = []
    for r in rows:
        gain = r["psnr_gain_db"]
        ratio = r["ssim_ratio"]["truth_range"]
        ci = r.get("psnr_gain_ci95_db", {}).get("variant_predicted")
        predicted = _fmt(gain.get("variant_predicted")) + (f" +/- {ci:.2f}" if ci is not None else "")
        lines.append(f"| {r['level']} | {r['n']} | {predicted} | "
                     f"{_fmt(gain.get('variant_true'))} | {_fmt(gain.get('invariant'))} | "
                     f"{_fmt(ratio.get('variant_predicted'), 3, False)} | {_fmt(ratio.get('variant_true'), 3, False)} |")
        if r["level"] >= 1 and (gain.get("variant_predicted") is None or gain["variant_predicted"] < 0.3):
            failing.append(r["level"])
    lines += ["", f"Floor: depth-variant gain >= +0.3 dB at every level 1-10 with predicted levels: "
                  f"**{'pass' if not failing else 'FAIL at levels ' + ', '.join(map(str, failing))}**"]
    return lines


def write_band_report(output, *, images, names, model, model_source: str, options=None, seed: int = 0,
                      ceilings: Sequence[str] = ("plain", "accelerated"), patches: dict | None = None,
                      command: str = "", overwrite: bool = False, device: str = "cpu") -> list:
    """``bands.json`` and ``REPORT.md`` in the folder ``output``: :func:`evaluate_bands` on a tilted specimen of
    every in-focus image (seeds ``seed``, ``seed + 1``, ...), their means and issue 12's floors, and, given a
    :func:`awdvd.validate.restoration.evaluate_patches` report, the Fig. 8 table. Returns the paths written."""

    output = Path(output)
    targets = [output / "bands.json", output / "REPORT.md"]
    for target in targets:
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another -o folder or pass --overwrite")
    options = options_with(options, {})
    psfs = psf_bank(model.optics, size=options.psf_size)
    camera = CameraNoise()
    fields = []
    for index, (image, name) in enumerate(zip(images, names)):
        specimen = tilted_specimen(image, optics=near_optics(model), noise=camera, psf_size=options.psf_size,
                                   seed=seed + index)  # over the range the model reads level by level
        fields.append({"image": name, **evaluate_bands(specimen, psfs, model, options=options,
                                                        ceilings=ceilings, device=device)})
    try:
        git = (git_state().get("commit") or "unknown")[:12]
    except Exception:  # a report without the commit is still a report
        git = "unknown"
    report = {"fields": fields, "summary": summarize(fields), "settings": {
        "command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "awdvd_version": __version__, "git": git, "model": model_source,
        "schedule": rl_schedule(options, model).describe(), "seeds": [seed + i for i in range(len(fields))],
        "camera": camera.to_dict(), "options": options.to_dict()}}

    write_json(targets[0], json_ready(report), overwrite=overwrite)
    with atomic_path(targets[1], overwrite=overwrite) as tmp:
        Path(tmp).write_text(render_markdown(report, patches))
    return targets


def json_ready(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists (JSON's types)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
