"""A training run to files, ``awdvd train`` on a fixed dataset: :func:`train_to_file` reads a dataset folder
(``awdvd simulate``), trains on it with :func:`awdvd.learn.train.train_model`, evaluates the best epoch on the test
split and writes the model, its learning curves (CSV, PNG) and its sidecar JSON beside it (:func:`output_paths`),
refusing before any work what would overwrite an output or discard an interrupted run's checkpoint
(:func:`check_outputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..data.datasets import read_dataset
from ..io import check_output_folder, write_csv, write_json
from ..physics.optics import Optics
from ..plots import training_curves
from .evaluate import evaluate_model, recorded_metrics
from .model import DefocusModel
from .model_files import load_model
from .recipes import ModelVariant, TrainingRecipe, describe_variant, get_recipe, get_variant
from .train import CURVE_COLUMNS, TrainingResult, train_model

__all__ = ["train_to_file", "TrainedFile", "output_paths", "check_outputs", "dataset_provenance"]


def output_paths(model_path: str | Path) -> dict[str, Path]:
    """The files ``awdvd train`` writes beside ``model_path``: model, checkpoint, curves (CSV, PNG), sidecar JSON."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("") if model_path.suffix == ".pt" else model_path
    return {"model": model_path, "checkpoint": Path(f"{stem}.checkpoint.pt"), "curves_csv": Path(f"{stem}.curves.csv"),
            "curves_png": Path(f"{stem}.curves.png"), "sidecar": Path(f"{stem}.json")}


