"""The experiments of a reproduction: the patch dataset, the trainings (each distinct variant and budget once),
their evaluation on the test split, and the items of the report, in order.

Which model answers which item:

- the *main* DelpNet (a given model file, the bundled model, or one trained here at the scale's main budget):
  Fig. 3 (confusion matrix) and the restoration figures 7-9 (its predicted levels pick the PSFs);
- *comparison* runs, all trained under one budget with the same data, so that only the studied setting
  differs: DelpNet, no-bg and "plain" (Table 1, Fig. 5) and the four architectures (Table 2, Fig. 6), with the
  scale's recipe, BatchNorm recalibration included;
- the *BN study* (Fig. 4): DelpNet and DelpNet with BN momentum 0.99 under the same budget WITHOUT BatchNorm
  recalibration (keys ``...+keras-bn``): recalibration re-estimates the BatchNorm statistics before every
  validation, which would erase exactly what the comparison is about (in Keras, the paper's framework,
  inference uses the running averages that the momentum controls; in PyTorch the momentum changes nothing
  else). Measured at the ``cpu`` scale, the comparison runs without recalibration scored 0.05-0.13 validation
  accuracy (chance) for no-bg, plain, Inception_v3 and ResNet18 (at epoch 9) although they fit their training
  patches (0.36-0.59): their running statistics lag the weights, so those rows compared stale BatchNorm, not
  networks.

The items themselves are in :mod:`~awdvd.reproduce.classification` (Tables 1-2, Fig. 3-6) and
:mod:`~awdvd.reproduce.restoration` (Fig. 7-9).
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .._provenance import git_state
from ..data.patches import fingerprint as data_fingerprint
from ..data.synth import CameraNoise, DatasetSpec, make_patch_dataset
from ..learn.evaluate import evaluate_model
from ..learn.model import count_parameters
from ..learn.train import get_recipe, get_variant, train_model
from ..physics.optics import Optics
from ..physics.psf import psf_bank
from . import classification, restoration
from .paper import (
    BN_STUDY_SUFFIX,
    BN_STUDY_VARIANTS,
    COMPARISON_ARCHITECTURES,
    COMPARISON_VARIANTS,
    ITEM_KEYS,
    ITEM_TITLES,
    LABELS,
    PAPER_SOURCES,
)
from .report import seconds_text
from .scales import Scale

__all__ = ["Reproduction", "Run", "ITEMS", "json_safe", "cap_patches"]

#: The function that computes each item of the report from a :class:`Reproduction` whose models are ready.
ITEMS = {"table1": classification.table1, "table2": classification.table2, "fig3": classification.fig3,
         "fig4": classification.fig4, "fig5": classification.fig5, "fig6": classification.fig6,
         "fig7": restoration.fig7, "fig8": restoration.fig8, "fig9": restoration.fig9}


def json_safe(value):
    """``value`` made JSON-safe: NaN and infinities as None, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _training_device(training: dict) -> str:
    """Where a loaded model was trained, from its file's training record ("unknown" when it does not say)."""
    if training.get("device"):
        return str(training["device"])
    if str(training.get("torch_version", "")).endswith("+cpu") and training.get("threads"):
        return f"cpu ({training['threads']} threads)"
    return "unknown"


def cap_patches(patches, limit: int | None, seed: list[int]):
    """At most ``limit`` patches of ``patches``: a seeded random subset in the original order."""
    if limit is None or len(patches) <= limit:
        return patches
    index = np.sort(np.random.default_rng(seed).permutation(len(patches))[:limit])
    return patches.subset(index)


