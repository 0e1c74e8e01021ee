"""Training: recipes, schedules, augmentation, overfitting a tiny set, determinism and resume, a run to files
(train_to_file) and the train command on a tiny dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from awdvd.cli import main
from awdvd.learn.evaluate import evaluate_model
from awdvd.learn.model import DelpNetConfig
from awdvd.learn.model_files import load_model
from awdvd.learn.train import (
    CURVE_COLUMNS,
    RECIPES,
    VARIANTS,
    TrainingRecipe,
    class_levels_for,
    class_targets,
    dihedral,
    get_recipe,
    learning_rate,
    train_model,
    true_labels,
)
from awdvd.learn.train_files import output_paths, train_to_file

# a tiny DelpNet: 7 conv blocks of a few channels, fast on 32 x 32 patches
TINY_ARGS = {"widths": (8, 16, 16, 32, 32, 32, 32), "pool_after": 3, "dropout": 0.0, "head_dropout": 0.0}


@pytest.fixture(scope="module")
def subset(tiny_dataset):
    """Every third training patch (24 patches, all 4 classes)."""
    import dataclasses

    from awdvd.data.patches import PatchSet

    train = tiny_dataset[0]["train"]
    return PatchSet(**{f.name: getattr(train, f.name)[::3] for f in dataclasses.fields(PatchSet)})


# --------------------------------------------------------------------------------------------- recipes
def test_paper_recipe_is_the_papers():
    paper = RECIPES["paper"]
    assert (paper.optimizer, paper.lr, paper.schedule, paper.lr_decay, paper.batch_size, paper.epochs) == (
        "adam", 6e-5, "keras-time-decay", 5e-6, 128, 1000)
    assert paper.augment == "none"


def test_recipe_json_round_trip_and_validation():
    for recipe in RECIPES.values():
        assert TrainingRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert get_recipe("paper", epochs=3, lr=None).epochs == 3
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainingRecipe(schedule="exponential")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        RECIPES["fast"].replace(epochs=0)
    with pytest.raises(ValueError, match=r"lr must be in \(0"):
        TrainingRecipe(lr=-1.0)
    with pytest.raises(ValueError, match="unknown TrainingRecipe field"):
        TrainingRecipe.from_dict({"learning_rate": 1.0})
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("slow")


def test_learning_rate_schedules():
    keras = RECIPES["paper"]
    assert learning_rate(keras, 0, 100) == 6e-5
    assert learning_rate(keras, 200_000, 10**6) == pytest.approx(6e-5 / (1 + 5e-6 * 200_000), rel=1e-12)  # = 3e-5
    one = TrainingRecipe(lr=1.0, schedule="onecycle", warmup_fraction=0.1)
    assert learning_rate(one, 0, 100) == pytest.approx(1 / 25)
    assert learning_rate(one, 10, 100) == pytest.approx(1.0)  # peak at the end of the warm-up
    assert learning_rate(one, 99, 100) == pytest.approx(1 / 25 / 1e4)
    cosine = TrainingRecipe(lr=1.0, schedule="cosine", warmup_fraction=0.0)
    assert learning_rate(cosine, 0, 100) == pytest.approx(1.0)
    assert learning_rate(cosine, 50, 100) == pytest.approx(0.5)
    assert learning_rate(TrainingRecipe(lr=0.3, schedule="constant"), 77, 100) == 0.3


def test_dihedral_gives_the_8_symmetries():
    x = torch.arange(9.0).reshape(1, 3, 3)
    images = [dihedral(x, k) for k in range(8)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    for image in images:
        assert sorted(image.flatten().tolist()) == list(range(9))
    assert torch.equal(images[0], x)
    assert torch.equal(dihedral(x, 4), x.transpose(-2, -1))


def test_labels_and_targets(tiny_dataset):
    train = tiny_dataset[0]["train"]
    assert class_levels_for(3, background_class=True) == [0, 1, 2, -1]
    assert class_levels_for(3, background_class=False) == [0, 1, 2]
    with_bg = true_labels(train, background_class=True)
    without = true_labels(train, background_class=False)
    assert np.any(with_bg == -1) and not np.any(without == -1)  # the no-bg variant: bg patches keep their level
    np.testing.assert_array_equal(without, train.level)
    targets = class_targets(with_bg, [0, 1, 2, -1])
    np.testing.assert_array_equal(targets[with_bg == -1], 3)
    with pytest.raises(ValueError, match=r"labels \[-1\] are not classes"):
        class_targets(with_bg, [0, 1, 2])


# --------------------------------------------------------------------------------------------- training
def _recipe(**changes):
    base = TrainingRecipe(name="test", optimizer="adam", lr=3e-3, schedule="constant", batch_size=16, epochs=3)
    return base.replace(**changes)


def test_tiny_model_overfits_tiny_set(subset, tiny_optics):
    train = subset
    assert set(train.labels.tolist()) == {0, 1, 2, -1}
    result = train_model(train, train, optics=tiny_optics, recipe=_recipe(epochs=20, batch_size=8), network_args=TINY_ARGS,
                         seed=0)
    history = result.history
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]
    assert max(h["val_accuracy"] for h in history) == 1.0  # every training patch learnt (BN in eval mode)
    assert result.model.info["training"]["best_val_accuracy"] == 1.0
    levels = result.model.predict_patches(train.raw)
    np.testing.assert_array_equal(levels, train.labels)


def test_resume_matches_uninterrupted_run(tiny_dataset, subset, tiny_optics, tmp_path):
    splits = {"train": subset, "val": tiny_dataset[0]["val"]}
    recipe = _recipe(epochs=3, batch_size=8, augment="dihedral", schedule="onecycle", optimizer="adamw", weight_decay=0.01)
    args = {**TINY_ARGS, "dropout": 0.2, "head_dropout": 0.3}  # Dropout draws from the RNG saved in the checkpoint
    full = train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=recipe, network_args=args, seed=3)

    def stop_after_two(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "run.checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=recipe, network_args=args, seed=3,
                    checkpoint_path=checkpoint, on_epoch=stop_after_two)
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 * math.ceil(len(splits["train"]) / 8)
    resumed = train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=recipe, network_args=args, seed=3,
                          checkpoint_path=checkpoint, resume=True)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    for a, b in zip(resumed.history, full.history):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    assert resumed.best_epoch == full.best_epoch
    for key, value in full.model.network.state_dict().items():
        assert torch.equal(resumed.model.network.state_dict()[key], value), key


def test_init_starts_from_a_trained_model(subset, tiny_optics, tmp_path):
    first = train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=2, batch_size=8),
                        network_args=TINY_ARGS, seed=0)
    # with a vanishing learning rate the weights stay the init's (BatchNorm statistics do move: not compared)
    again = train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1, batch_size=8, lr=1e-12),
                        network_args=TINY_ARGS, seed=5, init=first.model)
    trained = dict(first.model.network.named_parameters())
    for name, value in again.model.network.named_parameters():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=1e-6)
    fresh = train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1, batch_size=8, lr=1e-12),
                        network_args=TINY_ARGS, seed=5)
    name = next(iter(trained))  # ... while without init they are a random initialisation
    assert not torch.allclose(dict(fresh.model.network.named_parameters())[name], trained[name], atol=1e-3)
    origin = again.model.info["training"]["initialised_from"]
    assert origin["epochs"] == 2 and origin["data_fingerprint"] == first.model.info["training"]["data_fingerprint"]
    # the init is part of a run's identity: a checkpoint made without it is not resumed with it
    checkpoint = tmp_path / "c.pt"
    train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1), network_args=TINY_ARGS, seed=0,
                checkpoint_path=checkpoint)
    with pytest.raises(ValueError, match="different init"):
        train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1), network_args=TINY_ARGS, seed=0,
                    checkpoint_path=checkpoint, resume=True, init=first.model)
    with pytest.raises(ValueError, match="init model is a delpnet"):
        train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1),
                    network_args={**TINY_ARGS, "widths": (2,) * 7}, init=first.model)


def test_resume_refuses_other_settings(tiny_dataset, tiny_optics, tmp_path):
    splits = tiny_dataset[0]
    checkpoint = tmp_path / "c.pt"
    train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=_recipe(epochs=1), network_args=TINY_ARGS,
                seed=0, checkpoint_path=checkpoint)
    with pytest.raises(ValueError, match="different seed"):
        train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=_recipe(epochs=1),
                    network_args=TINY_ARGS, seed=1, checkpoint_path=checkpoint, resume=True)
    with pytest.raises(ValueError, match="different recipe"):
        train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=_recipe(epochs=2),
                    network_args=TINY_ARGS, seed=0, checkpoint_path=checkpoint, resume=True)
    with pytest.raises(ValueError, match="different dataset"):
        train_model(splits["val"], splits["train"], optics=tiny_optics, recipe=_recipe(epochs=1),
                    network_args=TINY_ARGS, seed=0, checkpoint_path=checkpoint, resume=True)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could not be read as a training checkpoint"):
        train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=_recipe(epochs=1),
                    network_args=TINY_ARGS, checkpoint_path=tmp_path / "junk.pt", resume=True)


def test_epoch_batches_are_seeded_and_run_epoch_takes_any_batches(subset):
    """epoch_batches draws an epoch's order and turns from (seed, epoch) alone; run_epoch steps once per batch of
    whatever iterable it is given (the hook for a training stream)."""
    from awdvd.learn.model import build_network, network_config
    from awdvd.learn.train import batch_spans, epoch_batches, run_epoch

    x = torch.from_numpy(subset.normalized()[:, None])
    y = torch.from_numpy(class_targets(subset.labels, [0, 1, 2, -1]))
    first = list(epoch_batches(x, y, batch_size=10, seed=1, epoch=3, augment="dihedral"))
    again = list(epoch_batches(x, y, batch_size=10, seed=1, epoch=3, augment="dihedral"))
    other = list(epoch_batches(x, y, batch_size=10, seed=1, epoch=4, augment="dihedral"))
    assert [len(b[1]) for b in first] == [hi - lo for lo, hi in batch_spans(len(x), 10)] == [10, 10, 4]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    assert sorted(torch.cat([b[1] for b in first]).tolist()) == sorted(y.tolist())  # every patch once
    assert batch_spans(21, 10) == [(0, 10), (10, 20)]  # a last batch of one patch is dropped (BatchNorm)
    torch.manual_seed(0)
    network = build_network("delpnet", network_config("delpnet", {**TINY_ARGS, "n_classes": 4}))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in network.parameters()]
    seen_lr = []
    stats, step = run_epoch(network, optimizer, iter([(x[:8], y[:8]), (x[8:16], y[8:16])]),
                            lr_at=lambda k: seen_lr.append(k) or 1e-2, first_step=5)
    assert step == 7 and seen_lr == [5, 6] and stats["n"] == 16
    assert 0 <= stats["train_accuracy"] <= 1 and stats["train_loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, network.parameters()))


def test_device_is_resolved_with_a_clear_message(subset, tiny_optics):
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda"):
        train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU; use 'cpu' or 'auto'"):
            train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1), device="cuda")
    result = train_model(subset, subset, optics=tiny_optics, recipe=_recipe(epochs=1), network_args=TINY_ARGS,
                         device="auto")
    assert result.model.info["training"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("variant, args, n_outputs", [
    ("no-bg", TINY_ARGS, 3),
    ("plain", {"widths": (8, 8, 16, 16, 16, 16, 16)}, 3),
    ("resnet18", {"width_mult": 0.0625}, 4),
])
def test_variants_train(tiny_dataset, tiny_optics, variant, args, n_outputs):
    splits = tiny_dataset[0]
    result = train_model(splits["train"], splits["val"], optics=tiny_optics, recipe=_recipe(epochs=1),
                         variant=variant, network_args=args)
    model = result.model
    assert model.architecture == VARIANTS[variant].architecture
    assert model.network.config.n_classes == n_outputs == len(model.class_levels)
    if variant == "plain":
        assert model.config.dropout == 0.0 and model.config.bn_momentum == 0.01
    assert model.info["variant"]["name"] == variant
    summary = evaluate_model(model, splits["test"])
    assert summary["n"] == len(splits["test"]) and len(summary["cmc"]) == n_outputs


def test_bad_training_input(tiny_dataset, tiny_optics):
    splits = tiny_dataset[0]
    empty = type(splits["train"]).concatenate([], 32)
    with pytest.raises(ValueError, match="val split is empty"):
        train_model(splits["train"], empty, optics=tiny_optics, recipe=_recipe(epochs=1))
    with pytest.raises(ValueError, match="unknown variant"):
        train_model(splits["train"], splits["val"], optics=tiny_optics, variant="alexnet")
    from awdvd.physics.optics import Optics

    with pytest.warns(UserWarning):
        two_levels = Optics(n_levels=2)
    with pytest.raises(ValueError, match="does not match"):
        train_model(splits["train"], splits["val"], optics=two_levels, recipe=_recipe(epochs=1))


# --------------------------------------------------------------------------------------------- a run to files
@pytest.fixture(scope="module")
def trained_file(tiny_dataset_dir, tmp_path_factory):
    """train_to_file on the tiny dataset folder: a tiny DelpNet, one epoch, no progress bars."""
    lines = []
    done = train_to_file(tiny_dataset_dir, tmp_path_factory.mktemp("train") / "m.pt", epochs=1, batch_size=32,
                         network_args=TINY_ARGS, device="cpu", progress=False, log=lines.append)
    return done, lines


def test_train_to_file_writes_model_curves_and_sidecar(trained_file, tiny_dataset, tiny_dataset_dir):
    done, lines = trained_file
    paths = done.paths
    assert paths == output_paths(paths["model"])
    assert all(paths[k].is_file() for k in ("model", "curves_csv", "curves_png", "sidecar"))
    assert not paths["checkpoint"].exists()  # removed once the model is written
    curves = paths["curves_csv"].read_text().splitlines()
    assert curves[0] == ",".join(CURVE_COLUMNS) and len(curves) == 2
    model = load_model(paths["model"])
    assert model.info["recipe"]["epochs"] == 1 and model.info["recipe"]["name"] == "fast"
    assert model.info["data"]["path"] == str(tiny_dataset_dir.resolve())
    assert model.info["data"]["n_patches"] == tiny_dataset[1]["n_patches"]
    # the test split's metrics are recorded in the model and returned, and are those of evaluate_model
    summary = evaluate_model(model, tiny_dataset[0]["test"], metadata=tiny_dataset[1])
    assert done.test_summary["n"] == summary["n"] == len(tiny_dataset[0]["test"])
    assert model.info["test_metrics"]["accuracy"] == pytest.approx(summary["accuracy"], abs=1e-12)
    assert set(model.info["test_metrics"]) == {"n", "accuracy", "macro", "mean_abs_level_error", "within_one_level",
                                                "cmc", "per_class"}
    sidecar = json.loads(paths["sidecar"].read_text())
    assert sidecar["architecture"] == "delpnet" and "history" not in sidecar["training"]
    assert sidecar["model"] == str(paths["model"]) and sidecar["class_names"] == ["0", "1", "2", "bg"]
    # without progress bars, the log has the set-up lines and one line per epoch
    assert lines[0].startswith("delpnet") and lines[1].startswith("recipe fast:") and lines[2].startswith("data: ")
    assert lines[3].startswith("epoch 1: train loss") and len(lines) == 4


def test_train_to_file_refuses_before_any_work(trained_file, tiny_dataset_dir, tmp_path):
    done, _ = trained_file
    with pytest.raises(FileExistsError, match="exists; choose another output or pass --overwrite"):
        train_to_file(tiny_dataset_dir, done.paths["model"], epochs=1)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint .* to continue from"):
        train_to_file(tiny_dataset_dir, tmp_path / "new.pt", resume=True)
    output_paths(tmp_path / "stale.pt")["checkpoint"].write_bytes(b"an interrupted run")
    with pytest.raises(FileExistsError, match="holds an interrupted run; continue it with --resume"):
        train_to_file(tiny_dataset_dir, tmp_path / "stale.pt")
    with pytest.raises(ValueError, match="unknown recipe 'slow'"):
        train_to_file(tiny_dataset_dir, tmp_path / "other.pt", recipe="slow")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stale.checkpoint.pt"]  # nothing written


def test_train_to_a_folder_is_refused_before_any_work(tiny_dataset_dir, tmp_path, capsys, monkeypatch):
    """Issue 15 item 3: `-o FOLDER --overwrite` trained the whole run, then failed, leaving a checkpoint and
    no model (and the message without --overwrite pointed to exactly that trap)."""
    import awdvd.learn.train_files

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(awdvd.learn.train_files, "train_model", no_training)
    folder = tmp_path / "models"
    folder.mkdir()
    for overwrite in ([], ["--overwrite"]):
        assert main(["train", str(tiny_dataset_dir), "-o", str(folder), "--epochs", "1", *overwrite]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"awdvd train: error: {folder} is a folder; -o takes the model file to write, e.g. "
                       f"{folder / 'delpnet.pt'}"]
    assert list(folder.iterdir()) == []


def test_train_to_file_resumes_an_interrupted_run(tiny_dataset_dir, tmp_path):
    from awdvd.data.datasets import read_dataset
    from awdvd.physics.optics import Optics

    model_path = tmp_path / "r.pt"
    paths = output_paths(model_path)
    train, metadata = read_dataset(tiny_dataset_dir, "train")
    val, _ = read_dataset(tiny_dataset_dir, "val")
    recipe = get_recipe("fast", epochs=2, batch_size=32)

    def interrupt(entry):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # leave a checkpoint as an interrupted run does
        train_model(train, val, optics=Optics.from_dict(metadata["optics"]), recipe=recipe, network_args=TINY_ARGS,
                    checkpoint_path=paths["checkpoint"], on_epoch=interrupt)
    lines = []
    done = train_to_file(tiny_dataset_dir, model_path, epochs=2, batch_size=32, network_args=TINY_ARGS, resume=True,
                         device="cpu", progress=False, log=lines.append)
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == ["epoch 2"]  # epoch 1 was done
    history = load_model(model_path).info["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] == [h["epoch"] for h in done.result.history]
    assert not paths["checkpoint"].exists()


def test_cli_train_end_to_end(tiny_dataset_dir, tmp_path, capsys):
    model_path = tmp_path / "m.pt"
    assert main(["train", str(tiny_dataset_dir), "-o", str(model_path), "--recipe", "fast", "--epochs", "1",
                 "--batch-size", "32", "--threads", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {model_path}: best epoch 1/1") and "test accuracy" in captured.out
    assert "val_acc" in captured.err  # the progress bar shows loss and accuracy
    assert "recipe fast:" in captured.err and "data: " in captured.err
    model = load_model(model_path)
    assert model.config.widths == DelpNetConfig().widths  # the CLI trains the published network
    assert model.info["test_metrics"]["accuracy"] == pytest.approx(float(captured.out.split("test accuracy ")[1][:6]),
                                                                   abs=1e-4)
    # the model is not overwritten without --overwrite: one line, no traceback
    assert main(["train", str(tiny_dataset_dir), "-o", str(model_path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("awdvd train: error:") and "--overwrite" in err[0]


def test_cli_train_interrupted_says_how_to_resume(tiny_dataset_dir, tmp_path, capsys, monkeypatch):
    import awdvd.learn.train_files

    def interrupted(*args, checkpoint_path, **kwargs):
        checkpoint_path.write_bytes(b"the last complete epoch")
        raise KeyboardInterrupt

    monkeypatch.setattr(awdvd.learn.train_files, "train_model", interrupted)
    assert main(["train", str(tiny_dataset_dir), "-o", str(tmp_path / "i.pt"), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; the last complete epoch is saved in" in err and "--resume" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "/nonexistent/dataset", "-o", "x.pt"], "not a dataset folder"),
    (["train"], "or a DATASET folder, and -o MODEL"),
    (["train", "DATASET", "--images", "DATASET", "-o", "x.pt"], "or a DATASET folder, and -o MODEL"),
    (["train", "DATASET", "-o", "x.pt", "--resume"], "no checkpoint"),
    (["evaluate", "GARBAGE", "DATASET", "-o", "out"], "could not be read as a model file"),
])
def test_cli_bad_input_one_line(argv, message, tmp_path, capsys, tiny_dataset_dir):
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    names = {"x.pt": str(tmp_path / "x.pt"), "GARBAGE": str(tmp_path / "garbage.pt"), "DATASET": str(tiny_dataset_dir),
             "out": str(tmp_path / "out")}
    assert main([names.get(a, a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_cli_list_variants(capsys):
    assert main(["train", "--list-variants"]) == 0
    out = capsys.readouterr().out
    assert "39.94 M params (paper 39.9 M)" in out and "no-bg" in out and len(out.strip().splitlines()) == len(VARIANTS)


def test_batchnorm_recalibration_matches_dropout_free_statistics():
    """After recalibration the running statistics are those of the calibration data seen with Dropout off."""
    import torch

    from awdvd.learn.model import DelpNetConfig, build_delpnet
    from awdvd.learn.train import recalibrate_batchnorm

    torch.manual_seed(0)
    network = build_delpnet(DelpNetConfig(widths=(4, 4, 4, 4, 4, 4, 4), dropout=0.5))
    x = torch.rand(64, 1, 32, 32)
    network.train()
    for _ in range(3):
        network(x)  # running stats gathered with Dropout on
    recalibrate_batchnorm(network, x, batch_size=64)
    assert not network.training
    first_bn = network.trunk[1]
    with torch.no_grad():
        pre = network.trunk[0](x)  # the first conv's output: nothing random before it
    torch.testing.assert_close(first_bn.running_mean, pre.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3, atol=1e-5)
    assert first_bn.momentum == 0.4  # restored
    third_bn = [m for m in network.trunk if isinstance(m, torch.nn.BatchNorm2d)][2]
    network.eval()
    with torch.no_grad():  # deeper layers: statistics of inputs computed without Dropout
        h = x
        for layer in network.trunk:
            if layer is third_bn:
                break
            h = layer(h)
    torch.testing.assert_close(third_bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-3, atol=1e-4)


def test_recipes_record_recalibration():
    from awdvd.learn.train import RECIPES, TrainingRecipe

    assert RECIPES["fast"].bn_recalibration > 0 and RECIPES["paper"].bn_recalibration == 0  # the paper's Keras run
    with pytest.raises(ValueError, match="bn_recalibration must be an integer >= 0"):
        TrainingRecipe(bn_recalibration=-1)
