"""Finding the images a command names (files, folders, glob patterns, OME-Zarr folders) and planning their
outputs, checked so that no output replaces an input or another file's output; what a file is (its identity:
size, modification time, a fast content hash) and whether awdvd wrote it. Part of :mod:`awdvd.io`."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import tifffile
from PIL import Image

from .images import IMAGE_SUFFIXES, is_image_folder, quiet_tifffile

__all__ = ["find_images", "plan_outputs", "BatchPlan", "file_identity", "same_content", "made_by_awdvd",
           "SOFTWARE_PREFIX"]

#: what awdvd's writers put into a file's "Software" field (TIFF tag, PNG text), and into an OME-Zarr's attributes
SOFTWARE_PREFIX = "awdvd"


def find_images(inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
                exclude: Callable[[Path], bool] | None = None) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their image files, not recursive) or glob patterns.
    An OME-Zarr folder (``*.zarr``) counts as one image, named directly, matched by a pattern or inside a folder.

    exclude : ``exclude(path) -> bool`` for files found in a folder or by a pattern (never for files named
        directly): True leaves the file out, e.g. awdvd's own outputs in a folder that is also the output folder.

    Returns a sorted, de-duplicated list. Raises FileNotFoundError for a path or pattern that names nothing,
    and ValueError if no image file is found at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    left_out: list[Path] = []

    def is_image(p: Path) -> bool:
        if not ((p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) or is_image_folder(p)):
            return False
        if exclude is not None and exclude(p):
            left_out.append(p)
            return False
        return True

    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if is_image_folder(path) or path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if is_image(p))
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file() or is_image_folder(p))
            if not matches:
                raise FileNotFoundError(f"the pattern {text!r} matches no file")
            found += [p for p in matches if is_image(p)]
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    unique = sorted(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        also = f" (only awdvd's own outputs, e.g. {left_out[0].name}, which are never inputs)" if left_out else ""
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}, *.zarr) in {', '.join(map(os.fspath, inputs))}"
                         + also)
    return unique


def _checked_outputs(paths: Sequence[Path], outputs_for: Callable[[Path], Iterable]) -> dict[Path, tuple[Path, ...]]:
    """outputs_for(path) for every input, checked: at least one output per file, no output is any input
    file (or inside an input folder), and no two files share an output."""
    plan: dict[Path, tuple[Path, ...]] = {}
    for path in paths:
        outputs = outputs_for(path)
        if isinstance(outputs, (str, os.PathLike)):
            outputs = [outputs]
        outputs = tuple(Path(o).absolute() for o in outputs)
        if not outputs:
            raise ValueError(f"outputs_for({path.name}) named no output; every file needs at least one output to resume")
        plan[path] = outputs
    inputs = {p.resolve(): p for p in paths}
    owner: dict[Path, Path] = {}
    for path, outputs in plan.items():
        for output in outputs:
            resolved = output.resolve()
            clash = inputs.get(resolved)
            if clash is None:
                clash = next((p for p in resolved.parents if p in inputs), None)  # inside an input .zarr folder
            if clash is None and output.exists():
                clash = next((p for p in paths if _same_file(p, output)), None)  # hard links
            if clash is not None:
                raise ValueError(
                    f"the output {output} of {path.name} would overwrite the input {clash}; outputs never replace "
                    "inputs: write them to another folder (-o) or name them differently. (Were outputs of an earlier "
                    "run written into the input folder? Then keep outputs in a folder of their own.)"
                )
            if resolved in owner and owner[resolved] != path:
                first, second = owner[resolved], path
                if first.name == second.name:  # the names alone would not say which two files
                    first, second = first.parent / first.name, second.parent / second.name
                else:
                    first, second = first.name, second.name
                raise ValueError(
                    f"{first} and {second} would both write {output}; give each file its own outputs (one output "
                    "folder per input folder, or rename one)"
                )
            owner[resolved] = path
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class BatchPlan:
    """The files of a batch and the outputs each will write, checked once (:func:`plan_outputs`).

    paths : the input files, sorted, de-duplicated. outputs : {path: its output paths (absolute)}.
    redo : files to do again although all their outputs exist (e.g. their input changed since).
    """

    paths: tuple[Path, ...]
    outputs: Mapping[Path, tuple[Path, ...]]
    redo: frozenset[Path] = field(default_factory=frozenset)

    def done(self, path: Path) -> bool:
        """True if every output of ``path`` exists."""
        return all(o.exists() for o in self.outputs[path])

    def todo(self, *, overwrite: bool = False) -> list[Path]:
        """The files to (re)do: all with ``overwrite``, else those with an output missing or marked to redo."""
        return [p for p in self.paths if overwrite or p in self.redo or not self.done(p)]

    def subset(self, paths: Iterable[Path]) -> BatchPlan:
        """The plan of some of its files, in this plan's order."""
        keep = set(paths)
        chosen = tuple(p for p in self.paths if p in keep)
        return BatchPlan(paths=chosen, outputs={p: self.outputs[p] for p in chosen},
                         redo=frozenset(p for p in self.redo if p in keep))

    def with_redo(self, paths: Iterable[Path]) -> BatchPlan:
        """This plan with ``paths`` (some of its files) also to be redone."""
        return BatchPlan(paths=self.paths, outputs=self.outputs, redo=self.redo | frozenset(paths))


