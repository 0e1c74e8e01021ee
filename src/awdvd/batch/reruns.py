"""What a rerun of ``awdvd predict`` / ``awdvd deconvolve`` does with the outputs that already exist, decided
once, before any image is touched (:func:`check_existing_outputs`, called by :func:`awdvd.batch.jobs.run_jobs`):

- a file whose outputs all exist, made from the same input (the sidecar records the input's size, time stamp
  and a fast content hash, :func:`awdvd.io.file_identity`) with the same options, is skipped;
- a file whose input changed since its outputs were made is redone (their outputs are awdvd's own, so they
  are replaced), and the report says so;
- finished files made with other options are refused (they would look redone);
- a file that merely has an output's name, but that awdvd did not write (no awdvd sidecar beside it, no
  awdvd mark in the file, :func:`awdvd.io.made_by_awdvd`), is never replaced without ``overwrite``.

A job here is anything with ``outputs(path)``, ``sidecar(path)`` and ``settings()`` (:mod:`awdvd.batch.jobs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io import file_identity, made_by_awdvd, read_json, same_content

__all__ = ["check_existing_outputs", "RerunPlan", "input_record"]


@dataclass(frozen=True)
class RerunPlan:
    """What :func:`check_existing_outputs` decided: ``plan`` (the batch plan, with changed inputs marked to
    redo) and ``changed`` (those inputs, in plan order)."""

    plan: object
    changed: tuple[Path, ...] = ()


def input_record(path: Path) -> dict:
    """What a sidecar records about the input it was made from: its path and :func:`awdvd.io.file_identity`."""

    return {"path": str(path), **file_identity(path)}


def _sidecar(job, path: Path) -> dict | None:
    """The job's sidecar of ``path`` if it exists and awdvd wrote it, else None."""

    sidecar = job.sidecar(path)
    if not sidecar.is_file():
        return None
    try:
        made = read_json(sidecar)
    except (OSError, ValueError):
        return None
    return made if isinstance(made, dict) and "awdvd" in made else None


def _foreign_outputs(plan, job) -> list[tuple[Path, Path]]:
    """(input, output) pairs of outputs that exist but that awdvd did not write."""

    foreign = []
    for path in plan.paths:
        existing = [o for o in plan.outputs[path] if o.exists()]
        if not existing or _sidecar(job, path) is not None:  # awdvd's sidecar: the outputs beside it are its own
            continue
        foreign += [(path, o) for o in existing if not made_by_awdvd(o)]
    return foreign


def _other_options(made: dict, wanted: dict) -> list[tuple[str, object, object]]:
    differ = []
    for section, values in wanted.items():
        recorded = made.get(section)
        if isinstance(recorded, dict):
            differ += [(k, recorded[k], v) for k, v in values.items() if k in recorded and recorded[k] != v]
    return differ


def check_existing_outputs(plan, job, *, overwrite: bool = False) -> RerunPlan:
    """Decide, before any work, what happens to the files of ``plan`` (an :class:`awdvd.io.BatchPlan`) whose
    outputs exist (see the module docstring). With ``overwrite`` everything is redone and nothing is checked.

    Returns a :class:`RerunPlan`. Raises FileExistsError for outputs awdvd did not write, ValueError for
    finished files made with other options.
    """

    if overwrite:
        return RerunPlan(plan=plan)
    foreign = _foreign_outputs(plan, job)
    if foreign:
        path, output = foreign[0]
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise FileExistsError(
            f"{output}{more} exists but was not written by awdvd (no {job.sidecar(path).name} beside it), so it is "
            "not replaced: move it away, choose another output folder (-o), or pass --overwrite to replace it")
    changed, wanted = [], job.settings()
    for path in plan.paths:
        if not plan.done(path):
            continue
        made = _sidecar(job, path)
        if made is None:
            continue
        if same_content(made.get("input_file"), path) is False:
            changed.append(path)
            continue
        differ = _other_options(made, wanted)
        if differ:
            shown = ", ".join(f"{k} {old!r} (now {new!r})" for k, old, new in differ[:3])
            raise ValueError(f"{job.sidecar(path)} was made with other options: {shown}; pass --overwrite "
                             "(overwrite=True) to redo finished files, or write to another output folder")
    return RerunPlan(plan=plan.with_redo(changed), changed=tuple(changed))
