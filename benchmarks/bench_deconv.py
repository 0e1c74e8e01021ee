"""Benchmark of the restoration side of awdvd (issue 4). Not a test: prints figures and saves a JSON.

    PYTHONPATH=src python benchmarks/bench_deconv.py [--model MODEL.pt] [--quick] [--sections 1,2,3,4] [-o FILE]

Sections (peers are always timed in the same run, interleaved, so that ratios survive a shared CPU):

1. Richardson-Lucy: awdvd.richardson_lucy against skimage.restoration.richardson_lucy on the same 696 x 520
   image (a real BBBC006 z00 image, uint16), 61 px PSF (level 6), 30 iterations. skimage computes in the input's
   float type: float64 for the uint16 image as read, float32 if handed float32; both are timed.
2. AWDVD on a synthetic tilted specimen (an in-focus BBBC006 image, level rising 0 -> 10 across the field,
   forward_bank + camera noise) with the true window levels: fast vs patch-wise at strides 42 and 8 (times,
   PSNR/SSIM against the in-focus truth), and case (i) (stride 84, rectangular).
3. Defocus maps on a 696 x 520 image with a randomly initialised default DelpNet (speed does not depend on the
   weights): patch mode vs dense mode at stride 16 (and dense at 8).
4. Dense vs patch-wise agreement of the levels: only meaningful with a trained model (--model, default the bundled
   one). Without one the section says so and is skipped.

Needs ../shared/data/bbbc006 (relative to the project root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from awdvd.restore.plan import RestorationPlan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data" / "bbbc006"


def timed(function, repeats: int):
    """(list of seconds, last result)."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def summary(seconds):
    return {"median_s": round(statistics.median(seconds), 4), "min_s": round(min(seconds), 4),
            "runs_s": [round(s, 4) for s in seconds]}


def interleaved(functions: dict, repeats: int) -> dict:
    """Time every function ``repeats`` times, round-robin, after one warm-up call each."""
    for function in functions.values():
        function()
    runs = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            runs[name].append(time.perf_counter() - start)
    return {name: summary(values) for name, values in runs.items()}


def bench_rl(image, psf, repeats):
    from skimage import restoration

    from awdvd.restore.rl import richardson_lucy

    as_float32 = image.astype(np.float32)
    psf32 = psf.astype(np.float32)
    times = interleaved({
        "awdvd_richardson_lucy": lambda: richardson_lucy(image, psf, iterations=30, device="cpu"),
        "skimage_uint16_input_float64": lambda: restoration.richardson_lucy(image, psf, num_iter=30, clip=False),
        "skimage_float32_input": lambda: restoration.richardson_lucy(as_float32, psf32, num_iter=30, clip=False),
    }, repeats)
    ours = times["awdvd_richardson_lucy"]["median_s"]
    return {
        "times": times,
        "ratio_vs_skimage_float64": round(ours / times["skimage_uint16_input_float64"]["median_s"], 3),
        "ratio_vs_skimage_float32": round(ours / times["skimage_float32_input"]["median_s"], 3),
        "floor": "<= 0.6 x skimage",
    }


