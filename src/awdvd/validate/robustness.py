"""How a defocus model holds on fields, cameras and specimens it has never seen: the robustness matrix.

Two measurements, both on data the caller guarantees the model never trained on (say which in reports):

:func:`level_matrix` - windows: every held-out in-focus field is blurred at every level (Eq. 2; level 0 is the
field itself), recorded by every camera of :data:`awdvd.data.training_stream.PAPER_CAMERAS` (or those given), and the same
``per_level`` foreground windows of each field (windows that hold cells in focus: :func:`foreground_windows`)
are classified. Per camera and per field: top-1, within +/-1 level, mean |level error| over the windows not
called background, and the fraction called background.

:func:`map_matrix` - whole images: a tilted specimen made from each field (levels rising from 0 to 10 across
the field, :func:`tilted_observation`), its defocus map (the model's own, default options) against the true
level at each window's centre (exact, +/-1), and the PSNR of the AWDVD restoration with those levels against
the in-focus field.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._checks import check_image, check_positive_int
from ..data.datasets import load_in_focus_images
from ..data.patches import BACKGROUND
from ..data.synth import blur_levels, depth_variant_blur, forward_bank, tilted_levels
from ..data.training_stream import PAPER_CAMERAS, UNSEEN_CAMERAS
from ..io import atomic_path
from ..learn.model_files import load_model
from ..learn.range_extension import near_optics
from ..learn.train_stream import procedural_sources
from ..metrics import psnr, truth_data_range
from ..physics.optics import Optics
from ..restore.defocus_maps import classify_windows
from ..restore.options import options_with
from ..restore.pipeline import deconvolve, defocus_map
from ..restore.windows import DefocusMap
from .foreground import cell_test, foreground_windows
from .optics_matrix import optics_axis, optics_markdown

__all__ = ["level_matrix", "map_matrix", "cell_test", "foreground_windows", "tilted_observation", "summarise_levels",
           "robustness_markdown", "worst_case", "write_robustness"]

def _seed(*parts) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


def _blurred_levels(in_focus: np.ndarray, optics: Optics, psf_size: int | None) -> np.ndarray:
    bank = forward_bank(optics, size=psf_size)
    return np.concatenate([in_focus[None].astype(np.float32), blur_levels(in_focus, bank[1:])])


def level_matrix(model, fields: Mapping[str, np.ndarray], *, cameras: Mapping | None = None, per_level: int = 60,
                 seed: int = 0, psf_size: int | None = None, source_offset_adu: float = 96.0, tta: int = 1) -> dict:
    """Window classification on held-out fields x cameras x levels.

    Parameters
    ----------
    model : a :class:`~awdvd.learn.model.DefocusModel`.
    fields : name -> in-focus image (2-D, raw ADU of a camera whose offset is ``source_offset_adu``).
    cameras : name -> :class:`~awdvd.data.training_stream.Camera` (default :data:`~awdvd.data.training_stream.PAPER_CAMERAS`).
    per_level : foreground windows per field (the same windows at every level and camera).
    tta : dihedral transforms averaged per window (:func:`awdvd.restore.defocus_maps.classify_windows`).

    Returns
    -------
    dict with "cameras" (name -> summary over all fields), "fields" (field -> camera -> summary) and
    "settings"; a summary holds top1, within1, mean_abs_error, background_calls, n and per_level_top1.
    """

    cameras = dict(PAPER_CAMERAS if cameras is None else cameras)
    per_level = check_positive_int(per_level, "per_level")
    optics = model.optics
    class_levels = np.asarray(model.class_levels)
    records: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for name, field in fields.items():
        field = check_image(field, f"field {name!r}", min_shape=(model.patch_px, model.patch_px)).astype(np.float32)
        stack = _blurred_levels(field, optics, psf_size)
        ys, xs = foreground_windows(field, per_level, patch_px=model.patch_px, seed=_seed(seed, name),
                                    source_offset_adu=source_offset_adu)
        records[name] = {}
        for camera_name, camera in cameras.items():
            truth, predicted = [], []
            for level in range(optics.n_levels):
                rng = np.random.default_rng(_seed(seed, name, camera_name, level))
                image = camera.record(stack[level], rng, source_offset_adu=source_offset_adu)
                proba = classify_windows(image, model, ys, xs, tta=tta)
                predicted.append(class_levels[np.argmax(proba, axis=-1)])
                truth.append(np.full(len(ys), level))
            records[name][camera_name] = (np.concatenate(truth), np.concatenate(predicted))
    by_camera = {c: summarise_levels(np.concatenate([records[f][c][0] for f in records]),
                                     np.concatenate([records[f][c][1] for f in records]), optics.n_levels)
                 for c in cameras}
    by_field = {f: {c: summarise_levels(*records[f][c], optics.n_levels) for c in cameras} for f in records}
    return {"cameras": by_camera, "fields": by_field,
            "settings": {"per_level": per_level, "seed": seed, "tta": tta, "fields": list(fields), "cameras":
                         {c: cam.to_dict() for c, cam in cameras.items()}, "source_offset_adu": source_offset_adu}}


def summarise_levels(truth: np.ndarray, predicted: np.ndarray, n_levels: int) -> dict:
    """top1, within1 (a background call counts as wrong), mean |level error| over windows not called
    background, background_calls (fraction), n, per_level_top1 (level -> fraction)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    level_called = predicted != BACKGROUND
    error = np.abs(predicted - truth)
    return {"top1": float(np.mean(predicted == truth)),
            "within1": float(np.mean(level_called & (error <= 1))),
            "mean_abs_error": float(np.mean(error[level_called])) if level_called.any() else None,
            "background_calls": float(np.mean(~level_called)), "n": int(len(truth)),
            "per_level_top1": {str(level): float(np.mean(predicted[truth == level] == level))
                               for level in range(n_levels) if np.any(truth == level)}}


