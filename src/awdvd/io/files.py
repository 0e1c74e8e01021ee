"""Finding the images a command names (files, folders, glob patterns, OME-Zarr folders) and planning their
outputs, checked so that no output replaces an input or another file's output. Part of :mod:`awdvd.io`."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from .images import IMAGE_SUFFIXES, is_image_folder

__all__ = ["find_images", "plan_outputs", "BatchPlan"]


def find_images(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their image files, not recursive) or glob patterns.
    An OME-Zarr folder (``*.zarr``) counts as one image, named directly, matched by a pattern or inside a folder.

    Returns a sorted, de-duplicated list. Raises FileNotFoundError for a path or pattern that names nothing,
    and ValueError if no image file is found at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]

    def is_image(p: Path) -> bool:
        return (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) or is_image_folder(p)

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
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}, *.zarr) in {', '.join(map(os.fspath, inputs))}")
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
                raise ValueError(
                    f"{owner[resolved].name} and {path.name} would both write {output}; give each file its own outputs"
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
    """

    paths: tuple[Path, ...]
    outputs: Mapping[Path, tuple[Path, ...]]

    def done(self, path: Path) -> bool:
        """True if every output of ``path`` exists."""
        return all(o.exists() for o in self.outputs[path])

    def todo(self, *, overwrite: bool = False) -> list[Path]:
        """The files to (re)do: all with ``overwrite``, else those with an output missing."""
        return [p for p in self.paths if overwrite or not self.done(p)]

    def subset(self, paths: Iterable[Path]) -> BatchPlan:
        """The plan of some of its files, in this plan's order."""
        keep = set(paths)
        chosen = tuple(p for p in self.paths if p in keep)
        return BatchPlan(paths=chosen, outputs={p: self.outputs[p] for p in chosen})


def plan_outputs(inputs, outputs_for: Callable[[Path], Iterable[str | os.PathLike]]) -> BatchPlan:
    """Discover the input files (:func:`find_images`) and name their outputs, checked: at least one output per
    file, none of them an input (or inside an input folder), no two files sharing one. (What
    :func:`awdvd.batch.run_batch` runs over; made once per batch.)

    Raises FileNotFoundError / ValueError for inputs that name nothing, ValueError for outputs that would
    replace inputs or collide."""
    if not callable(outputs_for):
        raise TypeError("outputs_for must be a callable: outputs_for(path) -> paths")
    paths = find_images(inputs)
    return BatchPlan(paths=tuple(paths), outputs=_checked_outputs(paths, outputs_for))
