"""Evaluation of defocus-level models on a patch dataset (paper 3.1-3.3): the metrics, and the files of
``awdvd evaluate`` (summary, confusion matrix, cumulative match curve, per-class scores, comparisons).

:func:`evaluate_model` is arrays in, a JSON-able summary out (:func:`awdvd.metrics.classification_summary`);
:func:`write_evaluation` evaluates model files on a dataset folder and writes the report files.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.datasets import read_dataset
from ..data.patches import SPLITS, PatchSet
from ..io import check_output_folder, write_csv, write_json
from ..metrics import classification_summary
from ..physics.optics import Optics
from ..plots import cmc_figure, confusion_figure, training_curves
from .model import DefocusModel
from .model_files import load_model
from .recipes import true_labels

__all__ = ["check_compatible", "evaluate_model", "recorded_metrics", "model_names", "evaluation_paths",
           "write_evaluation", "Evaluation", "MODEL_FILES"]

#: The files written for each model (in DIR, or DIR/NAME with several models).
MODEL_FILES = ("summary.json", "confusion.csv", "confusion.png", "cmc.csv", "cmc.png", "per_class.csv")
#: The files written in DIR over all models, when there are several.
COMPARISON_FILES = ("comparison.csv", "cmc.png", "curves.png")
COMPARISON_COLUMNS = ("model", "architecture", "n", "accuracy", "macro_precision", "macro_recall", "macro_f1",
                      "mean_abs_level_error", "within_one_level")


def check_compatible(model: DefocusModel, patches: PatchSet, metadata: dict | None = None) -> None:
    """Raise ValueError if ``patches`` (and their dataset ``metadata``) cannot be evaluated by ``model``:
    other patch size, other number of levels, other optics."""
    if patches.raw.ndim != 3 or patches.raw.shape[1:] != (model.patch_px, model.patch_px):
        raise ValueError(f"the model reads {model.patch_px} x {model.patch_px} patches; the dataset has "
                         f"{patches.raw.shape[1:]} patches")
    if metadata is not None and "optics" in metadata:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undersampling warning was given when the dataset was made
            data_optics = Optics.from_dict(metadata["optics"])
        if data_optics.n_levels != model.optics.n_levels:
            raise ValueError(f"the model distinguishes {model.optics.n_levels} defocus levels, the dataset "
                             f"{data_optics.n_levels}; they do not match")
        if data_optics != model.optics:
            raise ValueError(f"the dataset was made with other optics ({data_optics.to_dict()}) than the model was "
                             f"trained on ({model.optics.to_dict()})")
    if len(patches) and (patches.level.min() < 0 or patches.level.max() >= model.optics.n_levels):
        raise ValueError(f"the dataset holds levels up to {int(patches.level.max())}; the model knows 0.."
                         f"{model.optics.n_levels - 1}")


def evaluate_model(model: DefocusModel, patches: PatchSet, *, metadata: dict | None = None, batch_size: int = 32) -> dict:
    """Classification metrics of ``model`` on ``patches`` (:func:`awdvd.metrics.classification_summary`).

    The ground truth follows the model's classes: with a "bg" class a background patch's label is "bg",
    without one it is its level. Patches are normalised as the model's file says: "image-range" models read each
    patch with the range of the synthetic image it was cut from (``patches.image_range``; datasets made before
    it was stored give each patch its own). Raises ValueError if the patches do not fit the model
    (:func:`check_compatible`).
    """

    check_compatible(model, patches, metadata)
    y_true = true_labels(patches, background_class=model.has_background_class)
    value_range = patches.image_range if getattr(model, "normalization", None) == "image-range" else None
    _, proba = model.predict_patches(patches.raw, return_proba=True, batch_size=batch_size, value_range=value_range)
    y_pred = model.class_levels[np.argmax(proba, axis=1)] if len(patches) else np.zeros(0, np.int64)
    summary = classification_summary(y_true, y_pred, labels=model.class_levels, scores=proba,
                                     class_names=model.class_names)
    summary["architecture"] = model.architecture
    return summary


def recorded_metrics(summary: dict) -> dict:
    """The part of an :func:`evaluate_model` summary that a model file records as ``info["test_metrics"]``."""
    return {k: summary[k] for k in ("n", "accuracy", "macro", "mean_abs_level_error", "within_one_level", "cmc",
                                    "per_class")}


# --------------------------------------------------------------------------------------------- report files
def model_names(model_paths: Sequence[str | os.PathLike]) -> list[str]:
    """The name of each model file (its stem without ``.pt``); they must differ, since they name subfolders."""
    paths = [Path(p) for p in model_paths]
    names = [p.with_suffix("").name if p.suffix == ".pt" else p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"model file names must differ (they name the subfolders): {', '.join(names)}")
    return names


def evaluation_paths(model_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Every file :func:`write_evaluation` writes for ``model_paths`` into ``out_dir``: one folder per model
    (``out_dir`` itself for a single model) with :data:`MODEL_FILES`, plus :data:`COMPARISON_FILES` in
    ``out_dir`` for several. Keys: "NAME/FILE" and, for the comparison, "FILE"."""
    out_dir = Path(out_dir)
    names = model_names(model_paths)
    single = len(names) == 1
    paths = {f"{name}/{file}": (out_dir if single else out_dir / name) / file for name in names for file in MODEL_FILES}
    if not single:
        paths.update({file: out_dir / file for file in COMPARISON_FILES})
    return paths


