"""Markdown tables of awdvd's measurements, rendered from the committed result files, never typed by hand.

A documentation page asks for a table with a placeholder line of its own::

    <!-- table: restoration-bands -->

and :func:`render_tables` (called by the mkdocs page hook under ``docs/hooks/``) replaces each such line with the table,
followed by one line that names the file it came from and the command that made that file. The files are
``benchmarks/results/*.json`` (written by the benchmark scripts and ``awdvd evaluate-*``) and
``docs/report/results.json`` (written by ``awdvd reproduce``). An unknown placeholder is an error.

    python docs/gen_tables.py docs/benchmarks.md     # print the page with its tables filled in
    python docs/gen_tables.py --list                 # the placeholder names

Pure standard library (no awdvd, no torch), so the docs build needs nothing else.
"""

# no `from __future__ import annotations`: the dataclass below then needs no sys.modules entry, so the hook
# may load this file with importlib.util.spec_from_file_location as it is
import json
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
REPORT = "docs/report/results.json"
PLACEHOLDER = re.compile(r"^\s*<!--\s*table:\s*(?P<name>[A-Za-z0-9_.-]+)\s*-->\s*$")

# Commands of result files that do not record their own (taken from the scripts' docstrings and the records'
# commit messages). A file with a "command" key is described by that key instead.
COMMANDS = {
    "blend_threshold.json": ".venv/bin/python benchmarks/bench_blend_threshold.py --repeats 3",
    "map_speed.json": "PYTHONPATH=src python benchmarks/bench_map_speed.py --rounds 5",
    "foundation.json": ".venv/bin/python benchmarks/bench_foundation.py --out benchmarks/results/foundation.json",
    "real_data.json": "PYTHONPATH=src python benchmarks/real_data_checks.py --model MODEL "
                      "-o benchmarks/results/real_data.json",
    "restoration_fig8_patches.json": "awdvd evaluate-restoration -o OUT --dataset dsR8 --model MODEL (test split)",
    "restoration_fig8_val_patches.json": "awdvd evaluate-restoration -o OUT --dataset dsR8 --model MODEL --split val",
    "robustness_folds.json": "python benchmarks/bench_robustness.py --folds a07,a04,a02 --work-dir FOLDS_FT "
                             "--init-dir FOLDS --recipe-json '{\"lr\": 0.001}' --seed 1 --unseen-cameras "
                             "-o benchmarks/results/robustness_folds.json",
    "robustness_ordinal_a07.json": "python benchmarks/bench_robustness.py --folds a07 --work-dir WORK "
                                   "--recipe-json '{\"loss\": \"ordinal\"}' -o robustness_ordinal_a07.json "
                                   "(reconstructed: the file records its recipe, not its command)",
    "robustness_levers_a07.json": "each run's command is in the file (runs.NAME.command)",
    "delpnet_eval_paper_split.json": "awdvd evaluate MODEL dsR8 -o eval",
    "delpnet_eval_strict_split.json": "awdvd evaluate MODEL dsR8src -o eval (dataset made with --split-by source)",
    "results.json": "awdvd reproduce --scale cpu -o docs/report",
}

CAMERA_ORDER = ("bbbc006", "paper-eq1", "gain1-offset96", "dim-high-gain", "noiseless")
BAND_ROWS = {
    "model_defaults": "bundled model, library defaults",
    "model_paper": "bundled model, 30 iterations (the paper's)",
    "true_defaults": "true levels, library defaults",
    "true_paper": "true levels, 30 iterations",
    "ceiling_plain": "ceiling: true levels, best count per level (plain RL)",
    "ceiling_accelerated": "ceiling: true levels, best count per level (accelerated RL)",
}
ARCHITECTURES = {"vgg16": "VGG16", "inception_v3": "Inception_v3", "resnet18": "ResNet18",
                 "mobilenet_v2": "MobileNet_v2", "delpnet": "DelpNet"}


@dataclass(frozen=True)
class Table:
    """One Markdown table: a header, rows of cells, and where its numbers come from."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    sources: tuple[str, ...]
    commands: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"row {row} has {len(row)} cells for {len(self.header)} columns")

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "| " + " | ".join("---" for _ in self.header) + " |"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows]
        source = ", ".join(f"`{s}`" for s in self.sources)
        commands = "; ".join(f"`{c}`" for c in dict.fromkeys(self.commands))
        lines += ["", f"_Generated from {source}" + (f"; made by {commands}" if commands else "") + "._"]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- formatting


def f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def f2(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def f1(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def db(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def ratio(x) -> str:
    return f"{x:.2f}x"


def span(values, fmt=f3) -> str:
    """'low-high' of a set of values (one value when they agree to the format)."""
    low, high = fmt(min(values)), fmt(max(values))
    return low if low == high else f"{low}-{high}"


def weakest(per_level: dict, n: int = 3) -> str:
    """The n levels with the lowest top-1, in level order on ties."""
    worst = sorted(per_level.items(), key=lambda kv: kv[1])[:n]
    return ", ".join(f"{level}: {value:.2f}" for level, value in worst)


def camera_label(name: str, camera: dict) -> str:
    """A camera model in words, from its recorded settings."""
    if camera.get("noiseless"):
        return f"{name} (no added noise)"
    parts = [f"gain {camera['gain_adu_per_e']:g}", f"offset {camera['offset_adu']:g}"]
    if camera.get("pedestal_adu"):
        parts.append(f"pedestal {camera['pedestal_adu']:g}")
    if camera.get("read_noise_adu"):
        parts.append(f"read {camera['read_noise_adu']:g}")
    if camera.get("intensity_scale", 1.0) != 1.0:
        parts.append(f"light x {camera['intensity_scale']:g}")
    return f"{name} ({', '.join(parts)})"


def camera_range(cameras: dict) -> str:
    """A training stream's camera range in words."""
    def rng(key):
        low, high = cameras[key]
        return f"{low:g}" if low == high else f"{low:g}-{high:g}"
    return (f"gain {rng('gain_adu_per_e')}, offset {rng('offset_adu')}, read {rng('read_noise_adu')}, "
            f"light x {rng('intensity_scale')}, noiseless {100 * cameras['noiseless_probability']:g}%")