def check_outputs(paths: dict[str, Path], *, resume: bool = False, overwrite: bool = False) -> None:
    """Raise before any work if the files of :func:`output_paths` would be overwritten, a checkpoint to resume
    is missing, or a stale checkpoint of an interrupted run would be silently discarded (and, before any of that,
    if the model path is a folder: ``-o FOLDER`` with ``--overwrite`` used to train the whole run, then fail)."""

    folders = [p for p in paths.values() if p.is_dir()]
    if folders:
        model = paths["model"]
        raise IsADirectoryError(f"{folders[0]} is a folder; -o takes the model file to write, e.g. "
                                f"{model / 'delpnet.pt' if model.is_dir() else model}")
    check_output_folder(paths["model"].parent, option="-o's folder")
    existing = [p for key, p in paths.items() if key != "checkpoint" and p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; choose another output or pass --overwrite")
    if resume and not paths["checkpoint"].is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {paths['checkpoint']} to continue from")
    if paths["checkpoint"].exists() and not (resume or overwrite):
        raise FileExistsError(f"{paths['checkpoint']} holds an interrupted run; continue it with --resume, or start "
                              "over with --overwrite")


@dataclass
class TrainedFile:
    """What :func:`train_to_file` wrote: ``paths`` (:func:`output_paths`), the :class:`TrainingResult`, and the
    metrics on the dataset's test split (:func:`awdvd.learn.evaluate.evaluate_model`; None if that split is empty)."""

    paths: dict[str, Path]
    result: TrainingResult
    test_summary: dict | None


def dataset_provenance(path: Path, metadata: dict) -> dict:
    """What a model records about the dataset folder it was trained on (``info["data"]``)."""
    keys = ("format_version", "optics", "noise", "spec", "psf_size", "sources", "n_patches", "counts")
    return {"path": str(Path(path).resolve()), **{key: metadata.get(key) for key in keys}}


def train_to_file(
    dataset: str | Path,
    output: str | Path,
    *,
    recipe: str | TrainingRecipe = "fast",
    variant: str | ModelVariant = "delpnet",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    network_args: dict | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    init: str | Path | DefocusModel | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainedFile:
    """Train on a dataset folder (``awdvd simulate``) and write the model and its records (``awdvd train``).

    Trains on the train split, validating on val after every epoch (:func:`train_model`), evaluates the best
    epoch on the test split, and writes, beside ``output`` (see :func:`output_paths`): the model file (its
    ``info`` holds the test metrics), ``STEM.curves.csv`` / ``.png`` (learning curves) and ``STEM.json`` (the
    sidecar: what was done, without the curves). ``STEM.checkpoint.pt`` holds the state after each epoch while
    training runs and is removed at the end.

    Parameters
    ----------
    dataset : the dataset folder.
    output : the model file to write (``.pt``).
    recipe : a :data:`RECIPES` name or a :class:`TrainingRecipe`; ``epochs``, ``batch_size``, ``lr`` (if not
        None) replace its fields.
    variant, network_args, seed, device, init : as :func:`train_model`; ``init`` may be a model file.
    threads : CPU threads for torch (``torch.set_num_threads``, for the whole process); None: torch's choice.
    resume : continue the interrupted run whose checkpoint sits beside ``output``.
    overwrite : replace existing outputs (and a stale checkpoint).
    progress : tqdm progress bars; without them, ``log`` gets one line per epoch.
    log : called with each line of what is done (variant, recipe, data; epochs without progress bars).

    Raises before any training if an output exists (without ``overwrite``), ``resume`` finds no checkpoint, or
    a checkpoint of an interrupted run would be discarded. A KeyboardInterrupt propagates; the checkpoint of the
    last complete epoch stays for ``resume``.
    """

    paths = output_paths(output)
    check_outputs(paths, resume=resume, overwrite=overwrite)
    say = log if log is not None else (lambda line: None)
    base = recipe if isinstance(recipe, TrainingRecipe) else get_recipe(recipe)
    recipe = base.replace(**{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr))
                             if v is not None})
    variant = get_variant(variant) if isinstance(variant, str) else variant
    if threads:
        import torch

        torch.set_num_threads(threads)
    if init is not None and not isinstance(init, DefocusModel):
        init = load_model(init)
    train, metadata = read_dataset(dataset, "train")
    val, _ = read_dataset(dataset, "val")
    test, _ = read_dataset(dataset, "test")
    optics = Optics.from_dict(metadata["optics"])
    say(describe_variant(variant, device="cpu"))
    say(f"recipe {recipe.name}: {recipe.to_dict()}")
    say(f"data: {len(train)} train / {len(val)} val / {len(test)} test patches from {dataset}")

    def log_epoch(h: dict) -> None:  # without a progress bar, one line per epoch (e.g. for a log file)
        say(f"epoch {h['epoch']}: train loss {h['train_loss']:.4f} acc {h['train_accuracy']:.4f}, val loss "
            f"{h['val_loss']:.4f} acc {h['val_accuracy']:.4f}, {h['seconds']:.0f} s")

    result = train_model(train, val, optics=optics, recipe=recipe, variant=variant, network_args=network_args,
                         seed=seed, device=device, checkpoint_path=paths["checkpoint"], resume=resume,
                         progress=progress, data_info=dataset_provenance(Path(dataset), metadata),
                         on_epoch=None if progress else log_epoch, init=init)
    model = result.model
    summary = evaluate_model(model, test, metadata=metadata) if len(test) else None
    if summary is not None:
        model.info["test_metrics"] = recorded_metrics(summary)
    write_csv(paths["curves_csv"], list(CURVE_COLUMNS), ([h[c] for c in CURVE_COLUMNS] for h in result.history),
              overwrite=overwrite)
    training_curves({f"{variant.name} ({recipe.name})": result.history}, paths["curves_png"], overwrite=overwrite)
    model.save(paths["model"], overwrite=overwrite)
    sidecar = {k: v for k, v in model.info.items() if k != "training"}
    sidecar["training"] = {k: v for k, v in model.info["training"].items() if k != "history"}
    sidecar.update(model=str(paths["model"]), architecture=model.architecture, class_names=model.class_names)
    write_json(paths["sidecar"], sidecar, overwrite=overwrite)
    paths["checkpoint"].unlink(missing_ok=True)
    return TrainedFile(paths=paths, result=result, test_summary=summary)
