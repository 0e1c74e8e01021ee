"""A model whose depth range is extended by a second network: the near model reads the depths it was made for,
the far model (trained over a deeper range at the same optics and z step) answers only where the window is
beyond them.

Why two networks: one network trained over 0-40 um tells the 2 um steps of 0-20 um apart worse than the network
trained on 0-20 um alone (docs/benchmarks.md, "A first deep-range model"), while that network calls every window
past 20 um its deepest level. The range-extended model keeps the near network's reading of its own range and
takes the far network's where the image reaches past the near range (a quarter of its foreground read at the near
network's deepest level), the near network reads the window at the end of its range, and the far network puts
most of that window's foreground probability beyond it (:func:`extend_range`). The far network runs only on such
images, so an image inside the near range costs what the near model costs and keeps its map. The decision is
taken per image, or per tile of an image too large to restore whole.

File (``torch.save``, ``torch.load(weights_only=True)`` reads it):

    format "awdvd-range-extended-model", format_version 1, awdvd_version
    near, far           each an awdvd model file's content (:meth:`DefocusModel.to_file_dict`)
    switch              the far network's share of foreground probability beyond the near range above which a
                        window takes the far network's probabilities (0.5)
    consult_from        the near level from which a window is one the far network is asked about (the near
                        network's last three levels: 8 of 0-10)
    image_share         ... in an image with at least this share of its foreground windows at the near network's
                        deepest level (0.25; :func:`consults_far`)
    info                what the model records as a whole: its restoration schedule over the far range, lineage
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.patches import BACKGROUND
from ..physics.optics import UndersamplingWarning
from .model import DefocusModel, ModelFileError, json_info, save_payload

__all__ = ["RangeExtendedModel", "extend_range", "consults_far", "is_range_extended", "near_optics",
           "RANGE_EXTENDED_FORMAT", "DEFAULT_SWITCH"]

RANGE_EXTENDED_FORMAT = "awdvd-range-extended-model"
FORMAT_VERSION = 1
DEFAULT_SWITCH = 0.5
CONSULT_LEVELS = 3  # the far network is asked about windows the near one reads in its last three levels
IMAGE_SHARE = 0.25  # ... of images with at least this share of their foreground at its deepest level


def consults_far(near_proba, near_levels, consult_from: int, *, image_share: float = IMAGE_SHARE) -> np.ndarray:
    """Where the far network is asked: nowhere unless at least ``image_share`` of the image's foreground windows
    (the rows of ``near_proba``: one image's, or one tile's of a tiled image) read at the near network's deepest
    level, i.e. the image reaches past the near range; then at every window the near network reads at level
    ``consult_from`` or deeper. A specimen inside the near range keeps the near reading everywhere: measured on
    tilted specimens of 0-20 um, a far reading of a few windows at the end of the range cost up to 2.7 dB
    (docs/benchmarks.md)."""
    near_levels = np.asarray(near_levels)
    called = near_levels[np.argmax(np.asarray(near_proba), axis=-1)]
    foreground = called != BACKGROUND
    deepest = np.count_nonzero(called == near_levels.max())
    if not foreground.any() or deepest < image_share * np.count_nonzero(foreground):
        return np.zeros(called.shape, dtype=bool)
    return called >= consult_from


def extend_range(near_proba, far_proba, near_levels, far_levels, *, switch: float = DEFAULT_SWITCH,
                 consult_from: int, image_share: float = IMAGE_SHARE) -> np.ndarray:
    """Probabilities (..., len(far_levels)) in ``far_levels`` order: the far network's where the window is one the
    far network is asked about (:func:`consults_far`) and the far network puts more than ``switch`` of its
    foreground probability beyond the near range; else the near network's (levels the near network does not
    have get 0). ``far_proba`` may be None where no window is asked about."""
    near_proba = np.asarray(near_proba, dtype=np.float64)
    near_levels, far_levels = np.asarray(near_levels), np.asarray(far_levels)
    columns = [int(np.flatnonzero(far_levels == level)[0]) for level in near_levels]
    out = np.zeros(near_proba.shape[:-1] + (len(far_levels),))
    out[..., columns] = near_proba
    if far_proba is not None:
        far_proba = np.asarray(far_proba, dtype=np.float64)
        beyond = far_levels > near_levels.max()
        foreground = far_proba[..., far_levels != BACKGROUND].sum(axis=-1)
        share = far_proba[..., beyond].sum(axis=-1) / np.maximum(foreground, 1e-12)
        far = (share > switch) & consults_far(near_proba, near_levels, consult_from, image_share=image_share)
        out[far] = far_proba[far]
    return out.astype(np.float32)


def _part(which: str, name: str) -> property:
    """A read-only attribute of the model taken from its ``which`` ("near" or "far") network."""
    return property(lambda self: getattr(getattr(self, which), name), doc=f"the {which} network's ``{name}``")


class RangeExtendedModel:
    """Two :class:`DefocusModel` s read as one over the far model's range (see the module docstring). It stands
    wherever a DefocusModel does for maps and restoration: ``optics``, ``class_levels`` and ``info`` are the
    whole model's (the far range), the network geometry (``network``, ``config``, ``patch_px``,
    ``normalization``) is the near model's, which the far model shares."""

    def __init__(self, near: DefocusModel, far: DefocusModel, *, switch: float = DEFAULT_SWITCH,
                 consult_from: int | None = None, image_share: float = IMAGE_SHARE, info: dict | None = None):
        near_optics = near.optics.to_dict() | {"n_levels": 0}
        if near_optics != far.optics.to_dict() | {"n_levels": 0} or far.optics.n_levels <= near.optics.n_levels:
            raise ValueError(f"the far model must extend the near model's optics to more levels: near {near.optics}, "
                             f"far {far.optics}")
        same = (near.architecture, near.config.to_dict() | {"n_classes": 0}, near.patch_px, near.normalization)
        if same != (far.architecture, far.config.to_dict() | {"n_classes": 0}, far.patch_px, far.normalization):
            raise ValueError("the near and far models must share their network architecture, window and normalisation")
        if not set(near.class_levels.tolist()) <= set(far.class_levels.tolist()):
            raise ValueError(f"the far model's classes {far.class_levels.tolist()} must include the near model's "
                             f"{near.class_levels.tolist()}")
        if not 0 <= float(switch) < 1:
            raise ValueError(f"switch must be in [0, 1), got {switch!r}")
        top = int(near.optics.n_levels) - 1
        consult_from = top - CONSULT_LEVELS + 1 if consult_from is None else int(consult_from)
        if not 0 <= consult_from <= top:
            raise ValueError(f"consult_from must be a level of the near model (0..{top}), got {consult_from!r}")
        if not 0 <= float(image_share) <= 1:
            raise ValueError(f"image_share must be in [0, 1], got {image_share!r}")
        self.near, self.far, self.switch, self.consult_from = near, far, float(switch), consult_from
        self.image_share = float(image_share)
        self.info = dict(info or {})

    # the whole model's range: the far network's; the shared network geometry: the near network's
    optics = _part("far", "optics")
    class_levels = _part("far", "class_levels")
    class_names = _part("far", "class_names")
    has_background_class = _part("far", "has_background_class")
    network = _part("near", "network")
    config = _part("near", "config")
    architecture = _part("near", "architecture")
    patch_px = _part("near", "patch_px")
    normalization = _part("near", "normalization")
    inference_backend = _part("near", "inference_backend")
    device = _part("near", "device")

    @property
    def range_parts(self) -> tuple[DefocusModel, DefocusModel]:
        """(near, far): what :func:`awdvd.restore.defocus_maps.window_proba` runs before :meth:`combine`."""
        return self.near, self.far

    def to(self, device) -> RangeExtendedModel:
        self.near.to(device)
        self.far.to(device)
        return self

    def consults_far(self, near_proba) -> np.ndarray:
        """Which windows the far network is asked about (:func:`consults_far`): where none is, it is not run."""
        return consults_far(near_proba, self.near.class_levels, self.consult_from, image_share=self.image_share)

    def combine(self, near_proba, far_proba) -> np.ndarray:
        """The whole model's probabilities from its parts' (:func:`extend_range`; ``far_proba`` None where
        :meth:`consults_far` asks about no window)."""
        return extend_range(near_proba, far_proba, self.near.class_levels, self.far.class_levels,
                            switch=self.switch, consult_from=self.consult_from, image_share=self.image_share)

    def inference_network(self, **kwargs):
        raise TypeError("a range-extended model runs two networks: use its parts (model.range_parts)")

    def predict_patches(self, patches, *, return_proba: bool = False, batch_size: int = 32, value_range=None):
        """:meth:`DefocusModel.predict_patches` of the whole model."""
        _, near = self.near.predict_patches(patches, return_proba=True, batch_size=batch_size, value_range=value_range)
        far = None
        if self.consults_far(near).any():
            _, far = self.far.predict_patches(patches, return_proba=True, batch_size=batch_size,
                                              value_range=value_range)
        proba = self.combine(near, far)
        levels = self.class_levels[np.argmax(proba, axis=1)] if len(proba) else np.zeros(0, np.int64)
        return (levels, proba) if return_proba else levels

    # file
    def __reduce__(self):
        return (_from_pickle, (self.to_file_dict(),))

    def to_file_dict(self) -> dict:
        info = json_info(self.info)
        return {"format": RANGE_EXTENDED_FORMAT, "format_version": FORMAT_VERSION, "awdvd_version": __version__,
                "near": self.near.to_file_dict(), "far": self.far.to_file_dict(), "switch": self.switch,
                "consult_from": self.consult_from, "image_share": self.image_share, "info": info}

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the model file (``torch.load(weights_only=True)`` reads it)."""
        return save_payload(self.to_file_dict(), path, overwrite=overwrite)

    @classmethod
    def from_file_dict(cls, payload: dict, *, source: str = "model file",
                       inference_backend: str | None = "auto") -> RangeExtendedModel:
        if not is_range_extended(payload):
            raise ModelFileError(f"{source} is not a range-extended awdvd model file")
        if payload.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{source} has range-extended model format {payload.get('format_version')}; this "
                                 f"awdvd reads {FORMAT_VERSION}")
        try:
            near = DefocusModel.from_file_dict(payload["near"], source=f"{source} (near model)",
                                               inference_backend=inference_backend)
            far = DefocusModel.from_file_dict(payload["far"], source=f"{source} (far model)",
                                              inference_backend=inference_backend)
            return cls(near, far, switch=payload["switch"], consult_from=payload["consult_from"],
                       image_share=payload["image_share"], info=payload.get("info", {}))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ModelFileError):
                raise
            raise ModelFileError(f"{source} is damaged or inconsistent ({type(error).__name__}: {error})") from error


def near_optics(model):
    """The optics of the range a model reads level by level: a range-extended model's near network's (0-20 um for
    the bundled one), any other model's own. Tilted specimens of benchmarks and checks span it."""
    parts = getattr(model, "range_parts", None)
    return (model if parts is None else parts[0]).optics


def is_range_extended(payload) -> bool:
    return isinstance(payload, dict) and payload.get("format") == RANGE_EXTENDED_FORMAT


def _from_pickle(payload: dict) -> RangeExtendedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)
        return RangeExtendedModel.from_file_dict(payload, source="pickled model")
