"""The one place where the widgets' options meet the library.

:func:`run_steps` runs the library's one pipeline with the widgets' :class:`~awdvd.restore.options.AWDVDOptions`: the
defocus map (:func:`awdvd.restore.pipeline.defocus_map`), then the restoration from that same map
(:func:`awdvd.restore.pipeline.deconvolve` with ``dmap=``). It is a generator that yields between the steps, so a napari
thread worker can report progress and stop there when cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._config import FrozenConfig
from ..learn.model_files import load_model
from ..restore import pipeline
from ..restore.options import AWDVDOptions

__all__ = ["WidgetOptions", "run_steps", "load_widget_model", "STEPS"]

#: Step names :func:`run_steps` yields, in order (the defocus-map widget stops after "defocus map").
STEPS = ("model", "defocus map", "restore")


@dataclass(frozen=True)
class WidgetOptions(FrozenConfig):
    """What the widgets ask for: the pipeline's :class:`~awdvd.restore.options.AWDVDOptions` (stride, iterations, offset,
    map mode, ...; their defaults are the library's) and the model.

    model_path : a model file (.pt) or bioimage.io package (.zip); None for the bundled model.
    """

    awdvd: AWDVDOptions = field(default_factory=AWDVDOptions)
    model_path: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.awdvd, dict):
            object.__setattr__(self, "awdvd", AWDVDOptions.from_dict(self.awdvd))
        if not isinstance(self.awdvd, AWDVDOptions):
            raise TypeError(f"awdvd must be an AWDVDOptions, got {type(self.awdvd).__name__}")


_MODELS: dict = {}


def load_widget_model(model_path: str | None):
    """The model for the widgets, loaded once per path (None: the bundled model) and kept for later runs."""

    key = None if model_path in (None, "") else str(Path(model_path).expanduser().resolve())
    if key not in _MODELS:
        _MODELS[key] = load_model(key)
    return _MODELS[key]


def run_steps(image, options: WidgetOptions, *, restore: bool):
    """Run the widgets' job, yielding ``(step, value)`` after each step of :data:`STEPS`.

    Parameters
    ----------
    image : (H, W) raw intensities (numpy or lazy).
    options : :class:`WidgetOptions`.
    restore : also restore the image (AWDVD) after the defocus map.

    Yields
    ------
    ("model", DefocusModel), ("defocus map", DefocusMap), then with ``restore`` ("restore", (H, W) float32),
    restored from the yielded map.
    """

    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"the widgets work on one 2-D image; this layer has shape {array.shape} (pick one plane)")
    model = load_widget_model(options.model_path)
    yield "model", model
    dmap = pipeline.defocus_map(array, model, options.awdvd)
    yield "defocus map", dmap
    if restore:
        yield "restore", pipeline.deconvolve(array, model, options.awdvd, dmap=dmap)
