"""docs/gen_tables.py: every placeholder renders a Markdown table from the committed result files, with the
columns and rows those files hold and the numbers formatted from their values; an unknown placeholder fails.

The expected cells are computed here from the JSON, independently of the module's own helpers, so a change in
gen_tables (or in the shape of a result file) that drops rows, reorders columns or prints other numbers fails."""

from __future__ import annotations

import json
import statistics

import pytest
from conftest import REPO, load_script

RESULTS = REPO / "benchmarks" / "results"
CAMERAS = ["bbbc006", "paper-eq1", "gain1-offset96", "dim-high-gain", "noiseless"]


gen_tables = load_script("docs/gen_tables.py")


def result(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def report() -> dict:
    return json.loads((REPO / "docs" / "report" / "results.json").read_text())


def folds() -> dict:
    return result("robustness_folds.json")["folds"]


def parse(markdown: str) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, the line after the table) of the one table in ``markdown``."""
    lines = markdown.strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    cells = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in table]
    assert set("".join(cells[1])) <= set("-"), "the second line must be the header rule"
    footer = [line for line in lines if line and not line.startswith("|")]
    return cells[0], cells[2:], "\n".join(footer)


def render(name: str) -> tuple[list[str], list[list[str]], str]:
    return parse(gen_tables.render_tables(f"<!-- table: {name} -->\n"))


def f3(x) -> str:
    return f"{x:.3f}"


def signed(x) -> str:
    return f"{x:+.2f}"


# ------------------------------------------------------------------------------------------------ expectations
# Each returns (header, number of rows, {(row, column): cell}) from the JSON files.


def exp_headline():
    fig3 = report()["items"]["fig3"]["awdvd"]
    unseen = next(iter(folds().values()))["fields_unseen_cameras"]["cameras"]
    bands = result("restoration_bands.json")["summary"]
    top1 = [f["fields"]["cameras"]["bbbc006"]["top1"] for f in folds().values()]
    row = 2 + len(unseen)
    return (["measure", "awdvd", "paper", "record"], row + 10,
            {(0, 1): f"{f3(min(top1))}-{f3(max(top1))} / " + "{}-{}".format(
                *(f3(g([f["fields"]["cameras"]["bbbc006"]["within1"] for f in folds().values()])) for g in (min, max))),
             (row, 1): f"{f3(fig3['accuracy'])} ({f3(fig3['within_one_level'])})",
             (row + 7, 1): f"{signed(bands['floors']['worst_band_gain_db'])} / "
                           f"{signed(bands['mean']['model_defaults']['whole_gain_db'])} dB / "
                           f"{bands['floors']['time_ratio_defaults_over_paper']:.2f}x"})


def exp_robustness_fields():
    cells = {}
    for i, (name, fold) in enumerate(folds().items()):
        for j, cam in enumerate(CAMERAS):
            c = fold["fields"]["cameras"][cam]
            cells[(5 * i + j, 0)] = name
            cells[(5 * i + j, 2)] = f3(c["top1"])
            cells[(5 * i + j, 3)] = f3(c["within1"])
            cells[(5 * i + j, 5)] = f"{100 * c['background_calls']:.1f}%"
    return (["held-out field", "camera", "top-1", "within +/-1", "mean abs error", "bg calls", "weakest levels"],
            5 * len(folds()), cells)


def exp_robustness_fold_means():
    fs = list(folds().values())
    cells = {(len(fs), 1 + j): f"{f3(statistics.fmean(f['fields']['cameras'][c]['top1'] for f in fs))} / "
                               f"{f3(statistics.fmean(f['fields']['cameras'][c]['within1'] for f in fs))}"
             for j, c in enumerate(CAMERAS)}
    cells.update({(i, 4): f"{f3(f['fields']['cameras']['dim-high-gain']['top1'])} / "
                          f"{f3(f['fields']['cameras']['dim-high-gain']['within1'])}" for i, f in enumerate(fs)})
    return (["held-out field", *CAMERAS, "real in-focus field called 0-1"], len(fs) + 1, cells)


def exp_robustness_procedural():
    cells = {(5 * i + j, 2): f3(fold["procedural"]["cameras"][cam]["top1"])
             for i, fold in enumerate(folds().values()) for j, cam in enumerate(CAMERAS)}
    return (["fold model", "camera", "top-1", "within +/-1", "mean abs error", "weakest levels"],
            5 * len(folds()), cells)


def exp_robustness_unseen_cameras():
    fs = list(folds().values())
    cams = list(fs[0]["fields_unseen_cameras"]["cameras"])
    cells = {(i, 1 + j): f"{f3(f['fields_unseen_cameras']['cameras'][c]['top1'])} / "
                         f"{f3(f['fields_unseen_cameras']['cameras'][c]['within1'])}; procedural "
                         f"{f3(f['procedural_unseen_cameras']['cameras'][c]['top1'])} / "
                         f"{f3(f['procedural_unseen_cameras']['cameras'][c]['within1'])}"
             for i, f in enumerate(fs) for j, c in enumerate(cams)}
    header = None  # camera labels are built from the settings: checked by column count below
    return (header, len(fs), cells, 1 + len(cams))


def exp_robustness_maps():
    cells = {}
    for i, fold in enumerate(folds().values()):
        m = fold["maps"]["cameras"]["bbbc006"]["mean"]
        cells[(5 * i, 2)] = f3(m["exact"])
        cells[(5 * i, 6)] = f"{m['psnr_awdvd_model_map']:.2f}"
        cells[(5 * i, 7)] = f"{m['psnr_awdvd_true_levels']:.2f}"
    return (["held-out field", "camera", "window levels exact", "within +/-1", "bg calls", "PSNR recorded (dB)",
             "AWDVD, model's map (dB)", "AWDVD, true levels (dB)"], 5 * len(folds()), cells)


def exp_robustness_real_in_focus():
    cells = {(i, 3): f"{f3(cells['fraction_expected'])} of {cells['n_foreground']}"
             for i, cells in enumerate(f["real_in_focus_cells"] for f in folds().values())}
    return (["held-out field", "tiles", "called 0-1, paper's 230/30 rule", "called 0-1, cells rule",
             "called bg (paper's rule)"], len(folds()), cells)


def exp_robustness_bundled():
    models = result("robustness_bundled.json")["models"]
    bundled = models["bundled"]
    n_cams = len(bundled["fields"]["cameras"]) + len(bundled["fields_unseen_cameras"]["cameras"])
    c, p = bundled["fields"]["cameras"]["bbbc006"], bundled["procedural"]["cameras"]["bbbc006"]
    last = models["previous"]["fields_unseen_cameras"]["cameras"]["bright-x6"]
    return (["model", "camera", "a07: top-1 / within +/-1", "weakest levels", "procedural: top-1 / within +/-1"],
            n_cams * len(models),
            {(0, 0): "bundled", (0, 2): f"{f3(c['top1'])} / {f3(c['within1'])}",
             (0, 4): f"{f3(p['top1'])} / {f3(p['within1'])}", (n_cams, 0): "stage 4",
             (3 * n_cams - 1, 0): "previous", (3 * n_cams - 1, 2): f"{f3(last['top1'])} / {f3(last['within1'])}"})


def exp_robustness_bundled_maps():
    models = result("robustness_bundled.json")["models"]
    m = models["previous"]["maps"]["cameras"]["bbbc006"]["mean"]
    cells = models["bundled"]["real_in_focus_cells"]
    return (["model", "tilted a07 map: exact / within +/-1", "PSNR recorded (dB)", "AWDVD, model's map (dB)",
             "AWDVD, true levels (dB)", "real a07 called 0-1, paper's rule", "cells rule"], 3,
            {(2, 1): f"{f3(m['exact'])} / {f3(m['within1'])}", (2, 3): f"{m['psnr_awdvd_model_map']:.2f}",
             (0, 6): f"{f3(cells['fraction_expected'])} of {cells['n_foreground']}"})


def exp_levers_a07():
    levers = result("robustness_levers_a07.json")
    runs = list(levers["runs"].values())
    cells = {(0, 3): f3(folds()["a07"]["fields"]["cameras"]["bbbc006"]["top1"]),
             (0, 11): f3(levers["bundled_model_paper_split_test"]["accuracy"]),
             (1, 6): f3(result("robustness_ordinal_a07.json")["folds"]["a07"]["fields"]["cameras"]["dim-high-gain"][
                 "top1"])}
    for i, run in enumerate(runs):
        cams = run["fold"]["fields"]["cameras"]
        cells[(2 + i, 6)] = f3(cams["dim-high-gain"]["top1"])
        cells[(2 + i, 8)] = f3(statistics.fmean(cams[c]["top1"] for c in CAMERAS))
        cells[(2 + i, 9)] = f3(run["fold"]["fields_unseen_cameras"]["cameras"]["gain8-dim"]["top1"])
        cells[(2 + i, 11)] = f3(run["paper_split_test"]["accuracy"])
    return (["run (fold a07)", "training cameras", "steps, lr", *CAMERAS, "mean of the 5", "gain8-dim (unseen)",
             "real a07 called 0-1 (paper / cells rule)", "paper split test", "training wall s"], 2 + len(runs), cells)


def exp_restoration_bands():
    mean = result("restoration_bands.json")["summary"]["mean"]
    n = len(mean["model_defaults"]["band_gain_db"])
    cells = {(0, 1 + level): signed(g) for level, g in enumerate(mean["model_defaults"]["band_gain_db"])}
    cells[(0, n + 1)] = signed(mean["model_defaults"]["whole_gain_db"])
    cells[(1, 1)] = signed(mean["model_paper"]["band_gain_db"][0])
    return (["level band", *map(str, range(n)), "whole", "s"], len(mean), cells)


def exp_restoration_floors():
    floors = result("restoration_bands.json")["summary"]["floors"]
    return (["measure", "value"], 4 + len(floors["ceiling_share"]),
            {(0, 1): signed(floors["worst_band_gain_db"]), (1, 1): signed(floors["worst_band_any_field_db"])})


def exp_restoration_bands_fields():
    fields = result("restoration_bands.json")["fields"]
    cells = {(i, 0): f["image"] for i, f in enumerate(fields)}
    cells.update({(i, 1): signed(f["rows"]["model_defaults"]["whole_gain_db"]) for i, f in enumerate(fields)})
    return (None, len(fields), cells, 1 + len(fields[0]["rows"]))


def _exp_fig8(name):
    levels = result(name)["levels"]
    cells = {}
    for i, lv in enumerate(levels):
        gain, ci = lv["psnr_gain_db"]["variant_predicted"], lv["psnr_gain_ci95_db"]["variant_predicted"]
        cells[(i, 0)], cells[(i, 1)] = str(lv["level"]), str(lv["n"])
        cells[(i, 2)] = "n/a" if gain is None else f"{signed(gain)} +/- {ci:.2f}"
    return (["level", "n", "gain, predicted levels (dB, +/- 95% interval)", "gain, true level (dB)",
             "gain, depth-invariant (dB)", "SSIM ratio, predicted", "SSIM ratio, true"], len(levels), cells)


def exp_restoration_fig8_test():
    return _exp_fig8("restoration_fig8_patches.json")


def exp_restoration_fig8_val():
    return _exp_fig8("restoration_fig8_val_patches.json")


def exp_blend_threshold():
    record = result("blend_threshold.json")
    n = len(record["paper"]["band_gain_db"])
    cells = {(i, n + 1): signed(r["whole_gain_db"]) for i, r in enumerate(record.values())}
    cells.update({(i, n + 2): f"{r['cpu_ratio']:.2f}x" for i, r in enumerate(record.values())})
    return (["setting", *map(str, range(n)), "whole", "CPU time vs the paper's"], len(record), cells)


def exp_speed_rl():
    cells = {(i, 5): f"{result(n)['richardson_lucy']['ratio_vs_skimage_float64']:.2f}x"
             for i, n in enumerate(["deconv_rl_idle.json", "deconv.json"])}
    return (["record", "load at start", "awdvd RL (s)", "scikit-image, uint16 image (float64) (s)",
             "scikit-image, float32 (s)", "awdvd / scikit-image uint16", "awdvd / scikit-image float32"], 2, cells)


def exp_speed_awdvd():
    a = result("deconv.json")["awdvd"]
    return (["method", "stride", "weights", "windows", "median s", "PSNR (dB, truth range)", "SSIM", "seam ratio"], 7,
            {(2, 5): f"{a['fast_s42_triangular']['psnr_truth_range_db']:.2f}",
             (3, 4): f"{a['patchwise_s42_triangular']['median_s']:.2f}",
             (6, 5): f"{a['observed']['psnr_truth_range_db']:.2f}"})


def exp_speed_map():
    m = result("map_speed.json")
    return (None, 7, {(0, 1): f"{m['map_stride8_s']:.2f}", (5, 1): f"{m['awdvd_over_skimage_uint16']:.2f}x"}, 2)


def exp_map_agreement():
    ag = result("deconv_agreement.json")["agreement"]
    return (["model", "images", "dense normalisation", "windows", "same level", "within +/-1", "same bg call",
             "mean abs level difference"], 8,
            {(0, 4): f3(ag["real_z00"]["global"]["exact"]), (3, 4): f3(ag["tilted_specimens"]["local"]["exact"])})


def exp_batch_files():
    names = ["batch_bundled.json", "batch_idle.json", "batch.json"]
    runs = [(n, w, r) for n in names for w, r in result(n)["batch"]["runs"].items()]
    cells = {(i, 7): f"{r['wall_s']:.1f}" for i, (_, _, r) in enumerate(runs)}
    cells.update({(i, 4): w for i, (_, w, _) in enumerate(runs)})
    return (["record", "model", "map mode", "load at start", "--workers", "where", "files", "wall s",
             "map s per file", "RL s per file"], len(runs), cells)


def exp_batch_large():
    cells = {(i, 4): f"{result(n)['large']['wall_s']:.0f}" for i, n in enumerate(["batch.json",
                                                                                  "batch_large_serial.json"])}
    return (["record", "image (px)", "tiles", "workers", "wall s", "map s", "RL s", "peak RSS main (MB)",
             "peak RSS all processes (MB)", "output ok"], 2, cells)


def exp_batch_memory():
    mem = result("batch_memory.json")["memory"]
    cells = {(i, 3): f"{r['peak_rss_mb']:.0f}" for i, r in enumerate(mem.values())}
    return (["run", "image (px)", "s", "peak RSS (MB)"], len(mem) + 1, cells)


def exp_foundation():
    f = result("foundation.json")
    n = len(f["psf_max_abs_error_rel_peak"])
    cells = {(i, 1): f"{e:.1e} of the peak" for i, e in enumerate(f["psf_max_abs_error_rel_peak"].values())}
    return (["measure", "value"], n + 2, cells)


def exp_optics_sharp():
    r = result("optics.json")["sharp_at_pixel_sizes"]
    cells = {(i, 1): f3(v["in_focus_share"]) for i, v in enumerate(r.values())}
    cells.update({(i, 0): f"{pixel} um" for i, pixel in enumerate(r)})
    return (["pixel size given", "windows with cells read in focus (<= 2 um)", "windows"], len(r), cells)


def exp_optics_defocus():
    r = result("optics.json")["defocus_under_optics"]
    cells = {}
    for i, name in enumerate(r["model"]):
        cells.update({(i, 0): name, (i, 2): f3(r["model"][name]["within_1"]), (i, 4): f3(r["object"][name]["within_1"])})
    return (["objective", "one level-equivalent", "model's object scale: within 1", "within 1/2",
             "real object scale: within 1", "within 1/2"], len(r["model"]), cells)


def exp_optics_restoration():
    r = result("optics_restoration.json")["optics"]
    cells = {(i, 0): name for i, name in enumerate(r)}
    cells.update({(i, 3): f"{100 * v['ceiling_share']:.1f}%" for i, v in enumerate(r.values())})
    cells.update({(i, 4): f"{v['worst_band_db']:+.2f}" for i, v in enumerate(r.values())})
    return (["objective", "whole-image gain (dB)", "true-level ceiling, plain RL (dB)", "share", "worst band (dB)"],
            len(r), cells)


def exp_real_data():
    r = result("real_data.json")
    return (None, 2, {(0, 4): f3(r["in_focus"]["fraction_expected"]), (1, 4): f3(r["defocused"]["fraction_expected"]),
                      (1, 2): str(r["defocused"]["n_foreground"])}, 7)


def exp_previous_model_eval():
    cells = {(i, 3): f3(result(n)["accuracy"]) for i, n in enumerate(["delpnet_eval_paper_split.json",
                                                                      "delpnet_eval_strict_split.json"])}
    return (["test split", "model", "patches", "top-1", "top-2", "macro F1", "mean abs level error"], 2, cells)


def exp_report_run():
    return (["run", "value"], 6, {(5, 1): f"{report()['wall_seconds']:.0f} s"})


def exp_report_table1():
    rows = report()["items"]["table1"]["rows"]
    main = 2 * [k for k in ("no-bg", "delpnet", "main") if k in rows].index("main")
    return (["setting", "", "accuracy", "precision", "recall", "F1"], 2 * len(rows),
            {(main, 2): f"{100 * rows['main']['paper']['accuracy']:.1f}%",
             (main + 1, 2): f"{100 * rows['main']['awdvd']['accuracy']:.1f}%",
             (main + 1, 5): f"{100 * rows['main']['awdvd']['f1']:.1f}%"})


def exp_report_table2():
    rows = report()["items"]["table2"]["rows"]
    order = [k for k in ("vgg16", "inception_v3", "resnet18", "mobilenet_v2", "delpnet") if k in rows]
    cells = {(2 * i + 1, 3): f"{100 * rows[k]['awdvd']['accuracy']:.1f}%" for i, k in enumerate(order)}
    cells.update({(2 * i, 3): f"{100 * rows[k]['paper']['accuracy']:.1f}%" for i, k in enumerate(order)})
    return (["network", "", "parameters", "accuracy", "precision", "recall", "F1"], 2 * len(rows), cells)


def exp_report_fig8():
    levels = report()["items"]["fig8"]["awdvd"]["per_level"]
    cells = {(i, 2): "n/a" if lv["psnr_gain_db"]["variant_predicted"] is None
             else signed(lv["psnr_gain_db"]["variant_predicted"]) for i, lv in enumerate(levels)}
    return (["level", "n", "gain, predicted level (dB)", "gain, true level (dB)", "gain, depth-invariant (dB)",
             "SSIM noisy", "SSIM depth-variant", "SSIM depth-invariant"], len(levels), cells)


def exp_report_fig9():
    results = report()["items"]["fig9"]["awdvd"]["results"]
    cells = {(i, 0): r["name"] for i, r in enumerate(results)}
    cells.update({(i, 4): f"{r['psnr_truth_range']:.2f}" for i, r in enumerate(results)})
    cells.update({(i, 6): f"{r['seam_ratio_error']:.2f}" for i, r in enumerate(results)})
    return (["restoration", "levels", "stride", "weights", "PSNR (dB, truth range)", "SSIM", "seam ratio",
             "s (map + restoration)"], len(results), cells)


EXPECTED = {name: globals()["exp_" + name.replace("-", "_")] for name in gen_tables.TABLES
            if "exp_" + name.replace("-", "_") in globals()}


def test_every_table_has_an_expectation_here():
    assert set(EXPECTED) == set(gen_tables.TABLES), "add an exp_<name> for every new table"


@pytest.mark.parametrize("name", sorted(gen_tables.TABLES))
def test_placeholder_renders_the_table_of_its_result_files(name):
    expected = EXPECTED[name]()
    header, n_rows, cells = expected[:3]
    got_header, rows, footer = render(name)
    if header is None:
        assert len(got_header) == expected[3]
    else:
        assert got_header == header
    assert len(rows) == n_rows
    assert all(len(row) == len(got_header) for row in rows), "every row has a cell per column"
    for (r, c), cell in cells.items():
        assert rows[r][c] == cell, f"{name}: row {r} column {got_header[c]!r}"
    assert footer.startswith("_Generated from `") and footer.endswith("._")
    for source in gen_tables.table(name).sources:
        assert (REPO / source).is_file() and f"`{source}`" in footer


def test_unknown_placeholder_fails_with_the_known_names():
    with pytest.raises(ValueError, match="unknown table placeholder 'no-such-table'.*robustness-fields"):
        gen_tables.render_tables("text\n<!-- table: no-such-table -->\n")


def test_only_whole_placeholder_lines_are_replaced():
    page = ("# Title\n\nSee `<!-- table: headline -->` inline.\n<!-- other comment -->\n"
            "  <!-- table: report-run -->\nend\n")
    out = gen_tables.render_tables(page)
    assert out.startswith("# Title\n\nSee `<!-- table: headline -->` inline.\n<!-- other comment -->\n| run | value |")
    assert out.endswith("._\nend\n")
    assert gen_tables.placeholders(page) == ["report-run"]


def test_the_pages_use_every_table_and_only_known_ones():
    used = []
    for page in ("benchmarks.md", "reproduction.md"):
        text = (REPO / "docs" / page).read_text()
        used += gen_tables.placeholders(text)
        assert "<!-- table:" not in gen_tables.render_tables(text)
    assert sorted(used) == sorted(gen_tables.TABLES)
