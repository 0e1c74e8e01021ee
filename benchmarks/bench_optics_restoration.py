"""Restoration with the model's own map under other objectives: tilted specimens of fields the model never saw.

    .venv/bin/python benchmarks/bench_optics_restoration.py [--fields 2] [--scale model|object] [--whole]
        [--optics NAME ...] [--model PATH] [-o FILE]

What a user runs: ``awdvd.deconvolve(image, optics=Optics(...))`` (defaults, the bundled model's own map made on
its sampling, restoration on the image's grid with PSFs of the image's optics). Per objective of the matrix
(awdvd.validate.optics_matrix.OPTICS_MATRIX) and source field (BBBC006 a07 and BBBC039 fields, never trained on): the field brought to
the objective's grid (``--scale model``: nuclei as large on the model's sampling as in training; ``object``: the
same nuclei in um), tilted from level-equivalent 0 at the left to 10 at the right (Eq. 2 of the objective,
BBBC006's camera model), restored; scored against the in-focus truth per level band and whole, against the
true-level ceiling (true window levels on the image's grid, the best plain RL count per level:
awdvd.validate.restoration_bands.ceiling). Floors (issue 28): whole-image gain >= 90% of the ceiling's, no band
below -0.3 dB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from bench_optics import sources

from awdvd import load_model
from awdvd.data.synth import CameraNoise, tilted_specimen
from awdvd.learn.range_extension import near_optics
from awdvd.metrics import band_gains
from awdvd.physics.optical_units import grid_factor, level_step_um, to_grid
from awdvd.physics.psf import psf_bank
from awdvd.restore.image_optics import sampling_factor
from awdvd.restore.pipeline import restore_image
from awdvd.validate.optics_matrix import CROP_PX, OPTICS_MATRIX
from awdvd.validate.restoration_bands import ceiling


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=2, help="BBBC039 fields beside BBBC006 a07 (default 2)")
    parser.add_argument("--scale", choices=("model", "object"), default="model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--whole", action="store_true",
                        help="whole 520 x 696 fields (bands 63 px wide, as in the restoration band report) instead "
                             "of bench_optics' 260 x 348 crops (bands narrower than a window)")
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--optics", action="append", choices=list(OPTICS_MATRIX), metavar="NAME",
                        help="only this objective of the matrix (repeatable; default: all)")
    parser.add_argument("-o", "--output", type=Path,
                        default=Path(__file__).parent / "results" / "optics_restoration.json")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    model = load_model(args.model)
    fields = sources(args.fields)
    if not args.whole:
        fields = {name: field[: CROP_PX[0], : CROP_PX[1]] for name, field in fields.items()}
    start = time.perf_counter()
    out = {"command": "python benchmarks/bench_optics_restoration.py " + " ".join(argv if argv is not None
                                                                                  else sys.argv[1:]),
           "model": args.model or "bundled", "scale": args.scale, "whole_fields": args.whole, "fields": sorted(fields), "optics": {}}
    for name, optics in OPTICS_MATRIX.items():
        if args.optics and name not in args.optics:
            continue
        factor = 1.0 / grid_factor(optics, model.optics)
        if args.scale == "object":
            factor = 0.65 / optics.pixel_um
        near = near_optics(model)  # tilts over the near range (0-20 um), in level-equivalents of the objective
        bank_optics = optics.replace(z_step_um=level_step_um(optics, near), n_levels=near.n_levels)
        psfs = psf_bank(bank_optics)  # the specimen's and the ceiling's (true depths)
        patch_px, stride = (int(round(v / sampling_factor(optics, model.optics))) for v in (84, 42))
        rows = []
        for index, (field_name, field) in enumerate(fields.items()):
            specimen = tilted_specimen(to_grid(field, factor), optics=bank_optics, noise=CameraNoise(),
                                       seed=args.seed + index)
            result = restore_image(specimen.observed, model, optics=optics)  # as awdvd.deconvolve runs it
            gains, whole = band_gains(specimen, result.image)
            best = ceiling(specimen, psfs, stride=stride, patch_px=patch_px)
            rows.append({"field": field_name, "band_gain_db": [round(g, 3) for g in gains],
                         "whole_gain_db": round(whole, 3), "ceiling_whole_gain_db": round(best["whole_gain_db"], 3),
                         "ceiling_share": round(whole / best["whole_gain_db"], 4) if best["whole_gain_db"] > 0 else None,
                         "worst_band_db": round(min(gains), 3)})
            print(f"{name}, {field_name}: whole {whole:+.2f} dB (ceiling {best['whole_gain_db']:+.2f} dB), worst band "
                  f"{min(gains):+.2f} dB", flush=True)
        whole = float(np.mean([r["whole_gain_db"] for r in rows]))
        best = float(np.mean([r["ceiling_whole_gain_db"] for r in rows]))
        out["optics"][name] = {"fields": rows, "whole_gain_db": round(whole, 3), "ceiling_whole_gain_db": round(best, 3),
                               "ceiling_share": round(whole / best, 4) if best > 0 else None,
                               "worst_band_db": round(min(r["worst_band_db"] for r in rows), 3),
                               "image_px_per_model_px": round(1 / sampling_factor(optics, model.optics), 3)}
        print(f"== {name}: whole {whole:+.2f} dB = {whole / best:.1%} of the ceiling; worst band "
              f"{out['optics'][name]['worst_band_db']:+.2f} dB", flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