# ---------------------------------------------------------------------------------------------- loading


@cache
def _load(root: Path, relative: str) -> dict:
    return json.loads((root / relative).read_text())


def result(root: Path, name: str) -> dict:
    return _load(root, f"{RESULTS}/{name}")


def report(root: Path) -> dict:
    return _load(root, REPORT)


def command_of(root: Path, relative: str) -> str:
    record = _load(root, relative)
    return record.get("command") or record.get("settings", {}).get("command") or COMMANDS[Path(relative).name]


def _table(root: Path, header, rows, files: list[str]) -> Table:
    return Table(tuple(header), tuple(tuple(r) for r in rows), tuple(files),
                 tuple(command_of(root, f) for f in files))


# ---------------------------------------------------------------------------------------------- robustness

FOLDS = f"{RESULTS}/robustness_folds.json"


def _folds(root: Path) -> dict:
    return result(root, "robustness_folds.json")["folds"]


def _camera_settings(fold: dict, part: str = "fields") -> dict:
    return fold[part]["settings"]["cameras"]


def robustness_fields(root: Path) -> Table:
    rows = []
    for name, fold in _folds(root).items():
        cams = fold["fields"]["cameras"]
        for cam in CAMERA_ORDER:
            c = cams[cam]
            rows.append([name, camera_label(cam, _camera_settings(fold)[cam]), f3(c["top1"]), f3(c["within1"]),
                         f2(c["mean_abs_error"]), pct(c["background_calls"]), weakest(c["per_level_top1"])])
    return _table(root, ["held-out field", "camera", "top-1", "within +/-1", "mean abs error", "bg calls",
                         "weakest levels"], rows, [FOLDS])


def robustness_fold_means(root: Path) -> Table:
    folds = _folds(root)
    header = ["held-out field", *CAMERA_ORDER, "real in-focus field called 0-1"]
    rows = []
    for name, fold in folds.items():
        cams = fold["fields"]["cameras"]
        rows.append([name, *(f"{f3(cams[c]['top1'])} / {f3(cams[c]['within1'])}" for c in CAMERA_ORDER),
                     f2(fold["real_in_focus"]["fraction_expected"])])
    means = [f"{f3(statistics.fmean(f['fields']['cameras'][c]['top1'] for f in folds.values()))} / "
             f"{f3(statistics.fmean(f['fields']['cameras'][c]['within1'] for f in folds.values()))}"
             for c in CAMERA_ORDER]
    rows.append(["mean", *means, ""])
    return _table(root, header, rows, [FOLDS])


def robustness_procedural(root: Path) -> Table:
    rows = []
    for name, fold in _folds(root).items():
        cams = fold["procedural"]["cameras"]
        for cam in CAMERA_ORDER:
            c = cams[cam]
            rows.append([name, cam, f3(c["top1"]), f3(c["within1"]), f2(c["mean_abs_error"]),
                         weakest(c["per_level_top1"])])
    return _table(root, ["fold model", "camera", "top-1", "within +/-1", "mean abs error", "weakest levels"], rows,
                  [FOLDS])


def robustness_unseen_cameras(root: Path) -> Table:
    folds = _folds(root)
    cams = list(next(iter(folds.values()))["fields_unseen_cameras"]["cameras"])
    settings = next(iter(folds.values()))["fields_unseen_cameras"]["settings"]["cameras"]
    header = ["held-out field", *(camera_label(c, settings[c]) for c in cams)]
    rows = []
    for name, fold in folds.items():
        fields, proc = fold["fields_unseen_cameras"]["cameras"], fold["procedural_unseen_cameras"]["cameras"]
        rows.append([name, *(f"{f3(fields[c]['top1'])} / {f3(fields[c]['within1'])}; procedural "
                             f"{f3(proc[c]['top1'])} / {f3(proc[c]['within1'])}" for c in cams)])
    return _table(root, header, rows, [FOLDS])


def robustness_maps(root: Path) -> Table:
    rows = []
    for name, fold in _folds(root).items():
        for cam in CAMERA_ORDER:
            m = fold["maps"]["cameras"][cam]["mean"]
            rows.append([name, cam, f3(m["exact"]), f3(m["within1"]), pct(m.get("background_calls")),
                         f2(m.get("psnr_recorded")), f2(m.get("psnr_awdvd_model_map")),
                         f2(m.get("psnr_awdvd_true_levels"))])
    return _table(root, ["held-out field", "camera", "window levels exact", "within +/-1", "bg calls",
                         "PSNR recorded (dB)", "AWDVD, model's map (dB)", "AWDVD, true levels (dB)"], rows, [FOLDS])


