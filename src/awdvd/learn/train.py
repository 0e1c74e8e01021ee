"""Training of the defocus-level classifier (paper 2.2): the loop and its checkpoints.

Arrays in, a model out: :func:`train_model` takes the train and validation :class:`~awdvd.data.patches.PatchSet`
of a dataset and returns the best :class:`~awdvd.learn.model.DefocusModel` with its learning curves; the only file it
touches is the optional checkpoint that lets an interrupted run resume. ``awdvd train`` (a dataset folder in; the
model, its curves, its sidecar and its test metrics out) is :func:`awdvd.learn.train_files.train_to_file`.

What is trained (recipes, variants, label sets) is :mod:`awdvd.learn.recipes`, re-exported here; how a trained model
scores on a dataset is :mod:`awdvd.learn.evaluate`.

The loop, step by step (each a function below): check the arguments; put the patches on the device as
normalised tensors; build the network (seeded, or from ``init``) and its optimiser; start or resume a
:class:`TrainingState`; for every epoch, :func:`run_epoch` over the batches that :func:`epoch_batches` draws,
then recalibrate BatchNorm, validate, keep the best weights and save the checkpoint. :func:`run_epoch` takes any
iterable of (x, y) batches, so a source other than a fixed PatchSet (a stream of fresh crops) can feed it.

Determinism: on CPU, the same data, recipe, variant and seed give the same weights, bit for bit (the batch
order and augmentation of epoch e come from a generator seeded with (seed, e); initial weights and Dropout
from torch's generator seeded with ``seed``, saved in the checkpoint). An interrupted run resumed from its
checkpoint gives the same result as an uninterrupted one. On CUDA, cuDNN's kernels may differ in the last bits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from .._device import resolve_device
from ..data.patches import BACKGROUND, PatchSet, fingerprint
from ..physics.optics import Optics
from .checkpoints import CHECKPOINT_FORMAT, TrainingState, clone_state, resume_from_checkpoint, save_checkpoint
from .evaluate import check_compatible, evaluate_model
from .model import DefocusModel, build_network, network_config
from .recipes import (
    RECIPES,
    VARIANTS,
    ModelVariant,
    TrainingRecipe,
    class_levels_for,
    class_targets,
    describe_variant,
    get_recipe,
    get_variant,
    learning_rate,
    true_labels,
)

__all__ = [
    # the loop
    "train_model",
    "TrainingResult",
    "TrainingState",
    "run_epoch",
    "epoch_batches",
    "batch_spans",
    "dihedral",
    "recalibrate_batchnorm",
    "initialise_from",
    "extend_head",
    "CHECKPOINT_FORMAT",
    "CURVE_COLUMNS",
    # re-exported from awdvd.learn.recipes
    "TrainingRecipe",
    "RECIPES",
    "get_recipe",
    "learning_rate",
    "ModelVariant",
    "VARIANTS",
    "get_variant",
    "describe_variant",
    "class_levels_for",
    "class_targets",
    "true_labels",
    # re-exported from awdvd.learn.evaluate, where they moved
    "evaluate_model",
    "check_compatible",
]

CURVE_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


# --------------------------------------------------------------------------------------------- batches
def dihedral(x, transform: int):
    """One of the 8 symmetries of the square on the last two axes of a tensor: rotation by ``transform % 4``
    quarter turns, preceded by a transpose if ``transform >= 4``."""
    import torch

    if transform >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, transform % 4, dims=(-2, -1))


def batch_spans(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of ``n`` items; a last batch of a single item is dropped (BatchNorm cannot
    train on one patch) unless it is the only one."""
    edges = list(range(0, n, batch_size)) + [n]
    spans = list(zip(edges[:-1], edges[1:]))
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
        spans.pop()
    return spans


