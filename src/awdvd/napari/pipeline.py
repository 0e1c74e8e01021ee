"""The one place where the widgets' options meet the library.

:func:`run_steps` runs the library's one pipeline with the widgets' :class:`~awdvd.restore.options.AWDVDOptions` and
the image's optics: the defocus map (:func:`awdvd.restore.pipeline.defocus_map`), then the restoration from that
same map (:func:`awdvd.restore.pipeline.deconvolve` with ``dmap=``), both with ``optics=``. It is a generator that
yields between the steps, so a napari thread worker can report progress and stop there when cancelled.

:class:`ImageOptics` is what the widget knows of the image's optics (typed in its fields, or recorded by the file
and put in the layer by awdvd's reader); what it does not know is the model's, assumed with one warning line, as
``awdvd deconvolve`` does for a file (:mod:`awdvd.batch.file_optics`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._config import FrozenConfig
from ..batch.file_optics import OPTICS_FIELDS, OpticsAssumedWarning
from ..learn.model_files import load_model
from ..physics.optics import Optics
from ..restore import pipeline
from ..restore.channels import channel_psfs, depth_everywhere
from ..restore.options import AWDVDOptions

__all__ = ["ImageOptics", "WidgetOptions", "layer_optics", "run_steps", "load_widget_model", "STEPS", "OPTICS_LABELS"]

#: Step names :func:`run_steps` yields, in order (the defocus-map widget stops after "defocus map").
STEPS = ("model", "defocus map", "restore")
#: each optics value as the widgets name it (their fields' labels, without the unit)
OPTICS_LABELS = {"pixel_um": "pixel size", "na": "NA", "n": "immersion index", "wavelength_um": "emission wavelength"}
_UNITS = {"pixel_um": " um", "na": "", "n": "", "wavelength_um": " um"}


@dataclass(frozen=True)
class ImageOptics(FrozenConfig):
    """The image's optics as far as the widget knows them: each value typed in the widget or recorded by the
    image's file; None where neither (the model's is then assumed, see :meth:`assumed_message`).

    pixel_um : pixel size in the specimen plane (um). na : numerical aperture. n : refractive index of the
    immersion medium. wavelength_um : emission wavelength (um).

    Raises
    ------
    ValueError for a value that is not a finite positive number, or an NA not below the immersion index.
    """

    pixel_um: float | None = None
    na: float | None = None
    n: float | None = None
    wavelength_um: float | None = None

    def __post_init__(self) -> None:
        for name in OPTICS_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"the {OPTICS_LABELS[name]} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"the {OPTICS_LABELS[name]} must be a positive number, got {value:g}")
            object.__setattr__(self, name, float(value))
        if self.na is not None and self.n is not None and self.na >= self.n:
            raise ValueError(f"NA {self.na:g} must be below the immersion index {self.n:g} (air 1.0, water 1.33, "
                             "oil 1.515)")

    @property
    def assumed(self) -> tuple[str, ...]:
        """The fields the widget does not know (the model's are used), in :data:`OPTICS_FIELDS` order."""
        return tuple(name for name in OPTICS_FIELDS if getattr(self, name) is None)

    def resolve(self, model_optics: Optics) -> Optics:
        """The image's :class:`~awdvd.physics.optics.Optics`: each known value, else the model's; the model's
        levels (``z_step_um``, ``n_levels``), which the library carries into these optics."""
        values = {name: getattr(self, name) if getattr(self, name) is not None else float(getattr(model_optics, name))
                  for name in OPTICS_FIELDS}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # undersampling is the normal case of widefield cameras
                return Optics(**values, z_step_um=model_optics.z_step_um, n_levels=model_optics.n_levels)
        except ValueError as error:
            given = ", ".join(f"{OPTICS_LABELS[n]} {values[n]:g}" + (" (the model's)" if n in self.assumed else "")
                              for n in OPTICS_FIELDS)
            raise ValueError(f"these optics contradict each other ({given}): {error}") from None

    def assumed_message(self, model_optics: Optics) -> str | None:
        """The one line that says what was assumed (None when nothing was)."""
        assumed = self.assumed
        if not assumed:
            return None
        what = ", ".join(f"{OPTICS_LABELS[n]} {float(getattr(model_optics, n)):g}{_UNITS[n]}" for n in assumed)
        return (f"the image does not record its {', '.join(OPTICS_LABELS[n] for n in assumed)}; assumed the "
                f"model's ({what}); type them in the widget to set them")


def layer_optics(metadata, scale) -> dict:
    """What an image layer records of its optics, ``{pixel_um, na, n, wavelength_um}`` (float, None where
    nothing): the pixel size from the layer's y/x ``scale`` where set (equal on both axes, not napari's default
    1), else its ``metadata["pixel_um"]``; NA, immersion index and emission wavelength from ``metadata["optics"]``
    (where awdvd's reader puts what the file records, :func:`awdvd.io.read_ome_optics`). Not checked: the
    widget shows them in its fields, and :class:`ImageOptics` checks what is run."""
    metadata = metadata if isinstance(metadata, Mapping) else {}
    recorded = metadata.get("optics") if isinstance(metadata.get("optics"), Mapping) else {}
    values = {name: recorded.get(name) for name in OPTICS_FIELDS}
    yx = tuple(float(s) for s in tuple(scale)[-2:]) if scale is not None else ()
    if len(yx) == 2 and math.isclose(yx[0], yx[1], rel_tol=1e-6) and not math.isclose(yx[1], 1.0):
        values["pixel_um"] = yx[1]
    elif metadata.get("pixel_um"):
        values["pixel_um"] = metadata["pixel_um"]
    out = {}
    for name, value in values.items():
        try:
            out[name] = None if value is None else float(value)
        except (TypeError, ValueError):  # metadata written by someone else: not a number is not recorded
            out[name] = None
    return out


@dataclass(frozen=True)
class WidgetOptions(FrozenConfig):
    """What the widgets ask for: the pipeline's :class:`~awdvd.restore.options.AWDVDOptions` (stride, iterations,
    offset, map mode, ...; their defaults are the library's), the image's optics and the model.

    optics : :class:`ImageOptics`, what is known of the image's optics (default: nothing, all the model's).
    model_path : a model file (.pt) or bioimage.io package (.zip); None for the bundled model.
    """

    awdvd: AWDVDOptions = field(default_factory=AWDVDOptions)
    optics: ImageOptics = field(default_factory=ImageOptics)
    model_path: str | None = None

    def __post_init__(self) -> None:
        for name, kind in (("awdvd", AWDVDOptions), ("optics", ImageOptics)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, kind.from_dict(value))
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name} must be an {kind.__name__}, got {type(value).__name__}")


