"""awdvd.reproduce and `awdvd reproduce`: a tiny run end to end, the command's errors, and (slow) the smoke scale."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from awdvd.cli import main
from awdvd.reproduce import REPORT_ITEMS, SCALES, Scale, get_scale, reproduce
from awdvd.synth import synthetic_nuclei

SRC = Path(__file__).resolve().parents[1] / "src"

# tiny networks, one epoch, a handful of crops: every item is produced, the numbers mean nothing
TINY = Scale(name="tiny", crops_per_image=3, realizations=2, main_epochs=1, ablation_epochs=1, architecture_epochs=1,
             comparison_train_patches=64, per_level=2, strides=(42,), iterations=3,
             network_args={"delpnet": {"widths": [4, 4, 8, 8, 8, 8, 8]}, "vgg16": {"width_mult": 0.0625},
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


def test_reproduce_tiny_run(tmp_path):
    sources = [synthetic_nuclei((96, 128), n_nuclei=5, seed=seed) for seed in range(2)]
    out = tmp_path / "report"
    results = reproduce(out, scale=TINY, data=sources, progress=False)
    check_report(out)
    assert results["report"] == str(out / "REPORT.md")
    assert results["scale"]["name"] == "tiny" and results["data"]["n_images"] == 2
    # one training per distinct (variant, budget): the comparison DelpNet is shared by Table 1 and Table 2
    assert set(results["models"]) == {"main", "delpnet@1ep", "no-bg@1ep", "bn-momentum-0.99@1ep", "plain@1ep",
                                      "vgg16@1ep", "inception_v3@1ep", "resnet18@1ep", "mobilenet_v2@1ep"}
    assert results["models"]["main"]["recipe"]["bn_recalibration"] > 0
    assert all(m["recipe"]["bn_recalibration"] == 0 for k, m in results["models"].items() if k != "main")
    assert results["models"]["no-bg@1ep"]["test"]["n"] == results["dataset"]["n_patches"]["test"]
    assert results["models"]["vgg16@1ep"]["n_train"] == 64  # comparison_train_patches
    table2 = results["items"]["table2"]["rows"]
    assert table2["vgg16"]["params_published"] == pytest.approx(39.9e6, rel=0.01)  # the published size, not the tiny one
    assert len(results["items"]["fig5"]["awdvd"]["no-bg"]["cmc"]) == 11
    assert len(results["items"]["fig5"]["awdvd"]["delpnet"]["cmc"]) == 12
    # a second run into the same folder is refused before any work, and allowed with overwrite
    with pytest.raises(FileExistsError, match="not empty"):
        reproduce(out, scale=TINY, data=sources, progress=False)


def test_reproduce_with_a_given_model(tmp_path, tiny_model_file):
    """A model file serves Fig. 3 and 7-9 instead of a main DelpNet trained here; since it was not trained on
    this run's dataset, the report warns that its test patches may not be held out."""
    sources = [synthetic_nuclei((96, 128), n_nuclei=5, seed=seed) for seed in range(2, 4)]
    scale = TINY.replace(architecture_epochs=2, comparison_val_patches=8)
    results = reproduce(tmp_path / "out", scale=scale, data=sources, model=tiny_model_file, progress=False)
    check_report(tmp_path / "out")
    main_run = results["models"]["main"]
    assert main_run["source"] == str(tiny_model_file.resolve()) and main_run["train_seconds"] is None
    assert results["main_model"]["test_is_held_out"] is None
    assert "Caution" in (tmp_path / "out" / "REPORT.md").read_text()
    # ablations and architectures have their own budgets: DelpNet is trained once for each
    assert {"delpnet@1ep", "delpnet@2ep", "vgg16@2ep"} <= set(results["models"])
    assert results["items"]["table2"]["rows"]["delpnet"]["model"] == "delpnet@2ep"
    assert results["items"]["table1"]["rows"]["delpnet"]["model"] == "delpnet@1ep"
    assert results["models"]["vgg16@2ep"]["n_val"] == 8


def test_scales():
    assert set(SCALES) == {"smoke", "cpu", "full"}
    assert get_scale("smoke").main_epochs <= 2
    with pytest.raises(ValueError, match="unknown scale"):
        get_scale("huge")
    with pytest.raises(ValueError, match="strides"):
        Scale(strides=(0,))
    with pytest.raises(ValueError, match="network_args"):
        Scale(network_args={"alexnet": {}})
    with pytest.raises(ValueError, match="recipe"):
        Scale(recipe="slow")
    assert json.loads(json.dumps(SCALES["cpu"].to_dict()))["strides"] == [42, 21]


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
