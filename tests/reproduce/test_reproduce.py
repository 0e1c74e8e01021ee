"""awdvd.reproduce and `awdvd reproduce`: a small run end to end (every item of the report), the report rendered
from its results, the figures, the command's errors, and (slow) a tiny run with its own budgets and the smoke
scale."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from awdvd.cli import main
from awdvd.data.synth import synthetic_nuclei
from awdvd.learn.model_files import bundled_model_path, load_model
from awdvd.reproduce import REPORT_ITEMS, SCALES, Scale, get_scale, reproduce

SRC = Path(__file__).resolve().parents[2] / "src"

# tiny networks, one epoch, a handful of crops: every item is produced, the numbers mean nothing
TINY = Scale(name="tiny", crops_per_image=3, realizations=2, main_epochs=1, ablation_epochs=1, architecture_epochs=1,
             comparison_train_patches=64, per_level=2, strides=(42,), iterations=3,
             network_args={"delpnet": {"widths": [4, 4, 8, 8, 8, 8, 8]}, "vgg16": {"width_mult": 0.0625, "batch_norm": True},
                           "inception_v3": {"width_mult": 0.0625}, "resnet18": {"width_mult": 0.0625},
                           "mobilenet_v2": {"width_mult": 0.125}})


def _strict_json(path: Path) -> dict:
    def reject(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def check_report(folder: Path) -> dict:
    """REPORT.md names every item, every figure it links exists, results.json is strict JSON with accuracies in
    [0, 1]; the folder stays small and holds no leftovers. Returns results.json."""
    report = (folder / "REPORT.md").read_text()
    for item in REPORT_ITEMS:
        assert f"## {item}" in report, f"{item} missing from the report"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(links) == 7  # Fig. 3-9
    for link in links:
        assert not Path(link).is_absolute()
        assert (folder / link).is_file() and (folder / link).stat().st_size > 1000, link
    assert "paper" in report and "awdvd" in report
    results = _strict_json(folder / "results.json")
    accuracies = [model["test"]["accuracy"] for model in results["models"].values()]
    accuracies += [row["awdvd"]["accuracy"] for row in results["items"]["table1"]["rows"].values()]
    accuracies += [row["awdvd"]["accuracy"] for row in results["items"]["table2"]["rows"].values()]
    assert len(accuracies) >= 9 + 3 + 5
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    for key in ("table1", "table2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9"):
        assert results["items"][key]["seconds"] >= 0
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5e6
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".partial")]
    return results


# the default suite's run: the smallest that still fills every item (a given model, so no main training)
SMALL = TINY.replace(name="small", crops_per_image=2, realizations=1, comparison_train_patches=16,
                     comparison_val_patches=4, per_level=1, iterations=2)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_model_file):
    """One reproduction at the SMALL scale with a given (random, tiny) main model: (out folder, results)."""
    sources = [synthetic_nuclei((96, 128), n_nuclei=5, seed=seed) for seed in range(2)]
    out = tmp_path_factory.mktemp("reproduce") / "report"
    return out, sources, reproduce(out, scale=SMALL, data=sources, model=tiny_model_file, progress=False)


def test_reproduce_small_run_holds_every_item(small_run, tiny_model_file):
    """A model file serves Fig. 3 and 7-9 instead of a main DelpNet trained here; since it was not trained on
    this run's dataset, the report warns that its test patches may not be held out."""
    out, sources, results = small_run
    check_report(out)
    assert results["report"] == str(out / "REPORT.md") and results["results"] == str(out / "results.json")
    assert results["scale"]["name"] == "small" and results["data"]["n_images"] == 2
    # one training per distinct (variant, budget): the comparison DelpNet is shared by Table 1 and Table 2
    assert set(results["models"]) == {"main", "delpnet@1ep", "no-bg@1ep", "plain@1ep", "delpnet@1ep+keras-bn",
                                      "bn-momentum-0.99@1ep+keras-bn", "vgg16@1ep", "inception_v3@1ep",
                                      "resnet18@1ep", "mobilenet_v2@1ep"}
    assert results["items"]["table2"]["rows"]["delpnet"]["model"] == "delpnet@1ep"
    assert results["items"]["table1"]["rows"]["delpnet"]["model"] == "delpnet@1ep"
    main_run = results["models"]["main"]
    assert main_run["source"] == str(tiny_model_file.resolve()) and main_run["train_seconds"] is None
    assert results["main_model"]["test_is_held_out"] is None
    assert "Caution" in (out / "REPORT.md").read_text()
    # only Fig. 4's BN study skips BatchNorm recalibration (it is what that figure compares)
    assert all((m["recipe"]["bn_recalibration"] == 0) == k.endswith("+keras-bn")
               for k, m in results["models"].items() if k != "main")
    assert results["items"]["fig4"]["models"] == ["delpnet@1ep+keras-bn", "bn-momentum-0.99@1ep+keras-bn"]
    assert results["models"]["no-bg@1ep"]["test"]["n"] == results["dataset"]["n_patches"]["test"]
    assert results["models"]["vgg16@1ep"]["n_train"] == 16 and results["models"]["vgg16@1ep"]["n_val"] == 4
    table2 = results["items"]["table2"]["rows"]
    assert table2["vgg16"]["params_published"] == pytest.approx(39.9e6, rel=0.01)  # the published size, not the tiny one
    # VGG16 trained with BatchNorm (as the cpu scale does) is named so; the paper's row stays plain VGG16
    assert results["models"]["vgg16@1ep"]["network_args"]["batch_norm"] is True
    report = (out / "REPORT.md").read_text()
    assert "| VGG16 with BatchNorm | awdvd |" in report and "| VGG16 | paper |" in report
    assert "| Inception_v3 | awdvd |" in report
    assert len(results["items"]["fig5"]["awdvd"]["no-bg"]["cmc"]) == 11
    assert len(results["items"]["fig5"]["awdvd"]["delpnet"]["cmc"]) == 12
    # a second run into the same folder is refused before any work
    with pytest.raises(FileExistsError, match="not empty; choose another output folder or pass --overwrite"):
        reproduce(out, scale=SMALL, data=sources, progress=False)


