"""Restoration with the range-extended model against an 11-level model, on tilted specimens of the six shared
BBBC006 fields: 0-20 um (11 bands, the range both models read) and 0-40 um (21 bands, past the 11-level model's
end), BBBC006's camera, the library defaults (``restore_image`` as ``awdvd deconvolve`` runs it, the model's own
map), beside the true-level ceiling (plain RL, best count per level, :func:`awdvd.validate.restoration_bands.ceiling`).

a07 is held out of both networks' training; a02-a06 were training sources (the gains are on specimens and noise
made here, not on training windows, but the fields are not unseen). Seconds are one warm run each, 2 cores.

    python benchmarks/bench_range_extension.py --extended src/awdvd/models/delpnet_default.pt \
        -o benchmarks/results/range_extension_bands.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FIELDS = ROOT.parent / "shared" / "data" / "bbbc006" / "in_focus"


def measure(models: dict, *, levels=(11, 21)) -> dict:
    from awdvd.data.synth import CameraNoise, tilted_specimen
    from awdvd.io import read_image
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.pipeline import restore_image
    from awdvd.validate.restoration_bands import band_gains, ceiling

    out = {}
    for n_levels in levels:
        optics = Optics(n_levels=n_levels)
        for index, path in enumerate(sorted(FIELDS.glob("*.png"))):
            image = read_image(path).data.astype(np.float32)
            specimen = tilted_specimen(image, optics=optics, noise=CameraNoise(), seed=index)
            row = {}
            for name, model in models.items():
                restore_image(specimen.observed, model)  # warm: FFT plans, PSF banks
                start = time.perf_counter()
                result = restore_image(specimen.observed, model)
                seconds = time.perf_counter() - start
                gains, whole = band_gains(specimen, result.image)
                row[name] = {"band_gain_db": gains, "whole_gain_db": whole, "seconds": round(seconds, 3)}
            best = ceiling(specimen, psf_bank(optics), variant="plain")
            row["ceiling"] = {"band_gain_db": best["band_gain_db"], "whole_gain_db": best["whole_gain_db"]}
            field = path.name.split("__")[1]
            out.setdefault(f"0-{optics.depths_um[-1]:g} um", {})[field] = row
            print(n_levels, field, {k: round(v["whole_gain_db"], 2) for k, v in row.items()}, flush=True)
    return out


def summary(fields: dict) -> dict:
    out = {}
    for tilt, rows in fields.items():
        names = list(next(iter(rows.values())))
        out[tilt] = {}
        for name in names:
            whole = [rows[f][name]["whole_gain_db"] for f in rows]
            bands = np.mean([rows[f][name]["band_gain_db"] for f in rows], axis=0)
            entry = {"whole_gain_db_mean": float(np.mean(whole)), "worst_mean_band_db": float(bands.min()),
                     "band_gain_db_mean": [round(float(b), 3) for b in bands]}
            if name != "ceiling":
                ceil = [rows[f]["ceiling"]["whole_gain_db"] for f in rows]
                entry["share_of_ceiling"] = float(np.mean(whole) / np.mean(ceil))
                entry["seconds_mean"] = float(np.mean([rows[f][name]["seconds"] for f in rows]))
            out[tilt][name] = entry
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extended", type=Path, required=True, help="the range-extended model file")
    parser.add_argument("--baseline", default="near", help="an 11-level model file, or 'near' (default): the "
                        "extended model's own near network")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from awdvd.learn.model_files import load_model

    warnings.simplefilter("ignore")  # the paper's optics are undersampled by design; deep tilts warn past 20 um
    extended = load_model(args.extended)
    baseline = extended.range_parts[0] if args.baseline == "near" else load_model(args.baseline)
    models = {"11_levels": baseline, "range_extended": extended}
    fields = measure(models)
    given = " ".join(sys.argv[1:] if argv is None else argv)
    report = {"command": f"python benchmarks/bench_range_extension.py {given}",
              "split": "tilted specimens of BBBC006 a02-a07 (a07 held out of training; a02-a06 training sources), "
                       "BBBC006's camera (CameraNoise), seeds 0-5",
              "summary": summary(fields), "fields": fields}
    args.output.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
