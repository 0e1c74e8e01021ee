"""The optics axis of the robustness matrix: depth in micrometres read under objectives the model never saw.

What a user runs: ``awdvd.defocus_map(image, optics=Optics(...))`` with the image's own optics; the model reads
the image on its own sampling (optical units, DESIGN section 7) and gives depths in the image's optics. Sources are
in-focus fields the model never trained on, in the raw units of BBBC006's camera (offset 96 ADU).

:func:`sharp_at_pixel_sizes` - each field, recorded at ``source_pixel_um``, brought to other pixel sizes by
area-weighted resampling (what a finer or coarser camera pixel records of the same scene) and given with that
pixel size: the share of its windows with cells read in focus (depth <= one level of the model's optics).

:func:`defocus_under_optics` - each objective of :data:`OPTICS_MATRIX`, at two object scales: "object" (the field
brought to the objective's pixel size: the same nuclei in um, what the objective really records) and "model" (the
field brought to the objective's grid so that on the model's sampling its nuclei are as large as in the training
data); blurred by Eq. 2 of that objective at the depth of level-equivalent l (the model's z step carried into
the objective by its defocus phase, :func:`~awdvd.physics.optical_units.level_step_um`), recorded by BBBC006's
camera model, mapped with the objective's optics; per window that holds cells, the depth error in
level-equivalents: the share within 1 and within 0.5.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np

from ..data.synth import CameraNoise, blur_levels
from ..learn.range_extension import near_optics
from ..physics.optical_units import grid_factor, level_step_um, to_grid
from ..physics.optics import Optics, UndersamplingWarning
from ..physics.psf import psf_bank
from ..restore.image_optics import BeyondRangeWarning, ObjectScaleWarning, sampling_factor
from ..restore.pipeline import defocus_map
from .foreground import cell_test

__all__ = ["OPTICS_MATRIX", "PIXEL_SIZES_UM", "CROP_PX", "windows_with_cells", "sharp_at_pixel_sizes",
           "defocus_under_optics", "optics_axis", "optics_markdown"]

#: the objectives of the matrix (issue 28): the model's own, and four others with their camera pixel size
with warnings.catch_warnings():  # most are undersampled, as cameras are: said where their PSFs are made, not here
    warnings.simplefilter("ignore", UndersamplingWarning)
    OPTICS_MATRIX = {
        "20x/0.5 (model's)": Optics(),
        "20x/0.45, 0.645 um": Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645),
        "10x/0.3, 0.65 um": Optics(wavelength_um=0.46, na=0.3, n=1.0, pixel_um=0.65),
        "40x/0.75, 0.1625 um": Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625),
        "60x/1.4 oil, 0.108 um": Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108),
    }
#: the pixel sizes sharp fields are brought to (um): finer (40x, 60x, no binning) and coarser (binned) than 0.65
PIXEL_SIZES_UM = (0.65, 0.43, 0.325, 0.22, 0.98)
#: the part of each source field (px at its own pixel size) the optics axis uses: 169 x 226 um at 0.65 um, so
#: that the 60x grid (6x finer) stays a few megapixels
CROP_PX = (260, 348)


def windows_with_cells(field: np.ndarray, dmap) -> np.ndarray:
    """(ny, nx) bool: the map's windows whose footprint holds cells in the in-focus ``field`` (on its grid)."""
    holds = cell_test(field, patch_px=dmap.patch_px)
    return np.array([[holds(int(y), int(x)) for x in dmap.xs] for y in dmap.ys], dtype=bool).reshape(
        len(dmap.ys), len(dmap.xs))


def _say(log, line: str) -> None:
    if log is not None:
        log(line)


def sharp_at_pixel_sizes(model, fields: Mapping[str, np.ndarray], *, source_pixel_um: float = 0.65,
                         pixel_sizes=PIXEL_SIZES_UM, log=None) -> dict:
    """{pixel size: {"in_focus_share", "windows"}}: windows with cells read at depth <= one level of the model's
    optics (2 um for the bundled model), each field resampled to the pixel size and given with it."""
    one_level = model.optics.z_step_um
    out = {}
    for pixel in pixel_sizes:
        read = total = 0
        for field in fields.values():
            image = to_grid(field, source_pixel_um / pixel)
            dmap = defocus_map(image, model, optics=model.optics.replace(pixel_um=pixel))
            cells = windows_with_cells(image, dmap) & (dmap.levels >= 0)
            read += int((dmap.depth_um[cells] <= one_level).sum())
            total += int(cells.sum())
        out[f"{pixel:g}"] = {"in_focus_share": round(read / max(total, 1), 4), "windows": total}
        _say(log, f"sharp at {pixel:g} um: {read / max(total, 1):.3f} of {total} windows with cells read "
                  f"<= {one_level:g} um")
    return out


