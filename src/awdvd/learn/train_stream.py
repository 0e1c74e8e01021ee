"""Training a defocus classifier on the endless stream (:class:`awdvd.data.training_stream.TrainingStream`).

The recipe is measured in optimiser steps, not epochs (there are no epochs: every batch is new). A fixed
validation set is drawn once from a separate stream over the same sources plus held-out procedural fields, and
the weights with the best validation accuracy are kept. The run checkpoints every ``val_every`` steps and
resumes from there (the stream's generator state is saved with it).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._config import FrozenConfig
from ..data.datasets import load_in_focus_images
from ..data.patches import BACKGROUND
from ..data.synth import synthetic_nuclei
from ..data.training_sources import object_scale_copies, sources_on_model_grid
from ..data.training_stream import CameraRange, TrainingStream
from ..io import atomic_path, write_csv, write_json
from ..physics.optics import Optics
from ..plots import stream_curves
from .model import DefocusModel, build_network, network_config
from .model_files import load_model
from .train import extend_head, initialise_from
from .train_files import check_outputs, output_paths

__all__ = ["StreamRecipe", "STREAM_RECIPES", "LEAN_DELPNET", "train_from_stream", "train_stream_to_file",
           "procedural_sources", "ordinal_distances", "STREAM_CURVE_COLUMNS"]

STREAM_CURVE_COLUMNS = ("step", "lr", "train_loss", "val_accuracy", "val_within1", "seconds", "cpu_seconds")

CHECKPOINT_FORMAT = "awdvd-stream-checkpoint"

#: DelpNet-lean: 7 conv blocks (3 x 3, BatchNorm, ReLU) as the paper's, narrow where the maps are large,
#: pooled after blocks 1, 3 and 4, and without padding ("valid"), so a window's features depend only on its own
#: pixels: a whole-image (dense) pass gives every window's prediction exactly (see awdvd.restore.defocus_maps). 0.82 M
#: parameters and 32 M multiply-adds per 84 x 84 window, against the paper-shaped DelpNet's 2.3 M and 288 M.
LEAN_DELPNET = {"widths": (16, 24, 32, 96, 128, 192, 256), "pool_at": (0, 2, 3), "padding": 0, "dropout": 0.0,
                "head_dropout": 0.1, "bn_momentum": 0.1}


@dataclass(frozen=True)
class StreamRecipe(FrozenConfig):
    """How a network is trained on the stream.

    steps : optimiser steps; batch_size : windows per step; lr : peak learning rate (AdamW; linear warm-up over
    ``warmup_fraction`` of the steps, then cosine to lr / 1000); weight_decay : on conv and dense weights.
    loss : "ce" (cross-entropy) or "ordinal" (cross-entropy + ``ordinal_weight`` x the expected distance
    between predicted and true class: |level difference|, ``bg_distance`` between a level and bg).
    network : DelpNet config fields (default :data:`LEAN_DELPNET`).
    procedural : procedural nuclei fields mixed with the real sources; real_weight : probability that a window
    comes from a real source. procedural_scale : (low, high) range of a log-uniform factor on each procedural
    field's nucleus diameters (the object scales other objectives record on the model's grid).
    object_scale_copies : copies of each real source downsampled by a log-uniform factor in ``object_scale``
    (:func:`awdvd.data.training_sources.object_scale_copies`), sharing the real sources' weight. cameras : the randomized camera. bg_sigmas : background rule threshold.
    val_every : steps between validations (and checkpoints); val_windows : size of the fixed validation set.
    """

    name: str = "stream"
    steps: int = 5000
    batch_size: int = 128
    lr: float = 3e-3
    warmup_fraction: float = 0.05
    weight_decay: float = 0.02
    loss: str = "ce"
    ordinal_weight: float = 0.5
    bg_distance: float = 3.0
    network: dict = field(default_factory=lambda: dict(LEAN_DELPNET))
    procedural: int = 16
    real_weight: float = 0.6
    procedural_scale: tuple = (1.0, 1.0)
    object_scale_copies: int = 0
    object_scale: tuple = (0.55, 1.0)
    cameras: CameraRange = field(default_factory=CameraRange)
    bg_sigmas: float = 4.0
    val_every: int = 250
    val_windows: int = 3072

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "val_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"StreamRecipe.{name} must be a positive integer, got {value!r}")
        if isinstance(self.procedural, bool) or not isinstance(self.procedural, int) or self.procedural < 0:
            raise ValueError(f"StreamRecipe.procedural must be an integer >= 0, got {self.procedural!r}")
        if self.loss not in ("ce", "ordinal"):
            raise ValueError(f"StreamRecipe.loss must be 'ce' or 'ordinal', got {self.loss!r}")
        for name, low, high in (("lr", 0, 10), ("warmup_fraction", 0, 1), ("weight_decay", 0, 10),
                                ("ordinal_weight", 0, 100), ("bg_distance", 0, 100), ("real_weight", 0, 1),
                                ("bg_sigmas", 0, 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"StreamRecipe.{name} must be in [{low}, {high}], got {value!r}")
        for name, (low, high) in (("procedural_scale", (0.1, 10.0)), ("object_scale", (0.05, 1.0))):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or not low <= value[0] <= value[1] <= high:
                raise ValueError(f"StreamRecipe.{name} must be (low, high) within [{low}, {high}], got {value!r}")
            object.__setattr__(self, name, value)
        if isinstance(self.object_scale_copies, bool) or not isinstance(self.object_scale_copies, int) \
                or self.object_scale_copies < 0:
            raise ValueError(f"StreamRecipe.object_scale_copies must be an integer >= 0, got {self.object_scale_copies!r}")
        if isinstance(self.cameras, dict):
            object.__setattr__(self, "cameras", CameraRange.from_dict(self.cameras))
        object.__setattr__(self, "network", {k: tuple(v) if isinstance(v, list) else v for k, v in
                                             dict(self.network).items()})

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["network"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.network.items()}
        return d


#: "stream": the bundled model's recipe; "smoke": a few small steps, to try the pipeline (and for tests).
STREAM_RECIPES = {"stream": StreamRecipe(),
                  "smoke": StreamRecipe(name="smoke", steps=6, batch_size=32, procedural=1, val_every=3, val_windows=64)}


def procedural_sources(n: int, *, seed=1, shape: tuple[int, int] = (520, 696),
                       scale: tuple[float, float] = (1.0, 1.0)) -> list[np.ndarray]:
    """``n`` procedural in-focus fields of nuclei (:func:`awdvd.data.synth.synthetic_nuclei`) with field-to-field
    variety: density 0.3-2.5 x BBBC006's, nucleus diameters from 9-16 px up to 1.5-2.2 x that, brightness
    200-600 ADU up to 2-5 x that, background 100-140 ADU (raw units of a camera with offset 96). ``scale``: a
    further log-uniform factor per field on the diameters (the density falls with its square); (1, 1) draws
    nothing, so the fields are those of earlier versions."""

    fields = []
    for index in range(n):
        rng = np.random.default_rng([int(seed) if not isinstance(seed, (list, tuple)) else 0, *np.atleast_1d(seed), index])
        density = rng.uniform(0.3, 2.5)
        count = int(round(shape[0] * shape[1] / 4000 * density))
        low = rng.uniform(200, 600)
        small = rng.uniform(9, 16)
        if scale != (1.0, 1.0):
            factor = float(np.exp(rng.uniform(math.log(scale[0]), math.log(scale[1]))))
            small, count = small * factor, max(1, int(round(count / factor**2)))
        fields.append(synthetic_nuclei(shape, n_nuclei=count, diameter_px=(small, small * rng.uniform(1.5, 2.2)),
                                       background_adu=rng.uniform(100, 140), brightness_adu=(low, low * rng.uniform(2, 5)),
                                       seed=rng))
    return fields


def ordinal_distances(class_levels: Sequence[int], *, bg_distance: float = 3.0):
    """(C, C) torch tensor: |level_i - level_j| between level classes, ``bg_distance`` between a level and bg."""
    import torch

    levels = np.asarray(class_levels)
    d = np.abs(levels[:, None] - levels[None, :]).astype(np.float32)
    bg = levels == BACKGROUND
    d[bg[:, None] ^ bg[None, :]] = bg_distance
    d[bg[:, None] & bg[None, :]] = 0.0
    return torch.from_numpy(d)


def _lr(recipe: StreamRecipe, step: int) -> float:
    warmup = int(round(recipe.warmup_fraction * recipe.steps))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, recipe.steps - warmup)
    return recipe.lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train_from_stream(
    sources: Sequence[np.ndarray],
    *,
    source_names: Sequence[str] | None = None,
    optics: Optics | None = None,
    recipe: StreamRecipe | None = None,
    seed: int = 0,
    threads: int | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    patch_px: int = 84,
    source_offset_adu: float = 96.0,
    source_gain_adu_per_e: float = 0.33,
    init=None,
    source_optics: Sequence[Optics | None] | None = None,
    source_weights: Sequence[float] | None = None,
):
    """Train DelpNet (``recipe.network``) on a :class:`TrainingStream` of ``sources`` (+ procedural fields).

    Parameters
    ----------
    sources : in-focus images (raw ADU, camera offset 96 like BBBC006's), each >= patch_px on a side.
    source_names : recorded in the model (default source_0, ...).
    recipe : :class:`StreamRecipe` (default ``STREAM_RECIPES["stream"]``).
    seed : the network's initial weights, the stream and the validation set.
    threads : torch threads (None: leave torch's setting).
    checkpoint_path, resume : checkpoint every ``val_every`` steps; continue from it.
    progress : called with each validation's history entry.
    source_offset_adu, source_gain_adu_per_e : the camera of ``sources`` (:class:`~awdvd.data.training_stream.TrainingStream`).
    init : a stream-trained :class:`~awdvd.learn.model.DefocusModel` (same network, optics, classes and window size)
        whose weights replace the random initial ones: to train it on, e.g. for more steps at a lower ``lr``,
        or with more sources. A model of the same optics with fewer levels extends its range: its weights, with
        each new level's output starting as its deepest level's (:func:`extend_head`). Recorded in the model (``info["training"]["initialised_from"]``). Give another
        ``seed`` than its run's for fresh batches.
    source_optics : the optics each source was recorded with (None: the model's): every source is resampled to
        the model's grid (:func:`awdvd.data.training_sources.sources_on_model_grid`) and recorded as such.
    source_weights : relative probability of drawing each source (and its object-scale copies) among the real
        windows (default: equal), e.g. to give a few fields of one screen the weight of many of another.

    Returns
    -------
    (model, history): a :class:`~awdvd.learn.model.DefocusModel` with the best validation weights (its
    ``normalization`` is the image range of :func:`awdvd.data.training_stream.image_range`) and the list of validations.
    """
    import torch
    import torch.nn.functional as F

    recipe = STREAM_RECIPES["stream"] if recipe is None else recipe
    optics = Optics() if optics is None else optics
    sources = list(sources)
    names = [f"source_{i}" for i in range(len(sources))] if source_names is None else list(source_names)
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} source names for {len(sources)} sources")
    if threads is not None:
        torch.set_num_threads(int(threads))
    if source_optics is not None:
        sources = sources_on_model_grid(sources, source_optics, optics, min_px=patch_px)
    originals = sources
    if recipe.object_scale_copies:
        copies, _ = object_scale_copies(sources, recipe.object_scale, copies=recipe.object_scale_copies,
                                        seed=[seed, 5], min_px=patch_px)
        sources = sources + copies
    procedural = procedural_sources(recipe.procedural, seed=[seed, 1], scale=recipe.procedural_scale)
    n_real = len(sources)
    if source_weights is None:
        weights = [recipe.real_weight / max(1, n_real)] * n_real
    else:  # one weight per given source, shared with its object-scale copies (in the order object_scale_copies makes)
        given = np.asarray(source_weights, dtype=np.float64)
        if given.shape != (len(originals),) or np.any(given < 0) or not given.sum() > 0:
            raise ValueError(f"source_weights must be {len(originals)} non-negative weights, not all zero")
        per_source = np.concatenate([given, np.repeat(given, recipe.object_scale_copies)])
        weights = list(recipe.real_weight * per_source / per_source.sum())
    weights += [(1 - recipe.real_weight if n_real else 1.0) / max(1, recipe.procedural)] * recipe.procedural
    camera = {"source_offset_adu": source_offset_adu, "source_gain_adu_per_e": source_gain_adu_per_e}
    stream = TrainingStream(sources + procedural, optics=optics, cameras=recipe.cameras, patch_px=patch_px,
                            source_weights=weights, bg_sigmas=recipe.bg_sigmas, seed=[seed, 2],
                            batch_size=recipe.batch_size, **camera)
    val_stream = TrainingStream(originals + procedural_sources(4, seed=[seed, 3], scale=recipe.procedural_scale),
                                optics=optics,
                                cameras=recipe.cameras, patch_px=patch_px, bg_sigmas=recipe.bg_sigmas,
                                seed=[seed, 4], **camera)
    xv, yv = val_stream.batch(recipe.val_windows)
    del val_stream

    class_levels = list(range(optics.n_levels)) + [BACKGROUND]
    index_of = {level: i for i, level in enumerate(class_levels)}
    to_index = np.vectorize(index_of.__getitem__, otypes=[np.int64])
    config = network_config("delpnet", {**recipe.network, "n_classes": len(class_levels)})
    torch.manual_seed(seed)
    network = build_network("delpnet", config)
    init_info = None if init is None else _initialise(network, init, config, class_levels, optics, patch_px)
    network = network.to(memory_format=torch.channels_last)
    decay = [p for p in network.parameters() if p.ndim > 1]
    no_decay = [p for p in network.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr)
    distances = ordinal_distances(class_levels, bg_distance=recipe.bg_distance)
    x_val = torch.from_numpy(xv).contiguous(memory_format=torch.channels_last)
    y_val = torch.from_numpy(to_index(yv))

    identity = {"recipe": recipe.to_dict(), "seed": seed, "sources": names, "optics": optics.to_dict(), **camera,
                "init": None if init_info is None else init_info["weights_fingerprint"],
                "source_optics": None if source_optics is None else
                [None if o is None else o.to_dict() for o in source_optics]}
    history: list[dict] = []
    best = {"accuracy": -1.0, "state": None, "step": 0}
    step, elapsed = 0, 0.0
    if resume:
        state = _load_checkpoint(Path(checkpoint_path), identity)
        network.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        stream.rng.bit_generator.state = state["stream_rng"]
        torch.set_rng_state(state["torch_rng"])
        history, step, elapsed = list(state["history"]), int(state["step"]), float(state["elapsed_s"])
        best = {"accuracy": float(state["best_accuracy"]), "state": state["best_state_dict"],
                "step": int(state["best_step"])}

    def validate() -> tuple[float, float]:
        network.eval()
        with torch.inference_mode():
            predicted = torch.cat([network(x_val[i : i + 512]).argmax(1) for i in range(0, len(x_val), 512)])
        network.train()
        accuracy = float((predicted == y_val).float().mean())
        pred_levels = np.asarray(class_levels)[predicted.numpy()]
        called = (pred_levels != BACKGROUND) & (yv != BACKGROUND)
        within = float(np.mean(np.where(called, np.abs(pred_levels - yv) <= 1, pred_levels == yv)))
        return accuracy, within

    network.train()
    started = time.perf_counter() - elapsed
    cpu_started = time.process_time() - (history[-1].get("cpu_seconds", 0.0) if history else 0.0)
    loss_sum, seen = 0.0, 0
    while step < recipe.steps:
        x, labels = stream.batch(recipe.batch_size)
        for group in optimizer.param_groups:
            group["lr"] = _lr(recipe, step)
        logits = network(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        target = torch.from_numpy(to_index(labels))
        loss = F.cross_entropy(logits, target)
        if recipe.loss == "ordinal":
            loss = loss + recipe.ordinal_weight * (logits.softmax(1) * distances[target]).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        loss_sum, seen = loss_sum + loss.item(), seen + 1
        if step % recipe.val_every == 0 or step == recipe.steps:
            accuracy, within = validate()
            entry = {"step": step, "train_loss": loss_sum / seen, "val_accuracy": accuracy, "val_within1": within,
                     "lr": _lr(recipe, step - 1), "seconds": round(time.perf_counter() - started, 1),
                     "cpu_seconds": round(time.process_time() - cpu_started, 1)}
            loss_sum, seen = 0.0, 0
            history.append(entry)
            if accuracy > best["accuracy"]:
                best = {"accuracy": accuracy, "state": copy.deepcopy(network.state_dict()), "step": step}
            if checkpoint_path is not None:
                _save_checkpoint(Path(checkpoint_path), identity, network, optimizer, stream, step, history, best,
                                 entry["seconds"])
            if progress is not None:
                progress(entry)

    network.load_state_dict(best["state"])
    network = network.to(memory_format=torch.contiguous_format).eval()
    info = {"recipe": recipe.to_dict(), "seed": seed,
            "training": {"kind": "stream", "steps": step, "best_step": best["step"],
                         "best_val_accuracy": best["accuracy"], "seconds": history[-1]["seconds"] if history else 0,
                         "cpu_seconds": history[-1]["cpu_seconds"] if history else 0,
                         "torch_version": torch.__version__, "threads": torch.get_num_threads(),
                         "initialised_from": init_info, "history": history},
            "data": {"sources": names, "procedural_fields": recipe.procedural, **camera,
                     "source_optics": identity["source_optics"]}}
    model = DefocusModel(network, optics=optics, class_levels=class_levels, patch_px=patch_px, info=info,
                         normalization="image-range")
    return model, history


def _initialise(network, init, config, class_levels, optics: Optics, patch_px: int) -> dict:
    """Load a stream-trained ``init`` model's weights into ``network`` (:func:`awdvd.learn.train.initialise_from`
    checks network and classes; here also the optics, window size and normalisation the stream assumes)."""

    if isinstance(init, DefocusModel):
        if init.normalization != "image-range":
            raise ValueError(f"init model normalises windows by {init.normalization!r}; the stream trains "
                             "'image-range' models (train it on with its own DATASET recipe instead)")
        if init.optics.replace(n_levels=optics.n_levels).to_dict() != optics.to_dict() or init.patch_px != patch_px:
            raise ValueError("init model was trained for other optics or another window size than this run's")
        if init.optics.n_levels > optics.n_levels:
            raise ValueError(f"init model has {init.optics.n_levels} levels, this run {optics.n_levels}: a model's "
                             "range can be extended, not cut")
        if init.optics.n_levels < optics.n_levels:
            init = extend_head(init, optics, class_levels)
    return initialise_from(network, init, "delpnet", config, class_levels)


def _save_checkpoint(path: Path, identity: dict, network, optimizer, stream, step, history, best, seconds) -> None:
    import torch

    payload = {"format": CHECKPOINT_FORMAT, **identity, "step": step, "elapsed_s": seconds,
               "state_dict": network.state_dict(), "optimizer": optimizer.state_dict(),
               "stream_rng": stream.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
               "history": history, "best_accuracy": best["accuracy"], "best_state_dict": best["state"],
               "best_step": best["step"]}
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, identity: dict) -> dict:
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an awdvd stream-training checkpoint")
    for key, value in identity.items():
        if state.get(key) != value:
            raise ValueError(f"{path} was made with a different {key} ({state.get(key)!r}, now {value!r}); "
                             "resume with the same settings or start over with --overwrite")
    return state


def train_stream_to_file(
    inputs,
    output,
    *,
    recipe: StreamRecipe | str = "stream",
    steps: int | None = None,
    lr: float | None = None,
    init=None,
    optics: Optics | None = None,
    source_offset_adu: float = 96.0,
    source_gain_adu_per_e: float = 0.33,
    seed: int = 0,
    threads: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
):
    """``awdvd train --images``: train on the stream of in-focus images and write the model and its records.

    Parameters
    ----------
    inputs : in-focus image files, folders or glob patterns (:func:`awdvd.data.datasets.load_in_focus_images`; stacks
        give their sharpest plane), in the raw units of a camera with ``source_offset_adu`` and
        ``source_gain_adu_per_e`` (BBBC006's by default).
    output : the model file (``.pt``); beside it ``STEM.curves.csv`` / ``.png`` (validation accuracy per
        ``val_every`` steps) and ``STEM.json`` (what was done); ``STEM.checkpoint.pt`` while training runs.
    recipe : a :class:`StreamRecipe` or a :data:`STREAM_RECIPES` name; ``steps`` and ``lr`` replace its own.
    init : a stream-trained model (or its file) to train on from (:func:`train_from_stream`).
    optics : the microscope's optics (default :class:`~awdvd.physics.optics.Optics`, BBBC006's).
    resume : continue an interrupted run from its checkpoint; overwrite : replace existing outputs.
    log : called with one line per validation.

    Returns (model, paths). Raises before any work if an output exists (without ``overwrite``) or ``resume``
    finds no checkpoint.
    """

    paths = output_paths(output)
    check_outputs(paths, resume=resume, overwrite=overwrite)
    if isinstance(recipe, str):
        if recipe not in STREAM_RECIPES:
            raise ValueError(f"unknown stream recipe {recipe!r}; choose one of {', '.join(STREAM_RECIPES)}")
        recipe = STREAM_RECIPES[recipe]
    if steps is not None:
        recipe = recipe.replace(steps=steps)
    if lr is not None:
        recipe = recipe.replace(lr=lr)
    if init is not None:
        init = init if isinstance(init, DefocusModel) else load_model(init)
    images, names = load_in_focus_images(inputs)
    if not images:
        raise ValueError(f"no in-focus images found in {inputs!r}")
    say = log if log is not None else (lambda line: None)
    say(f"training {recipe.name} ({recipe.steps} steps of {recipe.batch_size} windows) on {len(images)} in-focus "
        f"images + {recipe.procedural} procedural fields")

    def progress(entry):
        say(f"step {entry['step']}/{recipe.steps}: loss {entry['train_loss']:.3f}, val accuracy "
            f"{entry['val_accuracy']:.3f} (+/-1 {entry['val_within1']:.3f}), {entry['seconds']:.0f} s")

    model, history = train_from_stream(images, source_names=names, optics=optics, recipe=recipe, seed=seed,
                                       threads=threads, checkpoint_path=paths["checkpoint"], resume=resume,
                                       progress=progress, source_offset_adu=source_offset_adu,
                                       source_gain_adu_per_e=source_gain_adu_per_e, init=init)
    model.save(paths["model"], overwrite=overwrite)
    write_csv(paths["curves_csv"], list(STREAM_CURVE_COLUMNS),
              [[entry.get(c) for c in STREAM_CURVE_COLUMNS] for entry in history], overwrite=True)
    stream_curves(history, paths["curves_png"], overwrite=True)
    sidecar = {key: value for key, value in model.info.items() if key != "training"}
    sidecar["training"] = {k: v for k, v in model.info["training"].items() if k != "history"}
    write_json(paths["sidecar"], {"model": str(paths["model"]), **sidecar}, overwrite=True)
    paths["checkpoint"].unlink(missing_ok=True)
    return model, paths