def bench_awdvd(specimen, bank, rl_image, rl_psf, *, quick: bool, repeats: int):
    from skimage import restoration

    from awdvd.metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range
    from awdvd.restore.blend import deconvolve_levels
    from awdvd.restore.windows import DefocusMap, window_levels_from_pixels
    from awdvd.validate.restoration import case_i_boundaries, seam_ratio

    truth, observed = specimen.truth, specimen.observed
    span = truth_data_range(truth)
    by, bx = case_i_boundaries(truth.shape[0]), case_i_boundaries(truth.shape[1])

    def scores(image):
        return {"psnr_truth_range_db": round(psnr(truth, image, data_range=span), 4),
                "psnr_65535_db": round(psnr(truth, image, data_range=PAPER_DATA_RANGE), 4),
                "ssim_truth_range": round(ssim(truth, image, data_range=span), 4),
                "seam_ratio_error": round(seam_ratio(image - truth, boundaries_y=by, boundaries_x=bx), 4)}

    def run(method, stride, weighting):
        grid = window_levels_from_pixels(specimen.levels, stride=stride)
        dmap = DefocusMap.from_levels(grid, observed.shape, stride=stride, patch_px=84, n_levels=len(bank))
        return lambda: deconvolve_levels(observed, dmap, bank, RestorationPlan(
            iterations=30, method=method, weighting=weighting, level_blend="argmax", offset=0.0, halo_px=None, device="cpu"))

    out = {"observed": scores(observed)}
    # peers timed together, round-robin: fast vs patch-wise at 42; fast at 8 vs one skimage RL (section 1's image)
    groups = [
        ({"fast_s42_triangular": run("fast", 42, "triangular"),
          "patchwise_s42_triangular": run("patchwise", 42, "triangular")}, max(2, repeats - 1)),
        ({"fast_s8_triangular": run("fast", 8, "triangular"),
          "skimage_rl_float64": lambda: restoration.richardson_lucy(rl_image, rl_psf, num_iter=30, clip=False),
          "skimage_rl_float32": lambda: restoration.richardson_lucy(rl_image.astype(np.float32),
                                                                     rl_psf.astype(np.float32), num_iter=30,
                                                                     clip=False)}, repeats),
        ({"fast_s84_rectangular": run("fast", 84, "rectangular"),
          "patchwise_s84_rectangular": run("patchwise", 84, "rectangular")}, 1),
    ]
    if not quick:
        groups.append(({"patchwise_s8_triangular": run("patchwise", 8, "triangular")}, 1))
    for functions, n in groups:
        times = interleaved(functions, n) if n > 1 or len(functions) > 1 else {
            name: summary(timed(f, 1)[0]) for name, f in functions.items()}
        for name, t in times.items():
            out[name] = dict(t)
            if not name.startswith("skimage"):
                out[name].update(scores(functions[name]()))
                out[name]["windows"] = int(window_levels_from_pixels(specimen.levels,
                                                                      stride=int(name.split("_s")[1].split("_")[0])).size)
                print(f"  {name:28s} {t['median_s']:7.2f} s  PSNR {out[name]['psnr_truth_range_db']:.4f} dB "
                      f"(truth range)  seam {out[name]['seam_ratio_error']:.2f}", flush=True)
            else:
                print(f"  {name:28s} {t['median_s']:7.2f} s", flush=True)
    f42, p42 = out["fast_s42_triangular"], out["patchwise_s42_triangular"]
    out["fast_vs_patchwise_s42"] = {
        "speedup": round(p42["median_s"] / f42["median_s"], 2),
        "psnr_difference_db": round(f42["psnr_truth_range_db"] - p42["psnr_truth_range_db"], 4),
        "floor": ">= 3x faster, PSNR no worse by more than 0.05 dB",
    }
    if "patchwise_s8_triangular" in out:
        p8 = out["patchwise_s8_triangular"]
        out["fast_vs_patchwise_s8"] = {
            "speedup": round(p8["median_s"] / out["fast_s8_triangular"]["median_s"], 2),
            "psnr_difference_db": round(out["fast_s8_triangular"]["psnr_truth_range_db"] - p8["psnr_truth_range_db"], 4),
        }
    f8 = out["fast_s8_triangular"]["median_s"]
    out["fast_s8_vs_one_skimage_rl"] = {
        "vs_skimage_float64": round(f8 / out["skimage_rl_float64"]["median_s"], 3),
        "vs_skimage_float32": round(f8 / out["skimage_rl_float32"]["median_s"], 3),
        "floor": "<= 2 x one skimage RL (section 1's image and PSF, timed alongside)",
    }
    return out


def bench_maps(image, repeats):
    import torch

    from awdvd.learn.model import DefocusModel, build_delpnet
    from awdvd.physics.optics import Optics
    from awdvd.restore.defocus_maps import compute_map

    torch.manual_seed(0)
    model = DefocusModel(build_delpnet(), optics=Optics(), class_levels=list(range(11)) + [-1])
    out = {"torch_threads": torch.get_num_threads(), "model": "random-init default DelpNet"}
    start = time.perf_counter()
    compute_map(image, model, stride=16, mode="dense")
    out["dense_s16_first_call_s"] = round(time.perf_counter() - start, 4)  # folds BN, probes the geometry
    times = interleaved({
        "dense_s16_local": lambda: compute_map(image, model, stride=16, mode="dense", normalization="local"),
        "dense_s16_global": lambda: compute_map(image, model, stride=16, mode="dense", normalization="global"),
        "dense_s8_local": lambda: compute_map(image, model, stride=8, mode="dense", normalization="local"),
    }, repeats)
    out.update(times)
    seconds, dmap = timed(lambda: compute_map(image, model, stride=16, mode="patch"), 1)
    out["patch_s16"] = {**summary(seconds), "windows": int(dmap.levels.size)}
    seconds, dmap = timed(lambda: compute_map(image, model, stride=42, mode="patch"), 1)
    out["patch_s42"] = {**summary(seconds), "windows": int(dmap.levels.size)}
    out["floor"] = "696 x 520 map at stride <= 16 in <= 0.5 s"
    return out