def robustness_real_in_focus(root: Path) -> Table:
    rows = []
    for name, fold in _folds(root).items():
        paper, cells = fold["real_in_focus"], fold["real_in_focus_cells"]
        rows.append([name, str(paper["n_tiles"]), f"{f3(paper['fraction_expected'])} of {paper['n_foreground']}",
                     f"{f3(cells['fraction_expected'])} of {cells['n_foreground']}",
                     str(paper["histogram"]["bg"])])
    return _table(root, ["held-out field", "tiles", "called 0-1, paper's 230/30 rule", "called 0-1, cells rule",
                         "called bg (paper's rule)"], rows, [FOLDS])


def _bundled_models(root: Path) -> dict:
    return result(root, "robustness_bundled.json")["models"]


def robustness_bundled(root: Path) -> Table:
    rows = []
    for name, model in _bundled_models(root).items():
        for part, proc_part in (("fields", "procedural"), ("fields_unseen_cameras", "procedural_unseen_cameras")):
            settings = model[part]["settings"]["cameras"]
            for cam, c in model[part]["cameras"].items():
                p = model[proc_part]["cameras"][cam]
                rows.append([name, camera_label(cam, settings[cam]) + (" (outside the training range)"
                                                                        if part != "fields" else ""),
                             f"{f3(c['top1'])} / {f3(c['within1'])}", weakest(c["per_level_top1"]),
                             f"{f3(p['top1'])} / {f3(p['within1'])}"])
    return _table(root, ["model", "camera", "a07: top-1 / within +/-1", "weakest levels",
                         "procedural: top-1 / within +/-1"], rows, [f"{RESULTS}/robustness_bundled.json"])


def robustness_bundled_maps(root: Path) -> Table:
    rows = []
    for name, model in _bundled_models(root).items():
        m = model["maps"]["cameras"]["bbbc006"]["mean"]
        paper, cells = model["real_in_focus"], model["real_in_focus_cells"]
        rows.append([name, f"{f3(m['exact'])} / {f3(m['within1'])}", f2(m["psnr_recorded"]),
                     f2(m["psnr_awdvd_model_map"]), f2(m["psnr_awdvd_true_levels"]),
                     f"{f3(paper['fraction_expected'])} of {paper['n_foreground']}",
                     f"{f3(cells['fraction_expected'])} of {cells['n_foreground']}"])
    return _table(root, ["model", "tilted a07 map: exact / within +/-1", "PSNR recorded (dB)",
                         "AWDVD, model's map (dB)", "AWDVD, true levels (dB)", "real a07 called 0-1, paper's rule",
                         "cells rule"], rows, [f"{RESULTS}/robustness_bundled.json"])


# ---------------------------------------------------------------------------------------------- levers


def levers_a07(root: Path) -> Table:
    levers = result(root, "robustness_levers_a07.json")
    base = _folds(root)["a07"]
    ordinal = result(root, "robustness_ordinal_a07.json")["folds"]["a07"]
    header = ["run (fold a07)", "training cameras", "steps, lr", *CAMERA_ORDER, "mean of the 5",
              "gain8-dim (unseen)", "real a07 called 0-1 (paper / cells rule)", "paper split test", "training wall s"]

    def row(label, fold, paper_split=None):
        cams = fold["fields"]["cameras"]
        unseen = fold.get("fields_unseen_cameras", {}).get("cameras", {}).get("gain8-dim")
        recipe = fold["recipe"]
        return [label, camera_range(recipe["cameras"]), f"{recipe['steps']}, {recipe['lr']:g}",
                *(f3(cams[c]["top1"]) for c in CAMERA_ORDER),
                f3(statistics.fmean(cams[c]["top1"] for c in CAMERA_ORDER)),
                f3(unseen["top1"]) if unseen else "-",
                (f"{f2(fold['real_in_focus']['fraction_expected'])} / "
                f"{f3(fold.get('real_in_focus_cells', {}).get('fraction_expected'))}"),
                f3(paper_split["accuracy"]) if paper_split else "-", f"{fold['training_s']:.0f}"]

    rows = [row("bundled model (stage 2 from stage 1, loss ce)", base, levers["bundled_model_paper_split_test"]),
            row("ordinal-aware loss, from random weights", ordinal)]
    rows += [row(f"third stage from the bundled model: {name}", run["fold"], run["paper_split_test"])
             for name, run in levers["runs"].items()]
    return _table(root, header, rows, [FOLDS, f"{RESULTS}/robustness_ordinal_a07.json",
                                       f"{RESULTS}/robustness_levers_a07.json"])


# ---------------------------------------------------------------------------------------------- restoration


def restoration_bands(root: Path) -> Table:
    record = result(root, "restoration_bands.json")
    mean = record["summary"]["mean"]
    n_levels = len(mean["model_defaults"]["band_gain_db"])
    rows = [[label, *(db(g) for g in mean[key]["band_gain_db"]), db(mean[key]["whole_gain_db"]),
             f1(mean[key]["seconds"])] for key, label in BAND_ROWS.items() if key in mean]
    return Table(("level band", *map(str, range(n_levels)), "whole", "s"), tuple(map(tuple, rows)),
                 (f"{RESULTS}/restoration_bands.json",), (record["settings"]["command"],))