def defocus_under_optics(model, fields: Mapping[str, np.ndarray], *, scale: str = "object",
                         source_pixel_um: float = 0.65, matrix: Mapping[str, Optics] = OPTICS_MATRIX,
                         camera: CameraNoise | None = None, seed: int = 0, log=None) -> dict:
    """{objective: {"level_equivalent_um", "windows", "within_1", "within_half", "mean_abs_error_levels"}} for
    synthetic defocus at every level under each objective of ``matrix`` (``scale`` "object" or "model")."""
    if scale not in ("object", "model"):
        raise ValueError(f"scale must be 'object' or 'model', got {scale!r}")
    rng = np.random.default_rng(seed)
    camera = camera if camera is not None else CameraNoise()
    out = {}
    for name, optics in matrix.items():
        factor = source_pixel_um / optics.pixel_um if scale == "object" else 1.0 / grid_factor(optics, model.optics)
        step = level_step_um(optics, model.optics)
        levels = near_optics(model).n_levels  # the range the model reads level by level (0-20 um bundled)
        bank = psf_bank(optics.replace(z_step_um=step, n_levels=levels))
        errors, start = [], time.perf_counter()
        for field in fields.values():
            image = to_grid(field, factor)
            if min(image.shape) * sampling_factor(optics, model.optics) < model.patch_px:
                _say(log, f"{scale} scale, {name}: a field is smaller than one window on the model's grid; skipped")
                continue
            blurred = blur_levels(np.maximum(image - camera.offset_adu, 0.0), bank) + camera.offset_adu
            for level in range(levels):
                with warnings.catch_warnings():  # the deepest levels, and objectives of every scale, are meant
                    warnings.simplefilter("ignore", BeyondRangeWarning)
                    warnings.simplefilter("ignore", ObjectScaleWarning)
                    dmap = defocus_map(camera.apply(blurred[level], rng), model, optics=optics)
                cells = windows_with_cells(image, dmap) & (dmap.levels >= 0)
                errors.append((dmap.depth_um[cells] - level * step) / step)
        err = np.abs(np.concatenate(errors)) if errors else np.zeros(0)
        out[name] = {"level_equivalent_um": round(step, 4), "windows": int(err.size),
                     "within_1": round(float(np.mean(err <= 1.0)), 4) if err.size else None,
                     "within_half": round(float(np.mean(err <= 0.5)), 4) if err.size else None,
                     "mean_abs_error_levels": round(float(err.mean()), 4) if err.size else None,
                     "seconds": round(time.perf_counter() - start, 1)}
        if err.size:
            _say(log, f"{scale} scale, {name}: one level {step:.3g} um; |depth error| <= 1 level "
                      f"{out[name]['within_1']:.3f}, <= 0.5 {out[name]['within_half']:.3f} ({err.size} windows)")
    return out


def optics_axis(model, fields: Mapping[str, np.ndarray], *, source_pixel_um: float = 0.65, crop=CROP_PX,
                matrix: Mapping[str, Optics] = OPTICS_MATRIX, pixel_sizes=PIXEL_SIZES_UM, seed: int = 0,
                log=None) -> dict:
    """Both measurements on the top-left ``crop`` of every field (None: whole fields): ``{"sharp_at_pixel_sizes",
    "defocus_under_optics": {"object", "model"}, "camera", "crop_px"}``, JSON-ready."""
    rows, cols = crop if crop is not None else (None, None)
    fields = {name: np.asarray(field, dtype=np.float32)[:rows, :cols] for name, field in fields.items()}
    camera = CameraNoise()
    return {"camera": camera.to_dict(), "crop_px": list(crop) if crop is not None else None,
            "source_pixel_um": source_pixel_um,
            "sharp_at_pixel_sizes": sharp_at_pixel_sizes(model, fields, source_pixel_um=source_pixel_um,
                                                         pixel_sizes=pixel_sizes, log=log),
            "defocus_under_optics": {scale: defocus_under_optics(model, fields, scale=scale, matrix=matrix,
                                                                 source_pixel_um=source_pixel_um, camera=camera,
                                                                 seed=seed, log=log)
                                     for scale in ("object", "model")}}


def optics_markdown(axis: Mapping) -> str:
    """The optics axis of one model as two Markdown tables."""
    lines = ["| pixel size (um) | windows with cells read in focus | windows |", "| --- | --- | --- |"]
    lines += [f"| {pixel} | {v['in_focus_share']:.1%} | {v['windows']} |"
              for pixel, v in axis["sharp_at_pixel_sizes"].items()]
    lines += ["", "| objective | one level-equivalent (um) | object scale: within 1 / within 1/2 | "
              "model's scale: within 1 / within 1/2 |", "| --- | --- | --- | --- |"]
    scales = axis["defocus_under_optics"]

    def pair(v):
        return "-" if v["within_1"] is None else f"{v['within_1']:.1%} / {v['within_half']:.1%}"

    for name, v in scales["object"].items():
        lines.append(f"| {name} | {v['level_equivalent_um']:g} | {pair(v)} | {pair(scales['model'][name])} |")
    return "\n".join(lines) + "\n"
