"""Regenerate the results section of He et al. 2019 (Tables 1-2, Fig. 3-9) from awdvd's own code, and write one
Markdown report with every number beside the paper's.

:func:`reproduce` synthesises a patch dataset from in-focus images (``awdvd.synth``), trains the networks it
needs (``awdvd.train``), evaluates them, runs the restoration experiments (``awdvd.evaluate_restoration``) and
writes ``REPORT.md``, ``results.json`` and one PNG per figure into a folder. How much work it does is a
:class:`Scale`: ``smoke`` checks that everything runs (numbers meaningless), ``cpu`` fits in well under an hour
on two CPU cores, ``full`` is the paper's setting as far as our data allow (GPU-sized).

Which model answers which item:

- the *main* DelpNet (a given model file, the bundled model, or one trained here at the scale's main budget):
  Fig. 3 (confusion matrix) and the restoration figures 7-9 (its predicted levels pick the PSFs);
- *comparison* runs, all trained under one budget with the same data, so that only the studied setting
  differs: DelpNet, no-bg, BN momentum 0.99 and "plain" (Table 1, Fig. 4, Fig. 5) and the four architectures
  (Table 2, Fig. 6). They use the scale's recipe without BatchNorm recalibration: recalibration re-estimates the
  BatchNorm statistics before every validation, which would erase exactly what the BN-momentum comparison is
  about (in Keras, the paper's framework, inference uses the running averages that the momentum controls).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ._checks import check_positive_int

__all__ = ["Scale", "SCALES", "get_scale", "PAPER", "reproduce", "default_data_path", "REPORT_ITEMS"]

#: The items of the paper's results section, in report order.
REPORT_ITEMS = ("Table 1", "Table 2", "Fig. 3", "Fig. 4", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8", "Fig. 9")

#: The paper's numbers (He et al. 2019, section 3), as fractions where the paper gives percentages.
PAPER = {
    "table1": {
        "no-bg": {"accuracy": 0.968, "precision": 0.966, "recall": 0.969, "f1": 0.967},
        "delpnet": {"accuracy": 0.982, "precision": 0.982, "recall": 0.983, "f1": 0.983},
    },
    "table2": {
        "vgg16": {"params": 39.9e6, "accuracy": 0.969, "precision": 0.969, "recall": 0.970, "f1": 0.969},
        "inception_v3": {"params": 21.8e6, "accuracy": 0.915, "precision": 0.915, "recall": 0.917, "f1": 0.916},
        "resnet18": {"params": 12.6e6, "accuracy": 0.887, "precision": 0.887, "recall": 0.891, "f1": 0.888},
        "mobilenet_v2": {"params": 2.3e6, "accuracy": 0.787, "precision": 0.790, "recall": 0.796, "f1": 0.791},
        "delpnet": {"params": 2.3e6, "accuracy": 0.982, "precision": 0.982, "recall": 0.983, "f1": 0.983},
    },
    "fig3": {"accuracy": 0.982, "note": "precision, recall and F1 all above 98%; wrong predictions mostly next to "
                                        "the true level"},
    "fig4": {"note": "validation loss with BN momentum 0.99 oscillates severely; 0.60 converges steadily"},
    "fig5": {"top1": {"delpnet": 0.982, "no-bg": 0.968, "plain": None}},
    "fig6": {"top1": {"delpnet": 0.982, "vgg16": 0.969, "inception_v3": 0.915, "resnet18": 0.887,
                      "mobilenet_v2": 0.787}},
    "fig7": {"predicted_level": 4,
             "psnr_db": {"defocused": 59.0, "noisy": 59.0, "variant": 63.8, "invariant": 59.0},
             "ssim": {"noisy": 0.83, "variant": 0.86},
             "note": "PSNR 'about 59.0 dB' for the defocused, noisy and depth-invariant patches"},
    "fig8": {"psnr_gain_variant_db": (0.3, 6.6), "psnr_gain_invariant_db": (0.0, 1.5), "ssim_variant": (0.66, 1.0),
             "ssim_ratio_gain_percent": (0.0, 11.0), "patches_per_level": 45},
    "fig9": {"note": "case (i) (stride 84, rectangular) shows patch boundary artifacts; case (ii) (stride 42, "
                     "triangular) removes them and looks smoother"},
}

_PAPER_SOURCES = 381  # in-focus BBBC006 images the paper synthesised from
_COMPARISON_VARIANTS = ("delpnet", "no-bg", "bn-momentum-0.99", "plain")
_ARCHITECTURES = ("vgg16", "inception_v3", "resnet18", "mobilenet_v2")
_LABELS = {"delpnet": "DelpNet", "no-bg": "DelpNet without bg", "bn-momentum-0.99": "DelpNet, BN momentum 0.99",
           "plain": "plain (no bg, no Dropout, BN 0.99)", "vgg16": "VGG16", "inception_v3": "Inception_v3",
           "resnet18": "ResNet18", "mobilenet_v2": "MobileNet_v2"}
_FIGURES = {"fig3": "fig3_confusion.png", "fig4": "fig4_bn_momentum.png", "fig5": "fig5_cmc_strategies.png",
            "fig6": "fig6_cmc_architectures.png", "fig7": "fig7_patch.png", "fig8": "fig8_per_level.png",
            "fig9": "fig9_whole_image.png"}
_DPI = 100


# --------------------------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class Scale:
    """How much work :func:`reproduce` does.

    Parameters
    ----------
    name : a label for the report ("smoke", "cpu", "full" or your own).
    crops_per_image : 84 x 84 crops per synthetic image (the paper: 20).
    realizations : synthetic images per (source, level), each with its own noise and crops (see
        :class:`awdvd.synth.DatasetSpec`); with few sources, several give every split every level.
    main_epochs : epochs of the main DelpNet when it is trained here (no model given or bundled).
    ablation_epochs : epochs of each comparison run of Table 1 / Fig. 4 / Fig. 5.
    architecture_epochs : epochs of each comparison run of Table 2 / Fig. 6.
    main_train_patches : at most this many training patches for the main DelpNet (None: all).
    comparison_train_patches, comparison_val_patches : at most this many training / validation patches for the
        comparison runs (a seeded random subset, the same for every run; None: all).
    per_level : test patches per defocus level for Fig. 8 (the paper: about 45).
    strides : strides (px) of the fast AWDVD runs of Fig. 9, besides case (i) (84) and case (ii) (42).
    iterations : Richardson-Lucy iterations (Fig. 7-9).
    recipe : the :data:`awdvd.train.RECIPES` recipe, with its number of epochs replaced by the above.
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
        from .model import ARCHITECTURES
        from .train import RECIPES

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

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["strides"] = list(self.strides)
        return json.loads(json.dumps(d))

    def replace(self, **changes) -> Scale:
        return dataclasses.replace(self, **changes)


