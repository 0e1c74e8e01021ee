"""``awdvd deconvolve`` of a time-lapse (T, H, W), or of several channels (T, C, H, W): frame by frame in bounded
memory, resumable, written as one OME-TIFF (or OME-Zarr) with its T axis and its channels' names.

Every frame is read alone (:class:`awdvd.io.planes.PlaneReader`; of several channels, the map channel's plane) and
mapped; with ``--time-smoothing N`` each frame's map is combined with its neighbours' (Gaussian over N frames,
:func:`awdvd.restore.frames.smooth_over_frames`); then every frame is restored from its map into a
memory-mapped array in the output's resumable part (:mod:`awdvd.io.resumable`): a run stopped midway keeps the
maps and the frames done, and a rerun of the same work goes on from there. Only one frame and the maps (a few kB
per frame) are in memory at a time.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..io.channels import channel_info, write_channels, write_frames
from ..io.planes import PlaneReader, plane_layout
from ..io.resumable import open_resumable_part
from ..physics.optics import UndersamplingWarning
from ..restore.channels import choose_channel, choose_channels, restore_channels
from ..restore.frames import smooth_over_frames
from ..restore.image_optics import restoration_optics
from ..restore.pipeline import defocus_map, restore_image
from ..restore.rl import to_input_dtype
from ..restore.tiling import should_tile
from ..restore.windows import DefocusMap
from .channel_files import channel_optics
from .file_optics import file_optics
from .job_base import cached_psf_bank

__all__ = ["restore_timelapse_file"]

_MAP_FIELDS = ("levels", "proba", "class_levels", "ys", "xs")


def _frame(t: int, width: int):
    """The resumable journal's key of frame ``t`` (a "tile" one row of frames high)."""
    return slice(t, t + 1), slice(0, width)


def _maps(path: Path, n: int, part, compute, *, progress: bool) -> list[DefocusMap]:
    saved = part.folder / "maps.npz"
    if part.resumed and saved.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError), np.load(saved, allow_pickle=False) as f:
            fields = json.loads(str(f["fields"]))
            return [DefocusMap(**{k: f[f"{k}_{t}"] for k in _MAP_FIELDS}, **fields) for t in range(n)]
    maps = [compute(t) for t in tqdm(range(n), desc=f"{path.name}: maps", unit="frame", disable=not progress)]
    first = maps[0]
    fields = {"image_shape": [int(v) for v in first.image_shape], "patch_px": int(first.patch_px),
              "stride": int(first.stride), "mode": first.mode, "normalization": first.normalization,
              "z_step_um": first.z_step_um}
    arrays = {f"{k}_{t}": getattr(m, k) for t, m in enumerate(maps) for k in _MAP_FIELDS}
    tmp = part.folder / "maps.part.npz"
    with open(tmp, "wb") as handle:
        np.savez(handle, fields=np.array(json.dumps(fields)), **arrays)
    tmp.replace(saved)
    return maps


