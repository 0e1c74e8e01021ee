"""How much work a reproduction does: :class:`Scale` (dataset size, epochs, patch budgets, restoration
settings) and the presets :data:`SCALES` (``smoke``, ``cpu``, ``full``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_positive_int
from .._config import FrozenConfig
from ..learn.model import ARCHITECTURES
from ..learn.recipes import RECIPES

__all__ = ["Scale", "SCALES", "get_scale", "QUARTER_WIDTH"]


@dataclass(frozen=True)
class Scale(FrozenConfig):
    """How much work :func:`reproduce` does.

    Parameters
    ----------
    name : a label for the report ("smoke", "cpu", "full" or your own).
    crops_per_image : 84 x 84 crops per synthetic image (the paper: 20).
    realizations : synthetic images per (source, level), each with its own noise and crops (see
        :class:`awdvd.data.synth.DatasetSpec`); with few sources, several give every split every level.
    main_epochs : epochs of the main DelpNet when it is trained here (no model given or bundled).
    ablation_epochs : epochs of each comparison run of Table 1 / Fig. 4 / Fig. 5.
    architecture_epochs : epochs of each comparison run of Table 2 / Fig. 6.
    main_train_patches : at most this many training patches for the main DelpNet (None: all).
    comparison_train_patches, comparison_val_patches : at most this many training / validation patches for the
        comparison runs (a seeded random subset, the same for every run; None: all).
    per_level : test patches per defocus level for Fig. 8 (the paper: about 45).
    strides : strides (px) of the fast AWDVD runs of Fig. 9, besides case (i) (84) and case (ii) (42).
    iterations : Richardson-Lucy iterations (Fig. 7-9).
    recipe : the :data:`awdvd.learn.recipes.RECIPES` recipe, with its number of epochs replaced by the above.
    network_args : {architecture: network arguments} overriding the published networks (e.g. small
        ``widths`` or ``width_mult`` for tests); empty = the published networks.
    seed : seeds the dataset, the subsets and every training.
    """

    name: str = "custom"
    crops_per_image: int = 20
    realizations: int = 4
    main_epochs: int = 60
    ablation_epochs: int = 60
    architecture_epochs: int = 60
    main_train_patches: int | None = None
    comparison_train_patches: int | None = None
    comparison_val_patches: int | None = None
    per_level: int = 45
    strides: tuple[int, ...] = (42, 21, 8)
    iterations: int = 30
    recipe: str = "fast"
    network_args: dict = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Scale.name must be a non-empty string")
        for name in ("crops_per_image", "realizations", "main_epochs", "ablation_epochs", "architecture_epochs",
                     "per_level"):
            check_positive_int(getattr(self, name), f"Scale.{name}")
        check_positive_int(self.iterations, "Scale.iterations", minimum=0)
        check_positive_int(self.seed, "Scale.seed", minimum=0)
        for name in ("main_train_patches", "comparison_train_patches", "comparison_val_patches"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), f"Scale.{name}", minimum=2)
        strides = tuple(self.strides)
        if not strides or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= 84
                              for s in strides):
            raise ValueError(f"Scale.strides must be one or more whole numbers in 1..84, got {self.strides!r}")
        object.__setattr__(self, "strides", tuple(int(s) for s in strides))
        if self.recipe not in RECIPES:
            raise ValueError(f"Scale.recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if not isinstance(self.network_args, dict) or any(a not in ARCHITECTURES for a in self.network_args):
            raise ValueError(f"Scale.network_args must map architectures ({', '.join(ARCHITECTURES)}) to argument "
                             f"dicts, got {self.network_args!r}")
        object.__setattr__(self, "network_args", {a: {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
                                                  for a, args in self.network_args.items()})


#: Networks at a quarter of their published widths (about 1/16 of the work per patch; MobileNet_v2 at its
#: smallest Keras alpha, 0.35): what the ``cpu`` scale's comparison runs train, so that each reaches its
#: validation plateau on 2 CPU cores (the published widths need the ``full`` scale, i.e. a GPU). VGG16 has
#: BatchNorm after every conv here (torchvision's ``vgg16_bn``; the report says "VGG16 with BatchNorm"): the
#: paper's VGG16 without it stayed at the majority class (24.4% test) after these 20 epochs.
QUARTER_WIDTH = {"delpnet": {"widths": (8, 16, 32, 32, 64, 64, 128)}, "vgg16": {"width_mult": 0.25, "batch_norm": True},
                 "inception_v3": {"width_mult": 0.25}, "resnet18": {"width_mult": 0.25},
                 "mobilenet_v2": {"width_mult": 0.35}}

#: The preset scales. ``smoke`` takes a few minutes on one CPU core and its numbers mean nothing. ``cpu``: the
#: comparison runs of Tables 1-2 and Fig. 4-6 train quarter-width networks (:data:`QUARTER_WIDTH`; 18-132 M
#: multiply-adds per patch against 9-2097 M at full width) for 20 epochs on 1500 patches each, under one
#: recipe, in about half an hour on 2 cores; the main model is the one given (or bundled). ``cpu`` and ``full``
#: make the paper-split dataset of the 6 shared images (8 realizations, 20 crops, seed 0).
SCALES = {
    "smoke": Scale(name="smoke", crops_per_image=2, realizations=2, main_epochs=2, ablation_epochs=2,
                   architecture_epochs=2, main_train_patches=96, comparison_train_patches=96,
                   comparison_val_patches=48, per_level=4, strides=(42,), iterations=30),
    "cpu": Scale(name="cpu", crops_per_image=20, realizations=8, main_epochs=4, ablation_epochs=20,
                 architecture_epochs=20, main_train_patches=None, comparison_train_patches=1500,
                 comparison_val_patches=400, per_level=45, strides=(42, 21), iterations=30,
                 network_args=QUARTER_WIDTH),
    "full": Scale(name="full", crops_per_image=20, realizations=8, main_epochs=60, ablation_epochs=60,
                  architecture_epochs=60, per_level=45, strides=(42, 21, 8), iterations=30),
}


def get_scale(name: str) -> Scale:
    """A preset scale of :data:`SCALES` by name."""
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}")
    return SCALES[name]
