"""The per-file work of ``awdvd predict`` and ``awdvd deconvolve``, as jobs for :func:`awdvd.batch.run_batch`.

A job is a frozen dataclass of options (small and picklable: it is what travels to the Dask workers).
``job(path)`` reads one image, computes, and writes that image's outputs, each atomically and the JSON sidecar
last; ``job.outputs(path)`` names them, so a rerun skips the files whose outputs all exist. The model and the
PSF bank are loaded once per process (so once per Dask worker) with :func:`awdvd.batch.worker_resource`.

Images of more than ``max_px`` pixels (default 4096 x 4096) are never read whole: they go through
:mod:`awdvd.tiling` (the whole image's window grid, restoration tile by tile), and their restored image is
written as OME-Zarr unless another format is asked for.

:func:`run_jobs` runs a job over files on one cluster: small files one per Dask worker, large files one after
another in this process with their tiles spread over the same workers. It returns one
:class:`awdvd.batch.BatchReport`.

Example ::

    job = DeconvolveJob(out_dir=Path("restored"), model=ModelFile("delpnet.pt"), stride=42, iterations=30)
    report = run_jobs(["raw/*.tif"], job, workers=4)
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

__all__ = ["ModelFile", "DeconvolveJob", "PredictJob", "run_jobs", "FORMATS", "MAP_MODES"]

FORMATS = ("auto", "tiff", "ome-tiff", "ome-zarr")
MAP_MODES = ("patch", "dense")
_IMAGE_SUFFIX = {"tiff": ".awdvd.tif", "ome-tiff": ".awdvd.ome.tif", "ome-zarr": ".awdvd.ome.zarr"}


# --------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelFile:
    """A model file to load where the work runs, once per process: calling it returns the
    :class:`awdvd.model.DefocusModel` (``path`` None: the model bundled with awdvd)."""

    path: str | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).absolute()))

    def __call__(self):
        from .batch import worker_resource
        from .model import load_model

        return worker_resource(("model", self.path, self.device), lambda: load_model(self.path, device=self.device))

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
    stride: int = 42
    map_mode: str = "patch"
    normalization: str = "local"
    tile_px: int = 1024
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise NotADirectoryError(f"{self.out_dir} exists and is not a folder; the output (-o) is a folder")
        if not isinstance(self.model, ModelFile):
            raise TypeError("model must be a ModelFile (a path loaded on each worker), not a loaded model")
        check_positive_int(self.stride, "stride")
        if self.stride > 84:
            raise ValueError(f"stride must be 1..84 px (the window size), got {self.stride}")
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {MAP_MODES}, got {self.map_mode!r}")
        if self.normalization not in ("local", "global"):
            raise ValueError(f"normalization must be 'local' or 'global', got {self.normalization!r}")
        check_positive_int(self.tile_px, "tile_px", minimum=128)
        check_positive_int(self.max_px, "max_px")

    def is_large(self, path: Path) -> bool:
        """True if ``path`` holds more than ``max_px`` pixels (from its metadata); False if that cannot be
        read (the job itself will then report what is wrong with the file)."""
        from .batch import should_tile
        from .io import image_shape

        try:
            shape = image_shape(path)
        except Exception:
            return False
        return len(shape) >= 2 and should_tile(shape, max_px=self.max_px)

    def _defocus_map(self, array: np.ndarray, model):
        """The defocus map of an image held in memory. Dense maps go through tiles of windows (equal to the
        whole image's, see awdvd.tiling): the default DelpNet's first feature maps hold 32 float32 values per pixel,
        2 GB for a whole 4096 x 4096 image, 0.2 GB per 1024 px tile."""
        if self.map_mode == "dense":
            from .tiling import tiled_defocus_map

            return tiled_defocus_map(array, model, stride=self.stride, mode="dense", normalization=self.normalization,
                                     tile_px=self.tile_px)
        from .predict import defocus_map

        return defocus_map(array, model, stride=self.stride, mode="patch")

    def _stem(self, path: Path) -> str:
        from .io import image_stem

        return image_stem(path)

    def options(self) -> dict:
        """The options that decide the outputs' content, as stored in each sidecar (to refuse to skip files
        made with other options)."""
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
        from .deconv import to_input_dtype

        converted, clipped = to_input_dtype(value, self.dtype)
        self.clipped += clipped
        self.target[index] = converted


@dataclass(frozen=True)
class DeconvolveJob(_Job):
    """AWDVD of one image file: defocus map, depth-variant RL, blend; writes ``STEM.awdvd.<format>`` and
    ``STEM.awdvd.json`` into ``out_dir``.

    Options as for :func:`awdvd.deconv.deconvolve` (``map_mode`` is its ``map_mode``), plus:
    dtype : "float32" or "input" (rounded and clipped to the input's type; clipped pixels are counted).
    output_format : "auto" (TIFF, or OME-Zarr for large images), "tiff", "ome-tiff" or "ome-zarr".
    tile_px, max_px : images of more than ``max_px`` pixels are processed in ``tile_px`` tiles.
    """

    iterations: int = 30
    weighting: str = "triangular"
    method: str = "fast"
    offset: float | str = "auto"
    psf_size: int | None = None
    halo_px: int | None = None
    dtype: str = "float32"
    output_format: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        if self.dtype not in ("float32", "input"):
            raise ValueError(f"dtype must be 'float32' or 'input', got {self.dtype!r}")
        if self.output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {FORMATS}, got {self.output_format!r}")
        check_positive_int(self.iterations, "iterations", minimum=0)
        if self.offset != "auto":
            from .deconv import _check_offset

            _check_offset(self.offset)

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

    def options(self) -> dict:
        return {"model": self.model.describe(), "stride": self.stride, "iterations": self.iterations,
                "weighting": self.weighting, "method": self.method, "map_mode": self.map_mode,
                "normalization": self.normalization, "offset": self.offset, "psf_size": self.psf_size,
                "halo_px": self.halo_px, "dtype": self.dtype, "format": self.output_format}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        """Restore ``path`` and write its outputs; ``client`` spreads a large image's tiles over a cluster."""
        from .batch import should_tile
        from .io import write_image, write_json

        path = Path(path)
        recorder = _Recorder()
        start = time.perf_counter()
        with recorder.capture():
            model = self.model()
            psfs = _psf_bank(model.optics, self.psf_size)
            image = _read_plane(path)
            from .io import check_pixel_size

            check_pixel_size(image.pixel_um, model.optics.pixel_um)
            large = should_tile(image.data.shape, max_px=self.max_px)
            fmt = self.format_for(large)
            target = self.image_output(path, large=large)
            pixel_um = image.pixel_um or model.optics.pixel_um
            from .deconv import resolve_offset

            # one value for the whole image, from a subsample of a large one (its tiles must agree)
            offset = resolve_offset(self.offset, image.data, max_samples=4_000_000)
            rl = dict(stride=self.stride, patch_px=int(model.patch_px), iterations=self.iterations,
                      method=self.method, weighting=self.weighting, offset=offset, halo_px=self.halo_px,
                      device=self.device)
            meta = self._meta(path, target, model, psfs, pixel_um, large)
            meta["parameters"]["offset"] = offset
            meta["parameters"]["dtype"] = str(np.dtype(np.float32 if self.dtype == "float32" else image.data.dtype))
            t0 = time.perf_counter()
            if not large:
                from .deconv import deconvolve_levels, to_input_dtype

                array = np.asarray(image.data)
                dmap = self._defocus_map(array, model)
                t1 = time.perf_counter()
                restored = deconvolve_levels(array, dmap.levels, psfs, **rl)
                clipped = 0
                if self.dtype == "input":
                    restored, clipped = to_input_dtype(restored, array.dtype)
                t2 = time.perf_counter()
                write_image(target, restored, format=fmt, pixel_um=pixel_um, overwrite=True,
                            description=_tiff_description(meta), chunks=self.tile_px)
            else:
                from .io import open_image_output
                from .tiling import tiled_deconvolve_levels, tiled_defocus_map

                dmap = tiled_defocus_map(image.data, self.model, stride=self.stride, mode=self.map_mode,
                                         normalization=self.normalization, tile_px=self.tile_px, client=client,
                                         progress=progress)
                t1 = time.perf_counter()
                out_dtype = np.float32 if self.dtype == "float32" else image.data.dtype
                with open_image_output(target, format=fmt, shape=image.data.shape, dtype=out_dtype, pixel_um=pixel_um,
                                       chunks=self.tile_px, overwrite=True, description=_tiff_description(meta)) as out:
                    writer = _DtypeWriter(out, out.dtype)
                    tiled_deconvolve_levels(image.data, dmap.levels, psfs, tile_px=self.tile_px, out=writer,
                                            client=client, progress=progress, **rl)
                clipped = writer.clipped
                t2 = time.perf_counter()
        meta.update(
            levels_used={name: n for name, n in dmap.level_counts().items() if n},
            level_grid=dmap.levels.tolist(),
            clipped_pixels=clipped,
            warnings=recorder.messages,
            timings_s={"defocus_map": round(t1 - t0, 4), "deconvolution": round(t2 - t1, 4),
                       "total": round(time.perf_counter() - start, 4)},
        )
        write_json(self.sidecar(path), meta, overwrite=True)  # last: its presence says the file is done
        return {"output": str(target), "large": large, "clipped_pixels": clipped, "warnings": recorder.messages,
                "levels_used": meta["levels_used"], "timings_s": meta["timings_s"], "loads": _load_counts()}

    def _meta(self, path, target, model, psfs, pixel_um, large) -> dict:
        from . import __version__

        return {
            "awdvd": "deconvolve",
            "version": __version__,
            "input": str(path),
            "output": str(target),
            "options": self.options(),
            "parameters": {
                "stride": self.stride, "iterations": self.iterations, "weighting": self.weighting,
                "method": self.method, "map_mode": self.map_mode, "offset": self.offset,
                "psf_size": int(psfs.shape[-1]), "halo_px": self.halo_px, "dtype": self.dtype,
                "model": self.model.describe(), "device": self.device, "optics": model.optics.to_dict(),
                "pixel_um": pixel_um, "tiled": large, "tile_px": self.tile_px if large else None,
            },
        }


def _tiff_description(meta: dict) -> dict:
    return {k: meta[k] for k in ("awdvd", "version", "input", "parameters")}


# --------------------------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class PredictJob(_Job):
    """The defocus map of one image file: ``STEM.defocus.tif`` (float32 planes over the window grid: the level
    of every window, -1 = background, then one probability plane per class), ``STEM.defocus.png`` (the levels
    over the image; not drawn for large images) and ``STEM.defocus.json``."""

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.defocus.json"

    def outputs(self, path: Path) -> list[Path]:
        stem = self.out_dir / self._stem(path)
        pictures = [] if self.is_large(path) else [Path(f"{stem}.defocus.png")]
        return [Path(f"{stem}.defocus.tif"), *pictures, self.sidecar(path)]

    def options(self) -> dict:
        return {"model": self.model.describe(), "stride": self.stride, "map_mode": self.map_mode,
                "normalization": self.normalization}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        from . import __version__
        from .batch import should_tile
        from .io import write_json, write_tiff

        path = Path(path)
        recorder = _Recorder()
        stem = self.out_dir / self._stem(path)
        with recorder.capture():
            model = self.model()
            image = _read_plane(path)
            from .io import check_pixel_size

            check_pixel_size(image.pixel_um, model.optics.pixel_um)
            large = should_tile(image.data.shape, max_px=self.max_px)
            start = time.perf_counter()
            if large:
                from .tiling import tiled_defocus_map

                dmap = tiled_defocus_map(image.data, self.model, stride=self.stride, mode=self.map_mode,
                                         normalization=self.normalization, tile_px=self.tile_px, client=client,
                                         progress=progress)
            else:
                dmap = self._defocus_map(np.asarray(image.data), model)
            seconds = time.perf_counter() - start
            class_names = ["bg" if level < 0 else str(int(level)) for level in dmap.class_levels]
            planes = np.concatenate([dmap.levels[None].astype(np.float32), np.moveaxis(dmap.proba, -1, 0)])
            meta = {
                "awdvd": "predict",
                "version": __version__,
                "input": str(path),
                "options": self.options(),
                "image_shape": list(dmap.image_shape),
                "planes": ["level"] + [f"p({name})" for name in class_names],
                "patch_px": dmap.patch_px,
                "stride": dmap.stride,
                "window_rows": dmap.ys.tolist(),
                "window_cols": dmap.xs.tolist(),
                "mode": dmap.mode,
                "normalization": dmap.normalization,
                "model": self.model.describe(),
                "device": self.device,
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
def _check_finished_match(paths, job, plan) -> None:
    """Refuse to skip finished files that were made with other options: the user would think them redone."""
    from .io import read_json

    wanted = job.options()
    for path in paths:
        if not all(o.exists() for o in plan[path]):
            continue
        try:
            made = read_json(job.sidecar(path)).get("options")
        except (OSError, ValueError):
            continue
        if not isinstance(made, dict):
            continue
        differ = [k for k, v in wanted.items() if k in made and made[k] != v]
        if differ:
            shown = ", ".join(f"{k} {made[k]!r} (now {wanted[k]!r})" for k in differ[:3])
            raise ValueError(f"{job.sidecar(path)} was made with other options: {shown}; pass --overwrite "
                             "(overwrite=True) to redo finished files, or write to another output folder")


def _merge(reports, paths, seconds: float, where: str):
    from .batch import BatchReport

    by_path = {r.path: r for report in reports for r in report.results}
    return BatchReport(results=tuple(by_path[p] for p in paths), seconds=seconds, where=where)


def auto_workers(n_files: int, *, any_large: bool) -> int:
    """The default number of Dask workers: one per CPU this process may use, at most one per file to do (all
    of them when a large image's tiles can use them); 0 (this process, no cluster) for a single small file,
    which then gets every core."""
    from ._threads import available_cpus

    cpus = available_cpus()
    if any_large:
        return cpus
    workers = min(cpus, n_files)
    return workers if workers > 1 else 0


def run_jobs(inputs, job, *, workers: int | None = None, scheduler=None, overwrite: bool = False,
             progress: bool = False):
    """Run ``job`` (a :class:`DeconvolveJob` or :class:`PredictJob`) over image files.

    Parameters
    ----------
    inputs : files, folders or glob patterns (see :func:`awdvd.data.find_images`).
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
    """
    from .batch import _plan_outputs, local_cluster, run_batch
    from .data import find_images

    start = time.perf_counter()
    paths = find_images(inputs)
    plan = _plan_outputs(paths, job.outputs)  # collisions, outputs that would replace inputs: refused up front
    if not overwrite:
        _check_finished_match(paths, job, plan)
    todo = [p for p in paths if overwrite or not all(o.exists() for o in plan[p])]
    large = {p for p in todo if job.is_large(p)}
    if workers is None and scheduler is None:
        workers = auto_workers(len(todo), any_large=bool(large))
    workers = check_positive_int(0 if workers is None else workers, "workers", minimum=0)
    small_paths = [p for p in paths if p not in large]
    large_paths = [p for p in paths if p in large]
    common = dict(outputs_for=job.outputs, overwrite=overwrite, progress=progress)

    def run_all(address):
        reports = []
        if small_paths:
            if address is None:
                reports.append(run_batch(small_paths, job, workers=0, **common))
            else:
                reports.append(run_batch(small_paths, job, scheduler=address, **common))
        if large_paths:  # here, one at a time; their tiles go to the cluster
            reports.append(run_batch(large_paths, functools.partial(job, client=address, progress=progress),
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
    return _merge(reports, paths, time.perf_counter() - start, where)
