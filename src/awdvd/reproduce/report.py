"""The reproduction's report: ``REPORT.md`` (every table and figure of the paper's section 3, each number beside
the paper's with the conditions it was measured under) rendered from the ``results.json`` dict, and both files
written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..io import atomic_path, write_json
from .paper import (
    BN_STUDY_SUFFIX,
    BN_STUDY_VARIANTS,
    COMPARISON_ARCHITECTURES,
    COMPARISON_VARIANTS,
    LABELS,
    PAPER,
    PAPER_SOURCES,
    network_label,
)

__all__ = ["report_markdown", "write_report", "percent", "number", "parameters_text", "seconds_text", "sources_text",
           "markdown_table", "ITEM_RUNS"]


# --------------------------------------------------------------------------------------------- formatting
def percent(value) -> str:
    """A fraction as a percentage with one decimal; "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def number(value, digits: int = 2, unit: str = "") -> str:
    """A number with ``digits`` decimals and ``unit``; "n/a" for None and non-finite values."""
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else \
        f"{value:.{digits}f}{unit}"


def parameters_text(n) -> str:
    """A parameter count as "2.31 M" or "42.0 k"."""
    return "n/a" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k")


def seconds_text(value) -> str:
    """A duration in seconds, one decimal below 10 s."""
    return "n/a" if value is None else (f"{value:.1f} s" if value < 10 else f"{value:.0f} s")


def sources_text(sources, shown: int = 8) -> str:
    """A model's training sources in a line: every name when there are few, else the first ``shown`` and a count.

    >>> sources_text(["a02", "a03"])
    'a02, a03'
    >>> sources_text([f"f{i}" for i in range(12)], shown=3)
    'f0, f1, f2 and 9 more (12 in all)'
    >>> sources_text(None)
    'not recorded'
    """
    if not sources:
        return "not recorded"
    names = [str(name) for name in sources]
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more ({len(names)} in all)"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table; "|" inside cells becomes "/"."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the report
#: The runs of Fig. 5 and Fig. 6, in the order the report lists them.
ITEM_RUNS = {"fig5": ("delpnet", "no-bg", "plain"), "fig6": ("delpnet",) + COMPARISON_ARCHITECTURES}


def _in_order(names, order: Sequence[str]) -> list[str]:
    """``names`` in ``order``, then any others sorted (results.json stores its dicts with sorted keys, so the
    report never relies on a dict's order)."""
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def _run_order(key: str, scale: dict) -> tuple:
    """Where run ``key`` ("main" or "<variant>@<epochs>ep") comes in the report: the main DelpNet, the comparison
    variants at the ablation budget, then the architectures at theirs (the order they were trained in)."""
    if key == "main":
        return (0, 0, key)
    variant, _, epochs = key.partition("@")
    if epochs == f"{scale['ablation_epochs']}ep" and variant in COMPARISON_VARIANTS:
        return (1, COMPARISON_VARIANTS.index(variant), key)
    if epochs == f"{scale['ablation_epochs']}ep{BN_STUDY_SUFFIX}" and variant in BN_STUDY_VARIANTS:
        return (1, len(COMPARISON_VARIANTS) + BN_STUDY_VARIANTS.index(variant), key)
    architectures = ("delpnet",) + COMPARISON_ARCHITECTURES
    return (2, architectures.index(variant) if variant in architectures else len(architectures), key)


def _banner(scale: dict) -> str:
    name = scale["name"]
    if name == "smoke":
        return ("> **SMOKE SCALE: every number below is meaningless.** This run only shows that every table and "
                "figure is produced end to end, from a tiny dataset and networks trained for a couple of epochs. "
                "Run `awdvd reproduce --scale cpu` or `--scale full` for numbers worth reading.")
    if name == "cpu":
        return ("> **Reduced scale (cpu):** the networks are trained for a few epochs on a few thousand patches, far "
                "from the paper's 1000 epochs; the numbers show trends at best. `--scale full` (GPU) is the paper's "
                "setting as far as our data allow.")
    if name == "full":
        return ("> **Full scale:** every network trained with the fast recipe for its full number of epochs, on all "
                "patches that our source images give. The remaining differences from the paper are listed below.")
    return f"> **Custom scale `{name}`:** see its settings below; judge the numbers by them."


