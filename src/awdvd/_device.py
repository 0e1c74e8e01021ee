"""One resolver of compute devices for training, inference and Richardson-Lucy."""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["resolve_device", "DEVICE_CHOICES"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | None = "auto") -> str:
    """The device string to use: ``"cpu"`` or ``"cuda[:N]"``.

    ``"auto"`` (or None) is CUDA when torch is installed and sees a GPU, else the CPU; torch is not imported
    for it when it is not installed. Asking for CUDA without a GPU is a ``ValueError`` that says what to pass.
    """
    if device is None or device == "auto":
        if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU; use 'cpu' or 'auto'")
        return device
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