@dataclass
class Evaluation:
    """What :func:`write_evaluation` did: {model name: summary} (each an :func:`evaluate_model` summary with
    ``model``, ``dataset``, ``split``, ``variant`` and ``recipe`` added), the split and the files written."""

    summaries: dict[str, dict]
    split: str
    files: list[Path]


def write_evaluation(model_paths: Sequence[str | os.PathLike], dataset: str | os.PathLike,
                     out_dir: str | os.PathLike, *, split: str = "test", overwrite: bool = False) -> Evaluation:
    """Evaluate model files on one split of a dataset folder and write the report files (``awdvd evaluate``).

    For each model: ``summary.json`` (accuracy, macro and per-class precision/recall/F1, mean |level error|,
    accuracy within +/-1 level, top-k), ``confusion.csv`` / ``.png`` (paper Fig. 3), ``cmc.csv`` / ``.png``
    (cumulative match curve, Fig. 5/6) and ``per_class.csv``, in ``out_dir`` (one model) or ``out_dir/NAME``
    (several, NAME from the file name). With several models, also ``comparison.csv`` and one ``cmc.png`` over
    all models (Tables 1/2, Fig. 5/6), and ``curves.png`` with their training curves (Fig. 4), in ``out_dir``.

    Raises before any work if a file would be overwritten (without ``overwrite``), a model file cannot be read,
    or the split is empty.
    """

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    check_output_folder(out_dir)  # before any work
    model_paths = [Path(p) for p in model_paths]
    if not model_paths:
        raise ValueError("give at least one model file to evaluate")
    names = model_names(model_paths)
    planned = evaluation_paths(model_paths, out_dir)
    existing = [p for p in planned.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; choose another -o DIR or pass --overwrite")
    models = [load_model(path) for path in model_paths]  # all files checked before any work
    patches, metadata = read_dataset(dataset, split)
    if len(patches) == 0:
        raise ValueError(f"the {split} split of {dataset} is empty")

    out_dir = Path(out_dir)
    summaries, written, rows = {}, [], []
    for name, path, model in zip(names, model_paths, models):
        summary = evaluate_model(model, patches, metadata=metadata)
        summary.update(model=str(path), dataset=str(dataset), split=split,
                       variant=model.info.get("variant", {}).get("name"), recipe=model.info.get("recipe", {}).get("name"))
        summaries[name] = summary
        files = {file: planned[f"{name}/{file}"] for file in MODEL_FILES}
        classes = summary["class_names"]
        write_json(files["summary.json"], summary, overwrite=overwrite)
        write_csv(files["confusion.csv"], ["true \\ predicted"] + classes,
                  ([classes[i]] + row for i, row in enumerate(summary["confusion"])), overwrite=overwrite)
        confusion_figure(summary["confusion"], classes, files["confusion.png"],
                         title=f"{name}: accuracy {summary['accuracy']:.1%} ({split}, n = {summary['n']})",
                         overwrite=overwrite)
        write_csv(files["cmc.csv"], ["k", "top_k_accuracy"], enumerate(summary["cmc"], start=1), overwrite=overwrite)
        cmc_figure({name: summary["cmc"]}, files["cmc.png"], overwrite=overwrite)
        write_csv(files["per_class.csv"], ["class", "precision", "recall", "f1", "support"],
                  ([c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in summary["per_class"].items()),
                  overwrite=overwrite)
        written += files.values()
        rows.append([name, model.architecture, summary["n"], summary["accuracy"], summary["macro"]["precision"],
                     summary["macro"]["recall"], summary["macro"]["f1"], summary["mean_abs_level_error"],
                     summary["within_one_level"]])
    if len(models) > 1:
        write_csv(out_dir / "comparison.csv", list(COMPARISON_COLUMNS), rows, overwrite=overwrite)
        cmc_figure({name: s["cmc"] for name, s in summaries.items()}, out_dir / "cmc.png",
                   title=f"cumulative match curves ({split})", overwrite=overwrite)
        written += [out_dir / "comparison.csv", out_dir / "cmc.png"]
        histories = {name: model.info.get("training", {}).get("history") for name, model in zip(names, models)}
        histories = {name: history for name, history in histories.items() if history}
        if histories:
            training_curves(histories, out_dir / "curves.png", overwrite=overwrite)
            written.append(out_dir / "curves.png")
    return Evaluation(summaries=summaries, split=split, files=written)
