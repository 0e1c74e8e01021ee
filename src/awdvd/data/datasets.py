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
        image_range (N, 2) float32     (low, high) of the synthetic image (awdvd.data.patches.image_range); optional,
                                       absent in datasets made before it existed
        meta        () str             the metadata JSON (the same as dataset.json)
The network input is ``normalize_patches(raw)``; the class label is ``level`` or -1 (bg) where
``background``. Files hold plain arrays: ``numpy.load(path, allow_pickle=False)`` reads them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..io import atomic_path, check_output_folder, find_images, read_image, write_json
from .patches import SPLITS, PatchSet
from .synth import make_patch_dataset

__all__ = [
    "DATASET_FORMAT_VERSION",
    "write_dataset",
    "read_dataset",
    "read_dataset_metadata",
    "in_focus_index",
    "load_in_focus_images",
    "BBBC006Field",
    "bbbc006_fields",
    "load_bbbc006_in_focus",
    "fetch_bbbc006",
    "parse_planes",
    "is_bbbc006_root",
    "DatasetError",
    "simulate_dataset",
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
        arrays = {f.name: getattr(splits[name], f.name) for f in dataclasses.fields(PatchSet)
                  if getattr(splits[name], f.name) is not None}
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
    with open(file, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # .npz files are zip archives
            what = "empty" if file.stat().st_size == 0 else "no zip archive"
            raise DatasetError(f"{file} is not a valid awdvd split file (it is {what}, not a .npz archive); make "
                               "the dataset again with `awdvd simulate`")
    try:  # our own handle: numpy leaves its file open when a damaged archive fails to open
        with open(file, "rb") as handle, np.load(handle, allow_pickle=False) as arrays:
            fields = {f.name: arrays[f.name] for f in dataclasses.fields(PatchSet)
                      if f.name in arrays.files or f.default is dataclasses.MISSING}
    except KeyError as error:
        raise DatasetError(f"{file} is not a valid awdvd split file (it has no array {error}); make the dataset "
                           "again with `awdvd simulate`") from error
    except Exception as error:  # a damaged .npz raises BadZipFile, EOFError, ValueError (pickled data), ...
        detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        raise DatasetError(f"{file} is not a valid awdvd split file: damaged ({type(error).__name__}"
                           f"{': ' + detail if detail else ''}); make the dataset again with `awdvd simulate`") from error
    return PatchSet(**fields), metadata


def simulate_dataset(inputs, output: str | os.PathLike, *, optics=None, noise=None, spec=None,
                     overwrite: bool = False, progress: bool = False) -> dict:
    """Make a dataset folder from in-focus images (``awdvd simulate``): read them (:func:`load_in_focus_images`),
    synthesise the patches (:func:`awdvd.data.synth.make_patch_dataset` with ``optics``, ``noise``, ``spec``) and
    write the folder (:func:`write_dataset`). Returns the dataset's metadata.

    Raises before reading anything: NotADirectoryError if ``output`` is a file, FileExistsError if it already
    holds a dataset and not ``overwrite``.
    """

    output = check_output_folder(output)  # before anything is read or computed
    if (output / "dataset.json").exists() and not overwrite:
        raise FileExistsError(f"{output} already holds a dataset; use another folder or --overwrite")
    images, names = load_in_focus_images(inputs, progress=progress)
    splits, metadata = make_patch_dataset(images, optics=optics, noise=noise, spec=spec, source_names=names,
                                          progress=progress)
    write_dataset(output, splits, metadata, overwrite=overwrite)
    return metadata


# --------------------------------------------------------------------------------------------- sources


def in_focus_index(stack: np.ndarray) -> int:
    """Index of the in-focus plane of a (Z, H, W) stack: the plane of largest intensity standard deviation
    (paper 2.1)."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"a z-stack must be (Z, H, W) with Z >= 1, got shape {stack.shape}")
    return int(np.argmax(stack.reshape(stack.shape[0], -1).astype(np.float64).std(axis=1)))


def load_in_focus_images(inputs, *, progress: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Load in-focus images from files/folders/globs: 2-D files as they are, multi-page stacks reduced to
    their in-focus plane (:func:`in_focus_index`), and a BBBC006 folder in its original layout
    (:func:`bbbc006_fields`) reduced to the in-focus plane of each field. Returns (images, names)."""

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    images, names, plain = [], [], []
    for item in inputs:
        if is_bbbc006_root(item):
            more_images, more_names = load_bbbc006_in_focus(item, progress=progress)
            images += more_images
            names += more_names
        else:
            plain.append(item)
    for path in tqdm(find_images(plain) if plain else [], desc="reading", unit="file", disable=not progress):
        data = read_image(path).data
        if data.ndim == 3:
            index = in_focus_index(data)
            data = data[index]
            names.append(f"{path.name}[z={index}]")
        else:
            names.append(path.name)
        if data.size and np.ptp(data) == 0:  # PSNR and every patch would be meaningless: say so, once
            raise ValueError(f"{path}: the in-focus image is constant ({data.flat[0]}); it holds nothing to blur or "
                             "restore")
        images.append(data)
    return images, names


# --------------------------------------------------------------------------------------------- BBBC006
BBBC006_URL = "https://data.broadinstitute.org/bbbc/BBBC006/BBBC006_v1_images_z_{plane:02d}.zip"
BBBC006_PLANES = 34
BBBC006_FOCUS_PLANE = 16
_BBBC006_FOLDER = re.compile(r"^BBBC006_v1_images_z_(\d{2})$")
_BBBC006_FILE = re.compile(r"^mcf-z-stacks-03212011_([a-p]\d{2})_s(\d)_w(\d)([0-9A-Fa-f-]*)\.tif$")


@dataclass(frozen=True)
class BBBC006Field:
    """One field of view of BBBC006: its planes, as file paths sorted by z (2 um apart; z16 is in focus)."""

    well: str
    site: int
    channel: int
    planes: tuple[tuple[int, Path], ...]

    @property
    def name(self) -> str:
        return f"{self.well}_s{self.site}_w{self.channel}"

    def stack(self) -> np.ndarray:
        """(Z, H, W) stack of the planes, in z order."""
        return np.stack([read_image(path).data for _, path in self.planes])


def bbbc006_fields(root: str | os.PathLike, *, channel: int | None = 1) -> list[BBBC006Field]:
    """The fields of view in a BBBC006 folder in its original layout.

    ``root`` holds folders ``BBBC006_v1_images_z_NN`` (NN = 00..33), each with files
    ``mcf-z-stacks-03212011_<well>_s<site>_w<channel><uuid>.tif``; files of one (well, site, channel) across
    the plane folders form one z-stack. ``channel`` 1 is Hoechst (nuclei), 2 phalloidin; None keeps both.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    planes: dict[tuple[str, int, int], dict[int, Path]] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _BBBC006_FOLDER.match(p.name))
    if not folders:
        raise ValueError(f"{root} has no BBBC006_v1_images_z_NN folders; is it the unpacked BBBC006 set?")
    for folder in folders:
        z = int(_BBBC006_FOLDER.match(folder.name).group(1))
        for file in folder.iterdir():
            match = _BBBC006_FILE.match(file.name)
            if not match:
                continue
            well, site, ch = match.group(1), int(match.group(2)), int(match.group(3))
            if channel is not None and ch != channel:
                continue
            planes.setdefault((well, site, ch), {})[z] = file
    if not planes:
        raise ValueError(f"no BBBC006 image files{'' if channel is None else f' of channel w{channel}'} under {root}")
    return [
        BBBC006Field(well=well, site=site, channel=ch, planes=tuple(sorted(by_z.items())))
        for (well, site, ch), by_z in sorted(planes.items())
    ]


def load_bbbc006_in_focus(root, *, channel: int = 1, progress: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """The in-focus plane (max intensity std, paper 2.1) of every BBBC006 field under ``root``: (images, names)."""

    images, names = [], []
    for field in tqdm(bbbc006_fields(root, channel=channel), desc="BBBC006 stacks", unit="field", disable=not progress):
        stack = field.stack()
        index = in_focus_index(stack)
        images.append(stack[index])
        names.append(f"{field.name}[z={field.planes[index][0]}]")
    return images, names


def is_bbbc006_root(path) -> bool:
    """True if ``path`` is a folder holding BBBC006_v1_images_z_NN plane folders."""
    path = Path(path)
    return path.is_dir() and any(p.is_dir() and _BBBC006_FOLDER.match(p.name) for p in path.iterdir())


def parse_planes(text: str) -> list[int]:
    """'all' | '16' | '0,16,33' | '10-20' (combinations allowed) -> sorted plane indices of BBBC006."""
    text = text.strip().lower()
    if text == "all":
        return list(range(BBBC006_PLANES))
    planes: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                planes.update(range(lo, hi + 1))
            else:
                planes.add(int(part))
    except ValueError:
        raise ValueError(f"planes must be 'all', numbers or ranges like '0,16,20-25'; got {text!r}") from None
    if not planes or min(planes) < 0 or max(planes) >= BBBC006_PLANES:
        raise ValueError(f"BBBC006 planes are 0..{BBBC006_PLANES - 1}; got {text!r}")
    return sorted(planes)


def fetch_bbbc006(dest, *, planes: Sequence[int] | None = None, timeout_s: float = 30.0, progress: bool = False) -> list[Path]:
    """Download and unpack BBBC006 plane archives into ``dest`` (original layout); planes already unpacked
    are skipped. Each archive is downloaded to a temporary file and unpacked into a temporary folder that is
    renamed into place, so an interruption leaves nothing half-written.

    Raises ConnectionError with one clear sentence when the server cannot be reached.
    """
    dest = Path(dest)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    planes = list(range(BBBC006_PLANES)) if planes is None else list(planes)
    done: list[Path] = []
    try:
        _fetch_planes(dest, planes, done, timeout_s=timeout_s, progress=progress)
    except BaseException:
        if created and not any(dest.iterdir()):
            dest.rmdir()  # leave no empty folder behind when nothing could be fetched
        raise
    return done


def _fetch_planes(dest: Path, planes: list[int], done: list[Path], *, timeout_s: float, progress: bool) -> None:
    for plane in planes:
        folder = dest / f"BBBC006_v1_images_z_{plane:02d}"
        if folder.is_dir() and any(folder.iterdir()):
            done.append(folder)
            continue
        url = BBBC006_URL.format(plane=plane)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
            archive = Path(tmp) / "plane.zip"
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response, open(archive, "wb") as handle:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=f"z{plane:02d}", disable=not progress) as bar:
                        while chunk := response.read(1 << 20):
                            handle.write(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise ConnectionError(f"cannot download {url} ({reason}); check the network, or copy BBBC006 into {dest} by hand") from None
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(Path(tmp) / "unpacked")
            except zipfile.BadZipFile:
                raise ConnectionError(f"the download of {url} is not a valid zip archive; try again") from None
            unpacked = next((Path(tmp) / "unpacked").rglob(folder.name), None)
            source = unpacked if unpacked is not None else Path(tmp) / "unpacked"
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(source, folder)
        done.append(folder)
