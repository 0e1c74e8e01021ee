"""Training checkpoints: where a run stands (:class:`TrainingState`), saved after every epoch and resumed
bit for bit (weights, optimiser, torch's generators, curves, the best weights so far).

A checkpoint is a ``torch.save`` dict of tensors and plain types (``torch.load(weights_only=True)`` reads it)
holding the run's identity (recipe, variant, architecture and its arguments, seed, classes, data fingerprint,
optics, init): a run resumes only from a checkpoint of the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION", "TrainingState", "clone_state", "save_checkpoint",
           "resume_from_checkpoint"]

CHECKPOINT_FORMAT = "awdvd-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class TrainingState:
    """Where a run stands after ``epoch`` complete epochs (what a checkpoint holds besides the weights).

    history : one dict per epoch (see :class:`awdvd.learn.train.TrainingResult`); step : optimiser steps taken;
    best_state / best_epoch / best_score : the weights (CPU tensors) kept by ``recipe.select_by``, their
    1-based epoch and (val_accuracy, val_loss).
    """

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None
    best_epoch: int = 0
    best_score: tuple[float, float] | None = None

    def offer(self, network, epoch: int, score: tuple[float, float], select_by: str) -> None:
        """Keep ``network``'s weights as the best if ``score`` (val_accuracy, val_loss) beats the best so far."""
        best = self.best_score
        if best is None:
            better = True
        elif select_by == "val_loss":
            better = score[1] < best[1]
        else:
            better = score[0] > best[0] or (score[0] == best[0] and score[1] < best[1])
        if better:
            self.best_state, self.best_epoch, self.best_score = clone_state(network), epoch, score


def clone_state(network) -> dict:
    """A CPU copy of ``network``'s state dict."""
    return {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}


def save_checkpoint(path: Path, identity: dict, network, optimizer, state: TrainingState, device) -> None:
    """Write the checkpoint of ``state`` (with ``network``'s and ``optimizer``'s state and torch's generators)
    to ``path`` atomically; ``device`` is the torch.device the run trains on."""
    import torch

    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **identity,
        "epoch": state.epoch,
        "step": state.step,
        "state_dict": clone_state(network),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": state.history,
        "best_state_dict": state.best_state,
        "best_epoch": state.best_epoch,
        "best_score": list(state.best_score) if state.best_score is not None else None,
    }
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def resume_from_checkpoint(path: Path, identity: dict, network, optimizer, device) -> TrainingState:
    """Load the checkpoint at ``path`` into ``network``, ``optimizer`` and torch's generators, after checking that
    it was made by the same run (``identity``)."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} could not be read as a training checkpoint ({type(error).__name__})") from error
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an awdvd training checkpoint")
    if saved.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {saved.get('format_version')}; this awdvd reads "
                         f"{CHECKPOINT_FORMAT_VERSION}")
    for key, value in identity.items():
        if saved.get(key) != value:
            what = {"data_fingerprint": "dataset"}.get(key, key.replace("_", " "))
            raise ValueError(f"{path} was made with a different {what} (checkpoint: {saved.get(key)!r}; now: "
                             f"{value!r}); resume with the same settings, or start over with --overwrite")
    missing = [k for k in ("state_dict", "optimizer", "torch_rng", "history", "best_state_dict", "best_epoch",
                           "best_score", "epoch", "step") if k not in saved]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint (missing {', '.join(missing)})")
    network.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    best_score = tuple(saved["best_score"]) if saved["best_score"] is not None else None
    return TrainingState(epoch=int(saved["epoch"]), step=int(saved["step"]), history=list(saved["history"]),
                         best_state=saved["best_state_dict"], best_epoch=int(saved["best_epoch"]),
                         best_score=best_score)