def test_report_is_rendered_from_results_alone(small_run, tmp_path):
    """REPORT.md is a function of results.json: rendering the stored file (whose dicts have sorted keys) gives
    the report the run wrote, and write_report writes both files again."""
    from awdvd.reproduce.report import percent, report_markdown, write_report

    out, _, results = small_run
    stored = json.loads((out / "results.json").read_text())
    assert report_markdown(stored) == report_markdown(results) == (out / "REPORT.md").read_text()
    for row in stored["items"]["table1"]["rows"].values():
        assert percent(row["awdvd"]["accuracy"]) in (out / "REPORT.md").read_text()
    write_report(tmp_path, stored)
    assert (tmp_path / "REPORT.md").read_text() == (out / "REPORT.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text()) == stored


def test_the_shipped_cpu_scale_report_renders_from_its_results():
    """docs/report holds a real `--scale cpu` run: its REPORT.md is rendered again, to the byte, from its
    results.json (every item, the rows of Fig. 6 and the models in the order they were trained)."""
    from awdvd.reproduce.report import report_markdown

    folder = Path(__file__).resolve().parents[2] / "docs" / "report"
    if not (folder / "results.json").is_file():
        pytest.skip(f"no stored reproduction in {folder}")
    results = _strict_json(folder / "results.json")
    text = report_markdown(results)
    assert text == (folder / "REPORT.md").read_text()
    for item in REPORT_ITEMS:
        assert f"## {item}" in text
    models = [line.split(" | ")[0].lstrip("| ") for line in text.split("## Every model of this run")[1].splitlines()
              if line.startswith("| ") and not line.startswith("| Run") and not line.startswith("| ---")]
    epochs = results["scale"]["ablation_epochs"]
    assert models[0] == "main" and models[1] == f"delpnet@{epochs}ep" and models[-1] == f"mobilenet_v2@{epochs}ep"
    assert f"bn-momentum-0.99@{epochs}ep+keras-bn" in models  # Fig. 4's run without BatchNorm recalibration


@pytest.mark.slow
def test_reproduce_tiny_run_with_its_own_budgets(tmp_path):
    """The bundled main model (or one trained here where there is none), and an architecture budget of its own:
    DelpNet is then trained once for the ablations and once for the architectures."""
    sources = [synthetic_nuclei((96, 128), n_nuclei=5, seed=seed) for seed in range(2, 4)]
    scale = TINY.replace(architecture_epochs=2, comparison_val_patches=8)
    results = reproduce(tmp_path / "out", scale=scale, data=sources, progress=False)
    check_report(tmp_path / "out")
    main = results["models"]["main"]
    if main["source"] == "trained here":
        assert main["recipe"]["bn_recalibration"] > 0  # the main DelpNet keeps its recipe's
    else:  # the bundled model, trained on the stream: described by its steps, not by epochs it never had
        info = load_model(bundled_model_path()).info
        assert main["recipe"]["name"] == info["recipe"]["name"]  # its file's last training recipe
        if info.get("lineage"):  # made in stages: all of them, the weight interpolation too
            steps = sum(stage.get("steps", 0) for stage in info["lineage"])
            assert main["budget"].startswith(f"{steps} steps of the training stream in ")
            assert f"({len(info['lineage'])} stages in its file's lineage)" in main["budget"]
            assert "interpolation" in main["budget"] or "interpolation" not in info
        else:
            first = info["training"].get("initialised_from") or {}
            assert "steps x 128 fresh windows" in main["budget"]
            assert (f"after a first stage of {first.get('steps')} steps" in main["budget"]) == bool(first.get("steps"))
        assert "None epochs" not in (tmp_path / "out" / "REPORT.md").read_text()
    assert {"delpnet@1ep", "delpnet@2ep", "vgg16@2ep"} <= set(results["models"])
    assert results["items"]["table2"]["rows"]["delpnet"]["model"] == "delpnet@2ep"
    assert results["items"]["table1"]["rows"]["delpnet"]["model"] == "delpnet@1ep"
    assert results["models"]["vgg16@2ep"]["n_val"] == 8 and results["models"]["vgg16@2ep"]["n_train"] == 64


def test_figures_of_fig7_and_fig9_and_the_placeholder(tmp_path):
    from awdvd.reproduce import figures

    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 900, (84, 84)).astype(np.float32)
    panels = {name: truth + rng.normal(0, 10, truth.shape) for name in ("defocused", "noisy", "variant", "invariant")}
    panels = {"in_focus": truth, **panels}
    metrics = {name: {"psnr_65535": 60.0 if name != "in_focus" else math.inf, "ssim_truth_range": 0.5}
               for name in panels}
    path = figures.plot_fig7(panels, metrics, 40, tmp_path / "fig7.png", level=4, predicted=-1)
    assert path == tmp_path / "fig7.png" and path.stat().st_size > 10_000
    images = {name: rng.uniform(0, 1, (200, 300)) for name in ("observed", "case_i_model", "case_ii_model", "truth")}
    by_name = {name: {"psnr_truth_range": 20.0, "ssim_truth_range": 0.7, "seam_ratio_error": 1.1}
               for name in ("case_i_model", "case_ii_model")}
    y0, x0, h, w = figures.plot_fig9(images, by_name, tmp_path / "fig9.png")
    assert h == w == 168 and 0 <= y0 <= 200 - h and 0 <= x0 <= 300 - w
    assert (tmp_path / "fig9.png").stat().st_size > 10_000
    assert figures.placeholder_figure(tmp_path / "none.png", "nothing to show").stat().st_size > 1000
    summary = {"confusion": [[3, 1], [0, 2]], "class_names": ["0", "bg"]}
    assert figures.confusion_png(summary, tmp_path / "c.png", title="t").stat().st_size > 1000
    assert figures.cmc_png({"a": [0.5, 1.0]}, tmp_path / "cmc.png", title="t").stat().st_size > 1000
    history = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4},
               {"epoch": 2, "train_loss": 0.8, "train_accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.5}]
    assert figures.curves_png({"run": history}, tmp_path / "curves.png").stat().st_size > 1000
    with pytest.raises(FileExistsError):  # figures are never overwritten silently
        figures.placeholder_figure(tmp_path / "none.png", "again")


def test_package_import_is_light():
    code = ("import sys, awdvd.reproduce; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'matplotlib', 'dask'))))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_scales():
    assert set(SCALES) == {"smoke", "cpu", "full"}
    assert get_scale("smoke").main_epochs <= 2
    with pytest.raises(ValueError, match="unknown scale 'huge'; choose one of smoke, cpu, full"):
        get_scale("huge")
    with pytest.raises(ValueError, match="Scale.strides must be one or more whole numbers in 1..84"):
        Scale(strides=(0,))
    with pytest.raises(ValueError, match="Scale.network_args must map architectures"):
        Scale(network_args={"alexnet": {}})
    with pytest.raises(ValueError, match="Scale.recipe must be one of paper, fast"):
        Scale(recipe="slow")
    with pytest.raises(ValueError, match="Scale.per_level must be >= 1"):
        Scale(per_level=0)
    assert json.loads(json.dumps(SCALES["cpu"].to_dict()))["strides"] == [42, 21]
    for scale in (*SCALES.values(), TINY):
        assert Scale.from_json(scale.to_json()) == scale
    with pytest.raises(ValueError, match=r"unknown Scale field\(s\) \['epochs'\]"):
        Scale.from_dict({"epochs": 3})


def test_cli_scale_names_match_the_library():
    from awdvd.cli.reproduce import SCALE_NAMES

    assert SCALE_NAMES == tuple(SCALES)


def test_cli_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "REPORT.md").write_text("an earlier run\n")
    assert main(["reproduce", "--scale", "smoke", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "--overwrite" in err
    assert (tmp_path / "REPORT.md").read_text() == "an earlier run\n"


def test_cli_rejects_unknown_scale_and_missing_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "--scale", "huge", "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["reproduce", "--scale", "smoke", "-o", str(tmp_path / "out"), "--data", str(tmp_path / "nowhere")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_smoke_scale(tmp_path):
    """`awdvd reproduce --scale smoke` as a user runs it (the shared BBBC006 images if they sit beside the repo)."""
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "smoke"
    result = subprocess.run([sys.executable, "-m", "awdvd", "reproduce", "--scale", "smoke", "-o", str(out)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "report:" in result.stdout
    results = check_report(out)
    assert "SMOKE SCALE" in (out / "REPORT.md").read_text()
    assert results["scale"]["name"] == "smoke"