def plan_outputs(inputs, outputs_for: Callable[[Path], Iterable[str | os.PathLike]], *,
                 exclude: Callable[[Path], bool] | None = None) -> BatchPlan:
    """Discover the input files (:func:`find_images`, ``exclude`` as there) and name their outputs, checked: at
    least one output per file, none of them an input (or inside an input folder), no two files sharing one.
    (What :func:`awdvd.batch.runner.run_batch` runs over; made once per batch.)

    Raises FileNotFoundError / ValueError for inputs that name nothing, ValueError for outputs that would
    replace inputs or collide."""
    if not callable(outputs_for):
        raise TypeError("outputs_for must be a callable: outputs_for(path) -> paths")
    paths = find_images(inputs, exclude=exclude)
    return BatchPlan(paths=tuple(paths), outputs=_checked_outputs(paths, outputs_for))


# --------------------------------------------------------------------------------------------- what a file is
_WHOLE_HASH_BYTES = 64 << 20  # files up to this size are hashed whole
_BLOCK_BYTES = 1 << 20
_BLOCKS = 16  # larger files: this many 1 MiB blocks spread evenly over the file, the last one included


def _hash_file(digest, path: Path, size: int) -> None:
    with open(path, "rb") as handle:
        if size <= _WHOLE_HASH_BYTES:
            for chunk in iter(lambda: handle.read(_BLOCK_BYTES), b""):
                digest.update(chunk)
            return
        for i in range(_BLOCKS):
            handle.seek((size - _BLOCK_BYTES) * i // (_BLOCKS - 1))
            digest.update(handle.read(_BLOCK_BYTES))


def file_identity(path: str | os.PathLike) -> dict:
    """What a file (or OME-Zarr folder) is, to tell later whether it changed: ``size`` (bytes), ``mtime_ns``
    and a fast content ``hash`` (BLAKE2b of the whole file up to 64 MiB, else of 16 blocks of 1 MiB spread over
    it, with the size; for a folder, over every file's relative path, size and content so hashed).

    Two files with the same size and hash are taken as the same content (:func:`same_content`); the time
    stamp is recorded for people (a copy or a ``touch`` changes it without changing the image).
    """
    path = Path(path)
    digest = hashlib.blake2b(digest_size=16)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        size, mtime = 0, path.stat().st_mtime_ns
        for file in files:
            stat = file.stat()
            size, mtime = size + stat.st_size, max(mtime, stat.st_mtime_ns)
            digest.update(f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0".encode())
            _hash_file(digest, file, stat.st_size)
    else:
        stat = path.stat()
        size, mtime = stat.st_size, stat.st_mtime_ns
        digest.update(f"{size}\0".encode())
        _hash_file(digest, path, size)
    return {"size": int(size), "mtime_ns": int(mtime), "hash": f"blake2b-128:{digest.hexdigest()}"}


def same_content(recorded: Mapping, path: str | os.PathLike) -> bool | None:
    """Whether ``path`` still holds what ``recorded`` (an earlier :func:`file_identity`) describes: True / False,
    or None if ``recorded`` says too little to tell (an output made before awdvd recorded its input)."""
    if not isinstance(recorded, Mapping) or "size" not in recorded or "hash" not in recorded:
        return None
    now = file_identity(path)
    return now["size"] == recorded["size"] and now["hash"] == recorded["hash"]


def made_by_awdvd(path: str | os.PathLike) -> bool:
    """True if the file says awdvd wrote it: a TIFF whose Software tag (or ImageJ description) names awdvd, a
    PNG with such a Software text, a JSON object with an "awdvd" key, an OME-Zarr folder with "awdvd" in its
    attributes. Unreadable or other files: False."""
    path = Path(path)
    name = path.name.lower()
    try:
        if path.is_dir():
            for meta in ("zarr.json", ".zattrs"):
                if (path / meta).is_file():
                    attrs = json.loads((path / meta).read_text())
                    attrs = attrs.get("attributes", attrs) if meta == "zarr.json" else attrs
                    return isinstance(attrs, dict) and SOFTWARE_PREFIX in attrs
            return False
        if name.endswith(".json"):
            payload = json.loads(path.read_text())
            return isinstance(payload, dict) and SOFTWARE_PREFIX in payload
        if name.endswith((".tif", ".tiff")):
            with quiet_tifffile(), tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                if str(page.software or "").startswith(SOFTWARE_PREFIX):
                    return True
                info = (tif.imagej_metadata or {}).get("Info", "")
                return f'"{SOFTWARE_PREFIX}":' in str(info)
        if name.endswith(".png"):
            with open(path, "rb") as handle:
                if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                    return False
            with Image.open(path) as picture:
                return str(picture.info.get("Software", "")).startswith(SOFTWARE_PREFIX)
    except Exception:  # not readable as what its name says: not ours
        return False
    return False