def agreement(model, images, stride):
    from awdvd.restore.defocus_maps import compute_map

    out = {}
    patch_maps = [compute_map(image, model, stride=stride, mode="patch").levels for image in images]
    for normalization in ("local", "global"):
        exact = within1 = bg_agree = total = 0
        errors = []
        for image, reference in zip(images, patch_maps):
            dense = compute_map(image, model, stride=stride, mode="dense", normalization=normalization).levels
            total += dense.size
            exact += int(np.sum(dense == reference))
            both_levels = (dense >= 0) & (reference >= 0)
            within1 += int(np.sum(both_levels & (np.abs(dense - reference) <= 1)) + np.sum((dense < 0) & (reference < 0)))
            bg_agree += int(np.sum((dense < 0) == (reference < 0)))
            errors += list(np.abs(dense - reference)[both_levels])
        out[normalization] = {"windows": total, "exact": round(exact / total, 4), "within_1": round(within1 / total, 4),
                              "bg_vs_not_bg": round(bg_agree / total, 4),
                              "mean_abs_level_difference": round(float(np.mean(errors)), 4) if errors else None}
    return out


def train_standin(in_focus, seconds: float, seed: int = 0):
    """A reduced-width DelpNet (same 7 convs and pooling, so the same dense geometry) trained for ``seconds``
    on patches synthesised from the in-focus images: a stand-in for a trained model, only so that the
    dense/patch agreement is measured on a network that separates levels. Returns (model, info)."""
    import torch

    from awdvd.data.synth import DatasetSpec, make_patch_dataset
    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.physics.optics import Optics

    splits, _ = make_patch_dataset(in_focus, spec=DatasetSpec(crops_per_image=60, seed=seed))
    torch.manual_seed(seed)
    network = build_delpnet(DelpNetConfig(widths=(16, 32, 64, 64, 128, 128, 256)))
    model = DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1])

    def tensors(split):
        labels = np.where(split.background, 11, split.level).astype(np.int64)
        return torch.from_numpy(split.normalized()[:, None]), torch.from_numpy(labels)

    x, y = tensors(splits["train"])
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    start, steps = time.perf_counter(), 0
    network.train()
    while time.perf_counter() - start < seconds:
        index = torch.from_numpy(rng.choice(len(x), size=64, replace=False))
        batch = torch.rot90(x[index], k=int(rng.integers(4)), dims=(2, 3))
        if rng.random() < 0.5:
            batch = batch.flip(3)
        loss = torch.nn.functional.cross_entropy(network(batch), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    network.eval()
    info = {"architecture": "DelpNet widths (16, 32, 64, 64, 128, 128, 256)", "train_s": round(seconds, 1),
            "steps": steps, "batch": 64, "train_patches": len(x)}
    for name in ("val", "test"):
        levels = model.predict_patches(splits[name].raw)
        truth = splits[name].labels
        info[f"{name}_accuracy"] = round(float(np.mean(levels == truth)), 4)
        info[f"{name}_within_1"] = round(float(np.mean((np.abs(levels - truth) <= 1) & ((levels < 0) == (truth < 0)))), 4)
    return model, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="trained model file for the dense/patch agreement section")
    parser.add_argument("--standin-train-s", type=float, default=0.0,
                        help="without --model: train a reduced DelpNet for this many seconds and measure agreement "
                             "with it (a stand-in, not a result about the real model)")
    parser.add_argument("--quick", action="store_true", help="skip patch-wise AWDVD at stride 8 (minutes)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (default 3)")
    parser.add_argument("--sections", default="1,2,3,4", help="sections to run, e.g. 1,4 (default all)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "bench_deconv.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not DATA.is_dir():
        print(f"needs the BBBC006 sample in {DATA}", file=sys.stderr)
        return 1
    from awdvd.data.datasets import load_in_focus_images
    from awdvd.io import read_image, write_json
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank

    defocused_paths = sorted((DATA / "defocus_z00").glob("*.tif"))
    real = read_image(defocused_paths[0]).data
    in_focus, names = load_in_focus_images(DATA / "in_focus")
    bank = psf_bank(Optics(), size=61)
    report = {
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "python": platform.python_version()},
        "image": {"rl_and_maps": defocused_paths[0].name, "specimen": names[0], "shape": list(real.shape)},
    }
    sections = {int(part) for part in args.sections.split(",")}
    if 1 in sections:
        print(f"1. Richardson-Lucy, {real.shape[1]} x {real.shape[0]}, 61 px PSF, 30 iterations", flush=True)
        report["richardson_lucy"] = rl = bench_rl(real, bank[6], args.repeats)
        for name, t in rl["times"].items():
            print(f"  {name:32s} {t['median_s']:7.3f} s (median of {len(t['runs_s'])})")
        print(f"  ratio awdvd / skimage: {rl['ratio_vs_skimage_float64']} (float64), "
              f"{rl['ratio_vs_skimage_float32']} (float32)")
    if 2 in sections:
        _awdvd_section(report, in_focus, bank, real, args)
    if 3 in sections:
        print("3. Defocus maps, random-init DelpNet", flush=True)
        report["defocus_maps"] = maps = bench_maps(real, args.repeats)
        for key in ("dense_s16_local", "dense_s16_global", "dense_s8_local", "patch_s16", "patch_s42"):
            print(f"  {key:32s} {maps[key]['median_s']:7.3f} s")
    if 4 in sections:
        _agreement_section(report, in_focus, defocused_paths, args)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    write_json(args.output, report, overwrite=True)
    print(f"saved {args.output}")
    return 0


