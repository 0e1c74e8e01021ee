"""``awdvd deconvolve`` of a time-lapse (T, H, W): frame by frame in bounded memory, resumable, written as one
OME-TIFF with its T axis.

Every frame is read alone (:func:`awdvd.io.channels.read_frame`) and mapped; with ``--time-smoothing N`` each
frame's map is combined with its neighbours' (Gaussian over N frames, :func:`awdvd.restore.frames.smooth_over_frames`);
then every frame is restored from its map into a memory-mapped array in the output's resumable part
(:mod:`awdvd.io.resumable`): a run stopped midway keeps the maps and the frames done, and a rerun of the same
work goes on from there. Only one frame and the maps (a few kB per frame) are in memory at a time.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..io import image_shape
from ..io.channels import read_frame, write_frames
from ..io.resumable import open_resumable_part
from ..physics.psf import psf_bank
from ..restore.frames import smooth_over_frames
from ..restore.image_optics import restoration_optics
from ..restore.pipeline import defocus_map, restore_image
from ..restore.rl import to_input_dtype
from ..restore.tiling import should_tile
from ..restore.windows import DefocusMap
from .file_optics import file_optics

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
    then write the sidecar; ``key`` identifies the work (a part made for other work is not resumed)."""

    frames, h, w = image_shape(path)
    if should_tile((h, w), max_px=job.max_px):
        raise ValueError(f"{path.name}: frames of more than {job.max_px} pixels are not restored tile by tile yet; "
                         "save each frame as its own file")
    found = file_optics(path, model.optics, job.optics, strict=job.strict_optics)
    psfs = psf_bank(restoration_optics(found.optics, model.optics), size=job.options.psf_size)
    first = read_frame(path, 0)
    out_dtype = np.dtype(np.float32 if job.dtype == "float32" else first.dtype)
    clipped, resumed_frames, timings = 0, 0, {"defocus_map": 0.0, "deconvolution": 0.0}
    with open_resumable_part(target, key=key) as part:
        mapped = time.perf_counter()
        maps = _maps(path, frames, part, lambda t: defocus_map(read_frame(path, t), model, job.options,
                                                               optics=found.optics), progress=progress)
        maps = smooth_over_frames(maps, job.time_smoothing)
        timings["defocus_map"] = round(time.perf_counter() - mapped, 4)
        pixels = part.folder / "pixels.npy"
        out = None
        if part.resumed and pixels.is_file():
            with contextlib.suppress(Exception):
                out = np.lib.format.open_memmap(pixels, mode="r+")
            if out is not None and (tuple(out.shape) != (frames, h, w) or out.dtype != out_dtype):
                out = None
        if out is None:
            part.tiles.clear()
            out = np.lib.format.open_memmap(pixels, mode="w+", dtype=out_dtype, shape=(frames, h, w))
        restoring = time.perf_counter()
        resolved = None
        for t in tqdm(range(frames), desc=f"{path.name}: frames", unit="frame", disable=not progress):
            if part.tile_done(_frame(t, w)):
                resumed_frames += 1
                clipped += int(part.tiles.get((t, t + 1, 0, w), {}).get("clipped", 0))
                continue
            result = restore_image(read_frame(path, t), model, job.options, dmap=maps[t], psfs=psfs,
                                   optics=found.optics)
            resolved = resolved or result.resolved()
            frame, frame_clipped = result.image, 0
            if job.dtype == "input":
                frame, frame_clipped = to_input_dtype(frame, first.dtype)
            out[t] = frame
            out.flush()
            clipped += frame_clipped
            part.mark_tile(_frame(t, w), clipped=int(frame_clipped))
        timings["deconvolution"] = round(time.perf_counter() - restoring, 4)
        write_frames(target, out, pixel_um=found.optics.pixel_um, overwrite=True)
        del out
    if clipped:
        total = frames * h * w
        messages.append(f"{clipped} of {total} pixels ({clipped / total:.2%}) of the restoration fell outside the "
                        f"{out_dtype} range and were clipped to it (--dtype float32 keeps every value)")
    counts: dict = {}
    for m in maps:
        for name, n in m.level_counts().items():
            counts[name] = counts.get(name, 0) + n
    parameters = {**job.options.to_dict(), "model": job.model.describe(), "optics": found.record(),
                  "model_optics": model.optics.to_dict(), "dtype": str(out_dtype), "tile_px": None,
                  **{k: v for k, v in (resolved or {}).items() if k != "iterations_run"},
                  "frames": frames, "time_smoothing_frames": job.time_smoothing, "resumed_frames": resumed_frames}
    meta = {"awdvd": "deconvolve", "version": __version__, **job.input_fields(path), "output": str(target),
            **job.settings(), "input_file": source, "parameters": parameters,
            "levels_used": {name: n for name, n in counts.items() if n},
            "level_grids": [m.levels.tolist() for m in maps], "clipped_pixels": clipped, "warnings": messages,
            "timings_s": {**timings, "total": round(time.perf_counter() - start, 4)}}
    job.write_sidecar(path, meta)
    return {"output": str(target), "large": False, "clipped_pixels": clipped, "warnings": messages,
            "levels_used": meta["levels_used"], "timings_s": meta["timings_s"]}
