"""What ``--time-smoothing N`` does for a time-lapse: the depth maps of neighbouring frames combined (Gaussian over
N frames, :func:`awdvd.restore.frames.smooth_over_frames`), measured on two-channel time-lapses whose depth is
known. Not a test: prints figures and saves a JSON. Needs ../shared/data (BBBC006 a07, BBBC039).

    PYTHONPATH=src python benchmarks/bench_time_smoothing.py [-o FILE] [--frames 8]

The specimen is issue 26's two-stain one (bench_channels.two_stains): BBBC006 a07 as Hoechst (held out of the
bundled model's training) and a held-out BBBC039 field's texture as GFP (both cropped to the rows every frame
holds), tilted along x over 0-20 um, each frame recorded again by BBBC006's camera with its own noise. Two
time-lapses: "still" (the same cells in every frame) and "drifting" (both stains move 6 px along y per frame through
a fixed depth tilt, so that every frame's windows hold other cells). Per frame, as ``awdvd deconvolve`` runs a
multi-channel time-lapse: the Hoechst map, combined over N frames, both channels restored from it
(:func:`awdvd.restore.channels.restore_channels`); the figures are the map's foreground windows at their true level,
and each channel's share of its true-depth ceiling's PSNR gain (the ceiling: the true level at every window), mean
over the frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_channels import depth_surfaces, true_level_map, two_stains  # noqa: E402
from train_bundled_model import SHARED, split_bbbc039  # noqa: E402

SIGMAS = (0.0, 1.0, 2.0)
DRIFT_PX = 6


def frames_of(model, a07, second, camera, levels, n: int, drift_px: int) -> list[tuple]:
    """[(image (2, H, W), optics, truth)] of ``n`` frames: the stains' rows t * ``drift_px`` .. + H (H the
    fields' height less (n - 1) * ``drift_px``: the cells move up through the field), each frame recorded with
    its own noise (seed 1000 + t)."""
    height = levels.shape[0]
    return [two_stains(model, a07[drift_px * t:drift_px * t + height], second[drift_px * t:drift_px * t + height],
                       camera, 1000 + t, levels) for t in range(n)]


def measure(model, frames, levels, camera) -> dict:
    """{sigma: figures} over ``frames``."""
    from awdvd.metrics import psnr, truth_data_range
    from awdvd.restore.channels import channel_psfs, restore_channels
    from awdvd.restore.frames import smooth_over_frames
    from awdvd.restore.pipeline import defocus_map, restore_image

    def to_source(x):
        return np.asarray(x, np.float64) - camera.offset_adu + 96.0

    maps = [defocus_map(image[0], model, optics=optics[0]) for image, optics, _ in frames]
    true_map = true_level_map(levels, maps[0], model)
    baselines = []  # per frame and channel: (recorded, ceiling) PSNR, data range
    for image, optics, truth in frames:
        rows = []
        for c in range(2):
            data_range = truth_data_range(truth[c])
            ceiling = restore_image(image[c], model, dmap=true_map, optics=optics[c],
                                    psfs=channel_psfs(optics[c], true_map)).image
            rows.append((psnr(truth[c], to_source(image[c]), data_range=data_range),
                         psnr(truth[c], to_source(ceiling), data_range=data_range), data_range))
        baselines.append(rows)
    out = {}
    for sigma in SIGMAS:
        smoothed = smooth_over_frames(maps, sigma)
        exact, shares = [], [[], []]
        for (image, optics, truth), dmap, rows in zip(frames, smoothed, baselines):
            foreground = np.asarray(dmap.levels) >= 0
            exact.append(float(np.mean(np.asarray(dmap.levels)[foreground] == true_map.levels[foreground])))
            restored = restore_channels(image, model, optics=optics, names=["Hoechst", "GFP"], dmap=dmap).images
            for c, (recorded, ceiling, data_range) in enumerate(rows):
                gain = psnr(truth[c], to_source(restored[c]), data_range=data_range) - recorded
                shares[c].append(gain / (ceiling - recorded))
        out[f"{sigma:g}"] = {"foreground_windows_at_true_level": round(float(np.mean(exact)), 4),
                             "hoechst_share_of_ceiling": round(float(np.mean(shares[0])), 4),
                             "gfp_share_of_ceiling": round(float(np.mean(shares[1])), 4),
                             "gfp_share_worst_frame": round(float(np.min(shares[1])), 4)}
        print(f"  sigma {sigma:g} frames: {out[f'{sigma:g}']}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.io import read_image
    from awdvd.learn.model_files import load_model
    from awdvd.learn.range_extension import near_optics

    model = load_model()
    camera = PAPER_CAMERAS["bbbc006"]
    a07 = read_image(next((SHARED / "bbbc006" / "in_focus").glob("*__a07__*.png"))).data.astype(np.float32)
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    second = read_image(held[1]).data.astype(np.float32)[: a07.shape[0], : a07.shape[1]]
    height = a07.shape[0] - DRIFT_PX * (args.frames - 1)  # every frame's crop inside the fields
    levels = depth_surfaces((height, a07.shape[1]), near_optics(model).n_levels)["tilted along x"]
    started = time.perf_counter()
    result = {"command": "python benchmarks/bench_time_smoothing.py " + " ".join(sys.argv[1:] if argv is None
                                                                                  else argv),
              "model": "bundled", "frames": args.frames,
              "split": "Hoechst: BBBC006 a07 (held out of the bundled model's training); GFP: a held-out BBBC039 "
                       "field's texture; BBBC006's camera, noise seeds 1000 + frame",
              "time_lapses": {}}
    for name, drift in (("still", 0), (f"drifting {DRIFT_PX} px per frame", DRIFT_PX)):
        print(name, flush=True)
        frames = frames_of(model, a07, second, camera, levels, args.frames, drift)
        result["time_lapses"][name] = measure(model, frames, levels, camera)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result["time_lapses"], indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
