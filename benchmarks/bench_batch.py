"""Scale-out benchmarks (issue 6): real AWDVD (awdvd.batch.jobs.DeconvolveJob, what `awdvd deconvolve` runs) over a
batch of files on 0, 1 and 2 workers (and "auto": what `awdvd deconvolve` chooses without --workers), and one
very large image in tiles.

    PYTHONPATH=src python benchmarks/bench_batch.py [--files 20] [--workers auto,0,1,2] [--model MODEL.pt]
        [--large-px 8192] [--large-workers 2] [--large-map-mode dense] [--memory-px 0]
        [--out benchmarks/results/batch.json]

(a) batch: N BBBC006-size images (the real files in ../shared/data/bbbc006/defocus_z00 when present, else
    synthetic 520 x 696 fields) through ``run_jobs`` (0 = one process, no Dask; N = a local cluster of N
    single-threaded workers): wall time (cluster start-up and model loading included), per-file time on its
    worker, the speed-up, and whether the outputs of all runs are bit-identical. For scale: the same RL in
    1 vs 2 plain processes (no Dask), which says what the machine's cores give at that moment.
(c) tiled vs whole: ``awdvd.restore.pipeline.restore_image`` in tiles (``max_px`` below the image) against whole, on a
    mid-size synthetic field (max and rms difference relative to the image's max).
(d) memory (--memory-px N): peak RSS, each in a fresh process, of a dense defocus map of an N x N field whole
    vs in tiles, and of the whole-image `awdvd deconvolve --map-mode dense` job on it.
(b) large: a --large-px square synthetic field (uint16), generated tile by tile into an OME-Zarr (never whole
    in memory), restored by ``run_jobs`` exactly as ``awdvd deconvolve big.ome.zarr -o out`` does (whole-image
    window grid, tiles on the workers, OME-Zarr output). Run in a fresh subprocess so that its peak memory is
    its own: peak RSS of the main process and of every worker (getrusage), and the peak of their sum
    (sampled every 0.2 s with psutil).

The model: --model, else a randomly initialised default DelpNet (seeded; speed does not depend on the weights,
but the levels it predicts decide how many RLs run: they are recorded). The CPU is shared (2 cores here,
with other jobs): timings are noisy; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "bbbc006" / "defocus_z00"


def max_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def make_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised default DelpNet (2.3 M parameters) saved as a model file."""
    import torch

    from awdvd import Optics
    from awdvd.learn.model import DefocusModel, build_delpnet

    torch.manual_seed(seed)
    return DefocusModel(build_delpnet(), optics=Optics(), class_levels=list(range(11)) + [-1]).save(path)


# --------------------------------------------------------------------------------------------- (a) batch
def _rl_repeats(args) -> float:
    from awdvd._threads import thread_limit
    from awdvd.restore.rl import richardson_lucy

    image, psf, iterations, repeats = args
    with thread_limit(1):
        richardson_lucy(image, psf, iterations=1, device="cpu")  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            richardson_lucy(image, psf, iterations=iterations, device="cpu")
        return time.perf_counter() - start


