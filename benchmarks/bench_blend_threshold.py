"""Probability blending's class threshold (awdvd.restore.blend.MIN_PROBABILITY, issue 12): for each threshold, the PSNR
change per level band and of the whole image of the tilted specimens of the shared in-focus fields
(awdvd.data.synth.tilted_specimen, seed = the field's index, BBBC006's camera) restored by
``awdvd.deconvolve`` with the bundled model and the library defaults, and the CPU and wall time against 30 plain
iterations with argmax levels (the paper's, map included in both), interleaved over ``--repeats`` rounds.

    .venv/bin/python benchmarks/bench_blend_threshold.py [--thresholds 0.1 0.2 0.3] [--repeats 2] [--in-focus DIR]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "bbbc006", "in_focus")


def main() -> None:
    import awdvd
    from awdvd.data.synth import tilted_specimen
    from awdvd.io import read_image
    from awdvd.metrics import band_gains
    from awdvd.restore import blend

    parser = argparse.ArgumentParser()
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--in-focus", default=SHARED)
    parser.add_argument("-o", "--output", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.in_focus, "*.png")))
    if not paths:
        raise SystemExit(f"no in-focus PNG images in {args.in_focus}")
    model = awdvd.load_model()
    specimens = [tilted_specimen(read_image(p).data, seed=i) for i, p in enumerate(paths)]
    default_threshold = blend.MIN_PROBABILITY
    runs = {"paper": None, **{f"{t:g}": t for t in args.thresholds}}
    results = {name: {"cpu_s": 0.0, "wall_s": 0.0, "bands": [], "whole": []} for name in runs}
    try:
        for repeat in range(args.repeats):
            for name, threshold in runs.items():
                if threshold is None:
                    options = dict(iterations=30, rl="plain", level_blend="argmax")
                else:
                    options = {}
                    blend.MIN_PROBABILITY = threshold
                    blend.window_label_weights.__defaults__ = ("argmax", threshold)  # bound at definition
                for specimen in specimens:
                    wall, cpu = time.perf_counter(), time.process_time()
                    out = awdvd.deconvolve(specimen.observed, model, **options)
                    results[name]["cpu_s"] += (time.process_time() - cpu) / args.repeats
                    results[name]["wall_s"] += (time.perf_counter() - wall) / args.repeats
                    if repeat == 0:
                        gains, whole = band_gains(specimen, out)
                        results[name]["bands"].append(gains)
                        results[name]["whole"].append(whole)
    finally:
        blend.MIN_PROBABILITY = default_threshold
        blend.window_label_weights.__defaults__ = ("argmax", default_threshold)
    paper_cpu = results["paper"]["cpu_s"]
    print("| threshold | whole gain (dB) | worst band (dB) | CPU time / 30 plain iterations | wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        bands = np.mean(r["bands"], axis=0)
        r["band_gain_db"] = [round(float(v), 3) for v in bands]
        r["whole_gain_db"] = round(float(np.mean(r["whole"])), 3)
        r["cpu_ratio"] = round(r["cpu_s"] / paper_cpu, 3)
        print(f"| {name} | {r['whole_gain_db']:+.2f} | {bands.min():+.2f} | {r['cpu_ratio']:.2f} | {r['wall_s']:.1f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({name: {k: v for k, v in r.items() if k not in ("bands", "whole")}
                       for name, r in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