#: The preset scales. ``smoke`` took 3 minutes on one (shared) CPU core. ``cpu`` is sized from the smoke run's
#: costs per patch and epoch: DelpNet trains at about 20-25 patches/s on one core; VGG16 costs about 6 times as
#: much per patch, Inception_v3 1.1, ResNet18 0.9, MobileNet_v2 0.65 times; 8 comparison runs of 3 epochs on
#: 1000 patches take about 30 minutes on 2 cores (an estimate), plus 4 epochs on about 8000 patches when no main
#: model is given. ``cpu`` and ``full`` make the dataset the bundled model was trained on (the 6 shared images,
#: 8 realizations, 20 crops, seed 0), so that its test split is held out for the bundled model too.
SCALES = {
    "smoke": Scale(name="smoke", crops_per_image=2, realizations=2, main_epochs=2, ablation_epochs=2,
                   architecture_epochs=2, main_train_patches=96, comparison_train_patches=96,
                   comparison_val_patches=48, per_level=4, strides=(42,), iterations=30),
    "cpu": Scale(name="cpu", crops_per_image=20, realizations=8, main_epochs=4, ablation_epochs=3,
                 architecture_epochs=3, main_train_patches=None, comparison_train_patches=1000,
                 comparison_val_patches=300, per_level=45, strides=(42, 21), iterations=30),
    "full": Scale(name="full", crops_per_image=20, realizations=8, main_epochs=60, ablation_epochs=60,
                  architecture_epochs=60, per_level=45, strides=(42, 21, 8), iterations=30),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}")
    return SCALES[name]


def default_data_path() -> Path | None:
    """The shared BBBC006 in-focus images beside the repository (``../shared/data/bbbc006/in_focus``), if there."""
    repo = Path(__file__).resolve().parents[2]
    folder = repo.parent / "shared" / "data" / "bbbc006" / "in_focus"
    return folder if folder.is_dir() else None


# --------------------------------------------------------------------------------------------- helpers
def _finite(value):
    """JSON-safe: NaN and infinities as None, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else \
        f"{value:.{digits}f}{unit}"


def _params(n) -> str:
    return "n/a" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k")


def _seconds(value) -> str:
    return "n/a" if value is None else (f"{value:.1f} s" if value < 10 else f"{value:.0f} s")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _git_state() -> dict:
    """Commit (and whether the tree has changes) of the repository this file lives in, if it is one."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return {"commit": None}
        status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def _subset(patches, index):
    from .synth import PatchSet

    return PatchSet(*(getattr(patches, f.name)[index] for f in dataclasses.fields(PatchSet)))


def _cap(patches, limit: int | None, seed: list[int]):
    """At most ``limit`` patches of ``patches``: a seeded random subset in the original order."""
    if limit is None or len(patches) <= limit:
        return patches
    index = np.sort(np.random.default_rng(seed).permutation(len(patches))[:limit])
    return _subset(patches, index)


def _resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    return device


def _load_sources(data, log) -> tuple[list[np.ndarray], list[str], dict]:
    """(images, names, provenance) of the in-focus source images."""
    from .data import load_in_focus_images

    if data is None:
        from .synth import synthetic_nuclei

        images = [synthetic_nuclei((520, 696), seed=seed) for seed in range(6)]
        names = [f"synthetic_nuclei(seed={seed})" for seed in range(6)]
        return images, names, {"kind": "procedural", "path": None,
                               "description": "6 procedural nuclei images (awdvd.synth.synthetic_nuclei, 520 x 696): "
                                              "no real in-focus images were found"}
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    items = list(data)
    if items and all(isinstance(item, np.ndarray) for item in items):
        names = [f"image_{i}" for i in range(len(items))]
        shapes = sorted({tuple(item.shape) for item in items})
        return items, names, {"kind": "arrays", "path": None,
                              "description": f"{len(items)} in-memory images {', '.join(map(str, shapes))}"}
    log(f"reading in-focus images from {', '.join(map(str, items))}")
    images, names = load_in_focus_images(items)
    bbbc006 = all("BBBC006" in name or "mcf-z-stacks" in name for name in names)
    shapes = sorted({tuple(np.shape(image)) for image in images})
    what = "in-focus BBBC006 images (U2OS, Hoechst)" if bbbc006 else "in-focus images"
    return images, names, {"kind": "bbbc006" if bbbc006 else "files", "path": [str(Path(p).resolve()) for p in items],
                           "description": f"{len(images)} {what}, {' / '.join(f'{h} x {w}' for h, w in shapes)} px, "
                                          f"from {', '.join(map(str, items))}"}


@dataclass
class _Run:
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


# --------------------------------------------------------------------------------------------- the run
def reproduce(out_dir, *, scale: Scale | str, data=None, model=None, device: str = "cpu", progress: bool = True,
              overwrite: bool = False, save_models: bool = False) -> dict:
    """Regenerate Tables 1-2 and Fig. 3-9 of the paper and write ``REPORT.md``, ``results.json`` and the figures
    (PNG) into ``out_dir``.

    Parameters
    ----------
    out_dir : output folder; it must be absent or empty unless ``overwrite`` (then files of the same names are
        replaced, others left alone). Outputs are made in a temporary folder beside it and moved in at the end,
        so a failed run leaves nothing half-written.
    scale : a :class:`Scale` or the name of one of :data:`SCALES`.
    data : in-focus source images: a file or folder path (see :func:`awdvd.data.load_in_focus_images`), a list
        of paths, or a list of 2-D arrays (ADU); None: 6 procedural images (:func:`awdvd.synth.synthetic_nuclei`),
        and the report says so.
    model : the main DelpNet for Fig. 3 and 7-9: a :class:`~awdvd.model.DefocusModel` or a model file; None:
        the bundled model if this installation has one, else one trained here at the scale's main budget.
    device : "cpu", "cuda" or "auto" (training, inference and Richardson-Lucy).
    progress : print one line per step (and per training epoch) on stderr.
    save_models : also write every model trained here to ``out_dir/models/<name>.pt``.

    Returns
    -------
    The content of ``results.json`` (every number of the report), with ``"report"`` and ``"results"`` paths added.
    """
    from .model import DefocusModel, bundled_model_path, load_model

    started = time.perf_counter()
    scale = get_scale(scale) if isinstance(scale, str) else scale
    if not isinstance(scale, Scale):
        raise TypeError(f"scale must be a Scale or one of {', '.join(SCALES)}, got {type(scale).__name__}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file; -o takes a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another output folder or pass --overwrite")

    def log(message: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    device = _resolve_device(device)
    # everything that can fail on the user's arguments fails here, before any work
    model_source = None
    if isinstance(model, DefocusModel):
        main_model, model_source = model, "given DefocusModel"
    elif model is not None:
        main_model, model_source = load_model(model), str(Path(model).resolve())
    elif bundled_model_path().is_file():
        main_model, model_source = load_model(), f"bundled model ({bundled_model_path()})"
    else:
        main_model = None
    if main_model is not None and main_model.architecture != "delpnet":
        raise ValueError(f"the main model must be a DelpNet, got a {main_model.architecture} model")
    images, names, provenance = _load_sources(data, log)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        job = _Reproduction(staging, scale=scale, device=device, log=log, save_models=save_models)
        results = job.run(images, names, provenance, main_model, model_source)
        results["wall_seconds"] = time.perf_counter() - started
        job.write_outputs(results)
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = out_dir / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"done: {out_dir / 'REPORT.md'}")
    results["report"] = str(out_dir / "REPORT.md")
    results["results"] = str(out_dir / "results.json")
    return results