def restoration_bands_fields(root: Path) -> Table:
    record = result(root, "restoration_bands.json")
    keys = [k for k in BAND_ROWS if k in record["fields"][0]["rows"]]
    rows = [[f["image"], *(db(f["rows"][k]["whole_gain_db"]) for k in keys)] for f in record["fields"]]
    return Table(("field", *(BAND_ROWS[k] for k in keys)), tuple(map(tuple, rows)),
                 (f"{RESULTS}/restoration_bands.json",), (record["settings"]["command"],))


def restoration_floors(root: Path) -> Table:
    floors = result(root, "restoration_bands.json")["summary"]["floors"]
    mean = result(root, "restoration_bands.json")["summary"]["mean"]
    rows = [["worst level band, mean over the fields", db(floors["worst_band_gain_db"])],
            ["worst level band of any single field", db(floors["worst_band_any_field_db"])],
            ["whole image, library defaults", db(mean["model_defaults"]["whole_gain_db"])]]
    rows += [[f"share of the {BAND_ROWS[k]}", f"{100 * v:.0f}%"] for k, v in floors["ceiling_share"].items()]
    rows.append(["time, library defaults / 30 iterations (map included)",
                 ratio(floors["time_ratio_defaults_over_paper"])])
    return _table(root, ["measure", "value"], rows, [f"{RESULTS}/restoration_bands.json"])


def _fig8(root: Path, name: str) -> Table:
    record = result(root, name)
    rows = []
    for lv in record["levels"]:
        gain, ci, ssim = lv["psnr_gain_db"], lv["psnr_gain_ci95_db"], lv["ssim_ratio"]["truth_range"]
        predicted = "n/a" if gain["variant_predicted"] is None else \
            f"{db(gain['variant_predicted'])} +/- {ci['variant_predicted']:.2f}"
        rows.append([str(lv["level"]), str(lv["n"]), predicted, db(gain["variant_true"]), db(gain["invariant"]),
                     f3(ssim["variant_predicted"]), f3(ssim["variant_true"])])
    return _table(root, ["level", "n", "gain, predicted levels (dB, +/- 95% interval)", "gain, true level (dB)",
                         "gain, depth-invariant (dB)", "SSIM ratio, predicted", "SSIM ratio, true"], rows,
                  [f"{RESULTS}/{name}"])


def restoration_fig8_test(root: Path) -> Table:
    return _fig8(root, "restoration_fig8_patches.json")


def restoration_fig8_val(root: Path) -> Table:
    return _fig8(root, "restoration_fig8_val_patches.json")


def blend_threshold(root: Path) -> Table:
    record = result(root, "blend_threshold.json")
    n_levels = len(record["paper"]["band_gain_db"])
    rows = [["30 plain iterations, argmax levels (the paper's)" if key == "paper" else f"threshold {key}",
             *(db(g) for g in r["band_gain_db"]), db(r["whole_gain_db"]), ratio(r["cpu_ratio"])]
            for key, r in record.items()]
    return _table(root, ["setting", *map(str, range(n_levels)), "whole", "CPU time vs the paper's"], rows,
                  [f"{RESULTS}/blend_threshold.json"])


# ---------------------------------------------------------------------------------------------- speed


def speed_rl(root: Path) -> Table:
    rows = []
    for name in ("deconv_rl_idle.json", "deconv.json"):
        r = result(root, name)
        rl, times = r["richardson_lucy"], r["richardson_lucy"]["times"]
        load = r["machine"]["load_average_at_start"][0]
        rows.append([name, f1(load), f2(times["awdvd_richardson_lucy"]["median_s"]),
                     f2(times["skimage_uint16_input_float64"]["median_s"]),
                     f2(times["skimage_float32_input"]["median_s"]), ratio(rl["ratio_vs_skimage_float64"]),
                     ratio(rl["ratio_vs_skimage_float32"])])
    return _table(root, ["record", "load at start", "awdvd RL (s)", "scikit-image, uint16 image (float64) (s)",
                         "scikit-image, float32 (s)", "awdvd / scikit-image uint16", "awdvd / scikit-image float32"],
                  rows, [f"{RESULTS}/deconv_rl_idle.json", f"{RESULTS}/deconv.json"])


def speed_awdvd(root: Path) -> Table:
    a = result(root, "deconv.json")["awdvd"]
    rows = []
    for key in ("fast_s84_rectangular", "patchwise_s84_rectangular", "fast_s42_triangular",
                "patchwise_s42_triangular", "fast_s8_triangular", "patchwise_s8_triangular"):
        r = a[key]
        method, stride, weights = key.split("_")
        rows.append([method, stride[1:], weights, str(r["windows"]), f2(r["median_s"]),
                     f2(r["psnr_truth_range_db"]), f3(r["ssim_truth_range"]), f2(r["seam_ratio_error"])])
    o = a["observed"]
    rows.append(["recorded image", "-", "-", "-", "-", f2(o["psnr_truth_range_db"]), f3(o["ssim_truth_range"]),
                 f2(o["seam_ratio_error"])])
    return _table(root, ["method", "stride", "weights", "windows", "median s", "PSNR (dB, truth range)", "SSIM",
                         "seam ratio"], rows, [f"{RESULTS}/deconv.json"])


