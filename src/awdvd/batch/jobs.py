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

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .._device import resolve_device
from ..io import (
    file_identity,
    open_image_output,
    write_image,
)
from ..io.channels import stack_axis
from ..io.planes import plane_layout
from ..io.scenes import scene_count
from ..restore.image_optics import restoration_optics
from ..restore.pipeline import defocus_map, restore_image
from ..restore.rl import to_input_dtype
from ..restore.tiling import should_tile
from ..restore.windows import DefocusMap
from .channel_files import restore_channel_file
from .dtype_writer import DtypeWriter
from .file_optics import file_optics
from .job_base import (
    FOCUS_CSV,
    FOCUS_PLATE,
    FORMATS,
    IMAGE_SUFFIX,
    OUTPUT_SUFFIXES,
    Job,
    Layout,
    ModelFile,
    Recorder,
    cached_psf_bank,
    channels_in,
    load_counts,
    read_plane,
    z_stack_refusal,
)
from .predict_job import PredictJob
from .reruns import input_record
from .scene_files import run_scenes
from .timelapse_files import restore_timelapse_file

__all__ = ["ModelFile", "DeconvolveJob", "PredictJob", "run_jobs", "auto_workers", "FORMATS", "OUTPUT_SUFFIXES",
           "FOCUS_CSV", "FOCUS_PLATE", "CLUSTER_MIN_FILES_PER_WORKER", "CLUSTER_MIN_CPUS"]

# --------------------------------------------------------------------------------------------- deconvolve
@dataclass(frozen=True)
class DeconvolveJob(Job):
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
        layout = self.layout(path)
        if large is not None:
            layout = dataclasses.replace(layout, large=large)
        return self._image_named(self._stem(path), layout)

    def _image_named(self, stem: str, layout: Layout) -> Path:
        if layout.channels > 1 or layout.timelapse:  # every axis kept: OME-Zarr if asked, else OME-TIFF
            fmt = "ome-zarr" if self.output_format == "ome-zarr" else "ome-tiff"
        else:
            fmt = self.format_for(layout.large)
        return self.out_dir / f"{stem}{IMAGE_SUFFIX[fmt]}"

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.awdvd.json"

    def named_outputs(self, stem: str, layout: Layout) -> list[Path]:
        """The restored image and its JSON sidecar (written last)."""
        return [self._image_named(stem, layout), self.out_dir / f"{stem}.awdvd.json"]

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
        if scene_count(path) > 1:
            return run_scenes(self, path, client=client, progress=progress)
        recorder = Recorder()
        start = time.perf_counter()
        with recorder.capture():
            source = input_record(path)  # before reading: a file changed meanwhile is redone next time
            model = self.model()
            planes = plane_layout(path) if stack_axis(path) else None
            if planes is not None and planes.axis == "T":
                return self._frames(path, model, source, recorder, start, progress)
            if channels_in(path) > 1:
                if planes is not None:  # a z-stack of several channels
                    raise ValueError(z_stack_refusal(path, (planes.channels, planes.planes, *planes.shape)))
                return self._channels(path, model, source, recorder, start)
            image = read_plane(path, restore=True)
            found = file_optics(path, model.optics, self.optics, strict=self.strict_optics)
            psfs = cached_psf_bank(restoration_optics(found.optics, model.optics), self.options.psf_size)
            large = should_tile(image.data.shape, max_px=self.max_px)
            fmt = self.format_for(large)
            target = self.image_output(path, large=large)
            pixel_um = found.optics.pixel_um
            out_dtype = np.dtype(np.float32 if self.dtype == "float32" else image.data.dtype)
            meta = {"awdvd": "deconvolve", "version": __version__, **self.input_fields(path), "output": str(target),
                    **self.settings()}
            # the parameters actually used: the options, completed below with what the pipeline resolved
            parameters = {**self.options.to_dict(), "model": self.model.describe(), "optics": found.record(),
                          "model_optics": model.optics.to_dict(), "dtype": str(out_dtype),
                          "tile_px": self.tile_px if large else None}
            description = {"awdvd": "deconvolve", "version": __version__, **self.input_fields(path),
                           "parameters": parameters}
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
        self.write_sidecar(path, meta)  # last: its presence says the file is done
        return {"output": str(target), "large": large, "clipped_pixels": clipped, "warnings": recorder.messages,
                "levels_used": meta["levels_used"], "timings_s": meta["timings_s"], "loads": load_counts()}


    def _channels(self, path: Path, model, source: dict, recorder: Recorder, start: float) -> dict:
        with recorder.capture():
            done = restore_channel_file(self, path, model, self.image_output(path), source=source, start=start,
                                        messages=recorder.messages)
        return {**done, "loads": load_counts()}

    def _frames(self, path: Path, model, source: dict, recorder: Recorder, start: float, progress: bool) -> dict:
        planes = plane_layout(path)
        key = self._resume_key(source, (planes.planes, planes.channels, *planes.shape), "ome-tiff", self.dtype)
        with recorder.capture():
            done = restore_timelapse_file(self, path, model, self.image_output(path), source=source, start=start,
                                          messages=recorder.messages, key=key, progress=progress)
        return {**done, "loads": load_counts()}


# run_jobs and auto_workers live in awdvd.batch.orchestrate (running a job over many files); re-exported here
from .orchestrate import CLUSTER_MIN_CPUS, CLUSTER_MIN_FILES_PER_WORKER, auto_workers, run_jobs  # noqa: E402
