"""Depth in micrometres under other objectives: the bundled model read through optical units (DESIGN 7).

    .venv/bin/python benchmarks/bench_optics.py [--fields 4] [--seed 0] [-o benchmarks/results/optics.json]

What a user runs: ``awdvd.defocus_map(image, optics=Optics(...))`` with the image's own optics, the model's map
made on its own sampling and its depths given in the image's optics. Sources are real in-focus fields the model
never trained on: BBBC006 a07 (held out from the bundled model's training) and BBBC039 fields (another screen).

Two checks:

1. Sharp fields at other pixel sizes (0.65, 0.43, 0.325, 0.22 um and 0.98 um): each field, recorded at 0.65 um,
   brought to the pixel size by area-weighted resampling and given with that pixel size; the share of its
   foreground windows read in focus (depth <= 2 um, one level at the bundled optics).
2. Synthetic defocus under each objective of the matrix, at two object scales: "object" (the field brought to the
   objective's pixel size: the same nuclei in um, what the objective really records) and "model" (the field
   brought to the objective's grid so that on the model's sampling its nuclei are as large as in the training
   data); blurred by Eq. 2 of that objective at the depth of level-equivalent l (the model's 2 um step carried
   into the objective by its defocus phase), camera noise (BBBC006's camera model), then mapped with the
   objective's optics; per window that holds cells, the depth error in level-equivalents: within 1 and 0.5.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from awdvd import Optics, defocus_map, load_model
from awdvd.data.synth import CameraNoise, blur_levels
from awdvd.io import read_image
from awdvd.physics.optical_units import grid_factor, level_step_um, to_grid
from awdvd.physics.psf import psf_bank
from awdvd.validate.robustness import cell_test

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MATRIX = {
    "20x/0.5 (model's)": Optics(),
    "20x/0.45, 0.645 um": Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645),
    "10x/0.3, 0.65 um": Optics(wavelength_um=0.46, na=0.3, n=1.0, pixel_um=0.65),
    "40x/0.75, 0.1625 um": Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625),
    "60x/1.4 oil, 0.108 um": Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108),
}
PIXELS_UM = (0.65, 0.43, 0.325, 0.22, 0.98)
CROP = (260, 348)  # px at 0.65 um of each source field: 169 x 226 um


def sources(n_bbbc039: int, crop=CROP) -> dict[str, np.ndarray]:
    fields = {"bbbc006 a07": SHARED / "bbbc006" / "in_focus" / "BBBC006_z_aligned__a07__s1__w1_10.png"}
    for path in sorted((SHARED / "bbbc039" / "in_focus").glob("*.tif"))[:n_bbbc039]:
        fields[f"bbbc039 {path.name.split('_w1')[0]}"] = path
    rows, cols = crop if crop is not None else (None, None)
    return {name: read_image(path).data.astype(np.float32)[:rows, :cols] for name, path in fields.items()}


def windows_with_cells(field: np.ndarray, dmap) -> np.ndarray:
    """(ny, nx) bool: the map's windows whose footprint holds cells in the in-focus field (on the field's grid)."""
    holds = cell_test(field, patch_px=dmap.patch_px)
    return np.array([[holds(int(y), int(x)) for x in dmap.xs] for y in dmap.ys])


def sharp_at_pixel_sizes(model, fields) -> dict:
    out = {}
    for pixel in PIXELS_UM:
        read = total = 0
        for field in fields.values():
            image = to_grid(field, 0.65 / pixel)
            dmap = defocus_map(image, model, optics=Optics(pixel_um=pixel))
            cells = windows_with_cells(image, dmap) & (dmap.levels >= 0)
            read += int((dmap.depth_um[cells] <= 2.0).sum())
            total += int(cells.sum())
        out[f"{pixel:g}"] = {"in_focus_share": round(read / max(total, 1), 4), "windows": total}
        print(f"sharp at {pixel:g} um: {read / max(total, 1):.3f} of {total} windows with cells read <= 2 um",
              flush=True)
    return out


def defocus_under_optics(model, fields, seed: int, scale: str) -> dict:
    rng = np.random.default_rng(seed)
    noise = CameraNoise()
    out = {}
    for name, optics in MATRIX.items():
        factor = 0.65 / optics.pixel_um if scale == "object" else 1.0 / grid_factor(optics, model.optics)
        step = level_step_um(optics, model.optics)
        bank = psf_bank(optics.replace(z_step_um=step, n_levels=model.optics.n_levels))
        errors, start = [], time.perf_counter()
        for field in fields.values():
            image = to_grid(field, factor)
            offset = noise.offset_adu
            blurred = blur_levels(np.maximum(image - offset, 0.0), bank) + offset
            for level in range(model.optics.n_levels):
                observed = noise.apply(blurred[level], rng)
                dmap = defocus_map(observed, model, optics=optics)
                cells = windows_with_cells(image, dmap) & (dmap.levels >= 0)
                errors.append((dmap.depth_um[cells] - level * step) / step)
        err = np.abs(np.concatenate(errors))
        out[name] = {"level_equivalent_um": round(step, 4), "windows": int(err.size),
                     "within_1": round(float(np.mean(err <= 1.0)), 4),
                     "within_half": round(float(np.mean(err <= 0.5)), 4),
                     "mean_abs_error_levels": round(float(err.mean()), 4), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{scale} scale, {name}: one level {step:.3g} um; |depth error| <= 1 level {out[name]['within_1']:.3f}, <= 0.5 "
              f"{out[name]['within_half']:.3f} ({err.size} windows)", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=4, help="BBBC039 fields beside BBBC006 a07 (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "results" / "optics.json")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"the shared data are not at {SHARED}", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    model = load_model()
    fields = sources(args.fields)
    start = time.perf_counter()
    result = {
        "command": "python benchmarks/bench_optics.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": "bundled", "fields": sorted(fields), "camera": CameraNoise().to_dict(),
        "sharp_at_pixel_sizes": sharp_at_pixel_sizes(model, fields),
        "defocus_under_optics": {scale: defocus_under_optics(model, fields, args.seed, scale)
                                 for scale in ("object", "model")},
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
