"""``awdvd predict`` of a z-stack: a depth map per plane, the best-focus plane of every region, and a focus-QC
row per plane (a screening lab's question: which plane is in focus where). A time-lapse (a T axis) is mapped the
same way, frame by frame (rows ``image[t=0]``, ...; planes ``t=0 level``, ...), its maps combined over
``job.time_smoothing`` frames; its "best-focus plane" is the sharpest frame.

``STEM.defocus.tif`` holds, for every plane z, the planes of a 2-D map (level, depth_um, depth_spread_um, one
probability per class), then one last plane: the best-focus plane of every window (the plane whose depth there is
the smallest; -1 where every plane is background). The sidecar names every plane, and holds the best-focus grid
and the rows. The planes are mapped one at a time; a plane larger than the job's ``max_px`` is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import write_tiff
from ..qc import focus_row
from ..io.channels import stack_axis
from ..restore.frames import smooth_over_frames
from ..restore.pipeline import defocus_map
from ..restore.tiling import should_tile

__all__ = ["best_focus_plane", "predict_stack"]


def best_focus_plane(depths_um: np.ndarray) -> np.ndarray:
    """(ny, nx) int: for every window the index of the plane whose depth (um) is the smallest, -1 where every
    plane is background (NaN). ``depths_um``: (Z, ny, nx).

    Examples
    --------
    >>> import numpy as np
    >>> best_focus_plane(np.array([[[4.0, np.nan]], [[1.0, np.nan]], [[6.0, np.nan]]])).tolist()
    [[1, -1]]
    """
    depths = np.asarray(depths_um, dtype=np.float64)
    empty = np.all(np.isnan(depths), axis=0)
    best = np.argmin(np.where(np.isnan(depths), np.inf, depths), axis=0)
    return np.where(empty, -1, best).astype(np.int64)


def predict_stack(job, path: Path, data, model, found, *, source: dict, messages: list[str]) -> dict:
    """Map every plane of the (Z, H, W) ``data`` of ``path`` for ``job`` (a :class:`awdvd.batch.jobs.PredictJob`),
    write ``STEM.defocus.tif`` and then the sidecar; returns the job's result."""

    if should_tile(tuple(data.shape[1:]), max_px=job.max_px):
        raise ValueError(f"{path.name}: the planes of a z-stack of more than {job.max_px} pixels each are not mapped "
                         "tile by tile yet; save its planes as separate files")
    stem = job.out_dir / job._stem(path)
    start = time.perf_counter()
    maps = [defocus_map(np.asarray(data[z]), model, job.options, optics=found.optics) for z in range(data.shape[0])]
    axis = "t" if stack_axis(path) == "T" else "z"
    if axis == "t":  # a time-lapse: frames, not planes; their maps may be combined over time
        maps = smooth_over_frames(maps, job.time_smoothing)
    seconds = time.perf_counter() - start
    first = maps[0]
    best = best_focus_plane(np.stack([m.depth_um for m in maps]))
    class_names = ["bg" if level < 0 else str(int(level)) for level in first.class_levels]
    per_plane = ["level", "depth_um", "depth_spread_um"] + [f"p({name})" for name in class_names]
    planes = [np.concatenate([m.levels[None].astype(np.float32), m.depth_um[None].astype(np.float32),
                              m.depth_spread_um[None].astype(np.float32), np.moveaxis(m.proba, -1, 0)])
              for m in maps]
    stack = np.concatenate([*planes, best[None].astype(np.float32)])
    meta = {"awdvd": "predict", "version": __version__, **job.input_fields(path), **job.settings(),
            "image_shape": [int(v) for v in data.shape], "planes_in_stack": int(data.shape[0]),
            "planes": [f"{axis}={z} {name}" for z in range(len(maps)) for name in per_plane] + ["best_focus_plane"],
            "stack_axis": axis, "time_smoothing_frames": job.time_smoothing if axis == "t" else None,
            "z_step_um": first.z_step_um, "patch_px": first.patch_px, "stride": first.stride,
            "window_rows": first.ys.tolist(), "window_cols": first.xs.tolist(), "mode": first.mode,
            "normalization": first.normalization, "model": job.model.describe(), "device": str(model.device),
            "tiled": False, "input_file": source, "optics": found.record()}
    write_tiff(f"{stem}.defocus.tif", stack, overwrite=True, description=meta)
    rows = [focus_row(f"{path.name}[{axis}={z}]", m) for z, m in enumerate(maps)]
    counts = {name: sum(m.level_counts().get(name, 0) for m in maps) for name in first.level_counts()}
    job.write_sidecar(path, {**meta, "best_focus_plane": best.tolist(), "counts": counts, "focus_qc": rows,
                             "warnings": messages, "timings_s": {"map": round(seconds, 4)}})
    return {"large": False, "counts": counts, "warnings": messages}
