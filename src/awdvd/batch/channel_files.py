"""``awdvd deconvolve`` of a multi-channel file: the map once from one channel, every chosen channel restored with
its own emission PSFs (:func:`awdvd.restore.channels.restore_channels`), written as one OME-TIFF with the
channels' names, order, emission wavelengths and pixel size.

Each channel's emission wavelength comes from ``--wavelength-um`` (one value: every channel), else the file's
``Channel/@EmissionWavelength``, else it is assumed (the file optics' wavelength) with one warning line naming the
channels; the sidecar records per channel what was used and where it came from.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.channels import read_channels, write_channels
from ..physics.optics import UndersamplingWarning
from ..restore.channels import restore_channels
from ..restore.rl import to_input_dtype
from ..restore.tiling import should_tile
from .file_optics import OpticsAssumedError, OpticsAssumedWarning, file_optics

__all__ = ["restore_channel_file", "channel_optics"]


def channel_optics(image, found, given: dict, *, strict: bool) -> tuple[list, list[dict]]:
    """Each channel's optics (``found.optics`` at the channel's emission wavelength) and its sidecar record, for a
    :class:`awdvd.io.channels.ChannelImage` (the module docstring says where each wavelength comes from)."""
    optics, record, missing = [], [], []
    for name, recorded in zip(image.names, image.emission_um):
        if "wavelength_um" in given:
            value, source = float(given["wavelength_um"]), "argument"
        elif recorded is not None:
            value, source = float(recorded), "file"
        else:
            value, source = found.optics.wavelength_um, "assumed"
            missing.append(name)
        optics.append(found.optics.replace(wavelength_um=value))
        record.append({"name": name, "emission_um": value, "source": source})
    if missing and found.sources["wavelength_um"] != "assumed":  # else file_optics has said it already
        message = (f"the file does not record the emission wavelength of channel(s) {', '.join(missing)}; assumed "
                   f"{found.optics.wavelength_um:g} um; give --wavelength-um to set it")
        if strict:
            raise OpticsAssumedError(message + " (or leave out --strict-optics)")
        warnings.warn(message, OpticsAssumedWarning, stacklevel=2)
    return optics, record


def restore_channel_file(job, path: Path, model, target: Path, *, source: dict, start: float,
                         messages: list[str]) -> dict:
    """Restore every chosen channel of ``path`` for ``job`` (a :class:`awdvd.batch.jobs.DeconvolveJob`), write
    ``target`` and then the sidecar (last: its presence says the file is done); ``messages`` are the file's
    warnings so far (the clipping note is added). Returns the job's result."""

    image = read_channels(path)
    if should_tile(image.data.shape[1:], max_px=job.max_px):
        raise ValueError(f"{path.name}: channels of more than {job.max_px} pixels are not restored tile by tile yet; "
                         "save each channel as its own file")
    found = file_optics(path, model.optics, job.optics, strict=job.strict_optics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # the normal case of widefield cameras
        optics, record = channel_optics(image, found, job.optics, strict=job.strict_optics)
    result = restore_channels(np.asarray(image.data), model, job.options, optics=optics, names=image.names,
                              map_channel=job.map_channel, channels=job.channels)
    restored, clipped = result.images, 0
    if job.dtype == "input":
        restored, clipped = to_input_dtype(restored, image.data.dtype)
    emission = [record[c]["emission_um"] for c in result.channels]
    write_channels(target, restored, names=result.names, emission_um=emission, pixel_um=found.optics.pixel_um,
                   overwrite=True)
    if clipped:
        total = int(np.prod(restored.shape))
        messages.append(f"{clipped} of {total} pixels ({clipped / total:.2%}) of the restoration fell outside the "
                        f"{restored.dtype} range and were clipped to it (--dtype float32 keeps every value)")
    first = result.restorations[0].resolved()
    parameters = {**job.options.to_dict(), "model": job.model.describe(), "optics": found.record(),
                  "model_optics": model.optics.to_dict(), "dtype": str(restored.dtype), "tile_px": None,
                  **{k: v for k, v in first.items() if k != "iterations_run"},
                  "channels": [{**record[c], "index": c, "iterations_run": r.resolved()["iterations_run"]}
                               for c, r in zip(result.channels, result.restorations)],
                  "map_channel": {"index": result.map_channel, "name": image.names[result.map_channel]}}
    dmap = result.dmap
    meta = {"awdvd": "deconvolve", "version": __version__, **job.input_fields(path), "output": str(target),
            **job.settings(), "input_file": source, "parameters": parameters,
            "levels_used": {name: n for name, n in dmap.level_counts().items() if n},
            "level_grid": dmap.levels.tolist(), "clipped_pixels": clipped, "warnings": messages,
            "timings_s": {**result.timings_s, "total": round(time.perf_counter() - start, 4)}}
    job.write_sidecar(path, meta)
    return {"output": str(target), "large": False, "clipped_pixels": clipped, "warnings": messages,
            "levels_used": meta["levels_used"], "timings_s": meta["timings_s"]}
