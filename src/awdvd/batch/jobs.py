"""The per-file work of ``awdvd predict`` and ``awdvd deconvolve``, as jobs for :func:`awdvd.batch.runner.run_batch`.

A job is a frozen dataclass: the output folder, the model file, the :class:`awdvd.restore.options.AWDVDOptions` and the
output format (small and picklable: it is what travels to the Dask workers). ``job(path)`` is read -> restore
(:func:`awdvd.restore.pipeline.restore_image`, which chooses whole or tiled) -> write: each output atomically, the JSON
sidecar last (it stores ``options.to_dict()`` and what the pipeline resolved: offset, iterations, device).
``job.outputs(path)`` names the outputs, so a rerun skips the files whose outputs all exist. The model and the
PSF bank are loaded once per process (so once per Dask worker) with :func:`awdvd._cluster.worker_resource`.

Images of more than ``max_px`` pixels (default 4096 x 4096) are never read whole: they go through
:mod:`awdvd.restore.tiles`, and their restored image is written as OME-Zarr unless another format is asked for.

Each sidecar also records the input it was made from (:func:`awdvd.batch.reruns.input_record`: size, time stamp,
content hash) and the optics the file records beside the model's; a large image is restored into a resumable
part of its output (:mod:`awdvd.io.resumable`), so a stopped run keeps its map and finished tiles. A
:class:`PredictJob` writes the run's focus QC (:mod:`awdvd.qc`) when the run ends (``job.finish``).

:func:`run_jobs` (in :mod:`awdvd.batch.orchestrate`, importable from here) discovers and plans the files once, checks the
options against the model up front, and runs the job: small files one per Dask worker (or all in this process:
:func:`auto_workers` decides when ``workers`` is not given), large files one after another in this process with
their tiles spread over the same workers. It returns one :class:`awdvd.batch.runner.BatchReport`.

Example ::

    job = DeconvolveJob(out_dir=Path("restored"), model=ModelFile("delpnet.pt"), options=AWDVDOptions(stride=21))
    report = run_jobs(["raw/*.tif"], job)
    print(report.summary())
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .._checks import check_positive_int
from .._cluster import worker_resource, worker_resource_loads
from .._device import resolve_device
from ..io import (
    LARGEST_IMAGE_IN_MEMORY_PX,
    check_output_folder,
    file_identity,
    image_shape,
    image_stem,
    made_by_awdvd,
    open_image_output,
    read_image,
    read_json,
    write_image,
    write_json,
    write_tiff,
)
from ..learn.model_files import load_model
from ..physics.optics import UndersamplingWarning
from ..physics.psf import psf_bank
from ..plots import defocus_overlay
from ..qc import focus_columns, focus_row, parse_well, plate_heatmap, write_focus_csv
from ..restore.image_optics import restoration_optics
from ..restore.options import AWDVDOptions
from ..restore.pipeline import defocus_map, restore_image
from ..restore.rl import to_input_dtype
from ..restore.tiling import DEFAULT_TILE_PX, should_tile
from ..restore.windows import DefocusMap
from ..io.channels import channel_count
from .channel_files import restore_channel_file
from .dtype_writer import DtypeWriter
from .file_optics import OPTICS_FIELDS, file_optics
from .reruns import input_record
from .stack_maps import predict_stack

__all__ = ["ModelFile", "DeconvolveJob", "PredictJob", "run_jobs", "auto_workers", "FORMATS", "OUTPUT_SUFFIXES",
           "FOCUS_CSV", "FOCUS_PLATE", "CLUSTER_MIN_FILES_PER_WORKER", "CLUSTER_MIN_CPUS"]

FORMATS = ("auto", "tiff", "ome-tiff", "ome-zarr")
_IMAGE_SUFFIX = {"tiff": ".awdvd.tif", "ome-tiff": ".awdvd.ome.tif", "ome-zarr": ".awdvd.ome.zarr"}
#: the name endings of the images awdvd's jobs write: found in a folder or by a pattern, such a file that awdvd
#: wrote (awdvd.io.made_by_awdvd) is never taken as an input, so the output folder may be the input folder
OUTPUT_SUFFIXES = (*_IMAGE_SUFFIX.values(), ".defocus.tif", ".defocus.png")
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


def _psf_bank(optics, size: int | None) -> np.ndarray:
    key = ("psf_bank", json.dumps(optics.to_dict(), sort_keys=True), size)
    return worker_resource(key, lambda: psf_bank(optics, size=size))


def _load_counts() -> dict:
    return {k[0]: v for k, v in worker_resource_loads().items() if isinstance(k, tuple) and k[0] in ("model", "psf_bank")}


# --------------------------------------------------------------------------------------------- common
class _Recorder:
    """Collects the warnings of one file (worker logs are not shown to users: the CLI prints these)."""

    def __init__(self):
        self.messages: list[str] = []

    @contextlib.contextmanager
    def capture(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", UndersamplingWarning)  # the paper's optics are undersampled by design
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
        for item in caught:
            text = str(item.message).strip().splitlines()[0] if str(item.message).strip() else item.category.__name__
            if text not in self.messages:
                self.messages.append(text)


def _read_plane(path: Path, *, restore: bool):
    image = read_image(path)  # 2-D, or a (Z, H, W) stack for awdvd predict
    if image.data.ndim != 2 and (restore or image.data.ndim != 3):
        stack = f"{path.name} holds a stack of shape {tuple(image.data.shape)}"
        raise ValueError(f"{stack}: restoring a z-stack plane by plane with 2-D PSFs would be physically wrong "
                         "(each plane's out-of-focus light comes from the others); it needs 3-D deconvolution "
                         "(e.g. deconwolf), or save single planes as separate files")
    return image


def _is_stack(path: Path) -> bool:
    with contextlib.suppress(Exception):
        return len(image_shape(path)) == 3
    return False


@dataclass(frozen=True)
class _Job:
    out_dir: Path
    model: ModelFile = ModelFile()
    options: AWDVDOptions = AWDVDOptions()
    tile_px: int = DEFAULT_TILE_PX
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX
    strict_optics: bool = False
    #: the image's optics given on the command line ({field: value}; None or a missing field: from the file)
    optics: dict | None = None

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


# --------------------------------------------------------------------------------------------- deconvolve
@dataclass(frozen=True)
class DeconvolveJob(_Job):
    """AWDVD of one image file: defocus map, depth-variant RL, blend (:func:`awdvd.restore.pipeline.restore_image` with
    ``options``); writes ``STEM.awdvd.<format>`` and ``STEM.awdvd.json`` into ``out_dir``.

    dtype : "float32" or "input" (rounded and clipped to the input's type; clipped pixels are counted).
    output_format : "auto" (TIFF, or OME-Zarr for large images), "tiff", "ome-tiff" or "ome-zarr".
    tile_px, max_px : images of more than ``max_px`` pixels are processed in ``tile_px`` tiles.
    map_channel, channels : for files with several channels (:mod:`awdvd.batch.channel_files`, written as
        ``STEM.awdvd.ome.tif``): the channel the map is made from and those restored (names or indices; None:
        a nuclear stain's, and all).
    """

    dtype: str = "float32"
    output_format: str = "auto"
    map_channel: str | None = None
    channels: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.dtype not in ("float32", "input"):
            raise ValueError(f"dtype must be 'float32' or 'input', got {self.dtype!r}")
        if self.output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {FORMATS}, got {self.output_format!r}")

    def format_for(self, large: bool) -> str:
        if self.output_format != "auto":
            return self.output_format
        return "ome-zarr" if large else "tiff"

    def image_output(self, path: Path, *, large: bool | None = None) -> Path:
        if _channels_in(path) > 1:
            return self.out_dir / f"{self._stem(path)}{_IMAGE_SUFFIX['ome-tiff']}"
        large = self.is_large(path) if large is None else large
        return self.out_dir / f"{self._stem(path)}{_IMAGE_SUFFIX[self.format_for(large)]}"

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.awdvd.json"

    def outputs(self, path: Path) -> list[Path]:
        """The restored image and its JSON sidecar (written last)."""
        return [self.image_output(path), self.sidecar(path)]

    def settings(self) -> dict:
        return {"options": self.options.to_dict(),
                "job": {"model": self.model.describe(), "dtype": self.dtype, "format": self.output_format,
                        "optics": self.optics, "map_channel": self.map_channel, "channels": self.channels}}

    def _resume_key(self, source: dict, shape, fmt: str, dtype) -> str:
        """What a tiled restoration's pixels depend on, hashed: a resumable part made for anything else (another
        input, options, model file, tile size, awdvd version, device) is not resumed."""

        model = file_identity(self.model.path)["hash"] if self.model.path else "bundled"
        payload = {"input": [source["size"], source["hash"]], **self.settings(), "model_file": model,
                   "tile_px": self.tile_px, "shape": list(shape), "format": fmt, "dtype": str(dtype),
                   "device": resolve_device(self.options.device), "version": __version__}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def _tiled_map(self, data, part, optics, *, client, progress) -> tuple:
        """(the defocus map of a tiled image, seconds): from the resumable ``part`` when an earlier run of the same
        work saved it there, else computed (:func:`awdvd.restore.pipeline.defocus_map`) and saved."""

        saved = part.folder / "defocus_map.npz"
        if part.resumed and saved.is_file():
            try:
                with np.load(saved, allow_pickle=False) as f:
                    fields = json.loads(str(f["fields"]))
                    return DefocusMap(**{k: f[k] for k in ("levels", "proba", "class_levels", "ys", "xs")},
                                      **fields), 0.0
            except (OSError, ValueError, KeyError):
                pass  # unreadable: computed again
        start = time.perf_counter()
        dmap = defocus_map(data, self.model, self.options, optics=optics, tile_px=self.tile_px, max_px=self.max_px,
                           client=client, progress=progress)
        seconds = time.perf_counter() - start
        fields = {"image_shape": [int(v) for v in dmap.image_shape], "patch_px": int(dmap.patch_px),
                  "stride": int(dmap.stride), "mode": dmap.mode, "normalization": dmap.normalization,
                  "z_step_um": dmap.z_step_um}
        tmp = part.folder / "defocus_map.part.npz"
        with open(tmp, "wb") as handle:
            np.savez(handle, levels=dmap.levels, proba=dmap.proba, class_levels=dmap.class_levels, ys=dmap.ys,
                     xs=dmap.xs, fields=np.array(json.dumps(fields)))
        os.replace(tmp, saved)
        return dmap, round(seconds, 4)

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        """Restore ``path`` and write its outputs; ``client`` spreads a large image's tiles over a cluster."""

        path = Path(path)
        recorder = _Recorder()
        start = time.perf_counter()
        with recorder.capture():
            source = input_record(path)  # before reading: a file changed meanwhile is redone next time
            model = self.model()
            if _channels_in(path) > 1:
                return self._channels(path, model, source, recorder, start)
            image = _read_plane(path, restore=True)
            found = file_optics(path, model.optics, self.optics, strict=self.strict_optics)
            psfs = _psf_bank(restoration_optics(found.optics, model.optics), self.options.psf_size)
            large = should_tile(image.data.shape, max_px=self.max_px)
            fmt = self.format_for(large)
            target = self.image_output(path, large=large)
            pixel_um = found.optics.pixel_um
            out_dtype = np.dtype(np.float32 if self.dtype == "float32" else image.data.dtype)
            meta = {"awdvd": "deconvolve", "version": __version__, "input": str(path), "output": str(target),
                    **self.settings()}
            # the parameters actually used: the options, completed below with what the pipeline resolved
            parameters = {**self.options.to_dict(), "model": self.model.describe(), "optics": found.record(),
                          "model_optics": model.optics.to_dict(), "dtype": str(out_dtype),
                          "tile_px": self.tile_px if large else None}
            description = {"awdvd": "deconvolve", "version": __version__, "input": str(path), "parameters": parameters}
            restore = dict(psfs=psfs, optics=found.optics, tile_px=self.tile_px, max_px=self.max_px)
            if not large:
                result = restore_image(np.asarray(image.data), model, self.options, **restore)
                restored, clipped = result.image, 0
                if self.dtype == "input":
                    restored, clipped = to_input_dtype(restored, image.data.dtype)
                parameters.update(result.resolved())
                write_image(target, restored, format=fmt, pixel_um=pixel_um, overwrite=True, description=description,
                            chunks=self.tile_px)
            else:
                # in the output's resumable part (awdvd.io.resumable): a run stopped midway (Ctrl-C, SIGTERM, killed)
                # and started again keeps the map and the tiles already restored. TIFF outputs take
                # ``description`` when the block ends, after ``parameters`` has been completed
                key = self._resume_key(source, image.data.shape, fmt, out_dtype)
                with open_image_output(target, format=fmt, shape=image.data.shape, dtype=out_dtype, pixel_um=pixel_um,
                                       chunks=self.tile_px, overwrite=True, description=description,
                                       resume_key=key) as out:
                    writer = DtypeWriter(out, out.dtype)
                    dmap, map_s = self._tiled_map(image.data, out.part, found.optics, client=client,
                                                  progress=progress)
                    result = restore_image(image.data, self.model, self.options, dmap=dmap, out=writer, client=client,
                                           progress=progress, **restore)
                    result.timings_s["defocus_map"] = map_s
                    parameters.update(result.resolved(), resumed_tiles=writer.resumed_tiles)
                clipped = writer.clipped
        if clipped:
            total = int(np.prod(image.data.shape))
            recorder.messages.append(
                f"{clipped} of {total} pixels ({clipped / total:.2%}) of the restoration fell outside the {out_dtype} "
                "range and were clipped to it (--dtype float32 keeps every value)")
        meta.update(
            input_file=source,
            parameters=parameters,
            levels_used={name: n for name, n in result.dmap.level_counts().items() if n},
            level_grid=result.dmap.levels.tolist(),
            clipped_pixels=clipped,
            warnings=recorder.messages,
            timings_s={**result.timings_s, "total": round(time.perf_counter() - start, 4)},
        )
        write_json(self.sidecar(path), meta, overwrite=True)  # last: its presence says the file is done
        return {"output": str(target), "large": large, "clipped_pixels": clipped, "warnings": recorder.messages,
                "levels_used": meta["levels_used"], "timings_s": meta["timings_s"], "loads": _load_counts()}


    def _channels(self, path: Path, model, source: dict, recorder: _Recorder, start: float) -> dict:
        with recorder.capture():
            done = restore_channel_file(self, path, model, self.image_output(path), source=source, start=start,
                                        messages=recorder.messages)
        return {**done, "loads": _load_counts()}


def _channels_in(path: Path) -> int:
    """How many channels ``path`` holds (1 when that cannot be read: the job then says what is wrong)."""
    try:
        return channel_count(path)
    except Exception:
        return 1


# --------------------------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class PredictJob(_Job):
    """The defocus map of one image file (``options``' stride, map mode, normalisation and device):
    ``STEM.defocus.tif`` (float32 planes over the window grid: the level of every window, -1 = background, then
    one probability plane per class), ``STEM.defocus.png`` (the levels over the image; not drawn for large
    images) and ``STEM.defocus.json``."""

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.defocus.json"

    def outputs(self, path: Path) -> list[Path]:
        stem = self.out_dir / self._stem(path)
        pictures = [] if self.is_large(path) or _is_stack(path) else [Path(f"{stem}.defocus.png")]
        return [Path(f"{stem}.defocus.tif"), *pictures, self.sidecar(path)]

    def settings(self) -> dict:
        o = self.options
        return {"options": {"stride": o.stride, "map_mode": o.map_mode, "normalization": o.normalization,
                            "tta": o.tta, "smoothing_px": o.smoothing_px},
                "job": {"model": self.model.describe(), "optics": self.optics}}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        path = Path(path)
        recorder = _Recorder()
        stem = self.out_dir / self._stem(path)
        with recorder.capture():
            source = input_record(path)  # before reading: a file changed meanwhile is redone next time
            model = self.model()
            image = _read_plane(path, restore=False)
            found = file_optics(path, model.optics, self.optics, strict=self.strict_optics)
            if image.data.ndim == 3:
                result = predict_stack(self, path, image.data, model, found, source=source,
                                       messages=recorder.messages)
                return {**result, "loads": _load_counts()}
            large = should_tile(image.data.shape, max_px=self.max_px)
            start = time.perf_counter()
            data = image.data if large else np.asarray(image.data)
            dmap = defocus_map(data, self.model if large else model, self.options, optics=found.optics,
                               tile_px=self.tile_px, max_px=self.max_px, client=client, progress=progress)
            seconds = time.perf_counter() - start
            class_names = ["bg" if level < 0 else str(int(level)) for level in dmap.class_levels]
            planes = np.concatenate([dmap.levels[None].astype(np.float32), dmap.depth_um[None].astype(np.float32),
                                     dmap.depth_spread_um[None].astype(np.float32), np.moveaxis(dmap.proba, -1, 0)])
            meta = {
                "awdvd": "predict",
                "version": __version__,
                "input": str(path),
                **self.settings(),
                "image_shape": list(dmap.image_shape),
                "planes": ["level", "depth_um", "depth_spread_um"] + [f"p({name})" for name in class_names],
                "z_step_um": dmap.z_step_um,
                "patch_px": dmap.patch_px,
                "stride": dmap.stride,
                "window_rows": dmap.ys.tolist(),
                "window_cols": dmap.xs.tolist(),
                "mode": dmap.mode,
                "normalization": dmap.normalization,
                "model": self.model.describe(),
                "device": str(model.device),
                "tiled": large,
                "input_file": source,
                "optics": found.record(),
            }
            write_tiff(f"{stem}.defocus.tif", planes, overwrite=True, description=meta)
            if not large:
                depths = restoration_optics(found.optics, model.optics).depths_um
                defocus_overlay(np.asarray(image.data), dmap, f"{stem}.defocus.png", depths_um=depths,
                                overwrite=True, title=f"{path.name}: defocus levels, stride {dmap.stride} px",
                                pixel_um=found.optics.pixel_um)
        row = focus_row(path.name, dmap)
        write_json(self.sidecar(path), {**meta, "levels": dmap.levels.tolist(), "counts": dmap.level_counts(),
                                        "focus_qc": row, "warnings": recorder.messages,
                                        "timings_s": {"map": round(seconds, 4)}}, overwrite=True)
        return {"large": large, "counts": dmap.level_counts(), "warnings": recorder.messages, "loads": _load_counts()}

    def finish(self, plan, report) -> dict[str, Path]:
        """The run's focus QC (:mod:`awdvd.qc`) in ``out_dir``: :data:`FOCUS_CSV`, one row per image of the run
        (done now or earlier: the rows come from the sidecars), and :data:`FOCUS_PLATE`, the median level per
        well, where the file names carry plate wells. Both are rewritten by every run."""

        rows = []
        for result in report.results:
            if result.status == "failed":
                continue
            try:
                row = read_json(self.sidecar(result.path)).get("focus_qc")
            except (OSError, ValueError):
                row = None
            for one in row if isinstance(row, list) else [row]:  # a z-stack has a row per plane
                if isinstance(one, dict):  # the sidecar keeps keys sorted: back in the table's column order
                    columns = focus_columns(sum(key.startswith("fraction_level_") for key in one))
                    rows.append({key: one.get(key) for key in columns})
        if not rows:
            return {}
        written = {"focus QC": write_focus_csv(self.out_dir / FOCUS_CSV, rows, overwrite=True)}
        if any(parse_well(row["image"]) for row in rows):
            written["plate heat-map"] = plate_heatmap(rows, self.out_dir / FOCUS_PLATE, overwrite=True)
        return written


# run_jobs and auto_workers live in awdvd.batch.orchestrate (running a job over many files); re-exported here
from .orchestrate import CLUSTER_MIN_CPUS, CLUSTER_MIN_FILES_PER_WORKER, auto_workers, run_jobs  # noqa: E402