def speed_map(root: Path) -> Table:
    m = result(root, "map_speed.json")
    rows = [["defocus map, stride 8", f2(m["map_stride8_s"])],
            ["AWDVD, stride 8, library defaults (map included)", f2(m["awdvd_stride8_defaults_s"])],
            ["AWDVD, stride 8, 30 plain iterations", f2(m["awdvd_stride8_30_plain_s"])],
            ["scikit-image RL, 30 iterations, uint16 image (float64)", f2(m["skimage_rl30_uint16_s"])],
            ["scikit-image RL, 30 iterations, float32", f2(m["skimage_rl30_float32_s"])],
            ["AWDVD defaults / scikit-image uint16", ratio(m["awdvd_over_skimage_uint16"])],
            ["AWDVD defaults / scikit-image float32", ratio(m["awdvd_over_skimage_float32"])]]
    what = (f"{m['image'][1]} x {m['image'][0]} image, {m['psf_px']} px PSF, {m['threads']} threads, "
            f"median of {len(m['rounds']['map_stride8_s'])} rounds")
    return _table(root, [what, "s or ratio"], rows, [f"{RESULTS}/map_speed.json"])


def map_agreement(root: Path) -> Table:
    rows = []
    for name in ("deconv_agreement.json", "deconv.json"):
        ag = result(root, name)["agreement"]
        model = ag["model"].get("file") or ag["model"].get("note", "")
        for images in ("real_z00", "tilted_specimens"):
            for norm, r in ag[images].items():
                rows.append([model, images, norm, str(r["windows"]), f3(r["exact"]), f3(r["within_1"]),
                             f3(r["bg_vs_not_bg"]), f3(r["mean_abs_level_difference"])])
    return _table(root, ["model", "images", "dense normalisation", "windows", "same level", "within +/-1",
                         "same bg call", "mean abs level difference"], rows,
                  [f"{RESULTS}/deconv_agreement.json", f"{RESULTS}/deconv.json"])


# ---------------------------------------------------------------------------------------------- batch


def batch_files(root: Path) -> Table:
    rows = []
    for name in ("batch_bundled.json", "batch_idle.json", "batch.json"):
        r = result(root, name)
        b = r["batch"]
        for workers, run in b["runs"].items():
            rows.append([name, r["model"], b["map_mode"], f1(r["machine"]["load_avg_1min_at_start"]), workers,
                         run["where"], str(run["files"]), f1(run["wall_s"]), f2(run["per_file_defocus_map_s_mean"]),
                         f2(run["per_file_deconvolution_s_mean"])])
    return _table(root, ["record", "model", "map mode", "load at start", "--workers", "where", "files", "wall s",
                         "map s per file", "RL s per file"], rows,
                  [f"{RESULTS}/batch_bundled.json", f"{RESULTS}/batch_idle.json", f"{RESULTS}/batch.json"])


def batch_large(root: Path) -> Table:
    rows = []
    for name in ("batch.json", "batch_large_serial.json"):
        g = result(root, name)["large"]
        rows.append([name, f"{g['image_px'][0]} x {g['image_px'][1]}", str(g["tiles"]), str(g["workers"]),
                     f"{g['wall_s']:.0f}", f"{g['timings_s']['defocus_map']:.0f}",
                     f"{g['timings_s']['deconvolution']:.0f}", f"{g['peak_rss_mb']['main']:.0f}",
                     f"{g['peak_rss_mb']['peak_of_sampled_sum_over_process_tree']:.0f}",
                     "yes" if g["output_ok"] else "no"])
    return _table(root, ["record", "image (px)", "tiles", "workers", "wall s", "map s", "RL s", "peak RSS main (MB)",
                         "peak RSS all processes (MB)", "output ok"], rows,
                  [f"{RESULTS}/batch.json", f"{RESULTS}/batch_large_serial.json"])


def batch_memory(root: Path) -> Table:
    mem = result(root, "batch_memory.json")["memory"]
    tiled = result(root, "batch.json")["tiled_vs_whole"]
    rows = [[r["kind"], f"{r['image_px']} x {r['image_px']}", f1(r["seconds"]), f"{r['peak_rss_mb']:.0f}"]
            for r in mem.values()]
    label = (f"tiled ({tiled['tile_px']} px tiles) vs whole: max difference "
             f"{tiled['max_abs_diff_rel_to_max']:.1e} of the image's max")
    rows.append([label, f"{tiled['image_px']} x {tiled['image_px']}",
                 f"{tiled['tiled_s']:.1f} vs {tiled['whole_s']:.1f}", "-"])
    return _table(root, ["run", "image (px)", "s", "peak RSS (MB)"], rows,
                  [f"{RESULTS}/batch_memory.json", f"{RESULTS}/batch.json"])


# ---------------------------------------------------------------------------------------------- foundations


def foundation(root: Path) -> Table:
    f = result(root, "foundation.json")
    rows = [[f"PSF max error vs adaptive quadrature, {z}", f"{err:.1e} of the peak"]
            for z, err in f["psf_max_abs_error_rel_peak"].items()]
    bank, data = f["psf_bank"], f["dataset"]
    rows += [[f"PSF bank, {bank['size_px']} px, 11 levels", (f"{bank['median_s']:.3f} s "
              f"({bank['speedup_vs_quadrature']:.0f}x the quadrature estimate)")],
             [f"synthetic dataset: {data['synthetic_images']} images, {data['patches']} patches",
              f"{data['seconds']:.1f} s ({data['images_per_minute']:.0f} images/min)"]]
    return _table(root, ["measure", "value"], rows, [f"{RESULTS}/foundation.json"])


