"""Depth in micrometres under other objectives: the bundled model read through optical units (DESIGN 7).

    .venv/bin/python benchmarks/bench_optics.py [--fields 4] [--seed 0] [-o benchmarks/results/optics.json]

What a user runs: ``awdvd.defocus_map(image, optics=Optics(...))`` with the image's own optics, the model's map
made on its own sampling and its depths given in the image's optics. Sources are real in-focus fields the model
never trained on: BBBC006 a07 (held out from the bundled model's training) and BBBC039 fields (another screen; the
ones every model trained by benchmarks/train_bundled_model.py holds out).

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

from awdvd import load_model
from awdvd.io import read_image
from awdvd.validate.optics_matrix import CROP_PX, optics_axis

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def sources(n_bbbc039: int) -> dict[str, np.ndarray]:
    """BBBC006 a07 and the first ``n_bbbc039`` BBBC039 fields held out of the bundled model's training (every 8th
    by name, benchmarks/train_bundled_model.py)."""
    from train_bundled_model import split_bbbc039

    fields = {"bbbc006 a07": SHARED / "bbbc006" / "in_focus" / "BBBC006_z_aligned__a07__s1__w1_10.png"}
    for path in split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))[1][:n_bbbc039]:
        fields[f"bbbc039 {path.name.split('_w1')[0]}"] = path
    return {name: read_image(path).data.astype(np.float32) for name, path in fields.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=4, help="BBBC039 fields beside BBBC006 a07 (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "results" / "optics.json")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"the shared data are not at {SHARED}", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    model = load_model(args.model)
    fields = sources(args.fields)
    start = time.perf_counter()
    axis = optics_axis(model, fields, crop=CROP_PX, seed=args.seed, log=lambda line: print(line, flush=True))
    result = {
        "command": "python benchmarks/bench_optics.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model or "bundled", "fields": sorted(fields), **axis,
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
