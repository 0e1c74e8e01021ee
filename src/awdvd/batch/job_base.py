"""What ``awdvd predict`` and ``awdvd deconvolve`` jobs share (:mod:`awdvd.batch.jobs`): the model file loaded once per
worker, the output names, the warnings recorder, the plane reader and the :class:`Job` base class."""


from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_positive_int
from .._cluster import worker_resource, worker_resource_loads
from .._device import resolve_device
from ..io import (
    LARGEST_IMAGE_IN_MEMORY_PX,
    check_output_folder,
    image_shape,
    image_stem,
    made_by_awdvd,
    read_image,
    same_content,
    write_json,
)
from ..io.channels import channel_count, stack_axis
from ..io.scenes import scene_count, scene_stems
from ..io.vendor import scene_names, scene_shapes
from ..learn.model_files import load_model
from ..physics.optics import UndersamplingWarning
from ..physics.psf import psf_bank
from ..restore.options import AWDVDOptions
from ..restore.tiling import DEFAULT_TILE_PX, should_tile
from .file_optics import OPTICS_FIELDS

__all__ = ["ModelFile", "Job", "Recorder", "read_plane", "z_stack_refusal", "load_counts", "cached_psf_bank", "FORMATS",
           "IMAGE_SUFFIX", "OUTPUT_SUFFIXES", "FOCUS_CSV", "FOCUS_PLATE", "InputChangedError", "channels_in", "Layout"]

FORMATS = ("auto", "tiff", "ome-tiff", "ome-zarr")
IMAGE_SUFFIX = {"tiff": ".awdvd.tif", "ome-tiff": ".awdvd.ome.tif", "ome-zarr": ".awdvd.ome.zarr"}
#: the name endings of the images awdvd's jobs write: found in a folder or by a pattern, such a file that awdvd
#: wrote (awdvd.io.made_by_awdvd) is never taken as an input, so the output folder may be the input folder
OUTPUT_SUFFIXES = (*IMAGE_SUFFIX.values(), ".defocus.tif", ".defocus.png")
#: the focus QC of a predict run (awdvd.qc), beside the maps: one table for all its images, and the plate
FOCUS_CSV = "awdvd-predict-focus.csv"
FOCUS_PLATE = "awdvd-predict-plate.png"


# --------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelFile:
    """A model file to load where the work runs, once per process: calling it returns the
    :class:`awdvd.learn.model.DefocusModel` (``path`` None: the model bundled with awdvd) on ``device`` ("auto":
    CUDA where the process sees a GPU, else the CPU; resolved where it is loaded)."""

    path: str | None = None
    device: str = AWDVDOptions.device  # the options' default; a job sets its options' device

    def __post_init__(self):
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).absolute()))

    def __call__(self):
        device = resolve_device(self.device)
        return worker_resource(("model", self.path, device), lambda: load_model(self.path, device=device))

    def describe(self) -> str:
        return self.path or "bundled"


def cached_psf_bank(optics, size: int | None) -> np.ndarray:
    key = ("psf_bank", json.dumps(optics.to_dict(), sort_keys=True), size)
    return worker_resource(key, lambda: psf_bank(optics, size=size))


def load_counts() -> dict:
    return {k[0]: v for k, v in worker_resource_loads().items() if isinstance(k, tuple) and k[0] in ("model", "psf_bank")}


# --------------------------------------------------------------------------------------------- common
class Recorder:
    """Collects the warnings of one file as they are raised (worker logs are not shown to users: the CLI prints
    these), so that a sidecar written inside :meth:`capture` already holds them."""

    def __init__(self):
        self.messages: list[str] = []

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        if text not in self.messages:
            self.messages.append(text)

    @contextlib.contextmanager
    def capture(self):
        with warnings.catch_warnings():  # restores warnings.showwarning on exit
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", UndersamplingWarning)  # the paper's optics are undersampled by design
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.showwarning = self._show
            yield