def real_data(root: Path) -> Table:
    r = result(root, "real_data.json")
    rows = []
    for key, label in (("in_focus", "in_focus/ (best focus)"), ("defocused", "defocus_z00/ (about 32 um)")):
        d = r[key]
        levels = d["levels_expected"]
        rows.append([label, str(d["n_images"]), str(d["n_foreground"]), f"{levels[0]}-{levels[-1]}",
                     f3(d["fraction_expected"]), f2(d["mean_level"]), str(d["histogram"]["bg"])])
    return _table(root, [f"BBBC006 images (model {r['model']})", "images", "foreground tiles", "expected levels",
                         "share called so", "mean level", "called bg"], rows, [f"{RESULTS}/real_data.json"])


def previous_model_eval(root: Path) -> Table:
    rows = []
    for name, split in (("delpnet_eval_paper_split.json", "paper split (by synthetic image)"),
                        ("delpnet_eval_strict_split.json", "strict split (by source image)")):
        e = result(root, name)
        rows.append([split, e["model"], str(e["n"]), f3(e["accuracy"]), f3(e["cmc"][1]),
                     f3(e["macro"]["f1"]), f2(e["mean_abs_level_error"])])
    return _table(root, ["test split", "model", "patches", "top-1", "top-2", "macro F1", "mean abs level error"],
                  rows, [f"{RESULTS}/delpnet_eval_paper_split.json", f"{RESULTS}/delpnet_eval_strict_split.json"])


# ---------------------------------------------------------------------------------------------- other objectives


def optics_sharp(root: Path) -> Table:
    r = result(root, "optics.json")
    rows = [[f"{pixel} um", f3(v["in_focus_share"]), str(v["windows"])] for pixel, v in r["sharp_at_pixel_sizes"].items()]
    return _table(root, ["pixel size given", "windows with cells read in focus (<= 2 um)", "windows"], rows,
                  [f"{RESULTS}/optics.json"])


def optics_defocus(root: Path) -> Table:
    r = result(root, "optics.json")["defocus_under_optics"]
    rows = []
    for name, at_model in r["model"].items():
        at_object = r["object"][name]
        rows.append([name, f"{at_model['level_equivalent_um']:.3g} um", f3(at_model["within_1"]),
                     f3(at_model["within_half"]), f3(at_object["within_1"]), f3(at_object["within_half"])])
    return _table(root, ["objective", "one level-equivalent", "model's object scale: within 1", "within 1/2",
                         "real object scale: within 1", "within 1/2"], rows, [f"{RESULTS}/optics.json"])


def optics_restoration(root: Path) -> Table:
    r = result(root, "optics_restoration.json")
    rows = [[name, db(v["whole_gain_db"]), db(v["ceiling_whole_gain_db"]), pct(v["ceiling_share"]),
             db(v["worst_band_db"])] for name, v in r["optics"].items()]
    return _table(root, ["objective", "whole-image gain (dB)", "true-level ceiling, plain RL (dB)", "share",
                         "worst band (dB)"], rows, [f"{RESULTS}/optics_restoration.json"])


# ---------------------------------------------------------------------------------------------- headline