def worst_case(matrix: dict, key: str = "top1") -> tuple[str, float]:
    """(camera, value) of the lowest ``key`` over the cameras of a :func:`level_matrix` result."""
    camera = min(matrix["cameras"], key=lambda c: matrix["cameras"][c][key])
    return camera, matrix["cameras"][camera][key]


# --------------------------------------------------------------------------------------------- maps
def tilted_observation(in_focus: np.ndarray, camera, *, optics: Optics | None = None, seed=0,
                       psf_size: int | None = None, source_offset_adu: float = 96.0):
    """(observed, levels): ``in_focus`` tilted along x (levels 0 .. n_levels - 1 in equal bands left to right,
    :func:`awdvd.data.synth.depth_variant_blur` of the light above the source offset) recorded by ``camera``."""

    optics = Optics() if optics is None else optics
    truth = check_image(in_focus, "in_focus").astype(np.float32)
    levels = tilted_levels(truth.shape, optics.n_levels).astype(np.int64)
    offset = min(source_offset_adu, float(truth.min()))
    expected = depth_variant_blur(truth - offset, levels, forward_bank(optics, size=psf_size)) + offset
    observed = camera.record(expected, np.random.default_rng(seed), source_offset_adu=source_offset_adu)
    return observed, levels


def map_matrix(model, fields: Mapping[str, np.ndarray], *, cameras: Mapping | None = None,
               cameras_for_psnr: Sequence[str] | None = ("bbbc006",), seed: int = 0, options=None,
               source_offset_adu: float = 96.0) -> dict:
    """Defocus maps of tilted specimens made from held-out ``fields`` under each camera: window levels exact /
    within +/-1 of the true level at the window centre, and, for the cameras in ``cameras_for_psnr``, the PSNR
    (the in-focus field's range) of AWDVD with the model's map and with the true levels (the same options), and
    of the recorded image, all after removing the camera's offset difference."""

    cameras = dict(PAPER_CAMERAS if cameras is None else cameras)
    options = options_with(options, {})
    out: dict[str, dict] = {}
    for camera_name, camera in cameras.items():
        rows = []
        for name, field in fields.items():
            observed, levels = tilted_observation(field, camera, optics=near_optics(model),
                                                  seed=_seed(seed, name, camera_name),
                                                  source_offset_adu=source_offset_adu)
            dmap = defocus_map(observed, model, options)
            centre = model.patch_px // 2
            true_grid = levels[dmap.ys[:, None] + centre, dmap.xs[None, :] + centre]
            called = dmap.levels != BACKGROUND
            row = {"field": name, "windows": int(dmap.levels.size),
                   "exact": float(np.mean(dmap.levels == true_grid)),
                   "within1": float(np.mean(called & (np.abs(dmap.levels - true_grid) <= 1))),
                   "background_calls": float(np.mean(~called))}
            if cameras_for_psnr and camera_name in cameras_for_psnr:
                row.update(_restoration_psnr(model, field, observed, dmap, true_grid, camera, options,
                                             source_offset_adu))
            rows.append(row)
        keys = [k for k in rows[0] if k not in ("field", "windows")]
        out[camera_name] = {"fields": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}
    return {"cameras": out, "settings": {"seed": seed, "fields": list(fields),
                                         "options": options.to_dict()}}


