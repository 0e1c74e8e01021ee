"""What is trained and how: training recipes, the network variants of the paper's comparisons and their
label sets (paper 2.2, 3.1-3.3).

- :class:`TrainingRecipe`: optimiser, learning-rate schedule, batch, epochs, augmentation (frozen, JSON).
  :data:`RECIPES` holds ``paper`` (Adam 6e-5 with Keras' time decay 5e-6, batch 128, 1000 epochs) and
  ``fast`` (ours: AdamW with a one-cycle schedule and the 8 dihedral transforms as augmentation; an exact
  symmetry of the task, since the defocus PSF is radially symmetric and the patch grid square).
- :class:`ModelVariant`: the network and label set of the paper's comparisons (:data:`VARIANTS`): DelpNet,
  ``no-bg`` (Table 1), ``bn-momentum-0.99`` (Fig. 4), ``plain`` (Fig. 5) and the four architectures of Table 2.
- the label set of a variant: :func:`class_levels_for`, :func:`true_labels`, :func:`class_targets`.

Plain dataclasses and numpy: importing this module imports no torch (the CLI parses with it).
:mod:`awdvd.learn.train` re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._config import FrozenConfig
from ..data.patches import BACKGROUND, PatchSet
from .model import ARCHITECTURES, PAPER_PARAMETERS, build_network, network_config, network_cost

__all__ = [
    "TrainingRecipe",
    "RECIPES",
    "get_recipe",
    "learning_rate",
    "ModelVariant",
    "VARIANTS",
    "get_variant",
    "describe_variant",
    "class_levels_for",
    "true_labels",
    "class_targets",
]

_OPTIMIZERS = ("adam", "adamw")
_SCHEDULES = ("constant", "keras-time-decay", "onecycle", "cosine")
_AUGMENTATIONS = ("none", "dihedral")
_SELECT_BY = ("val_accuracy", "val_loss")


# --------------------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class TrainingRecipe(FrozenConfig):
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
class ModelVariant(FrozenConfig):
    """A network and label set: ``architecture`` (one of :data:`awdvd.learn.model.ARCHITECTURES`) with ``args`` (fields
    of its config, e.g. ``{"bn_momentum": 0.01}``), with or without the "bg" class."""

    name: str
    architecture: str
    args: dict = field(default_factory=dict)
    background_class: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("ModelVariant.name must be a non-empty string")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"ModelVariant.architecture must be one of {', '.join(ARCHITECTURES)}, "
                             f"got {self.architecture!r}")
        if not isinstance(self.args, dict):
            raise TypeError(f"ModelVariant.args must be a dict of network arguments, got {type(self.args).__name__}")
        if not isinstance(self.background_class, bool):
            raise TypeError(f"ModelVariant.background_class must be True or False, got {self.background_class!r}")


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
    """A named variant of :data:`VARIANTS`."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def describe_variant(name: str | ModelVariant, *, device: str = "meta") -> str:
    """One line: the variant, its parameter count beside the paper's, and its MACs per 84 x 84 patch.
    ``device`` "meta" costs no memory (the first call in a process imports torch's meta kernels, about a
    second); "cpu" builds the network for real."""
    import torch

    variant = get_variant(name) if isinstance(name, str) else name
    name = variant.name
    args = {**variant.args, "n_classes": 12 if variant.background_class else 11}
    with torch.device(device):
        network = build_network(variant.architecture, network_config(variant.architecture, args))
    cost = network_cost(network)
    return (f"{name:18s} {variant.architecture:13s} {cost['parameters'] / 1e6:6.2f} M params "
            f"(paper {PAPER_PARAMETERS[variant.architecture] / 1e6:.1f} M), {cost['macs'] / 1e6:7.1f} M MACs/patch  "
            f"{variant.description}")


# --------------------------------------------------------------------------------------------- label sets
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