class _Reproduction:
    """The steps of :func:`reproduce`, writing into a (staging) folder."""

    def __init__(self, folder: Path, *, scale: Scale, device: str, log, save_models: bool):
        self.folder, self.scale, self.device, self.log, self.save_models = folder, scale, device, log, save_models
        self.runs: dict[str, _Run] = {}

    # ----------------------------------------------------------------------------------------- driver
    def run(self, images, names, provenance, main_model, model_source) -> dict:
        import torch

        from . import __version__
        from .optics import Optics
        from .psf import psf_bank
        from .synth import CameraNoise, DatasetSpec, make_patch_dataset

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
        self.data_short += f" (paper {_PAPER_SOURCES})"

        # the models
        if main_model is None:
            self.runs["main"] = self._train("delpnet", epochs=scale.main_epochs, limit=scale.main_train_patches,
                                            val_limit=None, recipe_changes={}, key="main")
        else:
            self.runs["main"] = self._loaded(main_model, model_source)
        self.comparison = {}
        for variant in _COMPARISON_VARIANTS:
            self.comparison[variant] = self._comparison_run(variant, scale.ablation_epochs)
        self.architectures = {"delpnet": self._comparison_run("delpnet", scale.architecture_epochs)}
        for architecture in _ARCHITECTURES:
            self.architectures[architecture] = self._comparison_run(architecture, scale.architecture_epochs)
        for run in self.runs.values():
            self._evaluate(run)

        items = {}
        for key, function in (("table1", self.table1), ("table2", self.table2), ("fig3", self.fig3),
                              ("fig4", self.fig4), ("fig5", self.fig5), ("fig6", self.fig6), ("fig7", self.fig7),
                              ("fig8", self.fig8), ("fig9", self.fig9)):
            t = time.perf_counter()
            self.log(f"{key}: {_ITEM_TITLES[key]}")
            items[key] = function()
            items[key]["seconds"] = time.perf_counter() - t
        if self.save_models:
            for run in self.runs.values():
                if run.source == "trained here":
                    run.model.save(self.folder / "models" / f"{run.key}.pt")
        git = _git_state()
        return _finite({
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
            "models": {key: self._run_record(run) for key, run in self.runs.items()},
            "main_model": self._main_model_note(),
            "items": items,
        })

    # ----------------------------------------------------------------------------------------- training
    def _recipe(self, epochs: int, changes: dict):
        from .train import get_recipe

        return get_recipe(self.scale.recipe, epochs=epochs).replace(**changes)

    def _comparison_run(self, variant: str, epochs: int) -> _Run:
        # no BatchNorm recalibration: see the module docstring
        return self._train(variant, epochs=epochs, limit=self.scale.comparison_train_patches,
                           val_limit=self.scale.comparison_val_patches, recipe_changes={"bn_recalibration": 0},
                           key=f"{variant}@{epochs}ep")

    def _train(self, variant: str, *, epochs: int, limit, val_limit, recipe_changes: dict, key: str) -> _Run:
        from .train import get_variant, train_model

        if key in self.runs:
            return self.runs[key]
        scale = self.scale
        train = _cap(self.splits["train"], limit, [scale.seed, 5])
        val = _cap(self.splits["val"], val_limit, [scale.seed, 6])
        recipe = self._recipe(epochs, recipe_changes)
        architecture = get_variant(variant).architecture
        self.log(f"training {key}: {_LABELS.get(variant, variant)} on {len(train)} train / {len(val)} val patches, "
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
        run = _Run(key=key, variant=variant, architecture=architecture, model=result.model, history=result.history,
                   best_epoch=result.best_epoch, epochs=epochs, recipe=recipe.to_dict(), n_train=len(train),
                   n_val=len(val), train_seconds=seconds, device=self.device, source="trained here")
        self.runs[key] = run
        return run

    def _loaded(self, model, source: str) -> _Run:
        training = model.info.get("training", {})
        recipe = model.info.get("recipe", {})
        self.log(f"main DelpNet: {source}")
        return _Run(key="main", variant=model.info.get("variant", {}).get("name", "delpnet"), architecture="delpnet",
                    model=model, history=list(training.get("history") or []), best_epoch=training.get("best_epoch"),
                    epochs=training.get("epochs"), recipe=recipe, n_train=training.get("n_train"),
                    n_val=training.get("n_val"), train_seconds=None, device=str(training.get("device", "unknown")),
                    source=source)

    def _evaluate(self, run: _Run) -> None:
        from .train import evaluate_model

        t = time.perf_counter()
        run.model.to(self.device)
        run.summary = evaluate_model(run.model, self.splits["test"], metadata=self.metadata)
        run.eval_seconds = time.perf_counter() - t
        self.log(f"evaluated {run.key} on {run.summary['n']} test patches: accuracy {run.summary['accuracy']:.3f} "
                 f"({run.eval_seconds:.1f} s)")

    def _main_model_note(self) -> dict:
        """Whether the main model's training data can overlap this run's test split."""
        from .train import _fingerprint

        main = self.runs["main"]
        if main.source == "trained here":
            return {"source": "trained here", "test_is_held_out": True}
        fingerprint = main.model.info.get("training", {}).get("data_fingerprint")
        same = fingerprint is not None and fingerprint == _fingerprint(self.splits["train"], self.splits["val"])
        return {"source": main.source, "test_is_held_out": True if same else None,
                "trained_on": main.model.info.get("data", {}).get("sources")}

    def _run_record(self, run: _Run) -> dict:
        from .model import count_parameters

        return {"variant": run.variant, "architecture": run.architecture, "source": run.source,
                "recipe": run.recipe, "epochs": run.epochs, "best_epoch": run.best_epoch, "n_train": run.n_train,
                "n_val": run.n_val, "n_test": len(self.splits["test"]), "train_seconds": run.train_seconds,
                "eval_seconds": run.eval_seconds, "device": run.device,
                "parameters": count_parameters(run.model.network),
                "network_args": run.model.config.to_dict(),
                "history": [{k: h.get(k) for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                                   "seconds")} for h in run.history],
                "test": {k: run.summary[k] for k in ("n", "accuracy", "macro", "cmc", "mean_abs_level_error",
                                                     "within_one_level")} if run.summary else None}

    def _conditions(self, run: _Run) -> str:
        """One line: data, patches, epochs, recipe, device, wall time."""
        n_test = len(self.splits["test"])
        if run.source != "trained here":
            recipe = run.recipe.get("name", "?")
            return (f"loaded: {run.source}; its file: recipe {recipe}, {run.epochs} epochs (best {run.best_epoch}), "
                    f"{run.n_train} train patches, trained on {run.device}; tested here on {n_test} test patches "
                    f"({self.data_short}), {self.device}, eval {_seconds(run.eval_seconds)}")
        recal = "" if run.recipe.get("bn_recalibration") else " w/o BN recal."
        return (f"{self.data_short}; {run.n_train} train / {run.n_val} val / {n_test} test patches; "
                f"{run.recipe['name']}{recal}, {run.epochs} ep (best {run.best_epoch}); {run.device}; "
                f"train {_seconds(run.train_seconds)} + eval {_seconds(run.eval_seconds)}")

    # ----------------------------------------------------------------------------------------- tables
    @staticmethod
    def _scores(summary: dict) -> dict:
        return {"accuracy": summary["accuracy"], "precision": summary["macro"]["precision"],
                "recall": summary["macro"]["recall"], "f1": summary["macro"]["f1"]}

    def table1(self) -> dict:
        rows = {}
        for variant in ("no-bg", "delpnet"):
            run = self.comparison[variant]
            rows[variant] = {"paper": PAPER["table1"][variant], "awdvd": self._scores(run.summary),
                             "model": run.key, "conditions": self._conditions(run)}
        main = self.runs["main"]
        rows["main"] = {"paper": PAPER["table1"]["delpnet"], "awdvd": self._scores(main.summary), "model": "main",
                        "conditions": self._conditions(main)}
        return {"rows": rows}

    def table2(self) -> dict:
        import torch

        from .model import build_network, network_config, network_cost
        from .train import get_variant

        rows = {}
        for name in ("vgg16", "inception_v3", "resnet18", "mobilenet_v2", "delpnet"):
            run = self.architectures[name]
            variant = get_variant(name)
            args = {**variant.args, "n_classes": len(run.model.class_levels)}
            with torch.device("meta"):  # the published network's size, whatever network_args were trained
                published = network_cost(build_network(variant.architecture,
                                                       network_config(variant.architecture, args)))
            rows[name] = {"paper": PAPER["table2"][name], "awdvd": self._scores(run.summary),
                          "params_published": published["parameters"], "macs_per_patch": published["macs"],
                          "params_trained": self._run_record(run)["parameters"], "model": run.key,
                          "conditions": self._conditions(run)}
        return {"rows": rows}

    # ----------------------------------------------------------------------------------------- classification figures
    def fig3(self) -> dict:
        from .plots import confusion_figure

        main = self.runs["main"]
        s = main.summary
        confusion_figure(s["confusion"], s["class_names"], self.folder / _FIGURES["fig3"],
                         title=f"main DelpNet: accuracy {s['accuracy']:.1%} (test, n = {s['n']})")
        confusion = np.asarray(s["confusion"])
        levels = np.asarray(s["labels"])
        wrong = confusion.copy()
        np.fill_diagonal(wrong, 0)
        true_level, predicted_level = np.meshgrid(levels, levels, indexing="ij")
        adjacent = (true_level >= 0) & (predicted_level >= 0) & (np.abs(true_level - predicted_level) == 1)
        n_wrong = int(wrong.sum())
        return {"paper": PAPER["fig3"], "awdvd": {**self._scores(s), "within_one_level": s["within_one_level"],
                                                  "mean_abs_level_error": s["mean_abs_level_error"],
                                                  "errors": n_wrong,
                                                  "errors_adjacent_level": int(wrong[adjacent].sum()),
                                                  "errors_adjacent_fraction": (wrong[adjacent].sum() / n_wrong
                                                                               if n_wrong else None),
                                                  "confusion": s["confusion"], "class_names": s["class_names"]},
                "figure": _FIGURES["fig3"], "model": "main", "conditions": self._conditions(main)}

    @staticmethod
    def _oscillation(history: list) -> dict:
        loss = np.array([h["val_loss"] for h in history], dtype=float)
        steps = np.diff(loss)
        return {"val_loss": loss.tolist(), "final_val_loss": float(loss[-1]) if len(loss) else None,
                "min_val_loss": float(loss.min()) if len(loss) else None,
                "mean_abs_change": float(np.abs(steps).mean()) if len(steps) else None,
                "relative_mean_abs_change": float(np.abs(steps).mean() / loss.mean()) if len(steps) else None,
                "increases": int(np.sum(steps > 0))}

    def fig4(self) -> dict:
        from .plots import training_curves

        runs = {"BN momentum 0.60 (Keras; DelpNet)": self.comparison["delpnet"],
                "BN momentum 0.99 (Keras default)": self.comparison["bn-momentum-0.99"]}
        training_curves({label: run.history for label, run in runs.items()}, self.folder / _FIGURES["fig4"])
        return {"paper": PAPER["fig4"],
                "awdvd": {"0.60": self._oscillation(self.comparison["delpnet"].history),
                          "0.99": self._oscillation(self.comparison["bn-momentum-0.99"].history)},
                "figure": _FIGURES["fig4"], "models": [run.key for run in runs.values()],
                "conditions": {"0.60": self._conditions(self.comparison["delpnet"]),
                               "0.99": self._conditions(self.comparison["bn-momentum-0.99"])}}

    def _cmc_item(self, runs: dict, figure: str, title: str, paper_top1: dict) -> dict:
        from .plots import cmc_figure

        cmc_figure({_LABELS[name]: run.summary["cmc"] for name, run in runs.items()}, self.folder / figure, title=title)
        return {"paper": {"top1": paper_top1},
                "awdvd": {name: {"cmc": run.summary["cmc"], "top1": run.summary["cmc"][0],
                                 "top3": run.summary["cmc"][min(2, len(run.summary["cmc"]) - 1)]}
                          for name, run in runs.items()},
                "figure": figure, "models": {name: run.key for name, run in runs.items()},
                "conditions": {name: self._conditions(run) for name, run in runs.items()}}

    def fig5(self) -> dict:
        runs = {name: self.comparison[name] for name in ("delpnet", "no-bg", "plain")}
        return self._cmc_item(runs, _FIGURES["fig5"], "Fig. 5: strategies (test set)", PAPER["fig5"]["top1"])

    def fig6(self) -> dict:
        runs = {name: self.architectures[name] for name in ("delpnet",) + _ARCHITECTURES}
        return self._cmc_item(runs, _FIGURES["fig6"], "Fig. 6: architectures (test set)", PAPER["fig6"]["top1"])

    # ----------------------------------------------------------------------------------------- restoration figures
    def fig7(self) -> dict:
        from .deconv import richardson_lucy
        from .metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range
        from .synth import blur, forward_bank

        test, main = self.splits["test"], self.runs["main"].model
        predicted = np.asarray(main.predict_patches(test.raw)) if len(test) else np.zeros(0, np.int64)
        # the paper's patch: true and predicted level 4, with structure; fall back step by step
        target = min(PAPER["fig7"]["predicted_level"], self.optics.n_levels - 1)
        signal = test.truth.std(axis=(1, 2))
        foreground = ~test.background
        for mask in (foreground & (test.level == target) & (predicted == target), foreground & (test.level == target),
                     foreground & (test.level > 0), foreground, np.ones(len(test), bool)):
            if mask.any():
                break
        index = int(np.flatnonzero(mask)[np.argmax(signal[mask])])
        level, level_predicted = int(test.level[index]), int(predicted[index])
        source, (y, x) = int(test.source[index]), test.yx[index]
        p = test.raw.shape[1]
        offset = self.noise.offset_adu
        clean = blur(np.asarray(self.images[source], dtype=np.float64),
                     forward_bank(self.optics, size=self.metadata["psf_size"])[level])[y : y + p, x : x + p]
        raw, truth = test.raw[index], test.truth[index]
        it = self.scale.iterations
        variant = raw if level_predicted < 0 else richardson_lucy(raw, self.psfs[level_predicted], iterations=it,
                                                                  offset=offset, device=self.device)
        invariant = richardson_lucy(raw, self.psfs[0], iterations=it, offset=offset, device=self.device)
        panels = {"in_focus": truth, "defocused": clean, "noisy": raw, "variant": variant, "invariant": invariant}
        metrics = {}
        for name, image in panels.items():
            metrics[name] = {"psnr_65535": psnr(truth, image, data_range=PAPER_DATA_RANGE),
                             "psnr_truth_range": psnr(truth, image, data_range=truth_data_range(truth)),
                             "ssim_65535": ssim(truth, image, data_range=PAPER_DATA_RANGE),
                             "ssim_truth_range": ssim(truth, image, data_range=truth_data_range(truth))}
        row = int(np.argmax(truth.mean(axis=1)))
        _plot_fig7(panels, metrics, row, self.folder / _FIGURES["fig7"], level=level, predicted=level_predicted)
        return {"paper": PAPER["fig7"],
                "awdvd": {"metrics": metrics, "true_level": level, "predicted_level": level_predicted,
                          "source": self.names[source], "yx": [int(y), int(x)], "profile_row": row,
                          "iterations": it, "offset_adu": offset},
                "figure": _FIGURES["fig7"], "model": "main"}

    def fig8(self) -> dict:
        from .evaluate_restoration import evaluate_patches, plot_patch_metrics

        report = evaluate_patches(self.splits["test"], self.psfs, model=self.runs["main"].model,
                                  per_level=self.scale.per_level, iterations=self.scale.iterations, seed=self.scale.seed,
                                  offset=self.noise.offset_adu, device=self.device)
        rows = [r for r in report["levels"] if r.get("n")]
        if rows:
            plot_patch_metrics(report, self.folder / _FIGURES["fig8"])
        else:
            _placeholder(self.folder / _FIGURES["fig8"], "Fig. 8: no non-background test patches at any level")

        def span(values):
            values = [v for v in values if v is not None and math.isfinite(v)]
            return [min(values), max(values)] if values else None

        summary = {}
        for name in ("variant_predicted", "variant_true", "invariant"):
            summary[name] = {
                "psnr_gain_db": span([r["psnr_gain_db"].get(name) for r in rows]),
                "ssim_truth_range": span([r["ssim"][name]["truth_range"]["mean"] for r in rows]),
                "ssim_ratio_gain_percent": span([100 * (r["ssim_ratio"]["truth_range"][name] - 1) for r in rows
                                                 if r["ssim_ratio"]["truth_range"][name] is not None]),
            }
        summary["noisy"] = {"ssim_truth_range": span([r["ssim"]["noisy"]["truth_range"]["mean"] for r in rows])}
        per_level = [{"level": r["level"], "n": r["n"], "psnr_gain_db": r["psnr_gain_db"],
                      "ssim_truth_range": {k: v["truth_range"]["mean"] for k, v in r["ssim"].items()},
                      "ssim_ratio_truth_range": r["ssim_ratio"]["truth_range"],
                      "predicted_levels": r.get("predicted_levels")} for r in report["levels"] if r.get("n")]
        return {"paper": PAPER["fig8"], "awdvd": {"summary": summary, "per_level": per_level,
                                                  "settings": report["settings"], "levels": report["levels"]},
                "figure": _FIGURES["fig8"], "model": "main"}

    def fig9(self) -> dict:
        from .evaluate_restoration import evaluate_whole_image, tilted_specimen

        specimen = tilted_specimen(self.images[0], optics=self.optics, noise=self.noise,
                                   psf_size=self.metadata["psf_size"], seed=self.scale.seed)
        report = evaluate_whole_image(specimen, self.psfs, strides=self.scale.strides, iterations=self.scale.iterations,
                                      model=self.runs["main"].model, offset=self.noise.offset_adu, device=self.device,
                                      keep_images=True)
        images = report.pop("images")
        by_name = {r["name"]: r for r in report["results"]}
        box = _plot_fig9(images, by_name, self.folder / _FIGURES["fig9"])
        return {"paper": PAPER["fig9"], "awdvd": {"results": report["results"], "settings": report["settings"],
                                                  "source": self.names[0], "zoom_box_yx_hw": box},
                "figure": _FIGURES["fig9"], "model": "main"}

    # ----------------------------------------------------------------------------------------- outputs
    def write_outputs(self, results: dict) -> None:
        from .io import atomic_path, write_json

        write_json(self.folder / "results.json", results)
        with atomic_path(self.folder / "REPORT.md") as tmp:
            Path(tmp).write_text(_report_markdown(results))