def headline(root: Path) -> Table:
    folds = _folds(root)
    cams = {c: [f["fields"]["cameras"][c] for f in folds.values()] for c in CAMERA_ORDER}
    unseen = {c: [f["fields_unseen_cameras"]["cameras"][c] for f in folds.values()]
              for c in next(iter(folds.values()))["fields_unseen_cameras"]["cameras"]}
    rep = report(root)["items"]
    fig3, t2 = rep["fig3"]["awdvd"], rep["table2"]["rows"]
    archs = _paper_order(t2, ARCHITECTURES)
    bands, bfloors = result(root, "restoration_bands.json")["summary"]["mean"], \
        result(root, "restoration_bands.json")["summary"]["floors"]
    deconv, rl, maps = result(root, "deconv.json")["awdvd"], result(root, "deconv_rl_idle.json")["richardson_lucy"], \
        result(root, "map_speed.json")
    batch = result(root, "batch_bundled.json")["batch"]["runs"]
    fig9 = {r["name"]: r for r in rep["fig9"]["awdvd"]["results"]}
    fast = deconv["fast_vs_patchwise_s42"]

    def gains(name):
        g = [lv["psnr_gain_db"]["variant_predicted"] for lv in result(root, name)["levels"]
             if lv["psnr_gain_db"]["variant_predicted"] is not None]
        return f"{db(min(g))} to {db(max(g))} dB"

    rows = [
        [f"held-out BBBC006 field ({len(folds)} leave-one-field-out folds): top-1 / within +/-1, BBBC006's camera",
         f"{span([c['top1'] for c in cams['bbbc006']])} / {span([c['within1'] for c in cams['bbbc006']])}", "-",
         FOLDS],
        ["the same, worst camera (dim, high gain)",
         f"{span([c['top1'] for c in cams['dim-high-gain']])} / {span([c['within1'] for c in cams['dim-high-gain']])}",
         "-", FOLDS],
        *[[f"the same, camera outside the training range: {c}",
           f"{span([x['top1'] for x in v])} / {span([x['within1'] for x in v])}", "-", FOLDS]
          for c, v in unseen.items()],
        ["paper split test accuracy, bundled model (within +/-1)",
         f"{f3(fig3['accuracy'])} ({f3(fig3['within_one_level'])})", f3(rep["fig3"]["paper"]["accuracy"]), REPORT],
        ["Table 2 at the cpu scale, test accuracy: " + " / ".join(ARCHITECTURES.get(k, k) for k in archs),
         " / ".join(pct(t2[k]["awdvd"]["accuracy"]) for k in archs),
         " / ".join(pct(t2[k]["paper"]["accuracy"]) for k in archs), REPORT],
        ["defocus map 696 x 520 at stride 8; AWDVD stride 8 / one scikit-image RL (uint16, float32)",
         (f"{f2(maps['map_stride8_s'])} s; {ratio(maps['awdvd_over_skimage_uint16'])}, "
         f"{ratio(maps['awdvd_over_skimage_float32'])}"), "-", f"{RESULTS}/map_speed.json"],
        ["Richardson-Lucy / scikit-image on the same uint16 image (float32)",
         f"{ratio(rl['ratio_vs_skimage_float64'])} ({ratio(rl['ratio_vs_skimage_float32'])})", "-",
         f"{RESULTS}/deconv_rl_idle.json"],
        ["20 BBBC006 fields, `awdvd deconvolve`: default / --workers 0 / 2 workers (wall s)",
         " / ".join(f1(batch[k]["wall_s"]) for k in ("auto", "0", "2")), "-", f"{RESULTS}/batch_bundled.json"],
        ["fast vs patch-wise AWDVD, stride 42 (true levels): speed-up, PSNR difference",
         f"{fast['speedup']:.2f}x, {fast['psnr_difference_db']:+.3f} dB",
         "-", f"{RESULTS}/deconv.json"],
        ["case (i) vs case (ii), tilted specimen, model levels: PSNR (dB), seam ratio",
         (f"{f2(fig9['case_i_model']['psnr_truth_range'])} vs {f2(fig9['case_ii_model']['psnr_truth_range'])}, "
         f"{f2(fig9['case_i_model']['seam_ratio_error'])} vs {f2(fig9['case_ii_model']['seam_ratio_error'])}"),
         "case (ii) removes the seams", REPORT],
        ["tilted specimens of the 6 shared fields, defaults: worst band / whole image / time vs 30 iterations",
         (f"{db(bfloors['worst_band_gain_db'])} / {db(bands['model_defaults']['whole_gain_db'])} dB / "
         f"{ratio(bfloors['time_ratio_defaults_over_paper'])}"), "a gain at every level",
         f"{RESULTS}/restoration_bands.json"],
        ["the same with 30 iterations for every level: worst band / whole image",
         f"{db(min(bands['model_paper']['band_gain_db']))} / {db(bands['model_paper']['whole_gain_db'])} dB", "-",
         f"{RESULTS}/restoration_bands.json"],
        ["Fig. 8 with the defaults, predicted levels, levels 1-10: test split / val split",
         f"{gains('restoration_fig8_patches.json')} / {gains('restoration_fig8_val_patches.json')}", "0.3 to 6.6 dB",
         (f"{RESULTS}/restoration_fig8_patches.json", f"{RESULTS}/restoration_fig8_val_patches.json")],
    ]
    files = [(r[-1],) if isinstance(r[-1], str) else r[-1] for r in rows]
    cells = [tuple(r[:-1]) + (", ".join(f"`{f}`" for f in fs),) for r, fs in zip(rows, files)]
    return Table(("measure", "awdvd", "paper", "record"), tuple(cells),
                 tuple(dict.fromkeys(f for fs in files for f in fs)), ())


# ---------------------------------------------------------------------------------------------- the report


def report_run(root: Path) -> Table:
    r = report(root)
    s = r["scale"]
    rows = [["date", r["created"]], ["awdvd, git", f"{r['awdvd_version']}, {r['git']['commit'][:12]}"],
            ["device", f"{r['device']} ({r['device_name']}), torch {r['torch_version']}"],
            ["scale", (f"{s['name']}: {s['crops_per_image']} crops/image x {s['realizations']} realizations, "
                      f"{s['architecture_epochs']} epochs per comparison run on {s['comparison_train_patches']} "
                      f"patches, Fig. 8 {s['per_level']} patches/level, RL {s['iterations']} iterations")],
            ["data", r["data"]["description"]],
            ["wall time", f"{r['wall_seconds']:.0f} s"]]
    return _table(root, ["run", "value"], rows, [REPORT])


def _scores(d: dict) -> list[str]:
    return [pct(d["accuracy"]), pct(d["precision"]), pct(d["recall"]), pct(d["f1"])]


def _paper_order(rows: dict, order) -> list[str]:
    """The keys of ``rows`` in the paper's order, any others after them."""
    return [k for k in order if k in rows] + [k for k in rows if k not in order]


def report_table1(root: Path) -> Table:
    rows = []
    labels = {"no-bg": 'without "bg"', "delpnet": 'with "bg"', "main": 'with "bg", main (bundled) DelpNet'}
    table1 = report(root)["items"]["table1"]["rows"]
    for key in _paper_order(table1, labels):
        r = table1[key]
        rows.append([labels.get(key, key), "paper", *_scores(r["paper"])])
        rows.append([labels.get(key, key), "awdvd", *_scores(r["awdvd"])])
    return _table(root, ["setting", "", "accuracy", "precision", "recall", "F1"], rows, [REPORT])


