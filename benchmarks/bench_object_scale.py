"""Objectives whose cells look larger to the model than its training nuclei: reading and restoration.

The model reads an image in its own optical units (lengths in wavelength / NA), so an objective of higher NA /
wavelength shows the same cells larger on the model's sampling: ``scale = (wavelength / NA)_model /
(wavelength / NA)_image`` (1.3 for a 40x / 0.75 at 0.52 um emission, 2.4 for a 60x / 1.4 oil). For a range of
scales, synthetic objectives (emission 0.52 um, immersion index 1.518, NA chosen for the scale, pixels as many per
optical unit as the model's, so no resampling), with the real nuclei of fields the model never trained on
(BBBC006 a07 and the first two held-out BBBC039 fields, 169 x 226 um crops) brought to that pixel size:

1. depth read within one level-equivalent of the truth (all 11 levels, windows that hold cells),
2. whole-image PSNR gain of ``awdvd.restore_image`` with the model's own map at uniform depths (level-
   equivalents 0, 3, 6 and 10), beside the same restoration given the true depth (every foreground window at
   its level, the PSFs of that depth),

BBBC006's camera model. What a user with such an objective gets, and where awdvd should warn.

    python benchmarks/bench_object_scale.py -o benchmarks/results/object_scale.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_optics import SHARED, sources  # noqa: E402

SCALES = (1.0, 1.3, 1.6, 1.9, 2.2, 2.43)
LEVELS = (0, 3, 6, 10)


def objective(scale: float, model_optics):
    """The synthetic objective whose cells look ``scale`` times larger to the model (module docstring)."""
    from awdvd.physics.optics import Optics

    wavelength = 0.52
    na = wavelength * scale * model_optics.na / model_optics.wavelength_um
    pixel = model_optics.pixel_um * (wavelength / na) / (model_optics.wavelength_um / model_optics.na)
    return Optics(wavelength_um=wavelength, na=round(na, 4), n=1.518, pixel_um=round(pixel, 4))


def restoration_gains(model, fields: dict, optics, camera, rng) -> dict:
    """{level: {"model_map_db", "true_depth_db"}}: mean whole-image gains over ``fields`` at uniform depths."""
    from awdvd.data.synth import blur_levels
    from awdvd.learn.range_extension import near_optics
    from awdvd.metrics import psnr, truth_data_range
    from awdvd.physics.optical_units import level_step_um
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.pipeline import restore_image

    step = level_step_um(optics, model.optics)
    bank = psf_bank(optics.replace(z_step_um=step, n_levels=near_optics(model).n_levels))
    # the true depth's PSFs: level l at l level-equivalents, whatever steps the model's reading uses
    true_bank = psf_bank(optics.replace(z_step_um=step, n_levels=model.optics.n_levels), size=bank.shape[-1])
    gains = {level: {"model_map_db": [], "true_depth_db": []} for level in LEVELS}
    for image in fields.values():
        blurred = blur_levels(np.maximum(image - camera.offset_adu, 0.0), bank) + camera.offset_adu
        data_range = truth_data_range(image)
        for level in LEVELS:
            observed = camera.apply(blurred[level], rng)
            recorded = psnr(image, observed, data_range=data_range)
            result = restore_image(observed, model, optics=optics)
            levels = np.where(np.asarray(result.dmap.levels) >= 0, level, -1)
            classes = np.asarray(result.dmap.class_levels)
            truth = dataclasses.replace(result.dmap, levels=levels.astype(np.int64),
                                        proba=(classes[None, None, :] == levels[..., None]).astype(np.float32))
            true_depth = restore_image(observed, model, optics=optics, dmap=truth, level_blend="argmax",
                                       psfs=true_bank)
            gains[level]["model_map_db"].append(psnr(image, result.image, data_range=data_range) - recorded)
            gains[level]["true_depth_db"].append(psnr(image, true_depth.image, data_range=data_range) - recorded)
    return {str(level): {k: round(float(np.mean(v)), 2) for k, v in row.items()} for level, row in gains.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"the shared data are not at {SHARED}", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    from awdvd import load_model
    from awdvd.data.synth import CameraNoise
    from awdvd.physics.optical_units import to_grid
    from awdvd.validate.optics_matrix import CROP_PX, defocus_under_optics

    model = load_model(args.model)
    crops = {name: field[: CROP_PX[0], : CROP_PX[1]] for name, field in sources(2).items()}
    camera = CameraNoise()
    rows = {}
    for scale in SCALES:
        optics = objective(scale, model.optics)
        start = time.perf_counter()
        reading = defocus_under_optics(model, crops, scale="object", matrix={"o": optics}, camera=camera,
                                       seed=args.seed)["o"]
        fields = {name: to_grid(crop, 0.65 / optics.pixel_um) for name, crop in crops.items()}
        gains = restoration_gains(model, fields, optics, camera, np.random.default_rng([args.seed, 1]))
        rows[f"{scale:g}"] = {"optics": dataclasses.asdict(optics),
                              "level_equivalent_um": reading["level_equivalent_um"],
                              "within_1": reading["within_1"], "within_half": reading["within_half"],
                              "mean_abs_error_levels": reading["mean_abs_error_levels"], "windows": reading["windows"],
                              "restoration_gain_db": gains, "seconds": round(time.perf_counter() - start, 1)}
        print(f"scale {scale:g} (NA {optics.na}, {optics.pixel_um} um): within one level {reading['within_1']}; "
              f"gains {json.dumps(gains)}", flush=True)
    report = {"command": "python benchmarks/bench_object_scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": args.model or "bundled", "fields": sorted(crops), "camera": "BBBC006's (CameraNoise())",
              "split": "BBBC006 a07 and two BBBC039 fields held out of every training", "scales": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
