"""The deep-range model on data it never trained on: windows of unseen fields under every camera, real
strongly defocused (z00) and real in-focus fields, for one or more models side by side.

- windows: BBBC006 a07 (held out of every bundled model's training) and the held-out BBBC039 fields (every 8th by
  name, benchmarks/train_bundled_model.py) blurred at every level of the model (Eq. 2) and recorded by every camera
  of PAPER_CAMERAS and UNSEEN_CAMERAS; only windows that hold a cell (awdvd.validate.robustness.cell_test). BBBC039
  fields are first brought from their own optics (20x / NA 0.45, 0.645 um, 0.46 um) to the model's grid
  (awdvd.data.training_sources.sources_on_model_grid), which is what the pipeline does with optics=.
- noise-only windows of a07 (windows the cell test rejects) at level 0 under each camera: how often they are
  called background, and how often a level of 2 or more.
- real z00 fields (about 32 um out of focus, BBBC006, never trained on): the depth of every foreground window
  (awdvd.defocus_map, the pipeline's defaults); real in-focus fields: a07 at the bundled optics and the held-out
  BBBC039 fields given with their own optics (optics=): the share of foreground windows within one
  level-equivalent of 0 (depth <= one model z step carried into the image's optics).

    python benchmarks/bench_deep_range.py --model deep=/work/exp/deep/model.pt --model bundled=bundled \
        --per-level 40 --b039-per-level 8 \
        -o benchmarks/results/deep_range.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bundled_model import BBBC039_OPTICS, SHARED, split_bbbc039  # noqa: E402


def _fields():
    from awdvd.io import read_image

    a07 = read_image(next((SHARED / "bbbc006" / "in_focus").glob("*__a07__*.png"))).data.astype(np.float32)
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    b039 = {p.name.split("_w1")[0]: read_image(p).data.astype(np.float32) for p in held}
    z00 = [read_image(p).data.astype(np.float32) for p in sorted((SHARED / "bbbc006" / "defocus_z00").glob("*.tif"))]
    return a07, b039, z00


def window_figures(model, a07, b039, *, per_level: int, b039_per_level: int, cameras) -> dict:
    from awdvd.data.training_sources import sources_on_model_grid
    from awdvd.physics.optics import Optics
    from awdvd.validate.robustness import level_matrix

    names = list(b039)
    on_grid = sources_on_model_grid([b039[n] for n in names], [Optics(**BBBC039_OPTICS)] * len(names), model.optics)
    return {"bbbc006_a07": level_matrix(model, {"a07": a07}, cameras=cameras, per_level=per_level),
            "bbbc039_held_out": level_matrix(model, dict(zip(names, on_grid)), cameras=cameras,
                                             per_level=b039_per_level)}


def noise_only(model, a07, *, cameras, n: int = 60, seed: int = 0) -> dict:
    from awdvd.restore.defocus_maps import classify_windows
    from awdvd.validate.robustness import cell_test

    holds = cell_test(a07)
    rng = np.random.default_rng(seed)
    ys, xs = [], []
    while len(ys) < n:
        y, x = int(rng.integers(0, a07.shape[0] - 83)), int(rng.integers(0, a07.shape[1] - 83))
        if not holds(y, x):
            ys.append(y)
            xs.append(x)
    ys, xs = np.array(ys), np.array(xs)
    levels = np.asarray(model.class_levels)
    out = {}
    for name, camera in cameras.items():
        image = camera.record(a07, np.random.default_rng([seed, len(name)]), source_offset_adu=96.0)
        called = levels[np.argmax(classify_windows(image, model, ys, xs), axis=-1)]
        out[name] = {"background": float(np.mean(called == -1)), "level_2_or_more": float(np.mean(called >= 2)),
                     "n": int(n)}
    return out


def real_figures(model, a07, b039, z00) -> dict:
    import awdvd
    from awdvd.physics.optical_units import level_step_um
    from awdvd.physics.optics import Optics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        depths = [awdvd.defocus_map(image, model).depth_um for image in z00]
        deep = np.concatenate([d[np.isfinite(d)] for d in depths])
        in_focus = {}
        d = awdvd.defocus_map(a07, model).depth_um
        d = d[np.isfinite(d)]
        in_focus["bbbc006_a07"] = {"within_one_level": float(np.mean(d <= model.optics.z_step_um + 1e-6)),
                                   "windows": int(d.size), "median_um": float(np.median(d))}
        b039_optics = Optics(**BBBC039_OPTICS)
        step = level_step_um(b039_optics, model.optics)
        all_d = np.concatenate([awdvd.defocus_map(image, model, optics=b039_optics).depth_um.ravel()
                                for image in b039.values()])
        all_d = all_d[np.isfinite(all_d)]
        in_focus["bbbc039_held_out"] = {"within_one_level": float(np.mean(all_d <= step + 1e-6)),
                                        "windows": int(all_d.size), "median_um": float(np.median(all_d)),
                                        "level_step_um": step}
    per_field = [float(np.nanmedian(d)) for d in depths]
    return {"z00": {"fields": len(z00), "windows": int(deep.size), "share_ge_24um": float(np.mean(deep >= 24.0)),
                    "median_um": float(np.median(deep)), "field_medians_um": per_field,
                    "deepest_level_um": (model.optics.n_levels - 1) * model.optics.z_step_um},
            "in_focus": in_focus}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (PATH 'bundled': the bundled model)")
    parser.add_argument("--per-level", type=int, default=60)
    parser.add_argument("--b039-per-level", type=int, default=12)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from awdvd.data.training_stream import PAPER_CAMERAS, UNSEEN_CAMERAS
    from awdvd.learn.model_files import load_model

    cameras = {**PAPER_CAMERAS, **UNSEEN_CAMERAS}
    a07, b039, z00 = _fields()
    report = {"command": "python benchmarks/" + Path(__file__).name + " " + " ".join(sys.argv[1:] if argv is None else argv),
              "split": "unseen: BBBC006 a07 and BBBC039 every 8th field by name (held out of training); z00: "
                       "BBBC006 plane z00 fields (never trained on)", "models": {}}
    for item in args.model:
        label, path = item.split("=", 1)
        model = load_model(None if path == "bundled" else path)
        started = time.time()
        entry = {"path": path, "levels": int(model.optics.n_levels), "windows": window_figures(
            model, a07, b039, per_level=args.per_level, b039_per_level=args.b039_per_level, cameras=cameras),
            "noise_only_a07": noise_only(model, a07, cameras=cameras), "real": real_figures(model, a07, b039, z00)}
        entry["seconds"] = round(time.time() - started, 1)
        report["models"][label] = entry
        for split, matrix in entry["windows"].items():
            worst = min(matrix["cameras"].items(), key=lambda kv: kv[1]["top1"])
            worst1 = min(matrix["cameras"].items(), key=lambda kv: kv[1]["within1"])
            print(f"{label} {split}: worst top-1 {worst[1]['top1']:.3f} ({worst[0]}), worst +/-1 "
                  f"{worst1[1]['within1']:.3f} ({worst1[0]})", flush=True)
        print(f"{label} real: {json.dumps(entry['real']['in_focus'])}; z00 >=24um {entry['real']['z00']['share_ge_24um']:.3f}, "
              f"median {entry['real']['z00']['median_um']:.1f} um", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