def report_markdown(r: dict) -> str:
    """REPORT.md from the results dict of :func:`awdvd.reproduce.reproduce` (the content of results.json)."""
    out = _header(r)
    for section in (_table1, _table2, _fig3, _fig4, _fig5_6, _fig7, _fig8, _fig9, _trainings):
        out += section(r)
    return "\n".join(out) + "\n"


def _main_text(r: dict) -> str:
    """How the main DelpNet came about, in one phrase."""
    main, main_run = r["main_model"], r["models"]["main"]
    return (("trained here: " if main["source"] == "trained here" else f"loaded from {main['source']}: ")
            + main_run.get("budget", f"{main_run['epochs']} epochs, {main_run['n_train']} training patches")
            + f", {parameters_text(main_run['parameters'])} params")


def _header(r: dict) -> list[str]:
    """Title, banner, the run's conditions, a caution where the main model's test patches may not be held out,
    and where the run differs from the paper."""
    scale, git, main, dataset = r["scale"], r["git"], r["main_model"], r["dataset"]
    commit = "not a git checkout" if not git.get("commit") else \
        f"{git['commit'][:12]}{' (with uncommitted changes)' if git.get('dirty') else ''}"
    out = [
        "# awdvd reproduction of He et al. 2019, section 3 (results)",
        "",
        _banner(scale),
        "",
        markdown_table(["", ""], [
            ["date", r["created"]],
            ["awdvd", f"{r['awdvd_version']}, git {commit}"],
            ["device", f"{r['device']} ({r['device_name']}), torch {r['torch_version']}"],
            ["scale", f"`{scale['name']}`: {scale['crops_per_image']} crops/image x {scale['realizations']} "
                      f"realizations; epochs main {scale['main_epochs']} / ablations {scale['ablation_epochs']} / "
                      f"architectures {scale['architecture_epochs']}; recipe `{scale['recipe']}`; comparison runs on "
                      f"<= {scale['comparison_train_patches'] or 'all'} train / <= {scale['comparison_val_patches'] or 'all'}"
                      f" val patches; Fig. 8 {scale['per_level']} patches/level; Fig. 9 strides "
                      f"{', '.join(map(str, scale['strides']))}; RL {scale['iterations']} iterations"
                      + (f"; network_args {_network_args_text(scale['network_args'])}" if scale["network_args"] else "")],
            ["data", r["data"]["description"] + (" **(procedural fallback: no real data)**"
                                                 if r["data"]["kind"] == "procedural" else "")],
            ["dataset", f"{dataset['n_patches']['train']} train / {dataset['n_patches']['val']} val / "
                        f"{dataset['n_patches']['test']} test patches of 84 x 84, 11 levels + bg (split by synthetic "
                        f"image 0.75 / 0.15 / 0.10, PSF {dataset['psf_size']} px, seed {scale['seed']})"],
            ["main DelpNet", _main_text(r)],
            ["wall time", f"{r['wall_seconds']:.0f} s in all"],
        ]),
        "",
        "Every number below was computed by this run from awdvd's own code; the paper's numbers are from its text "
        "(He et al. 2019, section 3). `results.json` beside this file holds every number (and more: per-class "
        "scores, curves, per-level values).",
        "",
    ]
    if main.get("test_is_held_out") is None:
        out += [f"> **Caution:** the main model was trained on other data (sources: "
                f"{sources_text(main.get('trained_on'))}). If "
                "those included these source images, its test numbers here may count patches of images it was "
                "trained on.", ""]
    out += _differences(r)
    return out


