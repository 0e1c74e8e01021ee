"""The one place where the widgets' options meet the library.

:func:`run_steps` maps :class:`WidgetOptions` onto ``awdvd.defocus_map(image, model, stride=..., mode=...)``
and ``awdvd.deconvolve(image, model, stride=..., iterations=..., offset=..., map_mode=...)``. It is a generator
that yields between the steps, so a napari thread worker can report progress and stop there when cancelled.
(When the pipeline's options object lands, only this function changes.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._config import FrozenConfig
from ..predict import MAP_MODES

__all__ = ["WidgetOptions", "run_steps", "load_widget_model", "STEPS"]

#: Step names :func:`run_steps` yields, in order (the defocus-map widget stops after "defocus map").
STEPS = ("model", "defocus map", "restore")


@dataclass(frozen=True)
class WidgetOptions(FrozenConfig):
    """What the widgets ask for.

    stride : window step in px (1 .. 84); 42 is the paper's case (ii).
    iterations : Richardson-Lucy iterations (restore only).
    offset : background removed before RL and added back (ADU), or "auto" (the image's 1st percentile).
    map_mode : "patch" (every window normalised and classified on its own) or "dense" (one trunk pass).
    model_path : a model file (.pt) or bioimage.io package (.zip); None for the bundled model.
    """

    stride: int = 42
    iterations: int = 30
    offset: float | str = "auto"
    map_mode: str = "patch"
    model_path: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or not 1 <= self.stride <= 84:
            raise ValueError(f"stride must be a whole number of pixels in 1..84, got {self.stride!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations must be a whole number >= 0, got {self.iterations!r}")
        if isinstance(self.offset, str):
            if self.offset != "auto":
                raise ValueError(f"offset must be a number of ADU or 'auto', got {self.offset!r}")
        elif isinstance(self.offset, bool) or not isinstance(self.offset, (int, float)) or not np.isfinite(self.offset):
            raise ValueError(f"offset must be a number of ADU or 'auto', got {self.offset!r}")
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {MAP_MODES}, got {self.map_mode!r}")


_MODELS: dict = {}


def load_widget_model(model_path: str | None):
    """The model for the widgets, loaded once per path (None: the bundled model) and kept for later runs."""
    from ..model import load_model

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
    ("model", DefocusModel), ("defocus map", DefocusMap), then with ``restore`` ("restore", (H, W) float32).
    The restored image is computed by ``awdvd.deconvolve``, which makes its own defocus map with the same
    stride and mode (the same map as the one yielded; in patch mode its cost is small next to RL).
    """
    from ..deconv import deconvolve
    from ..predict import defocus_map

    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"the widgets work on one 2-D image; this layer has shape {array.shape} (pick one plane)")
    model = load_widget_model(options.model_path)
    yield "model", model
    dmap = defocus_map(array, model, stride=options.stride, mode=options.map_mode)
    yield "defocus map", dmap
    if restore:
        restored = deconvolve(array, model, stride=options.stride, iterations=options.iterations,
                              offset=options.offset, map_mode=options.map_mode)
        yield "restore", restored