def raw_parallel_capacity(image: np.ndarray, iterations: int, repeats: int = 4) -> dict:
    """awdvd's RL (one thread) ``repeats`` times in one process, then repeats/2 in each of two processes at
    once. On a machine whose cores are busy with other work the ratio stays below 2, Dask or no Dask."""
    import multiprocessing

    from awdvd import Optics, defocus_psf

    psf = defocus_psf(12.0, optics=Optics())
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        start = time.perf_counter()
        pool.map(_rl_repeats, [(image, psf, iterations, repeats)])
        one = time.perf_counter() - start
    with context.Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_rl_repeats, [(image, psf, iterations, repeats // 2)] * 2)
        two = time.perf_counter() - start
    return {"rls": repeats, "one_process_s": one, "two_processes_s": two, "speedup": one / two,
            "note": "process start-up and imports included in both"}


def bench_batch(n_files: int, workers_list: list[int | None], model_path: Path, scratch: Path, iterations: int | None,
                map_mode: str) -> dict:
    """``workers_list`` entries: None for the default (auto_workers), else a worker count."""
    from awdvd.batch.jobs import DeconvolveJob, ModelFile, run_jobs
    from awdvd.data.synth import synthetic_nuclei
    from awdvd.io import read_image, write_tiff
    from awdvd.restore.options import AWDVDOptions

    if SHARED.is_dir() and len(list(SHARED.glob("*.tif"))) >= 1:
        files = sorted(SHARED.glob("*.tif"))[:n_files]
        source = str(SHARED)
    else:
        folder = scratch / "inputs"
        folder.mkdir()
        files = [write_tiff(folder / f"field{i:02d}.tif", synthetic_nuclei((520, 696), seed=i).astype(np.uint16))
                 for i in range(n_files)]
        source = "synthetic 520 x 696 fields (BBBC006 sample not found)"
    runs = {}
    levels_used: dict[str, int] = {}
    # warm-up in this process (torch, the model, TorchScript): not timed, so the first timed run is not penalised
    run_jobs(files[:1], DeconvolveJob(out_dir=scratch / "warm-up", model=ModelFile(str(model_path)),
                                      options=AWDVDOptions(iterations=iterations, map_mode=map_mode)), workers=0)
    for workers in workers_list:
        label = "auto" if workers is None else str(workers)
        out_dir = scratch / f"out-w{label}"
        job = DeconvolveJob(out_dir=out_dir, model=ModelFile(str(model_path)),
                            options=AWDVDOptions(iterations=iterations, map_mode=map_mode))
        report = run_jobs(files, job, workers=workers, progress=False)
        if not report.ok:
            raise RuntimeError(report.summary())
        done = [r for r in report.results if r.status == "done"]
        maps = [r.value["timings_s"]["defocus_map"] for r in done]
        rls = [r.value["timings_s"]["deconvolution"] for r in done]
        runs[label] = {
            "where": report.where,
            "load_avg_1min": os.getloadavg()[0],
            "wall_s": report.seconds,
            "files": len(done),
            "files_per_minute": 60 * len(done) / report.seconds,
            "per_file_task_s_mean": float(np.mean([r.seconds for r in done])),
            "per_file_defocus_map_s_mean": float(np.mean(maps)),
            "per_file_deconvolution_s_mean": float(np.mean(rls)),
            "distinct_worker_pids": len({r.pid for r in done}),
            "model_loads_per_worker": sorted({r.value["loads"].get("model") for r in done}),
        }
        for r in done:
            for name, n in r.value["levels_used"].items():
                levels_used[name] = levels_used.get(name, 0) + n
        print(f"  {report.where}: {report.seconds:.1f} s wall for {len(done)} files "
              f"({runs[label]['per_file_task_s_mean']:.2f} s per file on its worker; load average "
              f"{runs[label]['load_avg_1min']:.1f})", flush=True)
    from awdvd.restore.rl import DEFAULT_ITERATIONS

    capacity = raw_parallel_capacity(read_image(files[0]).data, iterations=iterations or DEFAULT_ITERATIONS)
    print(f"  the same RL in plain processes: 2 processes give {capacity['speedup']:.2f}x", flush=True)
    # outputs of every run must be bit-identical: serial equals Dask at benchmark scale
    labels = list(runs)
    reference = {p.name: p.read_bytes() for p in (scratch / f"out-w{labels[0]}").glob("*.tif")}
    identical = all({p.name: p.read_bytes() for p in (scratch / f"out-w{w}").glob("*.tif")} == reference
                    for w in labels[1:])
    result = {"source": source, "image_shape": list(read_image(files[0]).data.shape), "map_mode": map_mode,
              "iterations": iterations, "runs": runs,
              "levels_used_in_all_windows_of_one_run": {k: v // len(workers_list) for k, v in levels_used.items()},
              "outputs_identical_across_runs": identical, "same_rl_without_dask": capacity}
    if "1" in runs and "2" in runs:
        result["speedup_2_vs_1_workers"] = runs["1"]["wall_s"] / runs["2"]["wall_s"]
        result["speedup_2_vs_1_workers_excluding_startup"] = (
            runs["1"]["per_file_task_s_mean"] * runs["1"]["files"] / (runs["2"]["per_file_task_s_mean"] * runs["2"]["files"] / 2))
    if "auto" in runs and "0" in runs:
        result["auto_vs_in_process_wall_ratio"] = runs["auto"]["wall_s"] / runs["0"]["wall_s"]
    return result


# --------------------------------------------------------------------------------------------- (c) tiled vs whole
def bench_tiled_vs_whole(size_px: int, tile_px: int, model_path: Path, iterations: int | None, map_mode: str) -> dict:
    from awdvd.data.synth import synthetic_nuclei
    from awdvd.learn.model_files import load_model
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.pipeline import restore_image
    from awdvd.restore.tiles import restoration_halo_px

    model = load_model(model_path)
    bank = psf_bank(model.optics)
    image = synthetic_nuclei((size_px, size_px), seed=7).astype(np.uint16)
    start = time.perf_counter()
    whole = restore_image(image, model, iterations=iterations, psfs=bank, map_mode=map_mode).image
    whole_s = time.perf_counter() - start
    start = time.perf_counter()
    result = restore_image(image, model, iterations=iterations, psfs=bank, map_mode=map_mode, tile_px=tile_px,
                           max_px=size_px * size_px - 1)
    tiled, dmap = result.image, result.dmap
    tiled_s = time.perf_counter() - start
    diff = np.abs(tiled.astype(np.float64) - whole)
    scale = float(np.abs(whole).max())
    return {"image_px": size_px, "tile_px": tile_px, "halo_px": restoration_halo_px(bank, patch_px=model.patch_px),
            "iterations": iterations,
            "map_mode": map_mode, "levels_used": {k: v for k, v in dmap.level_counts().items() if v},
            "max_abs_diff_rel_to_max": float(diff.max() / scale),
            "rms_diff_rel_to_max": float(np.sqrt((diff**2).mean()) / scale),
            "whole_s": whole_s, "tiled_s": tiled_s}


# --------------------------------------------------------------------------------------------- (b) large image
def make_large_input(path: Path, size_px: int, tile_px: int) -> None:
    """A size_px square field of synthetic nuclei written tile by tile (independent seeded tiles), uint16."""
    from awdvd.data.synth import synthetic_nuclei
    from awdvd.io import open_ome_zarr_output

    with open_ome_zarr_output(path, shape=(size_px, size_px), dtype=np.uint16, pixel_um=0.65, chunks=tile_px) as out:
        for i, y in enumerate(range(0, size_px, tile_px)):
            for j, x in enumerate(range(0, size_px, tile_px)):
                h, w = min(tile_px, size_px - y), min(tile_px, size_px - x)
                out[y : y + h, x : x + w] = np.rint(synthetic_nuclei((h, w), seed=i * 1000 + j)).astype(np.uint16)


class TreeRssSampler:
    """Peak of the summed RSS of this process and all its descendants, sampled every ``interval_s``."""

    def __init__(self, interval_s: float = 0.2):
        import psutil

        self.process, self.interval_s, self.peak_mb, self.samples = psutil.Process(), interval_s, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def bench_large(size_px: int, tile_px: int, workers: int, iterations: int, map_mode: str, model_path: Path,
                scratch: Path) -> dict:
    from distributed import Client

    from awdvd._cluster import local_cluster
    from awdvd.batch.jobs import DeconvolveJob, ModelFile, run_jobs
    from awdvd.io import read_image
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.tiling import should_tile

    source = scratch / f"large{size_px}.ome.zarr"
    t = time.perf_counter()
    make_large_input(source, size_px, tile_px)
    make_s = time.perf_counter() - t
    rss_before_mb = max_rss_mb()
    job = DeconvolveJob(out_dir=scratch / "large-out", model=ModelFile(str(model_path)),
                        options=AWDVDOptions(iterations=iterations, map_mode=map_mode), tile_px=tile_px)
    worker_peaks: dict = {}
    with TreeRssSampler() as sampler:
        if workers:
            with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
                report = run_jobs(source, job, scheduler=cluster.scheduler_address)
                worker_peaks = client.run(max_rss_mb)  # each worker's own peak, asked before the cluster goes
        else:
            report = run_jobs(source, job, workers=0)
    if not report.ok:
        raise RuntimeError(report.summary())
    (result,) = report.results
    out_path = Path(result.value["output"])
    check = read_image(out_path)
    return {
        "image_px": [size_px, size_px],
        "input": "OME-Zarr, uint16, read lazily",
        "should_tile": should_tile((size_px, size_px)),
        "tile_px": tile_px,
        "tiles": math.ceil(size_px / tile_px) ** 2,
        "workers": workers,
        "where": report.where,
        "map_mode": map_mode,
        "iterations": iterations,
        "levels_used": result.value["levels_used"],
        "make_input_s": make_s,
        "wall_s": report.seconds,
        "timings_s": result.value["timings_s"],
        "peak_rss_mb": {
            "main": max_rss_mb(resource.RUSAGE_SELF),
            "main_before_restoring": rss_before_mb,
            "workers": sorted(worker_peaks.values()),
            "sum_of_process_peaks": max_rss_mb(resource.RUSAGE_SELF) + sum(worker_peaks.values()),
            "peak_of_sampled_sum_over_process_tree": sampler.peak_mb,
            "samples": sampler.samples,
        },
        "output": out_path.name,
        "output_ok": bool(check.data.shape == (size_px, size_px) and check.pixel_um == 0.65),
    }


# --------------------------------------------------------------------------------------------- (d) dense maps
def bench_memory_probe(kind: str, size_px: int, model_path: Path, scratch: Path) -> dict:
    """One measurement in a fresh process: peak RSS of a dense defocus map of a size_px square field, whole
    ("map-whole": predict.defocus_map) or in 1024 px tiles ("map-tiled": tiles.tiled_defocus_map), or of
    the whole `awdvd deconvolve --map-mode dense --workers 0` job on that image ("job")."""
    from awdvd.data.synth import synthetic_nuclei
    from awdvd.io import write_tiff
    from awdvd.learn.model_files import load_model

    image = np.tile(synthetic_nuclei((1024, 1024), seed=1), (math.ceil(size_px / 1024),) * 2)[:size_px, :size_px]
    image = image.astype(np.uint16)
    model = load_model(model_path)
    before = max_rss_mb()
    start = time.perf_counter()
    if kind == "map-whole":
        from awdvd.restore.defocus_maps import compute_map

        compute_map(image, model, stride=42, mode="dense")
    elif kind == "map-tiled":
        from awdvd.restore.tiles import tiled_defocus_map

        tiled_defocus_map(image, model, stride=42, mode="dense", tile_px=1024)
    else:
        from awdvd.batch.jobs import DeconvolveJob, ModelFile, run_jobs
        from awdvd.restore.options import AWDVDOptions

        path = write_tiff(scratch / f"field{size_px}.tif", image, pixel_um=0.65, overwrite=True)
        before = max_rss_mb()
        job = DeconvolveJob(out_dir=scratch / "memory-out", model=ModelFile(str(model_path)),
                            options=AWDVDOptions(map_mode="dense"))
        report = run_jobs(path, job, workers=0, overwrite=True)
        if not report.ok:
            raise RuntimeError(report.summary())
    return {"kind": kind, "image_px": size_px, "seconds": time.perf_counter() - start, "peak_rss_mb": max_rss_mb(),
            "rss_before_mb": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="files in the batch (default 20)")
    parser.add_argument("--workers", default="auto,0,1,2",
                        help="worker counts to compare, 'auto' = none given (default auto,0,1,2)")
    parser.add_argument("--iterations", type=int, help="RL iterations (default: AWDVDOptions', 30)")
    parser.add_argument("--map-mode", default="auto", help="defocus maps of the batch (default auto, as the CLI)")
    parser.add_argument("--model", type=Path, help="model file (default: a random-init default DelpNet)")
    parser.add_argument("--large-px", type=int, default=8192, help="side of the large image (0 skips it)")
    parser.add_argument("--tile-px", type=int, default=1024)
    parser.add_argument("--large-workers", type=int, default=2)
    parser.add_argument("--large-map-mode", default="dense",
                        help="defocus map of the large image (default dense: patch mode runs the network once per "
                             "window, ~38 000 windows at 8192 px)")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--check-px", type=int, default=1024, help="image side for the tiled-vs-whole check (0 skips)")
    parser.add_argument("--memory-px", type=int, default=0,
                        help="(d) peak memory of dense maps (whole vs tiled) and of the whole-image job on an image of "
                             "this side (e.g. 4096, the largest processed whole; default 0 skips it)")
    parser.add_argument("--only-large", action="store_true", help=argparse.SUPPRESS)  # the subprocess of (b)
    parser.add_argument("--only-memory", help=argparse.SUPPRESS)  # the subprocesses of (d)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    if args.only_memory:
        result = bench_memory_probe(args.only_memory, args.memory_px, args.model, args.scratch)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.only_large:
        result = bench_large(args.large_px, args.tile_px, args.large_workers, args.iterations, args.large_map_mode,
                             args.model, args.scratch)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return

    results: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1min_at_start": os.getloadavg()[0]},
    }
    scratch = Path(tempfile.mkdtemp(prefix="awdvd-bench-batch-"))
    try:
        model_path = args.model or make_model(scratch / "random-delpnet.pt")
        results["model"] = str(args.model) if args.model else "random-init default DelpNet (torch seed 0)"
        if not args.skip_batch:
            print("(a) batch", flush=True)
            workers = [None if w == "auto" else int(w) for w in args.workers.split(",")]
            results["batch"] = bench_batch(args.files, workers, model_path, scratch, args.iterations, args.map_mode)
        if args.check_px:
            print("(c) tiled vs whole", flush=True)
            results["tiled_vs_whole"] = bench_tiled_vs_whole(args.check_px, args.check_px // 4, model_path,
                                                             args.iterations, "dense")
            print(f"  max |tiled - whole| = {results['tiled_vs_whole']['max_abs_diff_rel_to_max']:.2e} of max", flush=True)
        if args.memory_px:
            print(f"(d) peak memory at {args.memory_px} px", flush=True)
            results["memory"] = {}
            for kind in ("map-whole", "map-tiled", "job"):
                part = scratch / f"memory-{kind}.json"
                subprocess.run([sys.executable, __file__, "--only-memory", kind, "--memory-px", str(args.memory_px),
                                "--model", str(model_path), "--scratch", str(scratch), "--out", str(part)],
                               check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
                results["memory"][kind] = json.loads(part.read_text())
                print(f"  {kind}: peak RSS {results['memory'][kind]['peak_rss_mb']:.0f} MB", flush=True)
        if args.large_px:
            print(f"(b) large image {args.large_px} x {args.large_px}, {args.large_workers} workers", flush=True)
            part = scratch / "large.json"
            subprocess.run([sys.executable, __file__, "--only-large", "--large-px", str(args.large_px),
                            "--tile-px", str(args.tile_px), "--large-workers", str(args.large_workers),
                            *(["--iterations", str(args.iterations)] if args.iterations is not None else []),
                            "--large-map-mode", args.large_map_mode,
                            "--model", str(model_path), "--scratch", str(scratch), "--out", str(part)],
                           check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            results["large"] = json.loads(part.read_text())
            print(f"  {results['large']['wall_s']:.0f} s, peak RSS summed over processes "
                  f"{results['large']['peak_rss_mb']['peak_of_sampled_sum_over_process_tree']:.0f} MB", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_avg_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
