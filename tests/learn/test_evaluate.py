"""Evaluation of a model on a dataset: compatibility checks, the metrics, the report files of write_evaluation,
and the evaluate command. The models are small random networks: the numbers are checked against an independent
count, not for being good."""

from __future__ import annotations

import json

import numpy as np
import pytest

from awdvd.cli import main
from awdvd.learn.evaluate import (
    MODEL_FILES,
    check_compatible,
    evaluate_model,
    evaluation_paths,
    model_names,
    recorded_metrics,
    write_evaluation,
)
from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet

TINY_ARGS = {"widths": (4, 4, 8, 8, 8, 8, 8), "pool_after": 3}


def _random_model(optics, seed: int, *, history=None, n_levels: int = 3, patch_px: int = 32) -> DefocusModel:
    import torch

    torch.manual_seed(seed)
    network = build_delpnet(DelpNetConfig(**TINY_ARGS, n_classes=n_levels + 1))
    info = {"variant": {"name": "delpnet"}, "recipe": {"name": "test"}}
    if history is not None:
        info["training"] = {"history": history}
    return DefocusModel(network, optics=optics, class_levels=list(range(n_levels)) + [-1], patch_px=patch_px,
                        info=info)


@pytest.fixture(scope="module")
def model_files(tiny_optics, tmp_path_factory):
    """Two random tiny DelpNets for the tiny dataset (3 levels + bg, 32 px), saved; the second with curves."""
    folder = tmp_path_factory.mktemp("models")
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.2 * e, "val_loss": 1.2 / e,
                "val_accuracy": 0.1 * e} for e in (1, 2, 3)]
    return [_random_model(tiny_optics, 0).save(folder / "a.pt"),
            _random_model(tiny_optics, 1, history=history).save(folder / "b.pt")]


def test_evaluate_model_counts_as_an_independent_confusion(tiny_dataset, tiny_optics):
    splits, metadata = tiny_dataset
    model, test = _random_model(tiny_optics, 3), splits["test"]
    summary = evaluate_model(model, test, metadata=metadata)
    predicted = model.predict_patches(test.raw)
    truth = test.labels  # the model has a bg class: bg patches are labelled bg
    assert summary["n"] == len(test) and summary["accuracy"] == pytest.approx(np.mean(predicted == truth), abs=1e-12)
    confusion = np.zeros((4, 4), int)
    for t, p in zip(truth, predicted):
        confusion[[0, 1, 2, -1].index(t), [0, 1, 2, -1].index(p)] += 1
    np.testing.assert_array_equal(summary["confusion"], confusion)
    assert summary["class_names"] == ["0", "1", "2", "bg"] and summary["architecture"] == "delpnet"
    assert summary["cmc"][-1] == pytest.approx(1.0) and len(summary["cmc"]) == 4
    assert set(recorded_metrics(summary)) == {"n", "accuracy", "macro", "mean_abs_level_error", "within_one_level",
                                              "cmc", "per_class"}


def test_evaluate_refuses_mismatched_data(tiny_dataset, tiny_optics):
    from awdvd.physics.optics import Optics

    splits, metadata = tiny_dataset
    with pytest.warns(UserWarning):
        five = Optics(n_levels=5)
    with pytest.raises(ValueError, match="distinguishes 5 defocus levels, the dataset 3"):
        evaluate_model(_random_model(five, 0, n_levels=5), splits["test"], metadata=metadata)
    with pytest.raises(ValueError, match="48 x 48 patches"):
        evaluate_model(_random_model(tiny_optics, 0, patch_px=48), splits["test"])
    with pytest.warns(UserWarning):
        other = Optics(n_levels=3, na=0.4)
    with pytest.raises(ValueError, match="made with other optics"):
        check_compatible(_random_model(other, 0), splits["test"], metadata)
    with pytest.warns(UserWarning):
        two = Optics(n_levels=2)
    with pytest.raises(ValueError, match="holds levels up to 2; the model knows 0..1"):
        check_compatible(_random_model(two, 0, n_levels=2), splits["test"])