def read_plane(path: Path, *, restore: bool):
    image = read_image(path)  # 2-D, or a (Z, H, W) stack for awdvd predict
    if image.data.ndim != 2 and (restore or image.data.ndim != 3):
        raise ValueError(z_stack_refusal(path, image.data.shape))
    return image


def z_stack_refusal(path: Path, shape) -> str:
    """Why ``awdvd deconvolve`` refuses the z-stack ``path`` (of ``shape``), in one sentence."""
    return (f"{path.name} holds a stack of shape {tuple(int(v) for v in shape)}: restoring a z-stack plane by plane "
            "with 2-D PSFs would be physically wrong (each plane's out-of-focus light comes from the others); it "
            "needs 3-D deconvolution (e.g. deconwolf), or save single planes as separate files")


def channels_in(path: Path) -> int:
    """How many channels ``path`` holds (1 when that cannot be read: the job then says what is wrong)."""
    with contextlib.suppress(Exception):
        return channel_count(path)
    return 1


@dataclass(frozen=True)
class Layout:
    """What decides the names of a field's outputs: its channels, whether it is a time-lapse (a T axis) or a
    z-stack (a Z axis), and whether it is large (more pixels than a job's ``max_px``: tiled)."""

    channels: int = 1
    timelapse: bool = False
    stack: bool = False
    large: bool = False

    @classmethod
    def of_shape(cls, shape, *, max_px: int) -> Layout:
        """From a (T, C, Z, Y, X) shape (a vendor file's scene)."""
        frames, channels, planes, rows, cols = (int(v) for v in shape)
        return cls(channels=channels, timelapse=frames > 1, stack=planes > 1 and frames == 1,
                   large=should_tile((rows, cols), max_px=max_px))


