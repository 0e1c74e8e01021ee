"""Output planning shared by the per-image subcommands (predict, deconvolve): one set of files per input in
an output folder, never an input, never an existing file without --overwrite, checked before any work."""

from __future__ import annotations

import argparse
from pathlib import Path


def plan_outputs(inputs: list[Path], output_dir: Path, suffixes: dict[str, str], *, overwrite: bool) -> list[dict[str, Path]]:
    """For every input, {key: output_dir / (input stem + suffix)}; raises before anything is computed if two
    inputs share a stem, an output would replace an input, or (without ``overwrite``) an output exists."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir} exists and is not a folder; -o takes a folder")
    resolved_inputs = {p.resolve() for p in inputs}
    plans, seen = [], {}
    for path in inputs:
        stem = path.stem
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {path} would write the same outputs ({stem}.*); process them separately")
        seen[stem] = path
        plan = {key: output_dir / f"{stem}{suffix}" for key, suffix in suffixes.items()}
        for target in plan.values():
            if target.resolve() in resolved_inputs:
                raise ValueError(f"output {target} would replace an input; choose another -o folder")
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists; choose another -o folder or pass --overwrite")
        plans.append(plan)
    return plans


def window_stride(text: str) -> int:
    """argparse type: a window step in px, 1 .. 84 (larger steps would leave pixels between windows)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 84:
        raise argparse.ArgumentTypeError(f"expected a stride between 1 and the window size 84, got {value}")
    return value


def read_plane(path: Path):
    """(pixels (H, W), pixel size in um or None) of a 2-D image file; stacks are refused with a clear message."""
    from ..io import read_image

    image = read_image(path)
    if image.data.ndim != 2:
        raise ValueError(f"{path} holds a stack of shape {image.data.shape}; awdvd restores 2-D images: save the "
                         "planes as separate files")
    return image.data, image.pixel_um


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="model file from `awdvd train` (default: the bundled model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the network and the deconvolution run (default: CUDA if available)")


def load_model_from_args(args: argparse.Namespace):
    from ..deconv import _resolve_device
    from ..model import load_model

    device = _resolve_device(None if args.device == "auto" else args.device)
    return load_model(args.model, device=device), device
