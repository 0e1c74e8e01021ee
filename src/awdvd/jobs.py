"""The per-file work of ``awdvd predict`` and ``awdvd deconvolve``, as jobs for :func:`awdvd.batch.run_batch`.

A job is a frozen dataclass: the output folder, the model file, the :class:`awdvd.restore.AWDVDOptions` and the
output format (small and picklable: it is what travels to the Dask workers). ``job(path)`` is read -> restore
(:func:`awdvd.restore.restore_image`, which chooses whole or tiled) -> write: each output atomically, the JSON
sidecar last (it stores ``options.to_dict()`` and what the pipeline resolved: offset, iterations, device).
``job.outputs(path)`` names the outputs, so a rerun skips the files whose outputs all exist. The model and the
PSF bank are loaded once per process (so once per Dask worker) with :func:`awdvd.batch.worker_resource`.

Images of more than ``max_px`` pixels (default 4096 x 4096) are never read whole: they go through
:mod:`awdvd.tiles`, and their restored image is written as OME-Zarr unless another format is asked for.

:func:`run_jobs` discovers and plans the files once, checks the options against the model up front, and runs
the job: small files one per Dask worker (or all in this process: :func:`auto_workers` decides when
``workers`` is not given), large files one after another in this process with their tiles spread over the same
workers. It returns one :class:`awdvd.batch.BatchReport`.

Example ::

    job = DeconvolveJob(out_dir=Path("restored"), model=ModelFile("delpnet.pt"), options=AWDVDOptions(stride=21))
    report = run_jobs(["raw/*.tif"], job)
    print(report.summary())
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._checks import check_positive_int
from .io import LARGEST_IMAGE_IN_MEMORY_PX
from .restore import AWDVDOptions
from .tiles import DEFAULT_TILE_PX

__all__ = ["ModelFile", "DeconvolveJob", "PredictJob", "run_jobs", "auto_workers", "FORMATS",
           "CLUSTER_MIN_FILES_PER_WORKER", "CLUSTER_MIN_CPUS"]

FORMATS = ("auto", "tiff", "ome-tiff", "ome-zarr")
_IMAGE_SUFFIX = {"tiff": ".awdvd.tif", "ome-tiff": ".awdvd.ome.tif", "ome-zarr": ".awdvd.ome.zarr"}


# --------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelFile:
    """A model file to load where the work runs, once per process: calling it returns the
    :class:`awdvd.model.DefocusModel` (``path`` None: the model bundled with awdvd) on ``device`` ("auto":
    CUDA where the process sees a GPU, else the CPU; resolved where it is loaded)."""

    path: str | None = None
    device: str = AWDVDOptions.device  # the options' default; a job sets its options' device

    def __post_init__(self):
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).absolute()))

    def __call__(self):
        from ._device import resolve_device
        from .batch import worker_resource
        from .model import load_model

        device = resolve_device(self.device)
        return worker_resource(("model", self.path, device), lambda: load_model(self.path, device=device))

    def describe(self) -> str:
        return self.path or "bundled"


def _psf_bank(optics, size: int | None) -> np.ndarray:
    from .batch import worker_resource
    from .psf import psf_bank

    key = ("psf_bank", json.dumps(optics.to_dict(), sort_keys=True), size)
    return worker_resource(key, lambda: psf_bank(optics, size=size))


def _load_counts() -> dict:
    from .batch import worker_resource_loads

    return {k[0]: v for k, v in worker_resource_loads().items() if isinstance(k, tuple) and k[0] in ("model", "psf_bank")}


# --------------------------------------------------------------------------------------------- common
class _Recorder:
    """Collects the warnings of one file (worker logs are not shown to users: the CLI prints these)."""

    def __init__(self):
        self.messages: list[str] = []

    @contextlib.contextmanager
    def capture(self):
        from .optics import UndersamplingWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", UndersamplingWarning)  # the paper's optics are undersampled by design
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
        for item in caught:
            text = str(item.message).strip().splitlines()[0] if str(item.message).strip() else item.category.__name__
            if text not in self.messages:
                self.messages.append(text)


def _read_plane(path: Path):
    from .io import read_image

    image = read_image(path)
    if image.data.ndim != 2:
        raise ValueError(f"{path.name} holds a stack of shape {tuple(image.data.shape)}; awdvd restores 2-D images: "
                         "save the planes as separate files")
    return image


@dataclass(frozen=True)
class _Job:
    out_dir: Path
    model: ModelFile = ModelFile()
    options: AWDVDOptions = AWDVDOptions()
    tile_px: int = DEFAULT_TILE_PX
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX

    def __post_init__(self):
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise NotADirectoryError(f"{self.out_dir} exists and is not a folder; the output (-o) is a folder")
        if not isinstance(self.model, ModelFile):
            raise TypeError("model must be a ModelFile (a path loaded on each worker), not a loaded model")
        if not isinstance(self.options, AWDVDOptions):
            raise TypeError(f"options must be an AWDVDOptions, got {type(self.options).__name__}")
        if self.model.device != self.options.device:  # one device setting: the options'
            object.__setattr__(self, "model", ModelFile(self.model.path, device=self.options.device))
        check_positive_int(self.tile_px, "tile_px", minimum=128)
        check_positive_int(self.max_px, "max_px")

    def check_model(self):
        """Load the model here (once) and check the options against it: a missing or broken model file, or a
        stride larger than its windows, is one error before any file is touched. Returns the model."""
        model = self.model()
        self.options.check_patch_px(int(model.patch_px))
        return model

    def is_large(self, path: Path) -> bool:
        """True if ``path`` holds more than ``max_px`` pixels (from its metadata); False if that cannot be
        read (the job itself will then report what is wrong with the file)."""
        from .io import image_shape
        from .tiles import should_tile

        try:
            shape = image_shape(path)
        except Exception:
            return False
        return len(shape) >= 2 and should_tile(shape, max_px=self.max_px)

    def _stem(self, path: Path) -> str:
        from .io import image_stem

        return image_stem(path)

    def settings(self) -> dict:
        """What decides the outputs' content, as stored in each sidecar ("options": the AWDVD options, "job":
        model and output settings), so that finished files made otherwise are not skipped as if redone."""
        raise NotImplementedError

    def sidecar(self, path: Path) -> Path:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- deconvolve
class _DtypeWriter:
    """An output array's stand-in that converts float32 tiles to ``dtype`` as they are written (rounding and
    clipping are per pixel, so tile by tile equals whole) and counts the clipped pixels."""

    def __init__(self, target, dtype):
        self.target, self.dtype, self.clipped = target, np.dtype(dtype), 0
        self.shape = tuple(target.shape)

    def __setitem__(self, index, value):
        from .rl import to_input_dtype

        converted, clipped = to_input_dtype(value, self.dtype)
        self.clipped += clipped
        self.target[index] = converted


@dataclass(frozen=True)
class DeconvolveJob(_Job):
    """AWDVD of one image file: defocus map, depth-variant RL, blend (:func:`awdvd.restore.restore_image` with
    ``options``); writes ``STEM.awdvd.<format>`` and ``STEM.awdvd.json`` into ``out_dir``.

    dtype : "float32" or "input" (rounded and clipped to the input's type; clipped pixels are counted).
    output_format : "auto" (TIFF, or OME-Zarr for large images), "tiff", "ome-tiff" or "ome-zarr".
    tile_px, max_px : images of more than ``max_px`` pixels are processed in ``tile_px`` tiles.
    """

    dtype: str = "float32"
    output_format: str = "auto"

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
        large = self.is_large(path) if large is None else large
        return self.out_dir / f"{self._stem(path)}{_IMAGE_SUFFIX[self.format_for(large)]}"

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.awdvd.json"

    def outputs(self, path: Path) -> list[Path]:
        """The restored image and its JSON sidecar (written last)."""
        return [self.image_output(path), self.sidecar(path)]

    def settings(self) -> dict:
        return {"options": self.options.to_dict(),
                "job": {"model": self.model.describe(), "dtype": self.dtype, "format": self.output_format}}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        """Restore ``path`` and write its outputs; ``client`` spreads a large image's tiles over a cluster."""
        from . import __version__
        from .io import open_image_output, write_image, write_json
        from .restore import restore_image
        from .rl import to_input_dtype
        from .tiles import should_tile

        path = Path(path)
        recorder = _Recorder()
        start = time.perf_counter()
        with recorder.capture():
            model = self.model()
            psfs = _psf_bank(model.optics, self.options.psf_size)
            image = _read_plane(path)
            large = should_tile(image.data.shape, max_px=self.max_px)
            fmt = self.format_for(large)
            target = self.image_output(path, large=large)
            pixel_um = image.pixel_um or model.optics.pixel_um
            out_dtype = np.dtype(np.float32 if self.dtype == "float32" else image.data.dtype)
            meta = {"awdvd": "deconvolve", "version": __version__, "input": str(path), "output": str(target),
                    **self.settings()}
            # the parameters actually used: the options, completed below with what the pipeline resolved
            parameters = {**self.options.to_dict(), "model": self.model.describe(), "optics": model.optics.to_dict(),
                          "pixel_um": pixel_um, "dtype": str(out_dtype), "tile_px": self.tile_px if large else None}
            description = {"awdvd": "deconvolve", "version": __version__, "input": str(path), "parameters": parameters}
            restore = dict(psfs=psfs, pixel_um=image.pixel_um, tile_px=self.tile_px, max_px=self.max_px)
            if not large:
                result = restore_image(np.asarray(image.data), model, self.options, **restore)
                restored, clipped = result.image, 0
                if self.dtype == "input":
                    restored, clipped = to_input_dtype(restored, image.data.dtype)
                parameters.update(result.resolved())
                write_image(target, restored, format=fmt, pixel_um=pixel_um, overwrite=True, description=description,
                            chunks=self.tile_px)
            else:
                # TIFF outputs take ``description`` when the block ends, after ``parameters`` has been completed
                with open_image_output(target, format=fmt, shape=image.data.shape, dtype=out_dtype, pixel_um=pixel_um,
                                       chunks=self.tile_px, overwrite=True, description=description) as out:
                    writer = _DtypeWriter(out, out.dtype)
                    result = restore_image(image.data, self.model, self.options, out=writer, client=client,
                                           progress=progress, **restore)
                    parameters.update(result.resolved())
                clipped = writer.clipped
        meta.update(
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
        pictures = [] if self.is_large(path) else [Path(f"{stem}.defocus.png")]
        return [Path(f"{stem}.defocus.tif"), *pictures, self.sidecar(path)]

    def settings(self) -> dict:
        o = self.options
        return {"options": {"stride": o.stride, "map_mode": o.map_mode, "normalization": o.normalization},
                "job": {"model": self.model.describe()}}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        from . import __version__
        from .io import check_pixel_size, write_json, write_tiff
        from .restore import defocus_map_of
        from .tiles import should_tile

        path = Path(path)
        recorder = _Recorder()
        stem = self.out_dir / self._stem(path)
        with recorder.capture():
            model = self.model()
            image = _read_plane(path)
            check_pixel_size(image.pixel_um, model.optics.pixel_um)
            large = should_tile(image.data.shape, max_px=self.max_px)
            start = time.perf_counter()
            data = image.data if large else np.asarray(image.data)
            dmap = defocus_map_of(data, self.model if large else model, self.options, tile_px=self.tile_px,
                                  max_px=self.max_px, client=client, progress=progress)
            seconds = time.perf_counter() - start
            class_names = ["bg" if level < 0 else str(int(level)) for level in dmap.class_levels]
            planes = np.concatenate([dmap.levels[None].astype(np.float32), np.moveaxis(dmap.proba, -1, 0)])
            meta = {
                "awdvd": "predict",
                "version": __version__,
                "input": str(path),
                **self.settings(),
                "image_shape": list(dmap.image_shape),
                "planes": ["level"] + [f"p({name})" for name in class_names],
                "patch_px": dmap.patch_px,
                "stride": dmap.stride,
                "window_rows": dmap.ys.tolist(),
                "window_cols": dmap.xs.tolist(),
                "mode": dmap.mode,
                "normalization": dmap.normalization,
                "model": self.model.describe(),
                "device": str(model.device),
                "tiled": large,
            }
            write_tiff(f"{stem}.defocus.tif", planes, overwrite=True, description=meta)
            if not large:
                from .plots import defocus_overlay

                defocus_overlay(np.asarray(image.data), dmap, f"{stem}.defocus.png", depths_um=model.optics.depths_um,
                                overwrite=True, title=f"{path.name}: defocus levels, stride {dmap.stride} px")
        write_json(self.sidecar(path), {**meta, "levels": dmap.levels.tolist(), "counts": dmap.level_counts(),
                                        "warnings": recorder.messages, "timings_s": {"map": round(seconds, 4)}},
                   overwrite=True)
        return {"large": large, "counts": dmap.level_counts(), "warnings": recorder.messages, "loads": _load_counts()}


# --------------------------------------------------------------------------------------------- run
def _check_finished_match(plan, job) -> None:
    """Refuse to skip finished files that were made with other settings: the user would think them redone."""
    from .io import read_json

    wanted = job.settings()
    for path in plan.paths:
        if not plan.done(path):
            continue
        try:
            made = read_json(job.sidecar(path))
        except (OSError, ValueError):
            continue
        differ = []
        for section, values in wanted.items():
            recorded = made.get(section)
            if isinstance(recorded, dict):
                differ += [(k, recorded[k], v) for k, v in values.items() if k in recorded and recorded[k] != v]
        if differ:
            shown = ", ".join(f"{k} {old!r} (now {new!r})" for k, old, new in differ[:3])
            raise ValueError(f"{job.sidecar(path)} was made with other options: {shown}; pass --overwrite "
                             "(overwrite=True) to redo finished files, or write to another output folder")


def _merge(reports, paths, seconds: float, where: str):
    from .batch import BatchReport

    by_path = {r.path: r for report in reports for r in report.results}
    return BatchReport(results=tuple(by_path[p] for p in paths), seconds=seconds, where=where)


#: a local cluster is started for small files only with at least this many CPUs ...
CLUSTER_MIN_CPUS = 4
#: ... and at least this many files to do per worker (see :func:`auto_workers`)
CLUSTER_MIN_FILES_PER_WORKER = 4


def auto_workers(n_files: int, *, any_large: bool, cpus: int | None = None) -> int:
    """The number of Dask workers when none is asked for: 0 (everything in this process) unless a local cluster
    of single-threaded workers can be expected to pay for itself.

    In this process every file gets all the CPUs (RL's FFTs and its regions in a thread pool, torch's
    threads); a cluster first starts its workers (a few seconds), each loads torch and the model, and each
    file then runs on one core. Measured on 2 shared cores with BBBC006 fields and the bundled model
    (``benchmarks/bench_batch.py --files N --workers auto,0,2``): one process took 11 s for 6 files and 36 s
    for 20, a local cluster of 2 workers 22 s and 46 s (load average 3.3-4.2; at 9-11: 29 / 78 s against
    51 / 96 s). Where a cluster starts to pay was not measured (no machine with more cores was at hand): the
    thresholds below are deliberately cautious. So:

    - a large image (tiled) anywhere in the batch: one worker per CPU (its tiles use them all);
    - fewer than :data:`CLUSTER_MIN_CPUS` CPUs: 0;
    - else one worker per CPU, at most one per :data:`CLUSTER_MIN_FILES_PER_WORKER` files, and 0 if that
      leaves fewer than two workers.

    ``cpus`` defaults to the CPUs this process may use (:func:`awdvd._threads.available_cpus`).
    """
    from ._threads import available_cpus

    cpus = available_cpus() if cpus is None else check_positive_int(cpus, "cpus")
    if any_large:
        return cpus
    if cpus < CLUSTER_MIN_CPUS:
        return 0
    workers = min(cpus, n_files // CLUSTER_MIN_FILES_PER_WORKER)
    return workers if workers >= 2 else 0


def run_jobs(inputs, job, *, workers: int | None = None, scheduler=None, overwrite: bool = False,
             progress: bool = False):
    """Run ``job`` (a :class:`DeconvolveJob` or :class:`PredictJob`) over image files.

    Parameters
    ----------
    inputs : files, folders or glob patterns (see :func:`awdvd.io.find_images`).
    workers : None (default): :func:`auto_workers`; 0: everything in this process (identical results);
        N >= 1: a local Dask cluster of N single-threaded workers, shared by all files (ignored with
        ``scheduler``).
    scheduler : address of a running Dask scheduler to use instead of a local cluster.
    overwrite : redo files whose outputs exist. Without it they are skipped, unless their sidecar records
        other options (ValueError: rerunning with new options into the same folder must not look done).
    progress : progress bars (files; tiles of large images).

    Returns
    -------
    :class:`awdvd.batch.BatchReport` over all files, in input order. Small files run one per worker; large
    ones one after another in this process, their tiles on the cluster.

    Raises
    ------
    Before any file is processed: FileNotFoundError / ValueError for inputs that name nothing, outputs that
    would replace inputs or collide, finished files made with other options, a model file that cannot be
    loaded or options it cannot take (a stride larger than its windows).
    """
    from .batch import local_cluster, run_batch
    from .io import plan_outputs

    start = time.perf_counter()
    plan = plan_outputs(inputs, job.outputs)  # collisions, outputs that would replace inputs: refused up front
    job.check_model()
    if not overwrite:
        _check_finished_match(plan, job)
    todo = plan.todo(overwrite=overwrite)
    large = {p for p in todo if job.is_large(p)}
    if workers is None and scheduler is None:
        workers = auto_workers(len(todo), any_large=bool(large))
    workers = check_positive_int(0 if workers is None else workers, "workers", minimum=0)
    small_plan = plan.subset(p for p in plan.paths if p not in large)
    large_plan = plan.subset(large)
    common = dict(overwrite=overwrite, progress=progress)

    def run_all(address):
        reports = []
        if small_plan.paths:
            if address is None:
                reports.append(run_batch(small_plan, job, workers=0, **common))
            else:
                reports.append(run_batch(small_plan, job, scheduler=address, **common))
        if large_plan.paths:  # here, one at a time; their tiles go to the cluster
            reports.append(run_batch(large_plan, functools.partial(job, client=address, progress=progress),
                                     workers=0, **common))
        return reports

    if scheduler is not None:
        reports = run_all(scheduler)
        where = f"Dask cluster at {scheduler}"
    elif workers == 0 or not todo:
        reports = run_all(None)
        where = "serial"
    else:
        with local_cluster(workers) as cluster:
            reports = run_all(cluster.scheduler_address)
        where = f"local Dask cluster, {workers} worker{'s' if workers != 1 else ''}"
    return _merge(reports, plan.paths, time.perf_counter() - start, where)