_MODELS: dict = {}


def load_widget_model(model_path: str | None):
    """The model for the widgets, loaded once per path (None: the bundled model) and kept for later runs."""

    key = None if model_path in (None, "") else str(Path(model_path).expanduser().resolve())
    if key not in _MODELS:
        _MODELS[key] = load_model(key)
    return _MODELS[key]


def run_steps(image, options: WidgetOptions, *, restore: bool, others=()):
    """Run the widgets' job, yielding ``(step, value)`` after each step of :data:`STEPS`.

    Parameters
    ----------
    image : (H, W) raw intensities (numpy or lazy).
    options : :class:`WidgetOptions`; its optics, completed with the model's (:meth:`ImageOptics.resolve`), are
        the ``optics=`` of both library calls.
    restore : also restore the image (AWDVD) after the defocus map.
    others : with ``restore``, the other channels of the image's field, ``(image, ImageOptics)`` pairs: each is
        restored from the same map with the PSFs of its own emission wavelength
        (:func:`awdvd.restore.channels.restore_channels`' rule; what a channel does not say is the widget's).

    Yields
    ------
    ("model", DefocusModel), ("defocus map", DefocusMap: on the image's pixels, depths in its optics), then with
    ``restore`` ("restore", (H, W) float32), restored from the yielded map; with ``others`` then ("other channels",
    list of (H, W) float32 in their order).

    Warns
    -----
    OpticsAssumedWarning : one line naming the optics assumed from the model (not typed, not recorded).
    """

    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"the widgets work on one 2-D image; this layer has shape {array.shape} (pick one plane)")
    model = load_widget_model(options.model_path)
    yield "model", model
    optics = options.optics.resolve(model.optics)
    message = options.optics.assumed_message(model.optics)
    if message:
        warnings.warn(message, OpticsAssumedWarning, stacklevel=2)
    dmap = pipeline.defocus_map(array, model, options.awdvd, optics=optics)
    yield "defocus map", dmap
    if restore:
        yield "restore", pipeline.deconvolve(array, model, options.awdvd, dmap=dmap, optics=optics)
    if restore and others:
        everywhere, restored = depth_everywhere(dmap, array), []
        for other, known in others:
            channel_optics = known.resolve(model.optics)
            restored.append(pipeline.deconvolve(np.asarray(other), model, options.awdvd, dmap=everywhere,
                                                optics=channel_optics,
                                                psfs=channel_psfs(channel_optics, dmap, size=options.awdvd.psf_size)))
        yield "other channels", restored