def report_table2(root: Path) -> Table:
    rows = []
    rep = report(root)
    table2 = rep["items"]["table2"]["rows"]
    for key in _paper_order(table2, ARCHITECTURES):
        r, name = table2[key], ARCHITECTURES.get(key, key)
        trained = rep["models"].get(r["model"], {}).get("network_args", {})
        rows.append([name, "paper", f"{r['paper']['params'] / 1e6:.1f} M", *_scores(r["paper"])])
        rows.append([name + (" with BatchNorm" if trained.get("batch_norm") else ""), "awdvd",
                     (f"{r['params_published'] / 1e6:.1f} M (trained here: "
                     f"{r['params_trained'] / 1e6:.2f} M)"), *_scores(r["awdvd"])])
    return _table(root, ["network", "", "parameters", "accuracy", "precision", "recall", "F1"], rows, [REPORT])


def report_fig8(root: Path) -> Table:
    rows = []
    for lv in report(root)["items"]["fig8"]["awdvd"]["per_level"]:
        g, s = lv["psnr_gain_db"], lv["ssim_truth_range"]
        rows.append([str(lv["level"]), str(lv["n"]), db(g["variant_predicted"]), db(g["variant_true"]),
                     db(g["invariant"]), f3(s["noisy"]), f3(s["variant_predicted"]), f3(s["invariant"])])
    return _table(root, ["level", "n", "gain, predicted level (dB)", "gain, true level (dB)",
                         "gain, depth-invariant (dB)", "SSIM noisy", "SSIM depth-variant", "SSIM depth-invariant"],
                  rows, [REPORT])


def report_fig9(root: Path) -> Table:
    rows = [[r["name"], r.get("levels", "-"), str(r.get("stride", "-")), r.get("weighting", "-"),
             f2(r["psnr_truth_range"]), f3(r["ssim_truth_range"]), f2(r["seam_ratio_error"]),
             f1(r["seconds"] + r.get("map_seconds", 0.0))]
            for r in report(root)["items"]["fig9"]["awdvd"]["results"]]
    return _table(root, ["restoration", "levels", "stride", "weights", "PSNR (dB, truth range)", "SSIM",
                         "seam ratio", "s (map + restoration)"], rows, [REPORT])


# ---------------------------------------------------------------------------------------------- the page API

TABLES: dict[str, Callable[[Path], Table]] = {
    "headline": headline,
    "robustness-fields": robustness_fields,
    "robustness-fold-means": robustness_fold_means,
    "robustness-procedural": robustness_procedural,
    "robustness-unseen-cameras": robustness_unseen_cameras,
    "robustness-maps": robustness_maps,
    "robustness-real-in-focus": robustness_real_in_focus,
    "robustness-bundled": robustness_bundled,
    "robustness-bundled-maps": robustness_bundled_maps,
    "levers-a07": levers_a07,
    "restoration-bands": restoration_bands,
    "restoration-bands-fields": restoration_bands_fields,
    "restoration-floors": restoration_floors,
    "restoration-fig8-test": restoration_fig8_test,
    "restoration-fig8-val": restoration_fig8_val,
    "blend-threshold": blend_threshold,
    "speed-rl": speed_rl,
    "speed-awdvd": speed_awdvd,
    "speed-map": speed_map,
    "map-agreement": map_agreement,
    "batch-files": batch_files,
    "batch-large": batch_large,
    "batch-memory": batch_memory,
    "foundation": foundation,
    "real-data": real_data,
    "previous-model-eval": previous_model_eval,
    "optics-sharp": optics_sharp,
    "optics-defocus": optics_defocus,
    "optics-restoration": optics_restoration,
    "report-run": report_run,
    "report-table1": report_table1,
    "report-table2": report_table2,
    "report-fig8": report_fig8,
    "report-fig9": report_fig9,
}


def table(name: str, *, root: Path = ROOT) -> Table:
    """The table a placeholder names; ValueError for a name that has none."""
    if name not in TABLES:
        raise ValueError(f"unknown table placeholder {name!r}; known: {', '.join(sorted(TABLES))} "
                         f"(docs/gen_tables.py TABLES)")
    return TABLES[name](Path(root))


def placeholders(markdown: str) -> list[str]:
    """The table names a page asks for, in order."""
    return [m["name"] for line in markdown.splitlines() if (m := PLACEHOLDER.match(line))]


def render_tables(markdown: str, *, root: Path = ROOT) -> str:
    """``markdown`` with every ``<!-- table: NAME -->`` line replaced by that table (ValueError: unknown NAME)."""
    lines = []
    for line in markdown.splitlines(keepends=True):
        match = PLACEHOLDER.match(line)
        if match is None:
            lines.append(line)
            continue
        lines.append(table(match["name"], root=root).markdown() + ("\n" if line.endswith("\n") else ""))
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--list"]:
        print("\n".join(TABLES))
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python docs/gen_tables.py PAGE.md | --list", file=sys.stderr)
        return 2
    try:
        print(render_tables(Path(args[0]).read_text()), end="")
    except (OSError, ValueError) as exc:
        print(f"gen_tables: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