def epoch_batches(x, y, *, batch_size: int, seed: int, epoch: int, augment: str = "none") -> Iterator[tuple]:
    """The (x, y) batches of one epoch over fixed tensors x (N, 1, p, p) and y (N,): shuffled, and with
    ``augment="dihedral"`` each patch turned by one of the 8 symmetries of the square, both drawn from a
    generator seeded with (seed, 7, epoch), so an epoch is the same whenever it runs (a resumed run included)."""
    import torch

    epoch_rng = np.random.default_rng([seed, 7, epoch])
    order = torch.from_numpy(epoch_rng.permutation(len(x))).to(x.device)
    transforms = epoch_rng.integers(0, 8, size=len(x)) if augment == "dihedral" else None
    for lo, hi in batch_spans(len(x), batch_size):
        index = order[lo:hi]
        xb, yb = x[index], y[index]
        if transforms is not None:
            kinds = transforms[lo:hi]
            xb = xb.clone()
            for kind in np.unique(kinds):
                rows = torch.from_numpy(np.nonzero(kinds == kind)[0]).to(x.device)
                xb[rows] = dihedral(xb[rows], int(kind))
        yield xb, yb


def run_epoch(network, optimizer, batches: Iterable[tuple], *, lr_at: Callable[[int], float], first_step: int,
              label_smoothing: float = 0.0, progress=None) -> tuple[dict, int]:
    """One pass of optimiser steps, one per (x, y) batch of ``batches`` (tensors on the network's device).

    ``lr_at(step)`` gives the learning rate of global step ``step``, counted from ``first_step``; ``progress``
    is an optional tqdm bar to show the running loss and accuracy. Returns ({"train_loss", "train_accuracy",
    "n"} averaged over the patches seen, the global step after the last batch).
    """
    import torch.nn.functional as F

    network.train()
    step, loss_sum, correct, seen = first_step, 0.0, 0, 0
    for xb, yb in batches:
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        logits = network(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        step += 1
        loss_sum += loss.item() * len(yb)
        correct += int((logits.detach().argmax(dim=1) == yb).sum())
        seen += len(yb)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen), "n": seen}, step


