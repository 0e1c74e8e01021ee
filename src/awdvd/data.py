"""Where data comes from and where datasets go: image discovery, z-stacks and their in-focus plane, the
BBBC006 layout, and awdvd's patch-dataset files.

Dataset format (a folder, format version 1):
    dataset.json          metadata: optics, camera noise, spec, source names, counts per class and split
    train.npz, val.npz, test.npz
        raw         (N, p, p) float32  noisy defocused patches, camera units (ADU)
        truth       (N, p, p) float32  in-focus patch at the same place
        level       (N,) int16         defocus level the patch was made at (0 .. n_levels - 1)
        background  (N,) bool          the paper's background rule on ``raw``
        source      (N,) int32         index into metadata["sources"]
        image       (N,) int32         synthetic-image index (source * n_levels + level)
        yx          (N, 2) int32       top-left corner of the crop
        meta        () str             the metadata JSON (the same as dataset.json)
The network input is ``normalize_patches(raw)``; the class label is ``level`` or -1 (bg) where
``background``. Files hold plain arrays: ``numpy.load(path, allow_pickle=False)`` reads them.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .io import IMAGE_SUFFIXES, atomic_path, read_image, write_json
from .synth import SPLITS, PatchSet

__all__ = [
    "DATASET_FORMAT_VERSION",
    "write_dataset",
    "read_dataset",
    "read_dataset_metadata",
    "find_images",
    "in_focus_index",
    "load_in_focus_images",
]

DATASET_FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete, or not an awdvd dataset."""


def write_dataset(path: str | os.PathLike, splits: dict[str, PatchSet], metadata: dict, *, overwrite: bool = False) -> Path:
    """Write a dataset folder (see the module docstring). Each file is written atomically."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder")
    files = [path / f"{name}.npz" for name in SPLITS] + [path / "dataset.json"]
    existing = [f.name for f in files if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{path} already holds a dataset ({', '.join(existing)}); use another folder or --overwrite")
    path.mkdir(parents=True, exist_ok=True)
    meta_text = json.dumps(metadata, sort_keys=True)
    for name in SPLITS:
        arrays = {f.name: getattr(splits[name], f.name) for f in dataclasses.fields(PatchSet)}
        with atomic_path(path / f"{name}.npz", overwrite=True) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, meta=np.array(meta_text), **arrays)
    write_json(path / "dataset.json", metadata, overwrite=True)
    return path


def read_dataset_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path} is not a dataset folder (make one with `awdvd simulate`)")
    manifest = path / "dataset.json"
    if not manifest.is_file():
        raise DatasetError(f"{path} has no dataset.json; it is not an awdvd dataset (make one with `awdvd simulate`)")
    try:
        metadata = json.loads(manifest.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{manifest} is not valid JSON: {error}") from error
    if metadata.get("format") != "awdvd-patches":
        raise DatasetError(f"{manifest} does not describe an awdvd patch dataset")
    if metadata.get("format_version") != DATASET_FORMAT_VERSION:
        raise DatasetError(f"{path} has dataset format {metadata.get('format_version')}; this awdvd reads {DATASET_FORMAT_VERSION}")
    return metadata


def read_dataset(path: str | os.PathLike, split: str) -> tuple[PatchSet, dict]:
    """Load one split of a dataset folder: (PatchSet, metadata)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    metadata = read_dataset_metadata(path)
    file = Path(path) / f"{split}.npz"
    if not file.is_file():
        raise DatasetError(f"{file} is missing; the dataset is incomplete")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            fields = {f.name: arrays[f.name] for f in dataclasses.fields(PatchSet)}
    except (KeyError, ValueError, OSError) as error:
        raise DatasetError(f"{file} is not a valid awdvd split file ({error})") from error
    return PatchSet(**fields), metadata


# --------------------------------------------------------------------------------------------- sources
def find_images(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their image files, not recursive) or glob patterns.

    Returns a sorted, de-duplicated list. Raises FileNotFoundError for a path or pattern that names nothing,
    and ValueError if no image file is found at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif globlib.has_magic(text):
            matches = sorted(Path(p) for p in globlib.glob(text) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"the pattern {text!r} matches no file")
            found += [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    unique = sorted(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(os.fspath, inputs))}")
    return unique


def in_focus_index(stack: np.ndarray) -> int:
    """Index of the in-focus plane of a (Z, H, W) stack: the plane of largest intensity standard deviation
    (paper 2.1)."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"a z-stack must be (Z, H, W) with Z >= 1, got shape {stack.shape}")
    return int(np.argmax(stack.reshape(stack.shape[0], -1).astype(np.float64).std(axis=1)))


def load_in_focus_images(inputs, *, progress: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Load in-focus images from files/folders/globs: 2-D files as they are, multi-page stacks reduced to
    their in-focus plane (:func:`in_focus_index`). Returns (images, names)."""
    from tqdm.auto import tqdm

    images, names = [], []
    for path in tqdm(find_images(inputs), desc="reading", unit="file", disable=not progress):
        data = read_image(path).data
        if data.ndim == 3:
            index = in_focus_index(data)
            data = data[index]
            names.append(f"{path.name}[z={index}]")
        else:
            names.append(path.name)
        images.append(data)
    return images, names