@dataclass
class Run:
    """One trained (or loaded) model and how it came about."""

    key: str
    variant: str
    architecture: str
    model: object
    history: list
    best_epoch: int | None
    epochs: int | None
    recipe: dict
    n_train: int | None
    n_val: int | None
    train_seconds: float | None
    device: str
    source: str  # "trained here" or a file
    summary: dict | None = None
    eval_seconds: float | None = None

    @property
    def budget(self) -> str:
        """How much training the model had, in words: epochs over fixed patches, or steps of the training
        stream (``awdvd train``, whose windows are fresh every step)."""
        training = self.model.info.get("training", {}) if self.source != "trained here" else {}
        lineage = self.model.info.get("lineage") if self.source != "trained here" else None
        if lineage:  # a model made in stages (the bundled one): every stage counts, not only the last training's
            trained = [stage for stage in lineage if stage.get("steps")]
            then = "".join(f", then {stage['what']}" for stage in lineage[lineage.index(trained[-1]) + 1:]
                           if not stage.get("steps")) if trained else ""
            return (f"{sum(stage['steps'] for stage in trained)} steps of the training stream in {len(trained)} "
                    f"stages{then} ({len(lineage)} stages in its file's lineage)")
        if training.get("kind") == "stream":
            start = training.get("initialised_from") or {}
            first = (f", after a first stage of {start['steps']} steps from which it starts"
                     if start.get("steps") else "")
            return (f"{training.get('steps')} steps x {self.recipe.get('batch_size', '?')} fresh windows of the "
                    f"training stream (best step {training.get('best_step')}){first}")
        return f"{self.epochs} epochs (best {self.best_epoch}), {self.n_train} train patches"