def _validation_loss(network, x, y, *, batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``network`` (eval mode) on tensors x (N, 1, p, p), y (N,)."""
    import torch
    import torch.nn.functional as F

    network.eval()
    total_loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = network(x[start : start + batch_size]).float()
            target = y[start : start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == target).sum())
    return total_loss / len(x), correct / len(x)


def recalibrate_batchnorm(network, x, *, batch_size: int = 256) -> None:
    """Re-estimate every BatchNorm's running mean and variance from ``x`` (N, C, H, W), with Dropout off, as
    the network will see data at inference: a cumulative average over ``x`` replaces the running averages
    gathered in training mode. Leaves the network in eval mode."""
    import torch

    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(x) == 0:
        network.eval()
        return
    momenta = [m.momentum for m in norms]
    network.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
        m.train()
    with torch.no_grad():
        for lo in range(0, len(x), batch_size):
            network(x[lo : lo + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    network.eval()


# --------------------------------------------------------------------------------------------- set-up
def _check_patchset(patches: PatchSet, name: str, n_levels: int) -> None:
    if not isinstance(patches, PatchSet):
        raise TypeError(f"{name} must be a PatchSet, got {type(patches).__name__}")
    if len(patches) == 0:
        raise ValueError(f"the {name} split is empty; make a dataset with more images or crops")
    if patches.raw.ndim != 3 or patches.raw.shape[1] != patches.raw.shape[2]:
        raise ValueError(f"{name} patches must be (N, p, p), got shape {patches.raw.shape}")
    if patches.level.min() < 0 or patches.level.max() >= n_levels:
        raise ValueError(f"{name} holds levels {int(patches.level.min())}..{int(patches.level.max())}, but the optics "
                         f"have {n_levels} levels (0..{n_levels - 1}); the dataset does not match")


def _checked_arguments(train, val, optics, recipe, variant, seed, checkpoint_path, resume):
    """(recipe, variant, seed) after checking every argument of :func:`train_model` that needs no torch."""
    recipe = RECIPES["fast"] if recipe is None else recipe
    variant = get_variant(variant) if isinstance(variant, str) else variant
    if not isinstance(recipe, TrainingRecipe):
        raise TypeError(f"recipe must be a TrainingRecipe, got {type(recipe).__name__}")
    if not isinstance(variant, ModelVariant):
        raise TypeError(f"variant must be a name of VARIANTS or a ModelVariant, got {type(variant).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_patchset(train, "train", optics.n_levels)
    _check_patchset(val, "val", optics.n_levels)
    if val.raw.shape[1:] != train.raw.shape[1:]:
        raise ValueError(f"train patches are {train.raw.shape[1:]}, val patches {val.raw.shape[1:]}; they must match")
    if resume and checkpoint_path is None:
        raise ValueError("resume needs a checkpoint_path")
    return recipe, variant, int(seed)


def _tensors(patches: PatchSet, background_class: bool, class_levels, device):
    """(x (N, 1, p, p) float32 normalised, y (N,) int64 output indices) of ``patches`` on ``device``."""
    import torch

    x = torch.from_numpy(patches.normalized()[:, None]).to(device)
    y = torch.from_numpy(class_targets(true_labels(patches, background_class=background_class), class_levels))
    return x, y.to(device)


def _build(variant: ModelVariant, config, class_levels, recipe: TrainingRecipe, total_steps: int, device, init):
    """(network, optimizer, init_info): a fresh network (from torch's current generator) or ``init``'s weights,
    and its optimiser, weight decay on conv and dense weights only."""
    import torch

    network = build_network(variant.architecture, config).to(device)
    init_info = None if init is None else initialise_from(network, init, variant.architecture, config, class_levels)
    decay = [p for p in network.parameters() if p.ndim > 1]
    no_decay = [p for p in network.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(groups, lr=learning_rate(recipe, 0, total_steps), eps=recipe.eps)
    return network, optimizer, init_info


def initialise_from(network, init: DefocusModel, architecture: str, config, class_levels) -> dict:
    """Load ``init``'s weights into ``network`` after checking that they are the same kind of network."""

    if not isinstance(init, DefocusModel):
        raise TypeError(f"init must be a DefocusModel (load_model(path)), got {type(init).__name__}")
    if init.architecture != architecture or init.config.to_dict() != config.to_dict():
        raise ValueError(f"init model is a {init.architecture} {init.config.to_dict()}; this run trains a "
                         f"{architecture} {config.to_dict()}")
    if list(init.class_levels) != list(class_levels):
        raise ValueError(f"init model has classes {list(init.class_levels)}; this run has {list(class_levels)}")
    state = {k: v.detach().cpu() for k, v in init.network.state_dict().items()}
    network.load_state_dict(state)
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].numpy().tobytes())
    training = init.info.get("training", {})
    return {"weights_fingerprint": digest.hexdigest()[:20], "data_fingerprint": training.get("data_fingerprint"),
            "epochs": training.get("epochs"), "steps": training.get("steps"),
            "recipe": (init.info.get("recipe") or {}).get("name")}


def extend_head(init: DefocusModel, optics, class_levels) -> DefocusModel:
    """``init`` with its output layer extended to ``class_levels`` of ``optics`` (more levels, same step): every
    layer's weights as they are, each class's output row copied from the same level's, a deeper level's from the
    deepest level ``init`` has (and bg's from bg). A start for training a model over a longer range."""

    import torch

    old = [int(v) for v in init.class_levels]
    deepest = max(v for v in old if v != BACKGROUND)
    rows = [old.index(BACKGROUND if level == BACKGROUND else min(int(level), deepest)) for level in class_levels]
    config = dataclasses.replace(init.config, n_classes=len(class_levels))
    network = build_network(init.architecture, config)
    state = {k: v.detach().cpu().clone() for k, v in init.network.state_dict().items()}
    for key, value in network.state_dict().items():
        if state[key].shape != value.shape:  # the output layer: (classes, features) and (classes,)
            state[key] = state[key][rows].clone()
    network.load_state_dict(state)
    return DefocusModel(network, optics=optics, class_levels=list(class_levels), patch_px=init.patch_px,
                        info=init.info, normalization=init.normalization)


