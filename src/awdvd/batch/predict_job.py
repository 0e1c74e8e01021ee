"""``awdvd predict`` of one file: :class:`PredictJob` (see :mod:`awdvd.batch.jobs`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import (
    ImageFile,
    read_json,
    write_tiff,
)
from ..io.channels import channel_info, read_channels, stack_axis
from ..io.planes import PlaneStack, plane_layout
from ..io.scenes import scene_count
from ..plots import defocus_overlay
from ..qc import focus_columns, focus_row, parse_well, plate_heatmap, write_focus_csv
from ..restore.channels import choose_channel
from ..restore.image_optics import restoration_optics
from ..restore.pipeline import defocus_map
from ..restore.tiling import should_tile
from .file_optics import file_optics
from .job_base import FOCUS_CSV, FOCUS_PLATE, Job, Layout, Recorder, channels_in, load_counts, read_plane
from .reruns import input_record
from .scene_files import run_scenes
from .stack_maps import predict_stack

__all__ = ["PredictJob"]


# --------------------------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class PredictJob(Job):
    """The defocus map of one image file (``options``' stride, map mode, normalisation and device):
    ``STEM.defocus.tif`` (float32 planes over the window grid: the level of every window, -1 = background, then
    one probability plane per class), ``STEM.defocus.png`` (the levels over the image; not drawn for large
    images) and ``STEM.defocus.json``. Of a multi-channel file, the map of ``map_channel`` (a name or an index;
    default: a channel named like a nuclear stain, else the first), with that channel's emission wavelength."""

    map_channel: str | None = None

    def sidecar(self, path: Path) -> Path:
        return self.out_dir / f"{self._stem(path)}.defocus.json"

    def named_outputs(self, stem: str, layout: Layout) -> list[Path]:
        base = self.out_dir / stem
        pictures = [] if layout.large or layout.stack or layout.timelapse else [Path(f"{base}.defocus.png")]
        return [Path(f"{base}.defocus.tif"), *pictures, Path(f"{base}.defocus.json")]

    def settings(self) -> dict:
        o = self.options
        return {"options": {"stride": o.stride, "map_mode": o.map_mode, "normalization": o.normalization,
                            "tta": o.tta, "smoothing_px": o.smoothing_px},
                "job": {"model": self.model.describe(), "optics": self.optics, "map_channel": self.map_channel}}

    def __call__(self, path: Path, *, client=None, progress: bool = False) -> dict:
        path = Path(path)
        if scene_count(path) > 1:
            return run_scenes(self, path, client=client, progress=progress)
        recorder = Recorder()
        stem = self.out_dir / self._stem(path)
        with recorder.capture():
            source = input_record(path)  # before reading: a file changed meanwhile is redone next time
            model = self.model()
            image, channel = self._map_plane(path)
            found = file_optics(path, model.optics, self.optics, strict=self.strict_optics)
            if channel is not None and channel["emission_um"] and "wavelength_um" not in self.optics:
                found = dataclasses.replace(found, optics=found.optics.replace(wavelength_um=channel["emission_um"]),
                                            sources={**found.sources, "wavelength_um": "file"})
            if image.data.ndim == 3:
                result = predict_stack(self, path, image.data, model, found, source=source,
                                       messages=recorder.messages)
                return {**result, "loads": load_counts()}
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
                **self.input_fields(path),
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
                "map_channel": channel,
            }
            write_tiff(f"{stem}.defocus.tif", planes, overwrite=True, description=meta)
            if not large:
                depths = restoration_optics(found.optics, model.optics).depths_um
                defocus_overlay(np.asarray(image.data), dmap, f"{stem}.defocus.png", depths_um=depths,
                                overwrite=True, title=f"{path.name}: defocus levels, stride {dmap.stride} px",
                                pixel_um=found.optics.pixel_um)
        row = focus_row(path.name, dmap)
        self.write_sidecar(path, {**meta, "levels": dmap.levels.tolist(), "counts": dmap.level_counts(),
                                  "focus_qc": row, "warnings": recorder.messages,
                                  "timings_s": {"map": round(seconds, 4)}})
        return {"large": large, "counts": dmap.level_counts(), "warnings": recorder.messages, "loads": load_counts()}

    def _map_plane(self, path: Path) -> tuple[ImageFile, dict | None]:
        """The plane (or stack) to map and, for a multi-channel file, which channel it is: of a multi-channel
        z-stack or time-lapse, that channel's planes, read one at a time (:class:`awdvd.io.planes.PlaneStack`)."""
        if channels_in(path) < 2:
            return read_plane(path, restore=False), None
        stacked = stack_axis(path) is not None and plane_layout(path) is not None
        field = channel_info(path) if stacked else read_channels(path)
        index = choose_channel(field.names, self.map_channel)
        channel = {"index": index, "name": field.names[index], "emission_um": field.emission_um[index]}
        data = PlaneStack(path, index) if stacked else field.data[index]
        return ImageFile(data=data, path=path, pixel_um=field.pixel_um), channel

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