class Reproduction:
    """The steps of :func:`awdvd.reproduce.reproduce`, writing figures (and models) into a (staging) folder.

    After :meth:`run` has made the dataset and the models, the item functions of :data:`ITEMS` read: ``folder``,
    ``scale``, ``device``, ``optics``, ``noise``, ``images`` / ``names`` (the sources), ``splits`` / ``metadata``
    (the patch dataset), ``psfs`` (the level PSFs), ``runs`` (every model by key), ``comparison`` (Table 1 and
    Fig. 4-5 runs by variant) and ``architectures`` (Table 2 and Fig. 6 runs), and the methods
    :meth:`conditions` and :meth:`run_record`."""

    def __init__(self, folder: Path, *, scale: Scale, device: str, log, save_models: bool):
        self.folder, self.scale, self.device, self.log, self.save_models = folder, scale, device, log, save_models
        self.runs: dict[str, Run] = {}

    # ----------------------------------------------------------------------------------------- driver
    def run(self, images, names, provenance, main_model, model_source) -> dict:
        import torch

        scale = self.scale
        self.optics = main_model.optics if main_model is not None else Optics()
        self.noise = CameraNoise()
        self.images, self.names = images, names
        spec = DatasetSpec(crops_per_image=scale.crops_per_image, realizations=scale.realizations, seed=scale.seed)
        t = time.perf_counter()
        self.log(f"synthesising the patch dataset from {len(images)} source images ({scale.crops_per_image} crops x "
                 f"{scale.realizations} realizations x {self.optics.n_levels} levels)")
        splits, metadata = make_patch_dataset(images, optics=self.optics, noise=self.noise, spec=spec,
                                              source_names=names)
        self.splits, self.metadata = splits, metadata
        for split in ("train", "val", "test"):
            if len(splits[split]) == 0:
                raise ValueError(f"the {split} split is empty; give more source images or a scale with more crops "
                                 "or realizations")
        self.psfs = psf_bank(self.optics, size=metadata["psf_size"])
        dataset_seconds = time.perf_counter() - t
        self.log(f"dataset: {metadata['n_patches']} patches in {dataset_seconds:.1f} s")
        self.data_short = {"bbbc006": f"{len(images)} BBBC006 images", "procedural": f"{len(images)} procedural images",
                           }.get(provenance["kind"], f"{len(images)} images")
        self.data_short += f" (paper {PAPER_SOURCES})"

        # the models
        if main_model is None:
            self.runs["main"] = self._train("delpnet", epochs=scale.main_epochs, limit=scale.main_train_patches,
                                            val_limit=None, recipe_changes={}, key="main")
        else:
            self.runs["main"] = self._loaded(main_model, model_source)
        self.comparison = {}
        for variant in COMPARISON_VARIANTS:
            self.comparison[variant] = self._comparison_run(variant, scale.ablation_epochs)
        self.bn_study = {variant: self._comparison_run(variant, scale.ablation_epochs, recalibrate=False)
                         for variant in BN_STUDY_VARIANTS}
        self.architectures = {"delpnet": self._comparison_run("delpnet", scale.architecture_epochs)}
        for architecture in COMPARISON_ARCHITECTURES:
            self.architectures[architecture] = self._comparison_run(architecture, scale.architecture_epochs)
        for run in self.runs.values():
            self._evaluate(run)

        items = {}
        for key in ITEM_KEYS:
            t = time.perf_counter()
            self.log(f"{key}: {ITEM_TITLES[key]}")
            items[key] = ITEMS[key](self)
            items[key]["seconds"] = time.perf_counter() - t
        if self.save_models:
            for run in self.runs.values():
                if run.source == "trained here":
                    run.model.save(self.folder / "models" / f"{run.key}.pt")
        git = git_state()
        return json_safe({
            "format": "awdvd-reproduce",
            "format_version": 1,
            "created": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds"),
            "awdvd_version": __version__,
            "git": git,
            "device": self.device,
            "device_name": (torch.cuda.get_device_name(self.device) if self.device.startswith("cuda") else
                            f"CPU, torch {torch.get_num_threads()} thread(s)"),
            "torch_version": torch.__version__,
            "scale": scale.to_dict(),
            "data": {**provenance, "names": names, "n_images": len(images)},
            "dataset": {"spec": metadata["spec"], "optics": metadata["optics"], "noise": metadata["noise"],
                        "psf_size": metadata["psf_size"], "n_patches": metadata["n_patches"],
                        "counts": metadata["counts"], "seconds": dataset_seconds},
            "models": {key: self.run_record(run) for key, run in self.runs.items()},
            "main_model": self._main_model_note(),
            "items": items,
        })

    # ----------------------------------------------------------------------------------------- training
    def _recipe(self, epochs: int, changes: dict):
        return get_recipe(self.scale.recipe, epochs=epochs).replace(**changes)

    def _comparison_run(self, variant: str, epochs: int, *, recalibrate: bool = True) -> Run:
        # the BN study runs without BatchNorm recalibration: see the module docstring
        return self._train(variant, epochs=epochs, limit=self.scale.comparison_train_patches,
                           val_limit=self.scale.comparison_val_patches,
                           recipe_changes={} if recalibrate else {"bn_recalibration": 0},
                           key=f"{variant}@{epochs}ep" + ("" if recalibrate else BN_STUDY_SUFFIX))

    def _train(self, variant: str, *, epochs: int, limit, val_limit, recipe_changes: dict, key: str) -> Run:
        if key in self.runs:
            return self.runs[key]
        scale = self.scale
        train = cap_patches(self.splits["train"], limit, [scale.seed, 5])
        val = cap_patches(self.splits["val"], val_limit, [scale.seed, 6])
        recipe = self._recipe(epochs, recipe_changes)
        architecture = get_variant(variant).architecture
        self.log(f"training {key}: {LABELS.get(variant, variant)} on {len(train)} train / {len(val)} val patches, "
                 f"recipe {recipe.name}{' without BN recalibration' if not recipe.bn_recalibration else ''}, "
                 f"{epochs} epochs, {self.device}")
        t = time.perf_counter()

        def on_epoch(entry: dict) -> None:
            self.log(f"  {key} epoch {entry['epoch']}/{epochs}: train loss {entry['train_loss']:.3f} acc "
                     f"{entry['train_accuracy']:.3f}, val loss {entry['val_loss']:.3f} acc {entry['val_accuracy']:.3f} "
                     f"({entry['seconds']:.1f} s)")

        result = train_model(train, val, optics=self.optics, recipe=recipe, variant=variant,
                             network_args=scale.network_args.get(architecture), seed=scale.seed, device=self.device,
                             progress=False, on_epoch=on_epoch,
                             data_info={"sources": self.names, "spec": self.metadata["spec"],
                                        "n_patches": {"train": len(train), "val": len(val)}})
        seconds = time.perf_counter() - t
        run = Run(key=key, variant=variant, architecture=architecture, model=result.model, history=result.history,
                   best_epoch=result.best_epoch, epochs=epochs, recipe=recipe.to_dict(), n_train=len(train),
                   n_val=len(val), train_seconds=seconds, device=self.device, source="trained here")
        self.runs[key] = run
        return run

    def _loaded(self, model, source: str) -> Run:
        training = model.info.get("training", {})
        recipe = model.info.get("recipe", {})
        self.log(f"main DelpNet: {source}")
        return Run(key="main", variant=model.info.get("variant", {}).get("name", "delpnet"), architecture="delpnet",
                    model=model, history=list(training.get("history") or []), best_epoch=training.get("best_epoch"),
                    epochs=training.get("epochs"), recipe=recipe, n_train=training.get("n_train"),
                    n_val=training.get("n_val"), train_seconds=None, device=_training_device(training),
                    source=source)

    def _evaluate(self, run: Run) -> None:
        t = time.perf_counter()
        run.model.to(self.device)
        run.summary = evaluate_model(run.model, self.splits["test"], metadata=self.metadata)
        run.eval_seconds = time.perf_counter() - t
        self.log(f"evaluated {run.key} on {run.summary['n']} test patches: accuracy {run.summary['accuracy']:.3f} "
                 f"({run.eval_seconds:.1f} s)")

    def _main_model_note(self) -> dict:
        """Whether the main model's training data can overlap this run's test split."""
        main = self.runs["main"]
        if main.source == "trained here":
            return {"source": "trained here", "test_is_held_out": True}
        fingerprint = main.model.info.get("training", {}).get("data_fingerprint")
        same = fingerprint is not None and fingerprint == data_fingerprint(self.splits["train"], self.splits["val"])
        return {"source": main.source, "test_is_held_out": True if same else None,
                "trained_on": main.model.info.get("data", {}).get("sources")}

    def run_record(self, run: Run) -> dict:
        return {"variant": run.variant, "architecture": run.architecture, "source": run.source,
                "recipe": run.recipe, "epochs": run.epochs, "best_epoch": run.best_epoch, "n_train": run.n_train,
                "budget": run.budget,
                "n_val": run.n_val, "n_test": len(self.splits["test"]), "train_seconds": run.train_seconds,
                "eval_seconds": run.eval_seconds, "device": run.device,
                "parameters": count_parameters(run.model.network),
                "network_args": run.model.config.to_dict(),
                "history": [{k: h.get(k) for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                                   "seconds")} for h in run.history],
                "test": {k: run.summary[k] for k in ("n", "accuracy", "macro", "cmc", "mean_abs_level_error",
                                                     "within_one_level")} if run.summary else None}

    def conditions(self, run: Run) -> str:
        """One line: data, patches, epochs, recipe, device, wall time."""
        n_test = len(self.splits["test"])
        if run.source != "trained here":
            recipe = run.recipe.get("name", "?")
            return (f"loaded: {run.source}; its file: recipe {recipe}, {run.budget}, trained on {run.device}; "
                    f"tested here on {n_test} test patches "
                    f"({self.data_short}), {self.device}, eval {seconds_text(run.eval_seconds)}")
        recal = "" if run.recipe.get("bn_recalibration") else " w/o BN recal."
        return (f"{self.data_short}; {run.n_train} train / {run.n_val} val / {n_test} test patches; "
                f"{run.recipe['name']}{recal}, {run.epochs} ep (best {run.best_epoch}); {run.device}; "
                f"train {seconds_text(run.train_seconds)} + eval {seconds_text(run.eval_seconds)}")
