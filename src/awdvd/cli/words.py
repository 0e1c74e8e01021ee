"""The command line's words for what the library says in Python's. The library names an option by its field and a
value by its Python form (``iterations=None``, ``overwrite=True``), as a Python caller writes them; a user of the
command line typed flags (``--iterations 30``, ``--overwrite``) and reads those back. Every line the CLI prints
from the library goes through here:

- :data:`FLAGS`: the flag of each option, by its field name, and :data:`COMMAND_FLAGS` where a command's differs;
- :func:`setting`: one recorded setting as the user would type it (an option left unset: what was used instead);
- :func:`error_line`: the one line an error becomes; refusals that carry what they found are worded from it;
- :func:`in_words`: any other library sentence, with its asides to Python callers removed;
- :func:`summary`: a batch report's paragraph, its failures without their Python exception types.
"""

from __future__ import annotations

import dataclasses
import re

from ..batch.file_optics import FLAGS as OPTICS_FLAGS
from ..batch.reruns import ForeignOutputError, OtherSettingsError

__all__ = ["COMMAND_FLAGS", "FLAGS", "UNSET", "error_line", "flag", "in_words", "setting", "summary"]

#: the flag that sets each option, by the name the library and the sidecars give it: the fields of
#: :class:`awdvd.restore.options.AWDVDOptions`, the per-file jobs' own settings and the images' optics (whose
#: flags :mod:`awdvd.batch.file_optics` names for its own warnings)
FLAGS = {
    "stride": "--stride",
    "iterations": "--iterations",
    "rl": "--rl",
    "method": "--method",
    "weighting": "--weighting",
    "level_blend": "--level-blend",
    "boundary": "--boundary",
    "offset": "--offset",
    "psf_size": "--psf-size",
    "halo_px": "--halo-px",
    "map_mode": "--map-mode",
    "normalization": "--normalization",
    "tta": "--tta",
    "smoothing_px": "--smoothing",
    "device": "--device",
    "model": "--model",
    "dtype": "--dtype",
    "format": "--format",
    "overwrite": "--overwrite",
    "map_channel": "--map-channel",
    "channels": "--channels",
    "time_smoothing": "--time-smoothing",
    **OPTICS_FLAGS,
}

#: where a command's flag for an option differs from :data:`FLAGS` (None: the command has none; only a Python
#: caller could have set it, and it is named in words). Options no command has (tv_weight) are not in FLAGS.
COMMAND_FLAGS = {"predict": {"map_mode": "--mode"}, "deconvolve": {"normalization": None}}

#: what a command uses for an option left unset (recorded as None); others: "the default"
UNSET = {
    "iterations": "the model's",
    "rl": "the model's",
    "tv_weight": "the model's",
    "pixel_um": "the file's",
    "na": "the file's",
    "wavelength_um": "the file's",
    "n": "the file's",
    "map_channel": "a nuclear stain's channel (else the first)",
    "channels": "all channels",
}

#: sentences of the library that speak to a Python caller and a command-line user at once: the user's half
_PYTHON_ASIDES = (
    ("--overwrite (overwrite=True)", "--overwrite"),
    ("overwrite=True (--overwrite)", "--overwrite"),
    ("overwrite=True / --overwrite", "--overwrite"),
)

#: "ValueError: " at the start of a failed file's error (awdvd.batch.runner.FileResult.error)
_EXCEPTION_TYPE = re.compile(r"^[A-Z][A-Za-z0-9_]*: ")


def flag(field: str, command: str = "") -> str:
    """The flag of ``command`` that sets the option ``field`` (an option without one: its name in words)."""
    own = COMMAND_FLAGS.get(command, {})
    said = own[field] if field in own else FLAGS.get(field)
    return said or field.replace("_", " ")


def setting(field: str, value) -> str:
    """A recorded value of the option ``field`` as the user would type it after its flag."""
    if value is None:
        return UNSET.get(field, "the default")
    if field == "model" and value == "bundled":  # awdvd.batch.jobs.ModelFile.describe() of the bundled model
        return "the bundled model"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):  # e.g. iterations per level
        return ",".join(setting(field, v) for v in value)
    return str(value)


def _other_settings(error: OtherSettingsError, command: str) -> str:
    # every one: the user needs them all to redo the earlier run or to change them back
    shown = ", ".join(f"{flag(k, command)} {setting(k, then)} (now {setting(k, now)})"
                      for k, then, now in error.differences)
    return (f"{error.sidecar} was made with other settings: {shown}; pass {FLAGS['overwrite']} to redo finished "
            "files, or write to another output folder (-o)")


def _foreign_output(error: ForeignOutputError) -> str:
    others = f" (and {error.more} more)" if error.more else ""
    return (f"{error.output}{others} exists but was not written by awdvd (no {error.sidecar_name} beside it), so it "
            f"is not replaced: move it away, choose another output folder (-o), or pass {FLAGS['overwrite']} to "
            "replace it")


def in_words(text: str) -> str:
    """A library sentence without its asides to Python callers ("pass --overwrite (overwrite=True)")."""
    for python, user in _PYTHON_ASIDES:
        text = text.replace(python, user)
    return text


def error_line(error: BaseException, command: str) -> str:
    """The one line ``error`` becomes on stderr after "awdvd COMMAND: error: "."""
    if isinstance(error, OtherSettingsError):
        return _other_settings(error, command)
    if isinstance(error, ForeignOutputError):
        return _foreign_output(error)
    text = str(error).strip()
    return in_words(text.splitlines()[0]) if text else type(error).__name__


def summary(report) -> str:
    """``report.summary()`` (an :class:`awdvd.batch.runner.BatchReport`) in the user's words: each failed file's
    error without its exception type, the asides to Python callers removed."""
    results = tuple(dataclasses.replace(r, error=_EXCEPTION_TYPE.sub("", r.error)) if r.error else r
                    for r in report.results)
    return in_words(dataclasses.replace(report, results=results).summary())