def _restoration_psnr(model, field, observed, dmap, true_grid, camera, options, source_offset_adu) -> dict:
    """PSNR of recorded / AWDVD(model map) / AWDVD(true levels) against the field, in the field's own units
    (the camera's affine change of units undone)."""

    truth = np.asarray(field, np.float32)
    # back to the source's units: signal / scale + source offset (the camera's offset and pedestal removed)
    def to_source(image):
        return (np.asarray(image, np.float64) - camera.offset_adu - camera.pedestal_adu) / camera.intensity_scale \
            + source_offset_adu

    data_range = truth_data_range(truth)
    restored = deconvolve(observed, model, options, dmap=dmap)
    true_map = DefocusMap.from_levels(true_grid, dmap.image_shape, stride=dmap.stride, patch_px=dmap.patch_px,
                                      n_levels=model.optics.n_levels)
    restored_true = deconvolve(observed, model, options, dmap=true_map)
    return {"psnr_recorded": psnr(truth, to_source(observed), data_range=data_range),
            "psnr_awdvd_model_map": psnr(truth, to_source(restored), data_range=data_range),
            "psnr_awdvd_true_levels": psnr(truth, to_source(restored_true), data_range=data_range)}


# --------------------------------------------------------------------------------------------- report
def robustness_markdown(level_results: Mapping[str, dict], *, key_order: Sequence[str] | None = None) -> str:
    """A Markdown table: one row per (model or fold, camera) with top-1, +/-1, mean |error|, bg calls and the
    weakest levels. ``level_results``: label -> :func:`level_matrix` result."""
    lines = ["| model / fold | camera | top-1 | within +/-1 | mean abs error | bg calls | weakest levels |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label in (key_order or list(level_results)):
        result = level_results[label]
        for camera, s in result["cameras"].items():
            weakest = sorted(s["per_level_top1"].items(), key=lambda kv: kv[1])[:3]
            weak = ", ".join(f"{level}: {value:.2f}" for level, value in weakest)
            mae = "n/a" if s["mean_abs_error"] is None else f"{s['mean_abs_error']:.2f}"
            lines.append(f"| {label} | {camera} | {s['top1']:.3f} | {s['within1']:.3f} | {mae} | "
                         f"{s['background_calls']:.1%} | {weak} |")
    return "\n".join(lines) + "\n"


def write_robustness(models, fields, output, *, procedural: int = 2, per_level: int = 60, tta: int = 1,
                     maps: bool = True, seed: int = 0, overwrite: bool = False, log=None, cameras: str = "matrix",
                     optics: bool = False) -> dict:
    """``awdvd evaluate-robustness``: the matrix of every model on held-out in-focus ``fields`` and on
    ``procedural`` procedural fields (seeds no training uses), written to ``output/robustness.json`` and
    ``output/robustness.md``.

    Parameters
    ----------
    models : model files (or :class:`~awdvd.learn.model.DefocusModel` objects), labelled by file stem.
    fields : in-focus images the models never trained on (files, folders, globs), in the raw units of a camera
        with offset 96 ADU (BBBC006's); may be empty when ``procedural`` > 0.
    procedural : procedural nuclei fields (:func:`awdvd.learn.train_stream.procedural_sources` with seed 9001).
    per_level, tta : as for :func:`level_matrix`. maps : also :func:`map_matrix` on the in-focus fields.
    overwrite : replace existing outputs (otherwise FileExistsError before any work).
    cameras : "matrix" (:data:`awdvd.data.training_stream.PAPER_CAMERAS`, the matrix of the floors), "unseen"
        (:data:`awdvd.data.training_stream.UNSEEN_CAMERAS`, outside the training stream's camera range) or "all" (both).
    optics : also the optics axis on ``fields`` (:func:`awdvd.validate.optics_matrix.optics_axis`: sharp fields at
        other pixel sizes, synthetic defocus under the objectives of
        :data:`~awdvd.validate.optics_matrix.OPTICS_MATRIX`), under "optics"; the fields are taken as recorded at
        the model's pixel size.

    Returns the JSON written: {label: {"fields": level_matrix, "procedural": level_matrix, "maps": map_matrix,
    "optics": optics_axis}}.
    """

    sets = {"matrix": PAPER_CAMERAS, "unseen": UNSEEN_CAMERAS, "all": {**PAPER_CAMERAS, **UNSEEN_CAMERAS}}
    if cameras not in sets:
        raise ValueError(f"cameras must be one of {', '.join(sets)}, got {cameras!r}")
    chosen = sets[cameras]
    output = Path(output)
    targets = [output / "robustness.json", output / "robustness.md"]
    for target in targets:
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another -o folder or pass --overwrite")
    say = log if log is not None else (lambda line: None)
    images, names = load_in_focus_images(fields) if fields else ([], [])
    if not images and procedural < 1:
        raise ValueError("give in-focus fields the models never saw (FIELDS) and/or --procedural N > 0")
    if optics and not images:
        raise ValueError("the optics axis needs in-focus fields the models never saw (FIELDS)")
    held = dict(zip(names, images))
    synthetic = {f"procedural_{i}": f for i, f in enumerate(procedural_sources(procedural, seed=9001))}
    results = {}
    for entry in models:
        model = entry if hasattr(entry, "predict_patches") else load_model(entry)
        label = Path(str(entry)).stem if not hasattr(entry, "predict_patches") else "model"
        say(f"{label}: {len(held)} fields, {len(synthetic)} procedural fields, per level {per_level}")
        result = {"trained_on": (model.info.get("data") or {}).get("sources")}
        if held:
            result["fields"] = level_matrix(model, held, cameras=chosen, per_level=per_level, tta=tta, seed=seed)
            if maps:
                result["maps"] = map_matrix(model, held, cameras=chosen, seed=seed)
            if optics:
                result["optics"] = optics_axis(model, held, source_pixel_um=model.optics.pixel_um, seed=seed,
                                               log=say)
        if synthetic:
            result["procedural"] = level_matrix(model, synthetic, cameras=chosen, per_level=per_level, tta=tta,
                                                seed=seed)
        results[label] = result
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(targets[0], overwrite=overwrite) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1))
    lines = ["# Robustness matrix", "",
             "Windows of fields the models never saw, blurred at every level (Eq. 2) and recorded by each camera "
             "model (" + {"matrix": "awdvd.data.training_stream.PAPER_CAMERAS", "unseen": "awdvd.data.training_stream.UNSEEN_CAMERAS, outside "
                         "the training stream's camera range", "all": "awdvd.data.training_stream.PAPER_CAMERAS and UNSEEN_CAMERAS"}[
                 cameras] + "). Which fields a model trained on: " +
             "; ".join(f"{k}: {', '.join(v['trained_on'] or ['?'])}" for k, v in results.items()), ""]
    for kind in ("fields", "procedural"):
        tables = {k: v[kind] for k, v in results.items() if kind in v}
        if tables:
            lines += [f"## {'held-out in-focus fields' if kind == 'fields' else 'procedural nuclei'}", "",
                      robustness_markdown(tables)]
    for label, result in results.items():
        if "optics" in result:
            crop = result["optics"]["crop_px"]
            lines += [f"## optics axis: {label}", "",
                      f"Held-out fields (their top-left {crop[0]} x {crop[1]} px), depth in um read with each image's "
                      "optics (awdvd.validate.optics_matrix): sharp fields brought to other pixel sizes, the share "
                      "of windows with cells read in focus; synthetic defocus under each objective, the share of "
                      "windows within one (and half of one) level-equivalent of the true depth, at the object scale "
                      "the objective records and at the model's.", "", optics_markdown(result["optics"])]
    with atomic_path(targets[1], overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return results