# --------------------------------------------------------------------------------------------- training
@dataclass
class TrainingResult:
    """What :func:`train_model` returns.

    model : the best network (by ``recipe.select_by``) as a DefocusModel; its ``info`` holds the recipe,
        variant, seed, training summary and curves (and ``data_info`` if given).
    history : one dict per epoch: epoch (1-based), step, lr, train_loss, train_accuracy, val_loss,
        val_accuracy, seconds.
    best_epoch : the epoch whose weights ``model`` holds.
    """

    model: DefocusModel
    history: list[dict]
    best_epoch: int


def _end_epoch(network, state: TrainingState, stats: dict, x_val, y_val, *, recipe: TrainingRecipe,
               total_steps: int, started: float) -> dict:
    """Validate after an epoch, append its history entry to ``state`` and offer the weights as the best."""
    val_loss, val_accuracy = _validation_loss(network, x_val, y_val)
    entry = {"epoch": state.epoch + 1, "step": state.step,
             "lr": learning_rate(recipe, max(0, state.step - 1), total_steps),
             "train_loss": stats["train_loss"], "train_accuracy": stats["train_accuracy"],
             "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": time.perf_counter() - started}
    state.history.append(entry)
    state.epoch += 1
    state.offer(network, state.epoch, (val_accuracy, val_loss), recipe.select_by)
    return entry


def _model_info(recipe: TrainingRecipe, variant: ModelVariant, seed: int, state: TrainingState, device, *,
                n_train: int, n_val: int, data_fingerprint: str, init_info: dict | None, data_info: dict | None) -> dict:
    """What a trained model records about its training (``DefocusModel.info``)."""
    import torch

    return {
        "recipe": recipe.to_dict(),
        "variant": variant.to_dict(),
        "seed": seed,
        "training": {
            "epochs": len(state.history),
            "steps": state.step,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": state.best_score[0] if state.best_score else None,
            "best_val_loss": state.best_score[1] if state.best_score else None,
            "select_by": recipe.select_by,
            "device": str(device),
            "torch_version": torch.__version__,
            "n_train": n_train,
            "n_val": n_val,
            "data_fingerprint": data_fingerprint,
            "initialised_from": init_info,
            "history": state.history,
        },
        "data": dict(data_info or {}),
    }


