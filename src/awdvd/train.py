"""Training and evaluation of the defocus-level classifier (paper 2.2, 3.1-3.3).

Arrays in, a model out: :func:`train_model` takes the train and validation :class:`~awdvd.synth.PatchSet`
of a dataset and returns the best :class:`~awdvd.model.DefocusModel` with its learning curves; files are the
CLI's business, except the optional checkpoint that lets an interrupted run resume.

- :class:`TrainingRecipe`: optimiser, learning-rate schedule, batch, epochs, augmentation (frozen, JSON).
  :data:`RECIPES` holds ``paper`` (Adam 6e-5 with Keras' time decay 5e-6, batch 128, 1000 epochs) and
  ``fast`` (ours: AdamW with a one-cycle schedule and the 8 dihedral transforms as augmentation; an exact
  symmetry of the task, since the defocus PSF is radially symmetric and the patch grid square).
- :class:`ModelVariant`: the network and label set of the paper's comparisons (:data:`VARIANTS`): DelpNet,
  ``no-bg`` (Table 1), ``bn-momentum-0.99`` (Fig. 4), ``plain`` (Fig. 5) and the four architectures of Table 2.

Determinism: on CPU, the same data, recipe, variant and seed give the same weights, bit for bit (the batch
order and augmentation of epoch e come from a generator seeded with (seed, e); initial weights and Dropout
from torch's generator seeded with ``seed``, saved in the checkpoint). An interrupted run resumed from its
checkpoint gives the same result as an uninterrupted one. On CUDA, cuDNN's kernels may differ in the last bits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._checks import check_known_fields
from .model import BACKGROUND, PAPER_PARAMETERS, DefocusModel, build_network, network_config
from .optics import Optics
from .synth import PatchSet

__all__ = [
    "TrainingRecipe",
    "RECIPES",
    "get_recipe",
    "ModelVariant",
    "VARIANTS",
    "get_variant",
    "learning_rate",
    "class_levels_for",
    "class_targets",
    "true_labels",
    "dihedral",
    "train_model",
    "TrainingResult",
    "evaluate_model",
    "recalibrate_batchnorm",
    "check_compatible",
    "output_paths",
    "describe_variant",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "awdvd-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_OPTIMIZERS = ("adam", "adamw")
_SCHEDULES = ("constant", "keras-time-decay", "onecycle", "cosine")
_AUGMENTATIONS = ("none", "dihedral")
_SELECT_BY = ("val_accuracy", "val_loss")


# --------------------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class TrainingRecipe:
    """How a network is trained.

    Parameters
    ----------
    name : a label recorded in the model file.
    optimizer : "adam" or "adamw" (decoupled weight decay).
    lr : the base (``constant``, ``keras-time-decay``) or peak (``onecycle``, ``cosine``) learning rate.
    schedule : "constant"; "keras-time-decay" (Keras 2's ``decay``: lr / (1 + lr_decay * step)); "onecycle"
        (cosine warm-up from lr / 25 to lr over ``warmup_fraction`` of the steps, then cosine annealing to
        lr / 25e4, as torch's OneCycleLR); "cosine" (linear warm-up, then cosine annealing to 0).
    lr_decay : the Keras time decay per optimiser step (only for "keras-time-decay").
    warmup_fraction : fraction of all steps spent warming up ("onecycle", "cosine"), in [0, 1).
    weight_decay : L2 (adam) or decoupled (adamw) weight decay, applied to conv and dense weights only.
    eps : Adam's epsilon (Keras' default is 1e-7, torch's 1e-8).
    batch_size : patches per step; a last partial batch is used unless it holds a single patch.
    epochs : passes over the training set.
    augment : "none", or "dihedral": each patch, each epoch, one of the 8 rotations/flips at random.
    label_smoothing : cross-entropy label smoothing in [0, 1).
    select_by : the checkpoint kept as the model: highest "val_accuracy" (ties: lowest loss) or lowest "val_loss".
    bn_recalibration : after every epoch, before validation, re-estimate the BatchNorm statistics with Dropout
        off from this many training patches (0: keep the running averages). Dropout placed before BatchNorm
        and before a global *max* pool makes the statistics gathered in training mode wrong for inference
        (the "variance shift" of dropout): on the 6-image BBBC006 set a DelpNet after 4 epochs scored 0.36 on
        its own training patches in eval mode against 0.55 with recalibrated statistics (val 0.26 -> 0.41).
    """

    name: str = "custom"
    optimizer: str = "adamw"
    lr: float = 1e-3
    schedule: str = "onecycle"
    lr_decay: float = 0.0
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    eps: float = 1e-8
    batch_size: int = 128
    epochs: int = 100
    augment: str = "none"
    label_smoothing: float = 0.0
    select_by: str = "val_accuracy"
    bn_recalibration: int = 0

    def __post_init__(self) -> None:
        def number(name, low, high, *, low_open=False, high_open=True):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainingRecipe.{name} must be a finite number, got {value!r}")
            if value < low or (low_open and value == low) or value > high or (high_open and value == high):
                raise ValueError(f"TrainingRecipe.{name} must be in {'(' if low_open else '['}{low}, {high}"
                                 f"{')' if high_open else ']'}, got {value}")

        for name, options in (("optimizer", _OPTIMIZERS), ("schedule", _SCHEDULES), ("augment", _AUGMENTATIONS),
                              ("select_by", _SELECT_BY)):
            if getattr(self, name) not in options:
                raise ValueError(f"TrainingRecipe.{name} must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        number("lr", 0, 10, low_open=True)
        number("lr_decay", 0, math.inf)
        number("warmup_fraction", 0, 1)
        number("weight_decay", 0, 10)
        number("eps", 0, 1, low_open=True)
        number("label_smoothing", 0, 1)
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainingRecipe.{name} must be a positive integer, got {value!r}")
        if isinstance(self.bn_recalibration, bool) or not isinstance(self.bn_recalibration, int) or self.bn_recalibration < 0:
            raise ValueError(f"TrainingRecipe.bn_recalibration must be an integer >= 0, got {self.bn_recalibration!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("TrainingRecipe.name must be a non-empty string")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingRecipe:
        check_known_fields(cls, data, "TrainingRecipe field")
        return cls(**data)

    def replace(self, **changes) -> TrainingRecipe:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


#: The paper's recipe (2.2) and ours.
RECIPES = {
    "paper": TrainingRecipe(name="paper", optimizer="adam", lr=6e-5, schedule="keras-time-decay", lr_decay=5e-6,
                            warmup_fraction=0.0, eps=1e-7, batch_size=128, epochs=1000, augment="none"),
    "fast": TrainingRecipe(name="fast", optimizer="adamw", lr=2e-3, schedule="onecycle", warmup_fraction=0.15,
                           weight_decay=0.05, batch_size=64, epochs=60, augment="dihedral", bn_recalibration=2048),
}


def get_recipe(name: str, **changes) -> TrainingRecipe:
    """A named recipe of :data:`RECIPES`, with ``changes`` (None values ignored) applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    changes = {k: v for k, v in changes.items() if v is not None}
    return RECIPES[name].replace(**changes) if changes else RECIPES[name]


def learning_rate(recipe: TrainingRecipe, step: int, total_steps: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total_steps``."""
    lr = recipe.lr
    if recipe.schedule == "constant":
        return lr
    if recipe.schedule == "keras-time-decay":
        return lr / (1.0 + recipe.lr_decay * step)
    warmup = int(round(recipe.warmup_fraction * total_steps))
    if recipe.schedule == "onecycle":
        start, end = lr / 25.0, lr / 25.0 / 1e4
        if step < warmup:
            return start + (lr - start) * (1 - math.cos(math.pi * step / warmup)) / 2
        t = min(1.0, (step - warmup) / max(1, total_steps - 1 - warmup))
        return end + (lr - end) * (1 + math.cos(math.pi * t)) / 2
    # cosine
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return lr * (1 + math.cos(math.pi * t)) / 2


# --------------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class ModelVariant:
    """A network and label set: ``architecture`` with ``args`` (its config fields), with or without "bg"."""

    name: str
    architecture: str
    args: dict = field(default_factory=dict)
    background_class: bool = True
    description: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "architecture": self.architecture, "args": dict(self.args),
                "background_class": self.background_class, "description": self.description}


_DELPNET = "DelpNet as in the paper: 12 classes (bg), Dropout after every conv block, BN momentum Keras 0.6"
VARIANTS = {
    "delpnet": ModelVariant("delpnet", "delpnet", {}, True, _DELPNET),
    "no-bg": ModelVariant("no-bg", "delpnet", {}, False, "DelpNet with 11 classes: bg patches keep their level (Table 1)"),
    "bn-momentum-0.99": ModelVariant("bn-momentum-0.99", "delpnet", {"bn_momentum": 0.01}, True,
                                     "DelpNet with Keras' default BN momentum 0.99 (PyTorch 0.01; Fig. 4)"),
    "plain": ModelVariant("plain", "delpnet", {"dropout": 0.0, "head_dropout": 0.0, "bn_momentum": 0.01}, False,
                          "DelpNet without the three strategies: no bg, no Dropout, BN momentum 0.99 (Fig. 5)"),
    "vgg16": ModelVariant("vgg16", "vgg16", {}, True, "VGG16 with Keras' dense top (Table 2)"),
    "inception_v3": ModelVariant("inception_v3", "inception_v3", {}, True, "Inception v3 (Table 2)"),
    "resnet18": ModelVariant("resnet18", "resnet18", {}, True, "ResNet18 (Table 2)"),
    "mobilenet_v2": ModelVariant("mobilenet_v2", "mobilenet_v2", {}, True, "MobileNet v2 (Table 2)"),
}


def get_variant(name: str) -> ModelVariant:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def class_levels_for(n_levels: int, *, background_class: bool) -> list[int]:
    """The level of each network output: 0 .. n_levels - 1, then -1 ("bg") if there is a bg class."""
    return list(range(n_levels)) + ([BACKGROUND] if background_class else [])


def true_labels(patches: PatchSet, *, background_class: bool) -> np.ndarray:
    """(N,) int64 ground truth for a model with or without a "bg" class: the level, or -1 for a background
    patch when the model has a bg class (without one, bg patches keep their level, as in the paper's Table 1)."""
    return patches.labels if background_class else patches.level.astype(np.int64)


def class_targets(labels: np.ndarray, class_levels) -> np.ndarray:
    """(N,) int64 output index of each label (a level or -1) in ``class_levels``."""
    class_levels = np.asarray(class_levels, dtype=np.int64)
    lookup = {int(level): index for index, level in enumerate(class_levels)}
    labels = np.asarray(labels, dtype=np.int64)
    unknown = sorted(set(np.unique(labels).tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the model (classes: {class_levels.tolist()})")
    return np.array([lookup[int(v)] for v in labels], dtype=np.int64) if len(labels) else np.zeros(0, np.int64)


def dihedral(x, transform: int):
    """One of the 8 symmetries of the square on the last two axes of a tensor: rotation by ``transform % 4``
    quarter turns, preceded by a transpose if ``transform >= 4``."""
    import torch

    if transform >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, transform % 4, dims=(-2, -1))


# --------------------------------------------------------------------------------------------- checks
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


def check_compatible(model: DefocusModel, patches: PatchSet, metadata: dict | None = None) -> None:
    """Raise ValueError if ``patches`` (and their dataset ``metadata``) cannot be evaluated by ``model``:
    other patch size, other number of levels, other optics."""
    if patches.raw.ndim != 3 or patches.raw.shape[1:] != (model.patch_px, model.patch_px):
        raise ValueError(f"the model reads {model.patch_px} x {model.patch_px} patches; the dataset has "
                         f"{patches.raw.shape[1:]} patches")
    if metadata is not None and "optics" in metadata:
        import warnings

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


def _fingerprint(*parts: PatchSet) -> str:
    digest = hashlib.sha256()
    for patches in parts:
        digest.update(np.ascontiguousarray(patches.raw).tobytes())
        digest.update(np.ascontiguousarray(patches.level.astype(np.int64)).tobytes())
        digest.update(np.ascontiguousarray(patches.background.astype(np.uint8)).tobytes())
    return digest.hexdigest()[:20]


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    return torch.device(device)


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


def _evaluate_loss(network, x, y, *, batch_size: int = 256) -> tuple[float, float]:
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


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    edges = list(range(0, n, batch_size)) + [n]
    spans = list(zip(edges[:-1], edges[1:]))
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:  # BatchNorm cannot train on one patch
        spans.pop()
    return spans


def _better(score: tuple[float, float], best: tuple[float, float] | None, select_by: str) -> bool:
    """score = (val_accuracy, val_loss)."""
    if best is None:
        return True
    if select_by == "val_loss":
        return score[1] < best[1]
    return score[0] > best[0] or (score[0] == best[0] and score[1] < best[1])


def _clone_state(network) -> dict:
    return {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}


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
    train, val : the training and validation patches (e.g. :func:`awdvd.data.read_dataset`).
    optics : the optics the patches were made with (number of levels, recorded in the model).
    recipe : a :class:`TrainingRecipe` (default: ``RECIPES["fast"]``).
    variant : a :data:`VARIANTS` name or a :class:`ModelVariant`.
    network_args : fields of the network's config that override the variant's (e.g. smaller ``widths``);
        ``n_classes`` (and ``input_px`` for the comparison networks) are set from the data.
    seed : fixes initial weights, batch order, augmentation and Dropout.
    device : "cpu", "cuda" or "auto".
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
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    recipe = RECIPES["fast"] if recipe is None else recipe
    variant = get_variant(variant) if isinstance(variant, str) else variant
    if not isinstance(recipe, TrainingRecipe):
        raise TypeError(f"recipe must be a TrainingRecipe, got {type(recipe).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    _check_patchset(train, "train", optics.n_levels)
    _check_patchset(val, "val", optics.n_levels)
    patch_px = train.raw.shape[1]
    if val.raw.shape[1:] != train.raw.shape[1:]:
        raise ValueError(f"train patches are {train.raw.shape[1:]}, val patches {val.raw.shape[1:]}; they must match")
    if resume and checkpoint_path is None:
        raise ValueError("resume needs a checkpoint_path")
    device = _resolve_device(device)

    class_levels = class_levels_for(optics.n_levels, background_class=variant.background_class)
    args = {**variant.args, **(network_args or {}), "n_classes": len(class_levels)}
    if variant.architecture != "delpnet":
        args["input_px"] = patch_px
    config = network_config(variant.architecture, args)
    fingerprint = _fingerprint(train, val)

    x_train = torch.from_numpy(train.normalized()[:, None]).to(device)
    y_train = torch.from_numpy(class_targets(true_labels(train, background_class=variant.background_class), class_levels)).to(device)
    x_val = torch.from_numpy(val.normalized()[:, None]).to(device)
    y_val = torch.from_numpy(class_targets(true_labels(val, background_class=variant.background_class), class_levels)).to(device)
    spans = _batches(len(x_train), recipe.batch_size)
    total_steps = recipe.epochs * len(spans)
    # a fixed, seeded subset of the training patches for BatchNorm recalibration (the same every epoch)
    calibration = torch.from_numpy(np.sort(np.random.default_rng([seed, 11]).permutation(len(x_train))[
        : recipe.bn_recalibration])).to(device)

    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        network = build_network(variant.architecture, config).to(device)
        init_info = None
        if init is not None:
            init_info = _initialise_from(network, init, variant.architecture, config, class_levels)
        decay = [p for p in network.parameters() if p.ndim > 1]
        no_decay = [p for p in network.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(groups, lr=learning_rate(recipe, 0, total_steps), eps=recipe.eps)

        identity = {"recipe": recipe.to_dict(), "variant": variant.name, "architecture": variant.architecture,
                    "architecture_args": config.to_dict(), "seed": seed, "class_levels": class_levels,
                    "data_fingerprint": fingerprint, "optics": optics.to_dict(),
                    "init": init_info["weights_fingerprint"] if init_info else None}
        history: list[dict] = []
        best_state, best_epoch, best_score = None, 0, None
        start_epoch, step = 0, 0
        if resume:
            state = _load_checkpoint(Path(checkpoint_path), identity)
            network.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            history = list(state["history"])
            best_state, best_epoch = state["best_state_dict"], int(state["best_epoch"])
            best_score = tuple(state["best_score"]) if state["best_score"] is not None else None
            start_epoch, step = int(state["epoch"]), int(state["step"])

        epochs_bar = tqdm(total=recipe.epochs, initial=start_epoch, desc=f"{variant.name}/{recipe.name}", unit="epoch",
                          disable=not progress, dynamic_ncols=True)
        try:
            for epoch in range(start_epoch, recipe.epochs):
                started = time.perf_counter()
                epoch_rng = np.random.default_rng([seed, 7, epoch])
                order = torch.from_numpy(epoch_rng.permutation(len(x_train))).to(device)
                transforms = epoch_rng.integers(0, 8, size=len(x_train)) if recipe.augment == "dihedral" else None
                network.train()
                loss_sum, correct, seen = 0.0, 0, 0
                batch_bar = tqdm(spans, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress,
                                 dynamic_ncols=True)
                for lo, hi in batch_bar:
                    index = order[lo:hi]
                    xb, yb = x_train[index], y_train[index]
                    if transforms is not None:
                        kinds = transforms[lo:hi]
                        xb = xb.clone()
                        for kind in np.unique(kinds):
                            rows = torch.from_numpy(np.nonzero(kinds == kind)[0]).to(device)
                            xb[rows] = dihedral(xb[rows], int(kind))
                    lr = learning_rate(recipe, step, total_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    optimizer.zero_grad(set_to_none=True)
                    logits = network(xb)
                    loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    loss_sum += loss.item() * len(yb)
                    correct += int((logits.detach().argmax(dim=1) == yb).sum())
                    seen += len(yb)
                    batch_bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
                batch_bar.close()
                if recipe.bn_recalibration:
                    recalibrate_batchnorm(network, x_train[calibration])
                val_loss, val_accuracy = _evaluate_loss(network, x_val, y_val)
                entry = {"epoch": epoch + 1, "step": step, "lr": learning_rate(recipe, max(0, step - 1), total_steps),
                         "train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen),
                         "val_loss": val_loss, "val_accuracy": val_accuracy,
                         "seconds": time.perf_counter() - started}
                history.append(entry)
                if _better((val_accuracy, val_loss), best_score, recipe.select_by):
                    best_state, best_epoch, best_score = _clone_state(network), epoch + 1, (val_accuracy, val_loss)
                if checkpoint_path is not None:
                    _save_checkpoint(Path(checkpoint_path), identity, network, optimizer, epoch + 1, step, history,
                                     best_state, best_epoch, best_score, device)
                epochs_bar.update(1)
                epochs_bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.3f}",
                                       val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.3f}",
                                       best=f"{best_score[0]:.3f}@{best_epoch}")
                if on_epoch is not None:
                    on_epoch(entry)
        finally:
            epochs_bar.close()

    if best_state is None:  # resumed from a finished checkpoint with nothing left to do and no best: cannot happen
        best_state = _clone_state(network)
    network.load_state_dict(best_state)
    network.eval()
    info = {
        "recipe": recipe.to_dict(),
        "variant": variant.to_dict(),
        "seed": seed,
        "training": {
            "epochs": len(history),
            "steps": step,
            "best_epoch": best_epoch,
            "best_val_accuracy": best_score[0] if best_score else None,
            "best_val_loss": best_score[1] if best_score else None,
            "select_by": recipe.select_by,
            "device": str(device),
            "torch_version": torch.__version__,
            "n_train": len(train),
            "n_val": len(val),
            "data_fingerprint": fingerprint,
            "initialised_from": init_info,
            "history": history,
        },
        "data": dict(data_info or {}),
    }
    model = DefocusModel(network.cpu(), optics=optics, class_levels=class_levels, patch_px=patch_px, info=info)
    return TrainingResult(model=model, history=history, best_epoch=best_epoch)


def _initialise_from(network, init: DefocusModel, architecture: str, config, class_levels) -> dict:
    """Load ``init``'s weights into ``network`` after checking that they are the same kind of network."""
    import hashlib

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


def _save_checkpoint(path: Path, identity: dict, network, optimizer, epoch: int, step: int, history: list,
                     best_state, best_epoch: int, best_score, device) -> None:
    import torch

    from .io import atomic_path

    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **identity,
        "epoch": epoch,
        "step": step,
        "state_dict": _clone_state(network),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": history,
        "best_state_dict": best_state,
        "best_epoch": best_epoch,
        "best_score": list(best_score) if best_score is not None else None,
    }
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, identity: dict) -> dict:
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} could not be read as a training checkpoint ({type(error).__name__})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an awdvd training checkpoint")
    if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {state.get('format_version')}; this awdvd reads {CHECKPOINT_FORMAT_VERSION}")
    for key, value in identity.items():
        if state.get(key) != value:
            what = {"data_fingerprint": "dataset"}.get(key, key.replace("_", " "))
            raise ValueError(f"{path} was made with a different {what} (checkpoint: {state.get(key)!r}; now: "
                             f"{value!r}); resume with the same settings, or start over with --overwrite")
    missing = [k for k in ("state_dict", "optimizer", "torch_rng", "history", "best_state_dict", "best_epoch",
                           "best_score", "epoch", "step") if k not in state]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint (missing {', '.join(missing)})")
    return state


# --------------------------------------------------------------------------------------------- evaluation
def evaluate_model(model: DefocusModel, patches: PatchSet, *, metadata: dict | None = None, batch_size: int = 32) -> dict:
    """Classification metrics of ``model`` on ``patches`` (:func:`awdvd.metrics.classification_summary`).

    The ground truth follows the model's classes: with a "bg" class a background patch's label is "bg",
    without one it is its level. Raises ValueError if the patches do not fit the model
    (:func:`check_compatible`).
    """
    from .metrics import classification_summary

    check_compatible(model, patches, metadata)
    y_true = true_labels(patches, background_class=model.has_background_class)
    proba = model.predict_proba_normalized(patches.normalized(), batch_size=batch_size)
    y_pred = model.class_levels[np.argmax(proba, axis=1)] if len(patches) else np.zeros(0, np.int64)
    summary = classification_summary(y_true, y_pred, labels=model.class_levels, scores=proba,
                                     class_names=model.class_names)
    summary["architecture"] = model.architecture
    return summary


def output_paths(model_path: str | Path) -> dict[str, Path]:
    """The files ``awdvd train`` writes beside ``model_path``: model, checkpoint, curves (CSV, PNG), sidecar JSON."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("") if model_path.suffix == ".pt" else model_path
    return {"model": model_path, "checkpoint": Path(f"{stem}.checkpoint.pt"), "curves_csv": Path(f"{stem}.curves.csv"),
            "curves_png": Path(f"{stem}.curves.png"), "sidecar": Path(f"{stem}.json")}


def describe_variant(name: str, *, device: str = "meta") -> str:
    """One line: the variant, its parameter count beside the paper's, and its MACs per 84 x 84 patch.
    ``device`` "meta" costs no memory (the first call in a process imports torch's meta kernels, about a
    second); "cpu" builds the network for real."""
    import torch

    from .model import network_cost

    variant = get_variant(name)
    args = {**variant.args, "n_classes": 12 if variant.background_class else 11}
    with torch.device(device):
        network = build_network(variant.architecture, network_config(variant.architecture, args))
    cost = network_cost(network)
    return (f"{name:18s} {variant.architecture:13s} {cost['parameters'] / 1e6:6.2f} M params "
            f"(paper {PAPER_PARAMETERS[variant.architecture] / 1e6:.1f} M), {cost['macs'] / 1e6:7.1f} M MACs/patch  "
            f"{variant.description}")