def test_write_evaluation_of_one_model(model_files, tiny_dataset_dir, tiny_dataset, tmp_path):
    out = tmp_path / "one"
    done = write_evaluation(model_files[:1], tiny_dataset_dir, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(MODEL_FILES)
    assert sorted(done.files) == sorted(out / name for name in MODEL_FILES) and done.split == "test"
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(done.summaries["a"]))
    assert summary["model"] == str(model_files[0]) and summary["split"] == "test" and summary["recipe"] == "test"
    from awdvd.learn.model_files import load_model

    direct = evaluate_model(load_model(model_files[0]), tiny_dataset[0]["test"], metadata=tiny_dataset[1])
    assert summary["accuracy"] == pytest.approx(direct["accuracy"], abs=1e-12)
    rows = (out / "confusion.csv").read_text().splitlines()
    assert rows[0] == "true \\ predicted,0,1,2,bg"
    confusion = np.array([row.split(",")[1:] for row in rows[1:]], int)
    np.testing.assert_array_equal(confusion, direct["confusion"])
    cmc = (out / "cmc.csv").read_text().splitlines()
    assert cmc[0] == "k,top_k_accuracy" and len(cmc) == 5 and float(cmc[-1].split(",")[1]) == pytest.approx(1.0)
    assert len((out / "per_class.csv").read_text().splitlines()) == 5
    for name in ("confusion.png", "cmc.png"):
        assert (out / name).stat().st_size > 1000
    # nothing is replaced without overwrite; with it, the files are written again
    with pytest.raises(FileExistsError, match="exists; choose another -o DIR or pass --overwrite"):
        write_evaluation(model_files[:1], tiny_dataset_dir, out)
    assert write_evaluation(model_files[:1], tiny_dataset_dir, out, split="val", overwrite=True).split == "val"
    assert json.loads((out / "summary.json").read_text())["split"] == "val"


def test_write_evaluation_compares_several_models(model_files, tiny_dataset_dir, tmp_path):
    out = tmp_path / "both"
    done = write_evaluation(model_files, tiny_dataset_dir, out)
    assert set(done.summaries) == {"a", "b"}
    for name in ("a", "b"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(MODEL_FILES)
    rows = (out / "comparison.csv").read_text().splitlines()
    assert rows[0].startswith("model,architecture,n,accuracy") and [r.split(",")[0] for r in rows[1:]] == ["a", "b"]
    assert float(rows[2].split(",")[3]) == pytest.approx(done.summaries["b"]["accuracy"], abs=1e-12)
    assert (out / "cmc.png").is_file() and (out / "curves.png").is_file()  # b has training curves (Fig. 4)
    assert set(evaluation_paths(model_files, out).values()) == set(done.files)


def test_write_evaluation_bad_calls(model_files, tiny_dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="model file names must differ"):
        model_names([tmp_path / "x" / "m.pt", tmp_path / "y" / "m.pt"])
    with pytest.raises(ValueError, match="give at least one model file"):
        write_evaluation([], tiny_dataset_dir, tmp_path / "out")
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        write_evaluation(model_files, tiny_dataset_dir, tmp_path / "out", split="all")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could not be read as a model file"):
        write_evaluation([model_files[0], tmp_path / "junk.pt"], tiny_dataset_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # every file is checked before anything is written


def test_cli_evaluate(model_files, tiny_dataset_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["evaluate", *map(str, model_files), str(tiny_dataset_dir), "-o", str(out), "--split", "val"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["a", "b", f"wrote {out}"]
    assert "val patches)" in lines[0] and "mean |level error|" in lines[0]
    assert (out / "comparison.csv").is_file()
    assert main(["evaluate", str(model_files[0]), str(tiny_dataset_dir), "-o", str(out / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("awdvd evaluate: error:") and "--overwrite" in err[0]


def test_evaluate_into_an_existing_file_is_one_sentence_before_any_work(model_files, tiny_dataset_dir, tmp_path,
                                                                         capsys):
    """Issue 15 item 7: `evaluate -o existing.tif` gave "[Errno 17] File exists" after evaluating."""
    (tmp_path / "existing.tif").write_bytes(b"mine")
    assert main(["evaluate", str(model_files[0]), str(tiny_dataset_dir), "-o", str(tmp_path / "existing.tif")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"awdvd evaluate: error: {tmp_path / 'existing.tif'} is a file; -o takes a folder: give a new or "
                   "an existing folder"]
    assert (tmp_path / "existing.tif").read_bytes() == b"mine"