def train_model(
    train: PatchSet,
    val: PatchSet,
    *,
    optics: Optics,
    recipe: TrainingRecipe | None = None,
    variant: str | ModelVariant = "delpnet",
    network_args: dict | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    data_info: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    init: DefocusModel | None = None,
) -> TrainingResult:
    """Train a defocus-level classifier, validating after every epoch and keeping the best weights.

    Parameters
    ----------
    train, val : the training and validation patches (e.g. :func:`awdvd.data.datasets.read_dataset`).
    optics : the optics the patches were made with (number of levels, recorded in the model).
    recipe : a :class:`TrainingRecipe` (default: ``RECIPES["fast"]``).
    variant : a :data:`VARIANTS` name or a :class:`ModelVariant`.
    network_args : fields of the network's config that override the variant's (e.g. smaller ``widths``);
        ``n_classes`` (and ``input_px`` for the comparison networks) are set from the data.
    seed : fixes initial weights, batch order, augmentation and Dropout.
    device : "cpu", "cuda[:N]" or "auto" (:func:`awdvd._device.resolve_device`).
    checkpoint_path : where to save the state after every epoch (atomically), for ``resume``.
    resume : continue from ``checkpoint_path``; the recipe, variant, seed and data must be the same.
    progress : show tqdm progress bars (stderr) with the running loss and accuracy.
    data_info : provenance recorded in the model's ``info["data"]``.
    on_epoch : called with each epoch's history entry (e.g. to stop early by raising KeyboardInterrupt).
    init : a trained model of the same architecture, arguments and classes whose weights replace the random
        initial ones (to train on, e.g. with a lower learning rate or on more data); recorded in the model.

    Returns
    -------
    :class:`TrainingResult`. If interrupted (KeyboardInterrupt), the checkpoint of the last complete epoch
    stays on disk and the exception propagates.
    """
    import torch

    recipe, variant, seed = _checked_arguments(train, val, optics, recipe, variant, seed, checkpoint_path, resume)
    device = torch.device(resolve_device(device))
    patch_px = train.raw.shape[1]
    class_levels = class_levels_for(optics.n_levels, background_class=variant.background_class)
    args = {**variant.args, **(network_args or {}), "n_classes": len(class_levels)}
    if variant.architecture != "delpnet":
        args["input_px"] = patch_px
    config = network_config(variant.architecture, args)
    data_fingerprint = fingerprint(train, val)

    x_train, y_train = _tensors(train, variant.background_class, class_levels, device)
    x_val, y_val = _tensors(val, variant.background_class, class_levels, device)
    n_batches = len(batch_spans(len(x_train), recipe.batch_size))
    total_steps = recipe.epochs * n_batches
    # a fixed, seeded subset of the training patches for BatchNorm recalibration (the same every epoch)
    calibration = torch.from_numpy(np.sort(np.random.default_rng([seed, 11]).permutation(len(x_train))[
        : recipe.bn_recalibration])).to(device)

    def batches_for(epoch: int):  # the one place that says where an epoch's batches come from
        return epoch_batches(x_train, y_train, batch_size=recipe.batch_size, seed=seed, epoch=epoch,
                             augment=recipe.augment)

    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        network, optimizer, init_info = _build(variant, config, class_levels, recipe, total_steps, device, init)
        identity = {"recipe": recipe.to_dict(), "variant": variant.name, "architecture": variant.architecture,
                    "architecture_args": config.to_dict(), "seed": seed, "class_levels": class_levels,
                    "data_fingerprint": data_fingerprint,
                    "optics": optics.to_dict(), "init": init_info["weights_fingerprint"] if init_info else None}
        state = (resume_from_checkpoint(Path(checkpoint_path), identity, network, optimizer, device) if resume
                 else TrainingState())
        epochs_bar = tqdm(total=recipe.epochs, initial=state.epoch, desc=f"{variant.name}/{recipe.name}",
                          unit="epoch", disable=not progress, dynamic_ncols=True)
        try:
            for epoch in range(state.epoch, recipe.epochs):
                started = time.perf_counter()
                with tqdm(total=n_batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                          disable=not progress, dynamic_ncols=True) as batch_bar:
                    stats, state.step = run_epoch(network, optimizer, batches_for(epoch),
                                                  lr_at=lambda step: learning_rate(recipe, step, total_steps),
                                                  first_step=state.step, label_smoothing=recipe.label_smoothing,
                                                  progress=batch_bar)
                if recipe.bn_recalibration:
                    recalibrate_batchnorm(network, x_train[calibration])
                entry = _end_epoch(network, state, stats, x_val, y_val, recipe=recipe, total_steps=total_steps,
                                   started=started)
                if checkpoint_path is not None:
                    save_checkpoint(Path(checkpoint_path), identity, network, optimizer, state, device)
                epochs_bar.update(1)
                epochs_bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.3f}",
                                       val_loss=f"{entry['val_loss']:.4f}", val_acc=f"{entry['val_accuracy']:.3f}",
                                       best=f"{state.best_score[0]:.3f}@{state.best_epoch}")
                if on_epoch is not None:
                    on_epoch(entry)
        finally:
            epochs_bar.close()

    network.load_state_dict(state.best_state if state.best_state is not None else clone_state(network))
    network.eval()
    info = _model_info(recipe, variant, seed, state, device, n_train=len(train), n_val=len(val),
                       data_fingerprint=data_fingerprint, init_info=init_info, data_info=data_info)
    model = DefocusModel(network.cpu(), optics=optics, class_levels=class_levels, patch_px=patch_px, info=info)
    return TrainingResult(model=model, history=state.history, best_epoch=state.best_epoch)