def restore_timelapse_file(job, path: Path, model, target: Path, *, source: dict, start: float, messages: list[str],
                           key: str, progress: bool = False) -> dict:
    """Restore every frame of ``path`` for ``job`` (a :class:`awdvd.batch.jobs.DeconvolveJob`) into ``target``,
    then write the sidecar; ``key`` identifies the work (a part made for other work is not resumed). A
    time-lapse of several channels is mapped frame by frame from one channel (``job.map_channel``), and every
    chosen channel of a frame is restored from that frame's map with its own emission PSFs
    (:func:`awdvd.restore.channels.restore_channels`); the output keeps the channels' names (T, C, H, W)."""

    layout = plane_layout(path)
    frames, (h, w) = layout.planes, layout.shape
    if should_tile((h, w), max_px=job.max_px):
        raise ValueError(f"{path.name}: frames of more than {job.max_px} pixels are not restored tile by tile yet; "
                         "save each frame as its own file")
    found = file_optics(path, model.optics, job.optics, strict=job.strict_optics)
    channels = _Channels(job, path, model, found, layout.channels)
    reader = channels.reader
    first = reader.read("T", 0, channels.map_index)
    out_dtype = np.dtype(np.float32 if job.dtype == "float32" else first.dtype)
    clipped, resumed_frames, timings = 0, 0, {"defocus_map": 0.0, "deconvolution": 0.0}
    with open_resumable_part(target, key=key) as part:
        mapped = time.perf_counter()
        maps = _maps(path, frames, part, lambda t: defocus_map(reader.read("T", t, channels.map_index), model,
                                                               job.options, optics=channels.map_optics),
                     progress=progress)
        maps = smooth_over_frames(maps, job.time_smoothing)
        timings["defocus_map"] = round(time.perf_counter() - mapped, 4)
        pixels = part.folder / "pixels.npy"
        shape = (frames, h, w) if channels.single else (frames, len(channels.chosen), h, w)
        out = None
        if part.resumed and pixels.is_file():
            with contextlib.suppress(Exception):
                out = np.lib.format.open_memmap(pixels, mode="r+")
            if out is not None and (tuple(out.shape) != shape or out.dtype != out_dtype):
                out = None
        if out is None:
            part.tiles.clear()
            out = np.lib.format.open_memmap(pixels, mode="w+", dtype=out_dtype, shape=shape)
        restoring = time.perf_counter()
        resolved = None
        for t in tqdm(range(frames), desc=f"{path.name}: frames", unit="frame", disable=not progress):
            if part.tile_done(_frame(t, w)):
                resumed_frames += 1
                clipped += int(part.tiles.get((t, t + 1, 0, w), {}).get("clipped", 0))
                continue
            frame = channels.restore(model, maps[t], t)
            resolved = resolved or frame.resolved
            frame, frame_clipped = frame.image, 0
            if job.dtype == "input":
                frame, frame_clipped = to_input_dtype(frame, first.dtype)
            out[t] = frame
            out.flush()
            clipped += frame_clipped
            part.mark_tile(_frame(t, w), clipped=int(frame_clipped))
        timings["deconvolution"] = round(time.perf_counter() - restoring, 4)
        if channels.single:
            write_frames(target, out, pixel_um=found.optics.pixel_um, overwrite=True)
        else:
            write_channels(target, out, names=[channels.info.names[c] for c in channels.chosen],
                           emission_um=[channels.record[c]["emission_um"] for c in channels.chosen],
                           pixel_um=found.optics.pixel_um, overwrite=True)
        del out
    if clipped:
        total = int(np.prod(shape))
        messages.append(f"{clipped} of {total} pixels ({clipped / total:.2%}) of the restoration fell outside the "
                        f"{out_dtype} range and were clipped to it (--dtype float32 keeps every value)")
    counts: dict = {}
    for m in maps:
        for name, n in m.level_counts().items():
            counts[name] = counts.get(name, 0) + n
    parameters = {**job.options.to_dict(), "model": job.model.describe(), "optics": found.record(),
                  "model_optics": model.optics.to_dict(), "dtype": str(out_dtype), "tile_px": None,
                  **{k: v for k, v in (resolved or {}).items() if k != "iterations_run"},
                  "frames": frames, "time_smoothing_frames": job.time_smoothing, "resumed_frames": resumed_frames,
                  **channels.parameters()}
    meta = {"awdvd": "deconvolve", "version": __version__, **job.input_fields(path), "output": str(target),
            **job.settings(), "input_file": source, "parameters": parameters,
            "levels_used": {name: n for name, n in counts.items() if n},
            "level_grids": [m.levels.tolist() for m in maps], "clipped_pixels": clipped, "warnings": messages,
            "timings_s": {**timings, "total": round(time.perf_counter() - start, 4)}}
    job.write_sidecar(path, meta)
    return {"output": str(target), "large": False, "clipped_pixels": clipped, "warnings": messages,
            "levels_used": meta["levels_used"], "timings_s": meta["timings_s"]}


@dataclass
class _Restored:
    image: np.ndarray  # (H, W) or (C, H, W) float32
    resolved: dict


class _Channels:
    """The channels of a time-lapse: the one its maps are made from, those restored and each one's optics (one
    channel: the file's optics and one PSF bank)."""

    def __init__(self, job, path: Path, model, found, n: int):
        self.path, self.job, self.single = path, job, n == 1
        self.reader = PlaneReader(path)  # opened once: a vendor file's metadata are not parsed again per frame
        if self.single:
            self.map_index, self.chosen, self.map_optics = 0, [0], found.optics
            self.psfs = cached_psf_bank(restoration_optics(found.optics, model.optics), job.options.psf_size)
            return
        self.info = channel_info(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndersamplingWarning)  # the normal case of widefield cameras
            self.optics, self.record = channel_optics(self.info, found, job.optics, strict=job.strict_optics)
        self.map_index = choose_channel(self.info.names, job.map_channel)
        self.chosen = choose_channels(self.info.names, job.channels)
        self.map_optics = self.optics[self.map_index]

    def restore(self, model, dmap, t: int) -> _Restored:
        """Frame ``t`` restored from its map."""
        if self.single:
            result = restore_image(self.reader.read("T", t), model, self.job.options, dmap=dmap, psfs=self.psfs,
                                   optics=self.map_optics)
            return _Restored(result.image, result.resolved())
        frame = np.stack([self.reader.read("T", t, c) for c in range(len(self.info.names))])
        result = restore_channels(frame, model, self.job.options, optics=self.optics, names=self.info.names,
                                  map_channel=self.map_index, channels=self.chosen, dmap=dmap)
        return _Restored(result.images, result.restorations[0].resolved())

    def parameters(self) -> dict:
        """The sidecar's record of the channels (nothing for one channel)."""
        if self.single:
            return {}
        return {"channels": [{**self.record[c], "index": c} for c in self.chosen],
                "map_channel": {"index": self.map_index, "name": self.info.names[self.map_index]}}
