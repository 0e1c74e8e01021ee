"""The optics of one image file: from the command's arguments, else from the file's metadata, else the model's,
assumed with one warning line (never in silence). The sidecar records where each value came from.

An image is then read by the model in its own optical units and restored with the PSFs of these optics
(:func:`awdvd.restore.pipeline.restore_image` with ``optics=``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..io import read_ome_optics
from ..io.vendor import is_vendor_file
from ..physics.optics import Optics

__all__ = ["OPTICS_FIELDS", "FLAGS", "OpticsAssumedWarning", "OpticsAssumedError", "NotWidefieldWarning",
           "is_widefield", "FileOptics", "file_optics"]

#: the optics a file may record, as :class:`~awdvd.physics.optics.Optics` fields
OPTICS_FIELDS = ("pixel_um", "na", "n", "wavelength_um")
#: the command-line flag of each field, for messages in the user's words
FLAGS = {"pixel_um": "--pixel-um", "na": "--na", "n": "--immersion-n", "wavelength_um": "--wavelength-um"}
_NAMES = {"pixel_um": "pixel size", "na": "NA", "n": "immersion index", "wavelength_um": "emission wavelength"}
_UNITS = {"pixel_um": " um", "na": "", "n": "", "wavelength_um": " um"}


class OpticsAssumedWarning(UserWarning):
    """A file did not say (and no argument gave) some of its optics: the model's were assumed."""


class OpticsAssumedError(ValueError):
    """With ``strict``: a file whose optics would have to be assumed."""


class NotWidefieldWarning(UserWarning):
    """A file says its microscope was not a widefield one (a confocal, a light sheet, ...): awdvd's blur model is a
    widefield microscope's."""


def is_widefield(modality: str | None) -> bool:
    """Whether an acquisition mode as a file records it (OME's words, e.g. "WideField",
    "LaserScanningConfocalMicroscopy") is a widefield microscope's; True where none is recorded or it is "Other".

    Examples
    --------
    >>> is_widefield("WideField"), is_widefield("SpinningDiskConfocal"), is_widefield(None)
    (True, False, True)
    """
    words = "".join(ch for ch in str(modality or "").lower() if ch.isalnum())
    return words in ("", "other", "unknown") or "widefield" in words or words == "epifluorescence"


@dataclass(frozen=True)
class FileOptics:
    """optics : the image's :class:`~awdvd.physics.optics.Optics`. sources : {field: "argument" | "file" |
    "assumed"}. recorded : what the file's metadata hold (None where nothing)."""

    optics: Optics
    sources: dict
    recorded: dict
    modality: str | None = None  # the acquisition mode the file records (None: none)

    @property
    def assumed(self) -> list[str]:
        return [name for name in OPTICS_FIELDS if self.sources[name] == "assumed"]

    def record(self) -> dict:
        """JSON-ready, for the sidecar."""
        return {**{name: getattr(self.optics, name) for name in OPTICS_FIELDS}, "source": dict(self.sources),
                "file": dict(self.recorded), "modality": self.modality}


def _recorded(path: Path) -> tuple[dict, str | None]:
    if path.is_dir() or path.suffix.lower() in (".tif", ".tiff") or is_vendor_file(path):
        found = read_ome_optics(path)
        return {name: found.get(name) for name in OPTICS_FIELDS}, found.get("modality")
    return dict.fromkeys(OPTICS_FIELDS), None


def file_optics(path, model_optics: Optics, given: dict | None = None, *, strict: bool = False) -> FileOptics:
    """The optics of the image at ``path``: each of pixel size, NA, immersion index and emission wavelength from
    ``given`` (the command's arguments; None: not given), else from the file's metadata, else the model's.

    Warns
    -----
    OpticsAssumedWarning : one line naming what was assumed and the flags that give it.
    NotWidefieldWarning : one line where the file says its microscope was not a widefield one.

    Raises
    ------
    OpticsAssumedError : with ``strict``, instead of the warning. ValueError : optics that contradict each other
        (an NA not below the immersion index, a pixel size that is not positive), naming where each came from.
    """
    path = Path(path)
    given = {name: value for name, value in (given or {}).items() if value is not None}
    unknown = set(given) - set(OPTICS_FIELDS)
    if unknown:
        raise TypeError(f"unknown optics {sorted(unknown)}; give {', '.join(OPTICS_FIELDS)}")
    recorded, modality = _recorded(path)
    if not is_widefield(modality):
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(modality)).lower()  # LaserScanning... -> laser scanning ...
        warnings.warn(f"the file says it was recorded by {words} ({modality}); awdvd's depth model and PSFs are a "
                      "widefield microscope's, so its depth map and restoration assume a blur this image does not "
                      "have", NotWidefieldWarning, stacklevel=2)
    values, sources = {}, {}
    for name in OPTICS_FIELDS:
        if name in given:
            values[name], sources[name] = float(given[name]), "argument"
        elif recorded[name] is not None:
            values[name], sources[name] = float(recorded[name]), "file"
        else:
            values[name], sources[name] = float(getattr(model_optics, name)), "assumed"
    assumed = [name for name in OPTICS_FIELDS if sources[name] == "assumed"]
    if assumed:
        what = ", ".join(f"{_NAMES[n]} {values[n]:g}{_UNITS[n]}" for n in assumed)
        flags = " ".join(FLAGS[n] for n in assumed)
        message = (f"the file does not record its {', '.join(_NAMES[n] for n in assumed)}; assumed the "
                   f"model's ({what}); give {flags} to set them")
        if strict:
            raise OpticsAssumedError(message.replace("; assumed the model's", "; the model's would be assumed") +
                                     " (or leave out --strict-optics)")
        warnings.warn(message, OpticsAssumedWarning, stacklevel=2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undersampling is the normal case of widefield cameras
            optics = Optics(**values, z_step_um=model_optics.z_step_um, n_levels=model_optics.n_levels)
    except (TypeError, ValueError) as error:
        origin = ", ".join(f"{_NAMES[n]} {values[n]:g} ({sources[n]})" for n in OPTICS_FIELDS)
        raise ValueError(f"{path.name}: its optics contradict each other ({origin}): {error}") from None
    return FileOptics(optics=optics, sources=sources, recorded=recorded, modality=modality)