def _table1(r: dict) -> list[str]:
    """The section on Table 1."""
    items = r["items"]
    out = []
    t1 = items["table1"]["rows"]
    rows = []
    for key, label in (("no-bg", "Without \"bg\""), ("delpnet", "With \"bg\""), ("main", "With \"bg\", main DelpNet")):
        row = t1[key]
        rows.append([label, "paper"] + [percent(row["paper"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + ["381 source images, 1000 epochs (Keras, Adam 6e-5), Titan Xp"])
        rows.append([label, "awdvd"] + [percent(row["awdvd"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + [row["conditions"]])
    out += ["## Table 1. With and without the \"bg\" class", "",
            "Macro precision / recall / F1 over the classes. The first two awdvd rows are trained under one budget "
            "(only the bg class differs); the third is the main DelpNet (its own budget).", "",
            markdown_table(["Setting", "", "Accuracy", "Precision", "Recall", "F1", "Conditions"], rows),
            "", f"_Item wall time: {items['table1']['seconds']:.1f} s (plus the trainings listed)._", ""]
    return out


def _network_args_text(network_args: dict) -> str:
    """``{architecture: {argument: value}}`` with sorted keys at both levels, so that a stored results.json (whose
    dicts have sorted keys) renders the same line as the run that wrote it."""
    return repr({name: dict(sorted(args.items())) for name, args in sorted(network_args.items())})


def _table2(r: dict) -> list[str]:
    """The section on Table 2."""
    items = r["items"]
    out = []
    t2 = items["table2"]["rows"]
    rows = []
    for key in ("vgg16", "inception_v3", "resnet18", "mobilenet_v2", "delpnet"):
        row = t2[key]
        trained = "" if row["params_trained"] == row["params_published"] else \
            f" (trained here: {parameters_text(row['params_trained'])})"
        rows.append([LABELS[key], "paper", f"{row['paper']['params'] / 1e6:.1f} M"]
                    + [percent(row["paper"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + ["381 source images, Keras, retrained by the authors"])
        rows.append([network_label(key, r["scale"].get("network_args")), "awdvd",
                     f"{row['params_published'] / 1e6:.1f} M{trained}"]
                    + [percent(row["awdvd"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + [row["conditions"]])
    out += ["## Table 2. DelpNet and four architectures", "",
            "All awdvd rows trained under one budget. Parameters: PyTorch's trainable parameters of the published "
            "network (84 x 84 input, 12 outputs); the paper's are Keras counts, which include BatchNorm moving "
            "statistics.", "",
            markdown_table(["Net", "", "# params", "Accuracy", "Precision", "Recall", "F1", "Conditions"], rows),
            "", f"_Item wall time: {items['table2']['seconds']:.1f} s (plus the trainings listed)._", ""]
    return out


def _fig3(r: dict) -> list[str]:
    """The section on Fig. 3."""
    items = r["items"]
    out = []
    f3 = items["fig3"]
    a = f3["awdvd"]
    out += ["## Fig. 3. Confusion matrix of the main DelpNet", "", f"![Fig. 3]({f3['figure']})", "",
            markdown_table(["", "Accuracy", "Precision", "Recall", "F1", "Errors next to the true level", "Conditions"], [
                ["paper", percent(0.982), "> 98%", "> 98%", "> 98%", "\"mostly\"", "381 source images, 1000 epochs"],
                ["awdvd", percent(a["accuracy"]), percent(a["precision"]), percent(a["recall"]), percent(a["f1"]),
                 (f"{a['errors_adjacent_level']} of {a['errors']} ({percent(a['errors_adjacent_fraction'])}); within "
                  f"+/-1 level: {percent(a['within_one_level'])}, mean abs level error "
                  f"{number(a['mean_abs_level_error'])}"), f3["conditions"]]]),
            "", f"_Item wall time: {f3['seconds']:.1f} s._", ""]
    return out


def _fig4(r: dict) -> list[str]:
    """The section on Fig. 4."""
    items = r["items"]
    out = []
    f4 = items["fig4"]
    rows = []
    for key in ("0.60", "0.99"):
        o = f4["awdvd"][key]
        rows.append([key, "paper", "steady" if key == "0.60" else "severe oscillation", "", "", "", ""])
        rows.append([key, "awdvd", f"{o['increases']} rises in {max(0, len(o['val_loss']) - 1)} epoch steps",
                     number(o["relative_mean_abs_change"], 3), number(o["min_val_loss"], 3), number(o["final_val_loss"], 3),
                     f4["conditions"][key]])
    out += ["## Fig. 4. Validation loss, BatchNorm momentum (Keras) 0.60 vs 0.99", "", f"![Fig. 4]({f4['figure']})",
            "", "Oscillation measure: mean |change of validation loss between epochs| / mean validation loss. The "
                "training curves of the two runs coincide by construction: BatchNorm's momentum only sets the running "
                "averages that evaluation uses, so it changes the validation curves alone.", "",
            markdown_table(["Momentum", "", "Validation loss", "Oscillation", "Min val loss", "Final val loss", "Conditions"],
                   rows),
            "", f"_Item wall time: {f4['seconds']:.1f} s (plus the trainings listed)._", ""]
    return out


def _fig5_6(r: dict) -> list[str]:
    """The sections on Fig. 5 and Fig. 6."""
    items = r["items"]
    out = []
    for key, label, title in (("fig5", "Fig. 5", "Top-k curves of the strategies (DelpNet, without bg, plain)"),
                              ("fig6", "Fig. 6", "Top-k curves of DelpNet and four architectures")):
        f = items[key]
        rows = []
        for name in _in_order(f["awdvd"], ITEM_RUNS[key]):
            values = f["awdvd"][name]
            paper = f["paper"]["top1"].get(name)
            rows.append([LABELS[name], "paper", percent(paper) if paper is not None else "plotted only", "plotted only",
                         len(values["cmc"]), ""])
            rows.append([network_label(name, r["scale"].get("network_args")), "awdvd", percent(values["top1"]),
                         percent(values["top3"]), len(values["cmc"]),
                         f["conditions"][name]])
        out += [f"## {label}. {title}", "", f"![{label}]({f['figure']})", "",
                markdown_table(["Model", "", "Top-1", "Top-3", "k up to", "Conditions"], rows),
                "", f"_Item wall time: {f['seconds']:.1f} s (plus the trainings listed)._", ""]
    return out


def _fig7(r: dict) -> list[str]:
    """The section on Fig. 7."""
    items = r["items"]
    out = []
    f7 = items["fig7"]
    m = f7["awdvd"]["metrics"]
    paper7 = PAPER["fig7"]
    rows = []
    for name, label in (("defocused", "(b) defocused"), ("noisy", "(c) noisy defocused"),
                        ("variant", "(d) depth-variant RL"), ("invariant", "(e) depth-invariant RL")):
        rows.append([label, number(paper7["psnr_db"].get(name), 1), number(m[name]["psnr_65535"], 1),
                     number(paper7["ssim"].get(name), 2), number(m[name]["ssim_truth_range"], 2),
                     number(m[name]["ssim_65535"], 4), number(m[name]["psnr_truth_range"], 1)])
    out += ["## Fig. 7. One test patch: in focus, defocused, depth-variant and depth-invariant RL", "",
            f"![Fig. 7]({f7['figure']})", "",
            f"Patch of {f7['awdvd']['source']} at (y, x) = {tuple(f7['awdvd']['yx'])}, true level "
            f"{f7['awdvd']['true_level']}, predicted {f7['awdvd']['predicted_level']} by the main DelpNet (the paper: "
            f"predicted level 4); RL {f7['awdvd']['iterations']} iterations, camera offset "
            f"{f7['awdvd']['offset_adu']:g} ADU removed. Reference: the in-focus patch (a).", "",
            markdown_table(["Image", "PSNR paper (dB)", "PSNR awdvd (dB, range 65535)", "SSIM paper",
                    "SSIM awdvd (in-focus range)", "SSIM awdvd (range 65535)", "PSNR awdvd (in-focus range)"], rows),
            "", f"_Item wall time: {f7['seconds']:.1f} s; device {r['device']}._", ""]
    return out


def _fig8(r: dict) -> list[str]:
    """The section on Fig. 8."""
    items, scale, main_text = r["items"], r["scale"], _main_text(r)
    out = []
    f8 = items["fig8"]
    s = f8["awdvd"]["summary"]
    p8 = PAPER["fig8"]

    def span(values, digits=1, unit=""):
        return "n/a" if not values else f"{values[0]:.{digits}f} to {values[1]:.{digits}f}{unit}"

    rows = [
        ["PSNR gain over noisy, depth-variant (predicted level)", span(p8["psnr_gain_variant_db"], 1, " dB"),
         span(s["variant_predicted"]["psnr_gain_db"], 2, " dB")],
        ["PSNR gain over noisy, depth-variant (true level)", "-", span(s["variant_true"]["psnr_gain_db"], 2, " dB")],
        ["PSNR gain over noisy, depth-invariant (level-0 PSF)", span(p8["psnr_gain_invariant_db"], 1, " dB"),
         span(s["invariant"]["psnr_gain_db"], 2, " dB")],
        ["SSIM, depth-variant (predicted level)", span(p8["ssim_variant"], 2), span(s["variant_predicted"]["ssim_truth_range"], 2)],
        ["SSIM, noisy defocused", "-", span(s["noisy"]["ssim_truth_range"], 2)],
        ["SSIM ratio - 1, depth-variant (predicted) over noisy", span(p8["ssim_ratio_gain_percent"], 0, "%"),
         span(s["variant_predicted"]["ssim_ratio_gain_percent"], 1, "%")],
        ["SSIM ratio - 1, depth-variant (true level) over noisy", "-",
         span(s["variant_true"]["ssim_ratio_gain_percent"], 1, "%")],
    ]
    per_level = [[lv["level"], lv["n"], number(lv["psnr_gain_db"].get("variant_predicted")),
                  number(lv["psnr_gain_db"].get("variant_true")), number(lv["psnr_gain_db"].get("invariant")),
                  number(lv["ssim_truth_range"].get("noisy"), 3), number(lv["ssim_truth_range"].get("variant_predicted"), 3),
                  number(lv["ssim_truth_range"].get("invariant"), 3)] for lv in f8["awdvd"]["per_level"]]
    n_levels = len(f8["awdvd"]["per_level"])
    out += ["## Fig. 8. PSNR and SSIM per defocus level", "", f"![Fig. 8]({f8['figure']})", "",
            f"Up to {scale['per_level']} non-background test patches per level (the paper: about 45), each deconvolved "
            f"on its own ({scale['iterations']} RL iterations, camera offset removed); {n_levels} of 11 levels have "
            "test patches. Ranges are over levels (min to max of the per-level means); PSNR gains at data range 65535 "
            "(any range gives the same gain), SSIM at each in-focus patch's max - min. Level 0's noisy patch is the "
            "in-focus image itself, so its gain is undefined (n/a).", "",
            markdown_table(["Quantity", "paper", "awdvd"], rows), "",
            markdown_table(["Level", "n", "gain variant pred. (dB)", "gain variant true (dB)", "gain invariant (dB)",
                    "SSIM noisy", "SSIM variant pred.", "SSIM invariant"], per_level),
            "", f"_Conditions: main DelpNet ({main_text}); {r['data']['description']}; device {r['device']}. Item wall "
                f"time: {f8['seconds']:.1f} s._", ""]
    return out


def _fig9(r: dict) -> list[str]:
    """The section on Fig. 9."""
    items, scale, main_text = r["items"], r["scale"], _main_text(r)
    out = []
    f9 = items["fig9"]
    rows = []
    for result in f9["awdvd"]["results"]:
        rows.append([result["name"], result.get("levels", "-"), result.get("stride", "-"), result.get("weighting", "-"),
                     number(result["psnr_truth_range"]), number(result["ssim_truth_range"], 3),
                     number(result["seam_ratio_error"]), number(result["seconds"] + result.get("map_seconds", 0), 1)])
    shape = f9["awdvd"]["settings"]["shape"]
    by_name = {x["name"]: x for x in f9["awdvd"]["results"]}
    source = "model" if "case_i_model" in by_name else "true"
    out += ["## Fig. 9. Whole image: case (i) vs case (ii) (AWDVD)", "", f"![Fig. 9]({f9['figure']})", "",
            f"A synthetic specimen tilted along x (levels 0 to 10 from left to right) made from "
            f"{f9['awdvd']['source']} ({shape[0]} x {shape[1]} px), with known truth; the paper shows a real image "
            "without truth. Rows: restorations with the main DelpNet's window levels (`_model`) and with the true "
            "levels (`_true`). Seam ratio: gradient energy of the error image across case (i)'s window boundaries over "
            "that elsewhere (1 = no seams).", "",
            markdown_table(["", "paper", "awdvd"], [
                ["case (i), stride 84, rectangular", "patch boundary artifacts",
                 f"seam ratio {number(by_name[f'case_i_{source}']['seam_ratio_error'])}, PSNR "
                 f"{number(by_name[f'case_i_{source}']['psnr_truth_range'])} dB"],
                ["case (ii), stride 42, triangular", "artifacts gone, smoother",
                 f"seam ratio {number(by_name[f'case_ii_{source}']['seam_ratio_error'])}, PSNR "
                 f"{number(by_name[f'case_ii_{source}']['psnr_truth_range'])} dB"]]), "",
            markdown_table(["Restoration", "Levels", "Stride", "Weights", "PSNR (dB, truth range)", "SSIM", "Seam ratio",
                    "Seconds"], rows),
            "", f"_Conditions: main DelpNet ({main_text}); RL {scale['iterations']} iterations, camera offset removed; "
                f"device {r['device']}. Item wall time: {f9['seconds']:.1f} s._", ""]
    return out


def _trainings(r: dict) -> list[str]:
    """The closing table: every model of the run."""
    models = r["models"]
    out = []
    rows = [[key, LABELS.get(m["variant"], m["variant"]), m["source"] if m["source"] != "trained here" else "here",
             m["recipe"].get("name", "?") + ("" if m["recipe"].get("bn_recalibration", 1) else " (no BN recal.)"),
             *((m["epochs"], m["best_epoch"], m["n_train"], m["n_val"]) if m["epochs"] is not None
               else (m.get("budget", "n/a"), "", "", "")), parameters_text(m["parameters"]),
             seconds_text(m["train_seconds"]), percent(m["test"]["accuracy"]) if m["test"] else "n/a"]
            for key, m in sorted(models.items(), key=lambda item: _run_order(item[0], r["scale"]))]
    out += ["## Every model of this run", "",
            markdown_table(["Run", "Variant", "Trained", "Recipe", "Epochs", "Best epoch", "Train patches", "Val patches",
                    "Params", "Train time", "Test accuracy"], rows), ""]
    return out


def _differences(r: dict) -> list[str]:
    data = r["data"]
    lines = ["## Where this run differs from the paper", ""]
    lines.append(f"- **Data:** {data['n_images']} source images instead of the paper's {PAPER_SOURCES}; "
                 f"{r['scale']['realizations']} noise realizations per (image, level) make up part of the difference in "
                 "patch count, not in variety. Levels of one source image can sit in different splits, as in the paper.")
    if data["kind"] == "procedural":
        lines.append("- **No real images:** the source images are procedural nuclei (`awdvd.data.synth.synthetic_nuclei`), "
                     "because no in-focus images were given or found beside the repository.")
    lines += [
        "- **Training:** PyTorch instead of Keras; the scale's recipe (`fast`: AdamW, one-cycle, dihedral "
        "augmentation) for the given number of epochs instead of the paper's Adam 6e-5 for 1000 epochs. The "
        "comparison runs re-estimate the BatchNorm statistics before each validation (the recipe's "
        "recalibration); only Fig. 4's two runs skip it, so that BatchNorm works as in Keras, which is what that "
        "figure compares.",
        "- **Fig. 7-8:** Richardson-Lucy with the camera offset removed first; SSIM also at the in-focus patch's data "
        "range, since at 65535 it is about 1 for 12-bit data (the paper does not say which range it used).",
        "- **Fig. 9:** a synthetic tilted specimen with known truth instead of a real image, so that seams and PSNR "
        "can be measured.",
        "",
    ]
    return lines


def write_report(folder: Path, results: dict) -> None:
    """Write ``results.json`` and ``REPORT.md`` (rendered from ``results``) into ``folder``, each atomically."""

    write_json(Path(folder) / "results.json", results)
    with atomic_path(Path(folder) / "REPORT.md") as tmp:
        Path(tmp).write_text(report_markdown(results))
