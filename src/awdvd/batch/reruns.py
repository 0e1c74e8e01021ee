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
The two refusals are exceptions that carry what was found (:class:`OtherSettingsError`,
:class:`ForeignOutputError`): their messages are in Python's words, and the CLI words them in its flags
(:mod:`awdvd.cli.words`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io import file_identity, made_by_awdvd, read_json, same_content

__all__ = ["ForeignOutputError", "OtherSettingsError", "RerunPlan", "check_existing_outputs", "input_record"]


@dataclass(frozen=True)
class RerunPlan:
    """What :func:`check_existing_outputs` decided: ``plan`` (the batch plan, with changed inputs marked to
    redo) and ``changed`` (those inputs, in plan order)."""

    plan: object
    changed: tuple[Path, ...] = ()


class OtherSettingsError(ValueError):
    """Finished files were made with other settings than this run's, so skipping them would look like a run with
    this run's settings.

    sidecar : the sidecar of the first such file.
    differences : ``(field, recorded, wanted)`` per setting that differs, ``field`` named as in the sidecar (an
        :class:`awdvd.restore.options.AWDVDOptions` field, a job's own setting such as ``dtype``, or an optics
        field such as ``pixel_um``; None: not given).
    """

    def __init__(self, sidecar: Path, differences):
        self.sidecar, self.differences = Path(sidecar), tuple(differences)
        shown = ", ".join(f"{k} {old!r} (now {new!r})" for k, old, new in self.differences)
        super().__init__(f"{sidecar} was made with other options: {shown}; pass overwrite=True to redo finished "
                         "files, or write to another output folder")

    def __reduce__(self):
        return type(self), (self.sidecar, self.differences)


class ForeignOutputError(FileExistsError):
    """Files that have an output's name exist, but awdvd did not write them, so they are not replaced.

    output : the first such file; more : how many others; sidecar_name : the awdvd sidecar that is missing
    beside it.
    """

    def __init__(self, output: Path, more: int, sidecar_name: str):
        self.output, self.more, self.sidecar_name = Path(output), int(more), sidecar_name
        others = f" (and {more} more)" if more else ""
        super().__init__(f"{output}{others} exists but was not written by awdvd (no {sidecar_name} beside it), so it "
                         "is not replaced: move it away, choose another output folder, or pass overwrite=True to "
                         "replace it")

    def __reduce__(self):
        return type(self), (self.output, self.more, self.sidecar_name)


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


def _other_settings(made: dict, wanted: dict) -> list[tuple[str, object, object]]:
    """(field, recorded, wanted) per setting of ``wanted`` (the job's settings) that ``made`` (a sidecar) records
    otherwise. A setting that is itself a dict (the optics given) is compared field by field, a field it lacks
    being None (not given); a setting the sidecar lacks (an older awdvd's) is not compared."""

    differ = []
    for section, values in wanted.items():
        recorded = made.get(section)
        if not isinstance(recorded, dict):
            continue
        for key, value in values.items():
            if key not in recorded or recorded[key] == value:
                continue
            then = recorded[key]
            if isinstance(then, dict) and isinstance(value, dict):
                differ += [(k, then.get(k), value.get(k)) for k in sorted(set(then) | set(value))
                           if then.get(k) != value.get(k)]
            else:
                differ.append((key, then, value))
    return differ


def check_existing_outputs(plan, job, *, overwrite: bool = False) -> RerunPlan:
    """Decide, before any work, what happens to the files of ``plan`` (an :class:`awdvd.io.BatchPlan`) whose
    outputs exist (see the module docstring). With ``overwrite`` everything is redone and nothing is checked.

    Returns a :class:`RerunPlan`. Raises :class:`ForeignOutputError` (a FileExistsError) for outputs awdvd did
    not write, :class:`OtherSettingsError` (a ValueError) for finished files made with other settings.
    """

    if overwrite:
        return RerunPlan(plan=plan)
    foreign = _foreign_outputs(plan, job)
    if foreign:
        path, output = foreign[0]
        raise ForeignOutputError(output, len(foreign) - 1, job.sidecar(path).name)
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
        differ = _other_settings(made, wanted)
        if differ:
            raise OtherSettingsError(job.sidecar(path), differ)
    return RerunPlan(plan=plan.with_redo(changed), changed=tuple(changed))