def _awdvd_section(report, in_focus, bank, real, args) -> None:
    from awdvd.data.synth import tilted_specimen

    print("2. AWDVD on a tilted specimen with true levels (30 iterations, 61 px PSFs)", flush=True)
    specimen = tilted_specimen(in_focus[0], psf_size=61, seed=0)
    report["awdvd"] = aw = bench_awdvd(specimen, bank, real, bank[6], quick=args.quick, repeats=args.repeats)
    print(f"  stride 42: fast is {aw['fast_vs_patchwise_s42']['speedup']}x faster than patch-wise, "
          f"PSNR difference {aw['fast_vs_patchwise_s42']['psnr_difference_db']:+.4f} dB")
    print(f"  stride 8: fast = {aw['fast_s8_vs_one_skimage_rl']['vs_skimage_float64']} x skimage RL (float64), "
          f"{aw['fast_s8_vs_one_skimage_rl']['vs_skimage_float32']} x (float32)")


def _agreement_section(report, in_focus, defocused_paths, args) -> None:
    from awdvd.data.synth import tilted_specimen
    from awdvd.io import read_image

    print("4. Dense vs patch-wise agreement", flush=True)
    from awdvd.learn.model_files import bundled_model_path, load_model

    model = info = None
    if args.model is not None:
        model, info = load_model(args.model), {"file": str(args.model)}
    elif bundled_model_path().is_file():
        model, info = load_model(), {"file": "bundled"}
    elif args.standin_train_s > 0:
        print(f"  training a stand-in model for {args.standin_train_s:g} s", flush=True)
        model, info = train_standin(in_focus, args.standin_train_s)
        info["note"] = "stand-in trained by this benchmark, not the project's model"
    if model is None:
        report["agreement"] = {"skipped": "no trained model given (--model); with a random network agreement is "
                                          "meaningless"}
        print("  skipped: no trained model given (--model or --standin-train-s)")
    else:
        reals = [read_image(p).data for p in defocused_paths]
        specimens = [tilted_specimen(image, psf_size=61, seed=i).observed for i, image in enumerate(in_focus)]
        report["agreement"] = {"model": info, "stride": 16, "real_z00": agreement(model, reals, 16),
                               "tilted_specimens": agreement(model, specimens, 16)}
        print(json.dumps(report["agreement"], indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