@dataclass(frozen=True)
class Job:
    out_dir: Path
    model: ModelFile = ModelFile()
    options: AWDVDOptions = AWDVDOptions()
    tile_px: int = DEFAULT_TILE_PX
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX
    strict_optics: bool = False
    #: the image's optics given on the command line ({field: value}; None or a missing field: from the file)
    optics: dict | None = None
    #: time-lapses: sigma (frames) of the Gaussian that combines each frame's map with its neighbours' (0: none)
    time_smoothing: float = 0.0
    #: (vendor file, scene name) when the file this job is given holds one scene of that file
    #: (:mod:`awdvd.batch.scene_files`): the outputs' metadata name them as the input
    scene_of: tuple[str, str] | None = None

    def __post_init__(self):
        object.__setattr__(self, "out_dir", check_output_folder(Path(self.out_dir).absolute()))
        if not isinstance(self.model, ModelFile):
            raise TypeError("model must be a ModelFile (a path loaded on each worker), not a loaded model")
        if not isinstance(self.options, AWDVDOptions):
            raise TypeError(f"options must be an AWDVDOptions, got {type(self.options).__name__}")
        if self.model.device != self.options.device:  # one device setting: the options'
            object.__setattr__(self, "model", ModelFile(self.model.path, device=self.options.device))
        check_positive_int(self.tile_px, "tile_px", minimum=128)
        check_positive_int(self.max_px, "max_px")
        given = {k: v for k, v in (self.optics or {}).items() if v is not None}
        unknown = set(given) - set(OPTICS_FIELDS)
        if unknown:
            raise TypeError(f"unknown optics {sorted(unknown)}; give {', '.join(OPTICS_FIELDS)}")
        object.__setattr__(self, "optics", given)
        if isinstance(self.time_smoothing, bool) or not isinstance(self.time_smoothing, (int, float)) \
                or not 0 <= self.time_smoothing < float("inf"):
            raise ValueError(f"time_smoothing must be a number of frames >= 0, got {self.time_smoothing!r}")

    def check_model(self):
        """Load the model here (once) and check the options against it: a missing or broken model file, or a
        stride larger than its windows, is one error before any file is touched. Returns the model."""
        model = self.model()
        self.options.check_patch_px(int(model.patch_px))
        return model

    def is_large(self, path: Path) -> bool:
        """True if ``path`` holds more than ``max_px`` pixels (from its metadata); False if that cannot be
        read (the job itself will then report what is wrong with the file)."""

        try:
            shape = image_shape(path)
        except Exception:
            return False
        return len(shape) >= 2 and should_tile(shape, max_px=self.max_px)

    def _stem(self, path: Path) -> str:
        return image_stem(path)

    def input_fields(self, path: Path) -> dict:
        """What the outputs' metadata say the input was: ``{"input": path}``, or the vendor file and the scene."""
        if self.scene_of is None:
            return {"input": str(path)}
        return {"input": str(self.scene_of[0]), "scene": str(self.scene_of[1])}

    def layout(self, path: Path) -> Layout:
        """``path``'s :class:`Layout`, from its metadata (what cannot be read counts as one 2-D plane: the job
        itself then says what is wrong with the file)."""
        axis = stack_axis(path)
        return Layout(channels=channels_in(path), timelapse=axis == "T", stack=axis == "Z", large=self.is_large(path))

    def named_outputs(self, stem: str, layout: Layout) -> list[Path]:
        """The outputs of a field named ``stem`` (in ``out_dir``) laid out as ``layout``, its sidecar last."""
        raise NotImplementedError

    def outputs(self, path: Path) -> list[Path]:
        """The outputs of ``path``, its sidecar last: of a file of several scenes, every scene's outputs (named
        ``STEM.SCENE``, :mod:`awdvd.batch.scene_files`) and then the file's own sidecar."""
        if scene_count(path) > 1:
            scenes = [o for _, stem, layout in self.scenes(path) for o in self.named_outputs(stem, layout)]
            return [*scenes, self.sidecar(path)]
        return self.named_outputs(self._stem(path), self.layout(path))

    def scenes(self, path: Path) -> list[tuple[str, str, Layout]]:
        """(scene name, ``STEM.SCENE``, :class:`Layout`) of every scene of a vendor file, in the file's order."""
        layouts = [Layout.of_shape(shape, max_px=self.max_px) for shape in scene_shapes(path)]
        names = scene_names(path)
        return list(zip(names, scene_stems(path, names), layouts))

    def is_own_output(self, path: Path) -> bool:
        """True for a file that is an output of awdvd (its name ends like one, :data:`OUTPUT_SUFFIXES`, and awdvd
        wrote it): found in a folder or by a pattern, it is not an input."""

        name = Path(path).name.lower()
        return (name.endswith(OUTPUT_SUFFIXES) or name == FOCUS_PLATE) and made_by_awdvd(path)

    def finish(self, plan, report) -> dict[str, Path]:
        """Write what belongs to the whole run once its files are done; returns {what: path}."""
        return {}

    def settings(self) -> dict:
        """What decides the outputs' content, as stored in each sidecar ("options": the AWDVD options, "job":
        model and output settings), so that finished files made otherwise are not skipped as if redone."""
        raise NotImplementedError

    def sidecar(self, path: Path) -> Path:
        raise NotImplementedError

    def write_sidecar(self, path: Path, meta: dict) -> None:
        """Write ``path``'s sidecar, last (its presence says the file is done), if ``path`` still holds what
        ``meta["input_file"]`` recorded before it was read; else remove the outputs this run wrote for it and
        raise :class:`InputChangedError` (a microscope still writing the file, a copy in progress)."""
        if same_content(meta.get("input_file"), path) is False:
            for output in self.outputs(path):
                if output.is_dir():
                    shutil.rmtree(output, ignore_errors=True)
                elif output.exists():
                    output.unlink()
            raise InputChangedError(f"{path} changed while awdvd read it (its size or content differ from when it "
                                    "started); nothing was kept for it: run again once the file is complete")
        write_json(self.sidecar(path), meta, overwrite=True)


class InputChangedError(RuntimeError):
    """An input file changed while a job read it (its outputs would mix two versions of it)."""