_ITEM_TITLES = {"table1": "Table 1, with and without the bg class", "table2": "Table 2, DelpNet vs four architectures",
                "fig3": "Fig. 3, confusion matrix of the main DelpNet", "fig4": "Fig. 4, BN momentum 0.6 vs 0.99",
                "fig5": "Fig. 5, top-k curves of the strategies", "fig6": "Fig. 6, top-k curves of the architectures",
                "fig7": "Fig. 7, one test patch restored", "fig8": "Fig. 8, PSNR/SSIM per defocus level",
                "fig9": "Fig. 9, whole tilted specimen, case (i) vs case (ii)"}


# --------------------------------------------------------------------------------------------- figures
def _placeholder(path: Path, text: str) -> Path:
    from .plots import figure, save_figure

    fig, ax = figure(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    ax.set_axis_off()
    return save_figure(fig, path, dpi=_DPI)


def _plot_fig7(panels: dict, metrics: dict, row: int, path: Path, *, level: int, predicted: int) -> Path:
    """The paper's Fig. 7: (a)-(e) the patches with PSNR (65535) and SSIM (in-focus range) in the titles, (f) the
    intensity profile along one row."""
    from .plots import figure, save_figure

    titles = {"in_focus": "(a) in focus", "defocused": f"(b) defocused (level {level})", "noisy": "(c) noisy defocused",
              "variant": f"(d) depth-variant RL\n(predicted level {'bg' if predicted < 0 else predicted})",
              "invariant": "(e) depth-invariant RL\n(level-0 PSF)"}
    truth = panels["in_focus"]
    lo, hi = np.percentile(np.concatenate([p.ravel() for p in panels.values()]), [0.5, 99.8])
    fig, axes = figure(2, 5, figsize=(14, 6.6), gridspec_kw={"height_ratios": [1.15, 1]})
    for ax, (name, image) in zip(axes[0], panels.items()):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        m = metrics[name]
        psnr_text = "inf" if not math.isfinite(m["psnr_65535"]) else f"{m['psnr_65535']:.1f}"
        ax.set_title(f"{titles[name]}\nPSNR {psnr_text} dB, SSIM {m['ssim_truth_range']:.2f}", fontsize=9)
        ax.set_axis_off()
    axes[0][0].annotate("", xy=(truth.shape[1] - 1, row), xytext=(0, row),
                        arrowprops={"arrowstyle": "->", "color": "red", "lw": 1.2})
    grid = axes[1][0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    profile = fig.add_subplot(grid[1, :])
    colours = {"in_focus": "black", "defocused": "tab:grey", "noisy": "tab:purple", "variant": "tab:blue",
               "invariant": "tab:red"}
    for name, image in panels.items():
        profile.plot(np.asarray(image)[row], color=colours[name], label=titles[name].split("\n")[0], lw=1.2)
    profile.set(xlabel="x (px) along the red arrow", ylabel="intensity (ADU)",
                title="(f) profile; PSNR at data range 65535 (the paper's), SSIM at the in-focus patch's max - min")
    profile.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    profile.grid(alpha=0.3)
    return save_figure(fig, path, dpi=_DPI)


def _plot_fig9(images: dict, by_name: dict, path: Path) -> list[int]:
    """The paper's Fig. 9: observed, case (i), case (ii) (model levels; true levels where there is no model) and
    the truth, whole and zoomed into a box that straddles case (i)'s window boundaries."""
    from matplotlib.patches import Rectangle

    from .plots import figure, save_figure

    source = "model" if "case_i_model" in by_name else "true"
    names = [("observed", "(a) observed (tilted specimen)"), (f"case_i_{source}", "(b) case (i): stride 84, rectangular"),
             (f"case_ii_{source}", "(c) case (ii): stride 42, triangular"), ("truth", "in-focus truth")]
    truth = images["truth"]
    height, width = truth.shape
    side = min(168, height, width)
    # a box in the deep (right) half whose middle holds a window corner at (168, 84 k)
    y0 = int(np.clip(168 - side // 2, 0, height - side))
    x0 = int(np.clip(84 * round(0.7 * width / 84) - side // 2, 0, width - side))
    lo, hi = np.percentile(truth, [0.5, 99.8])
    fig, axes = figure(2, len(names), figsize=(3.6 * len(names), 2.8 * (height / width + 1.0) + 1.3),
                       gridspec_kw={"height_ratios": [height / width, 1.0]})
    for column, (name, title) in enumerate(names):
        image = images[name]
        r = by_name.get(name)
        label = title if r is None else (f"{title}\nPSNR {r['psnr_truth_range']:.2f} dB, SSIM {r['ssim_truth_range']:.3f},"
                                         f" seam {r['seam_ratio_error']:.2f}")
        axes[0, column].imshow(image, cmap="gray", vmin=lo, vmax=hi)
        axes[0, column].add_patch(Rectangle((x0, y0), side, side, fill=False, edgecolor="red", ls="--", lw=1))
        axes[0, column].set_title(label, fontsize=8)
        axes[1, column].imshow(image[y0 : y0 + side, x0 : x0 + side], cmap="gray", vmin=lo, vmax=hi,
                               interpolation="nearest")
        axes[1, column].set_title(f"({'def'[column]}) zoom" if column < 3 else "zoom", fontsize=8)
        for ax in axes[:, column]:
            ax.set_axis_off()
    fig.suptitle(f"levels from {'the main DelpNet' if source == 'model' else 'the truth'}; seam = gradient energy "
                 "across case (i) window boundaries over elsewhere, on the error image (1 = no seams)", fontsize=9)
    save_figure(fig, path, dpi=_DPI)
    return [y0, x0, side, side]


# --------------------------------------------------------------------------------------------- the report
def _banner(scale: dict) -> str:
    name = scale["name"]
    if name == "smoke":
        return ("> **SMOKE SCALE: every number below is meaningless.** This run only shows that every table and "
                "figure is produced end to end, from a tiny dataset and networks trained for a couple of epochs. "
                "Run `awdvd reproduce --scale cpu` or `--scale full` for numbers worth reading.")
    if name == "cpu":
        return ("> **Reduced scale (cpu):** the networks are trained for a few epochs on a few thousand patches, far "
                "from the paper's 1000 epochs; the numbers show trends at best. `--scale full` (GPU) is the paper's "
                "setting as far as our data allow.")
    if name == "full":
        return ("> **Full scale:** every network trained with the fast recipe for its full number of epochs, on all "
                "patches that our source images give. The remaining differences from the paper are listed below.")
    return f"> **Custom scale `{name}`:** see its settings below; judge the numbers by them."


def _report_markdown(r: dict) -> str:
    items, scale, models = r["items"], r["scale"], r["models"]
    git = r["git"]
    commit = "not a git checkout" if not git.get("commit") else \
        f"{git['commit'][:12]}{' (with uncommitted changes)' if git.get('dirty') else ''}"
    main = r["main_model"]
    main_run = models["main"]
    main_text = ("trained here: " if main["source"] == "trained here" else f"loaded from {main['source']}: ") + \
        f"{main_run['epochs']} epochs, {main_run['n_train']} training patches, {_params(main_run['parameters'])} params"
    dataset = r["dataset"]
    out = [
        "# awdvd reproduction of He et al. 2019, section 3 (results)",
        "",
        _banner(scale),
        "",
        _table(["", ""], [
            ["date", r["created"]],
            ["awdvd", f"{r['awdvd_version']}, git {commit}"],
            ["device", f"{r['device']} ({r['device_name']}), torch {r['torch_version']}"],
            ["scale", f"`{scale['name']}`: {scale['crops_per_image']} crops/image x {scale['realizations']} "
                      f"realizations; epochs main {scale['main_epochs']} / ablations {scale['ablation_epochs']} / "
                      f"architectures {scale['architecture_epochs']}; recipe `{scale['recipe']}`; comparison runs on "
                      f"<= {scale['comparison_train_patches'] or 'all'} train / <= {scale['comparison_val_patches'] or 'all'}"
                      f" val patches; Fig. 8 {scale['per_level']} patches/level; Fig. 9 strides "
                      f"{', '.join(map(str, scale['strides']))}; RL {scale['iterations']} iterations"
                      + (f"; network_args {scale['network_args']}" if scale["network_args"] else "")],
            ["data", r["data"]["description"] + (" **(procedural fallback: no real data)**"
                                                 if r["data"]["kind"] == "procedural" else "")],
            ["dataset", f"{dataset['n_patches']['train']} train / {dataset['n_patches']['val']} val / "
                        f"{dataset['n_patches']['test']} test patches of 84 x 84, 11 levels + bg (split by synthetic "
                        f"image 0.75 / 0.15 / 0.10, PSF {dataset['psf_size']} px, seed {scale['seed']})"],
            ["main DelpNet", main_text],
            ["wall time", f"{r['wall_seconds']:.0f} s in all"],
        ]),
        "",
        "Every number below was computed by this run from awdvd's own code; the paper's numbers are from its text "
        "(He et al. 2019, section 3). `results.json` beside this file holds every number (and more: per-class "
        "scores, curves, per-level values).",
        "",
    ]
    if main.get("test_is_held_out") is None:
        out += [f"> **Caution:** the main model was trained on other data (sources: {main.get('trained_on')}). If "
                "those included these source images, its test numbers here may count patches of images it was "
                "trained on.", ""]
    out += _differences(r)

    # Table 1
    t1 = items["table1"]["rows"]
    rows = []
    for key, label in (("no-bg", "Without \"bg\""), ("delpnet", "With \"bg\""), ("main", "With \"bg\", main DelpNet")):
        row = t1[key]
        rows.append([label, "paper"] + [_pct(row["paper"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + ["381 source images, 1000 epochs (Keras, Adam 6e-5), Titan Xp"])
        rows.append([label, "awdvd"] + [_pct(row["awdvd"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + [row["conditions"]])
    out += ["## Table 1. With and without the \"bg\" class", "",
            "Macro precision / recall / F1 over the classes. The first two awdvd rows are trained under one budget "
            "(only the bg class differs); the third is the main DelpNet (its own budget).", "",
            _table(["Setting", "", "Accuracy", "Precision", "Recall", "F1", "Conditions"], rows),
            "", f"_Item wall time: {items['table1']['seconds']:.1f} s (plus the trainings listed)._", ""]

    # Table 2
    t2 = items["table2"]["rows"]
    rows = []
    for key in ("vgg16", "inception_v3", "resnet18", "mobilenet_v2", "delpnet"):
        row = t2[key]
        trained = "" if row["params_trained"] == row["params_published"] else \
            f" (trained here: {_params(row['params_trained'])})"
        rows.append([_LABELS[key], "paper", f"{row['paper']['params'] / 1e6:.1f} M"]
                    + [_pct(row["paper"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + ["381 source images, Keras, retrained by the authors"])
        rows.append([_LABELS[key], "awdvd", f"{row['params_published'] / 1e6:.1f} M{trained}"]
                    + [_pct(row["awdvd"][m]) for m in ("accuracy", "precision", "recall", "f1")]
                    + [row["conditions"]])
    out += ["## Table 2. DelpNet and four architectures", "",
            "All awdvd rows trained under one budget. Parameters: PyTorch's trainable parameters of the published "
            "network (84 x 84 input, 12 outputs); the paper's are Keras counts, which include BatchNorm moving "
            "statistics.", "",
            _table(["Net", "", "# params", "Accuracy", "Precision", "Recall", "F1", "Conditions"], rows),
            "", f"_Item wall time: {items['table2']['seconds']:.1f} s (plus the trainings listed)._", ""]

    # Fig. 3
    f3 = items["fig3"]
    a = f3["awdvd"]
    out += ["## Fig. 3. Confusion matrix of the main DelpNet", "", f"![Fig. 3]({f3['figure']})", "",
            _table(["", "Accuracy", "Precision", "Recall", "F1", "Errors next to the true level", "Conditions"], [
                ["paper", _pct(0.982), "> 98%", "> 98%", "> 98%", "\"mostly\"", "381 source images, 1000 epochs"],
                ["awdvd", _pct(a["accuracy"]), _pct(a["precision"]), _pct(a["recall"]), _pct(a["f1"]),
                 (f"{a['errors_adjacent_level']} of {a['errors']} ({_pct(a['errors_adjacent_fraction'])}); within "
                  f"+/-1 level: {_pct(a['within_one_level'])}, mean abs level error "
                  f"{_num(a['mean_abs_level_error'])}"), f3["conditions"]]]),
            "", f"_Item wall time: {f3['seconds']:.1f} s._", ""]

    # Fig. 4
    f4 = items["fig4"]
    rows = []
    for key in ("0.60", "0.99"):
        o = f4["awdvd"][key]
        rows.append([key, "paper", "steady" if key == "0.60" else "severe oscillation", "", "", "", ""])
        rows.append([key, "awdvd", f"{o['increases']} rises in {max(0, len(o['val_loss']) - 1)} epoch steps",
                     _num(o["relative_mean_abs_change"], 3), _num(o["min_val_loss"], 3), _num(o["final_val_loss"], 3),
                     f4["conditions"][key]])
    out += ["## Fig. 4. Validation loss, BatchNorm momentum (Keras) 0.60 vs 0.99", "", f"![Fig. 4]({f4['figure']})",
            "", "Oscillation measure: mean |change of validation loss between epochs| / mean validation loss. The "
                "training curves of the two runs coincide by construction: BatchNorm's momentum only sets the running "
                "averages that evaluation uses, so it changes the validation curves alone.", "",
            _table(["Momentum", "", "Validation loss", "Oscillation", "Min val loss", "Final val loss", "Conditions"],
                   rows),
            "", f"_Item wall time: {f4['seconds']:.1f} s (plus the trainings listed)._", ""]

    # Fig. 5 and 6
    for key, label, title in (("fig5", "Fig. 5", "Top-k curves of the strategies (DelpNet, without bg, plain)"),
                              ("fig6", "Fig. 6", "Top-k curves of DelpNet and four architectures")):
        f = items[key]
        rows = []
        for name, values in f["awdvd"].items():
            paper = f["paper"]["top1"].get(name)
            rows.append([_LABELS[name], "paper", _pct(paper) if paper is not None else "plotted only", "plotted only",
                         len(values["cmc"]), ""])
            rows.append([_LABELS[name], "awdvd", _pct(values["top1"]), _pct(values["top3"]), len(values["cmc"]),
                         f["conditions"][name]])
        out += [f"## {label}. {title}", "", f"![{label}]({f['figure']})", "",
                _table(["Model", "", "Top-1", "Top-3", "k up to", "Conditions"], rows),
                "", f"_Item wall time: {f['seconds']:.1f} s (plus the trainings listed)._", ""]

    # Fig. 7
    f7 = items["fig7"]
    m = f7["awdvd"]["metrics"]
    paper7 = PAPER["fig7"]
    rows = []
    for name, label in (("defocused", "(b) defocused"), ("noisy", "(c) noisy defocused"),
                        ("variant", "(d) depth-variant RL"), ("invariant", "(e) depth-invariant RL")):
        rows.append([label, _num(paper7["psnr_db"].get(name), 1), _num(m[name]["psnr_65535"], 1),
                     _num(paper7["ssim"].get(name), 2), _num(m[name]["ssim_truth_range"], 2),
                     _num(m[name]["ssim_65535"], 4), _num(m[name]["psnr_truth_range"], 1)])
    out += ["## Fig. 7. One test patch: in focus, defocused, depth-variant and depth-invariant RL", "",
            f"![Fig. 7]({f7['figure']})", "",
            f"Patch of {f7['awdvd']['source']} at (y, x) = {tuple(f7['awdvd']['yx'])}, true level "
            f"{f7['awdvd']['true_level']}, predicted {f7['awdvd']['predicted_level']} by the main DelpNet (the paper: "
            f"predicted level 4); RL {f7['awdvd']['iterations']} iterations, camera offset "
            f"{f7['awdvd']['offset_adu']:g} ADU removed. Reference: the in-focus patch (a).", "",
            _table(["Image", "PSNR paper (dB)", "PSNR awdvd (dB, range 65535)", "SSIM paper",
                    "SSIM awdvd (in-focus range)", "SSIM awdvd (range 65535)", "PSNR awdvd (in-focus range)"], rows),
            "", f"_Item wall time: {f7['seconds']:.1f} s; device {r['device']}._", ""]

    # Fig. 8
    f8 = items["fig8"]
    s = f8["awdvd"]["summary"]
    p8 = PAPER["fig8"]

    def span(values, digits=1, unit=""):
        return "n/a" if not values else f"{values[0]:.{digits}f} to {values[1]:.{digits}f}{unit}"

    rows = [
        ["PSNR gain over noisy, depth-variant (predicted level)", span(p8["psnr_gain_variant_db"], 1, " dB"),
         span(s["variant_predicted"]["psnr_gain_db"], 2, " dB")],
        ["PSNR gain over noisy, depth-variant (true level)", "-", span(s["variant_true"]["psnr_gain_db"], 2, " dB")],
        ["PSNR gain over noisy, depth-invariant (level-0 PSF)", span(p8["psnr_gain_invariant_db"], 1, " dB"),
         span(s["invariant"]["psnr_gain_db"], 2, " dB")],
        ["SSIM, depth-variant (predicted level)", span(p8["ssim_variant"], 2), span(s["variant_predicted"]["ssim_truth_range"], 2)],
        ["SSIM, noisy defocused", "-", span(s["noisy"]["ssim_truth_range"], 2)],
        ["SSIM ratio - 1, depth-variant (predicted) over noisy", span(p8["ssim_ratio_gain_percent"], 0, "%"),
         span(s["variant_predicted"]["ssim_ratio_gain_percent"], 1, "%")],
        ["SSIM ratio - 1, depth-variant (true level) over noisy", "-",
         span(s["variant_true"]["ssim_ratio_gain_percent"], 1, "%")],
    ]
    per_level = [[lv["level"], lv["n"], _num(lv["psnr_gain_db"].get("variant_predicted")),
                  _num(lv["psnr_gain_db"].get("variant_true")), _num(lv["psnr_gain_db"].get("invariant")),
                  _num(lv["ssim_truth_range"].get("noisy"), 3), _num(lv["ssim_truth_range"].get("variant_predicted"), 3),
                  _num(lv["ssim_truth_range"].get("invariant"), 3)] for lv in f8["awdvd"]["per_level"]]
    n_levels = len(f8["awdvd"]["per_level"])
    out += ["## Fig. 8. PSNR and SSIM per defocus level", "", f"![Fig. 8]({f8['figure']})", "",
            f"Up to {scale['per_level']} non-background test patches per level (the paper: about 45), each deconvolved "
            f"on its own ({scale['iterations']} RL iterations, camera offset removed); {n_levels} of 11 levels have "
            "test patches. Ranges are over levels (min to max of the per-level means); PSNR gains at data range 65535 "
            "(any range gives the same gain), SSIM at each in-focus patch's max - min. Level 0's noisy patch is the "
            "in-focus image itself, so its gain is undefined (n/a).", "",
            _table(["Quantity", "paper", "awdvd"], rows), "",
            _table(["Level", "n", "gain variant pred. (dB)", "gain variant true (dB)", "gain invariant (dB)",
                    "SSIM noisy", "SSIM variant pred.", "SSIM invariant"], per_level),
            "", f"_Conditions: main DelpNet ({main_text}); {r['data']['description']}; device {r['device']}. Item wall "
                f"time: {f8['seconds']:.1f} s._", ""]

    # Fig. 9
    f9 = items["fig9"]
    rows = []
    for result in f9["awdvd"]["results"]:
        rows.append([result["name"], result.get("levels", "-"), result.get("stride", "-"), result.get("weighting", "-"),
                     _num(result["psnr_truth_range"]), _num(result["ssim_truth_range"], 3),
                     _num(result["seam_ratio_error"]), _num(result["seconds"] + result.get("map_seconds", 0), 1)])
    shape = f9["awdvd"]["settings"]["shape"]
    by_name = {x["name"]: x for x in f9["awdvd"]["results"]}
    source = "model" if "case_i_model" in by_name else "true"
    out += ["## Fig. 9. Whole image: case (i) vs case (ii) (AWDVD)", "", f"![Fig. 9]({f9['figure']})", "",
            f"A synthetic specimen tilted along x (levels 0 to 10 from left to right) made from "
            f"{f9['awdvd']['source']} ({shape[0]} x {shape[1]} px), with known truth; the paper shows a real image "
            "without truth. Rows: restorations with the main DelpNet's window levels (`_model`) and with the true "
            "levels (`_true`). Seam ratio: gradient energy of the error image across case (i)'s window boundaries over "
            "that elsewhere (1 = no seams).", "",
            _table(["", "paper", "awdvd"], [
                ["case (i), stride 84, rectangular", "patch boundary artifacts",
                 f"seam ratio {_num(by_name[f'case_i_{source}']['seam_ratio_error'])}, PSNR "
                 f"{_num(by_name[f'case_i_{source}']['psnr_truth_range'])} dB"],
                ["case (ii), stride 42, triangular", "artifacts gone, smoother",
                 f"seam ratio {_num(by_name[f'case_ii_{source}']['seam_ratio_error'])}, PSNR "
                 f"{_num(by_name[f'case_ii_{source}']['psnr_truth_range'])} dB"]]), "",
            _table(["Restoration", "Levels", "Stride", "Weights", "PSNR (dB, truth range)", "SSIM", "Seam ratio",
                    "Seconds"], rows),
            "", f"_Conditions: main DelpNet ({main_text}); RL {scale['iterations']} iterations, camera offset removed; "
                f"device {r['device']}. Item wall time: {f9['seconds']:.1f} s._", ""]

    # the trainings
    rows = [[key, _LABELS.get(m["variant"], m["variant"]), m["source"] if m["source"] != "trained here" else "here",
             m["recipe"].get("name", "?") + ("" if m["recipe"].get("bn_recalibration", 1) else " (no BN recal.)"),
             m["epochs"], m["best_epoch"], m["n_train"], m["n_val"], _params(m["parameters"]),
             _seconds(m["train_seconds"]), _pct(m["test"]["accuracy"]) if m["test"] else "n/a"]
            for key, m in models.items()]
    out += ["## Every model of this run", "",
            _table(["Run", "Variant", "Trained", "Recipe", "Epochs", "Best epoch", "Train patches", "Val patches",
                    "Params", "Train time", "Test accuracy"], rows), ""]
    return "\n".join(out) + "\n"


def _differences(r: dict) -> list[str]:
    data = r["data"]
    lines = ["## Where this run differs from the paper", ""]
    lines.append(f"- **Data:** {data['n_images']} source images instead of the paper's {_PAPER_SOURCES}; "
                 f"{r['scale']['realizations']} noise realizations per (image, level) make up part of the difference in "
                 "patch count, not in variety. Levels of one source image can sit in different splits, as in the paper.")
    if data["kind"] == "procedural":
        lines.append("- **No real images:** the source images are procedural nuclei (`awdvd.synth.synthetic_nuclei`), "
                     "because no in-focus images were given or found beside the repository.")
    lines += [
        "- **Training:** PyTorch instead of Keras; the scale's recipe (`fast`: AdamW, one-cycle, dihedral "
        "augmentation) for the given number of epochs instead of the paper's Adam 6e-5 for 1000 epochs. The "
        "comparison runs skip the recipe's BatchNorm recalibration so that BatchNorm works as in Keras.",
        "- **Fig. 7-8:** Richardson-Lucy with the camera offset removed first; SSIM also at the in-focus patch's data "
        "range, since at 65535 it is about 1 for 12-bit data (the paper does not say which range it used).",
        "- **Fig. 9:** a synthetic tilted specimen with known truth instead of a real image, so that seams and PSNR "
        "can be measured.",
        "",
    ]
    return lines
