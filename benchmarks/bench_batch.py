"""Scale-out benchmarks (issue 6): a batch of files on 1 and 2 Dask workers, and one very large image in tiles.

    .venv/bin/python benchmarks/bench_batch.py [--files 20] [--large-px 8192] [--out benchmarks/results/batch.json]

(a) batch: N BBBC006-size images (the real files in ../shared/data/bbbc006/defocus_z00 when present, else
    synthetic 520 x 696 fields) through ``run_batch`` with 1 and 2 workers; wall time (cluster start-up
    included), per-file time and the speed-up.
(b) large: a --large-px square synthetic image, generated tile by tile into an OME-Zarr (never whole in
    memory), through ``tiled_map`` on a local cluster, written to an OME-Zarr; wall time and peak RSS of the
    main process and of every worker.
(c) halo: how far the tiled stand-in differs from the whole-image one, for a few halos (RL's reach grows
    with each iteration, so no finite halo is exact).

The work is a STAND-IN until awdvd.deconv lands: Richardson-Lucy with the level-5 PSF (z = 10 um, the bank's
default size), 30 iterations, numpy + scipy.fft, implemented below, NOT awdvd's AWDVD. Plug the real task in
with --task MODULE:FUNCTION, FUNCTION(path, *, out_dir) writing out_dir / f"{path.stem}.tif" and returning a
dict. The CPU is shared (2 cores here, with other jobs): timings are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import platform
import resource
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "bbbc006" / "defocus_z00"
STANDIN_LEVEL = 5


# --------------------------------------------------------------------------------------------- stand-in work
def standin_psf(level: int = STANDIN_LEVEL) -> np.ndarray:
    from awdvd import Optics, defocus_psf

    warnings.simplefilter("ignore")  # UndersamplingWarning: the paper's optics are undersampled by design
    optics = Optics()
    return defocus_psf(level * optics.z_step_um, optics=optics)


def standin_rl(image: np.ndarray, psf: np.ndarray, *, iterations: int = 30) -> np.ndarray:
    """STAND-IN Richardson-Lucy (Eq. 3), not awdvd.deconv: symmetric padding by two PSF radii, circular FFT
    convolution on the padded grid, float64 maths, float32 out, shape of ``image``."""
    from scipy import fft

    image = np.asarray(image, dtype=np.float64)
    r = psf.shape[0] // 2
    pad = 2 * r
    shape = tuple(fft.next_fast_len(s + 2 * pad, real=True) for s in image.shape)
    padded = np.pad(image, [(pad, n - s - pad) for n, s in zip(shape, image.shape)], mode="symmetric")
    kernel = np.zeros(shape)
    kernel[: psf.shape[0], : psf.shape[1]] = psf
    otf = fft.rfft2(np.roll(kernel, (-r, -r), axis=(0, 1)))
    estimate = padded.copy()
    for _ in range(iterations):
        blurred = fft.irfft2(fft.rfft2(estimate) * otf, s=shape)
        ratio = padded / np.maximum(blurred, 1e-6)
        estimate *= fft.irfft2(fft.rfft2(ratio) * np.conj(otf), s=shape)
    return estimate[pad : pad + image.shape[0], pad : pad + image.shape[1]].astype(np.float32)


def standin_task(path: Path, *, out_dir: Path, iterations: int = 30) -> dict:
    """STAND-IN per-file task: read, RL with the level-5 PSF (loaded once per worker), write a float32 TIFF."""
    from awdvd.batch import worker_resource
    from awdvd.io import read_image, write_tiff

    psf = worker_resource(("standin-psf", STANDIN_LEVEL), standin_psf)
    image = read_image(path)
    start = time.perf_counter()
    result = standin_rl(image.data, psf, iterations=iterations)
    rl_s = time.perf_counter() - start
    write_tiff(out_dir / f"{path.stem}.tif", result, pixel_um=image.pixel_um, overwrite=True)
    return {"rl_s": rl_s, "shape": list(image.data.shape)}


def standin_tile(block: np.ndarray, origin_yx, *, iterations: int = 30) -> np.ndarray:
    from awdvd.batch import worker_resource

    return standin_rl(block, worker_resource(("standin-psf", STANDIN_LEVEL), standin_psf), iterations=iterations)


def outputs_in(path: Path, *, out_dir: Path) -> list[Path]:
    return [out_dir / f"{path.stem}.tif"]


def max_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


# --------------------------------------------------------------------------------------------- (a) batch
def _rl_repeats(args) -> float:
    image, psf, iterations, repeats = args
    start = time.perf_counter()
    for _ in range(repeats):
        standin_rl(image, psf, iterations=iterations)
    return time.perf_counter() - start


def raw_parallel_capacity(image: np.ndarray, iterations: int, repeats: int = 4) -> dict:
    """The same RLs without Dask: ``repeats`` in one process, then 2 x repeats/2 in two processes at once.
    On a machine whose cores are busy with other work the ratio stays well below 2, Dask or no Dask."""
    import multiprocessing

    psf = standin_psf()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        one = pool.map(_rl_repeats, [(image, psf, iterations, 1)])  # warm-up (imports)
        start = time.perf_counter()
        pool.map(_rl_repeats, [(image, psf, iterations, repeats)])
        one = time.perf_counter() - start
    with context.Pool(2) as pool:
        pool.map(_rl_repeats, [(image, psf, iterations, 1)] * 2)
        start = time.perf_counter()
        pool.map(_rl_repeats, [(image, psf, iterations, repeats // 2)] * 2)
        two = time.perf_counter() - start
    return {"rls": repeats, "one_process_s": one, "two_processes_s": two, "speedup": one / two}


def bench_batch(n_files: int, workers_list: list[int], task, scratch: Path, iterations: int) -> dict:
    from awdvd.batch import run_batch
    from awdvd.io import write_tiff
    from awdvd.synth import synthetic_nuclei

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
    for workers in workers_list:
        out_dir = scratch / f"out-w{workers}"
        report = run_batch(files, functools.partial(task, out_dir=out_dir),
                           outputs_for=functools.partial(outputs_in, out_dir=out_dir), workers=workers,
                           progress=False)
        if not report.ok:
            raise RuntimeError(report.summary())
        done = [r for r in report.results if r.status == "done"]
        runs[workers] = {
            "wall_s": report.seconds,
            "per_file_task_s_mean": float(np.mean([r.seconds for r in done])),
            "files": len(done),
            "distinct_worker_pids": len({r.pid for r in done}),
        }
        print(f"  batch, {workers} worker(s): {report.seconds:.1f} s wall for {len(done)} files "
              f"({runs[workers]['per_file_task_s_mean']:.2f} s per file on its worker)", flush=True)
    from awdvd.io import read_image

    result_capacity = raw_parallel_capacity(read_image(files[0]).data, iterations=iterations)
    print(f"  the same RL in plain processes: 2 processes give {result_capacity['speedup']:.2f}x", flush=True)
    # the outputs of every run must be identical (bitwise): serial-equals-Dask at benchmark scale
    reference = {p.name: p.read_bytes() for p in (scratch / f"out-w{workers_list[0]}").glob("*.tif")}
    identical = all({p.name: p.read_bytes() for p in (scratch / f"out-w{w}").glob("*.tif")} == reference
                    for w in workers_list[1:])
    result = {"source": source, "image_shape": [520, 696], "runs": runs, "outputs_identical_across_runs": identical,
              "same_rl_without_dask": result_capacity}
    if 1 in runs and 2 in runs:
        result["speedup_2_vs_1_workers"] = runs[1]["wall_s"] / runs[2]["wall_s"]
    return result


# --------------------------------------------------------------------------------------------- (b) large image
def make_large_input(path: Path, size_px: int, tile_px: int) -> None:
    """A size_px square field of synthetic nuclei written tile by tile (independent seeded tiles), float32."""
    from awdvd.io import open_ome_zarr_output
    from awdvd.synth import synthetic_nuclei

    with open_ome_zarr_output(path, shape=(size_px, size_px), dtype=np.float32, pixel_um=0.65, chunks=tile_px) as out:
        for i, y in enumerate(range(0, size_px, tile_px)):
            for j, x in enumerate(range(0, size_px, tile_px)):
                h, w = min(tile_px, size_px - y), min(tile_px, size_px - x)
                out[y : y + h, x : x + w] = synthetic_nuclei((h, w), seed=i * 1000 + j)


def bench_large(size_px: int, tile_px: int, halo_px: int, workers: int, iterations: int, scratch: Path) -> dict:
    from distributed import Client

    from awdvd.batch import local_cluster, should_tile, tiled_map
    from awdvd.io import open_ome_zarr_output, read_image

    source, target = scratch / f"large{size_px}.ome.zarr", scratch / f"large{size_px}-out.ome.zarr"
    t = time.perf_counter()
    make_large_input(source, size_px, tile_px)
    make_s = time.perf_counter() - t
    image = read_image(source, lazy=True)  # a dask array over the zarr chunks, never read whole
    fn = functools.partial(standin_tile, iterations=iterations)
    with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
        t = time.perf_counter()
        with open_ome_zarr_output(target, shape=image.data.shape, dtype=np.float32, pixel_um=image.pixel_um,
                                  chunks=tile_px) as out:
            tiled_map(image.data, fn, tile_px=tile_px, halo_px=halo_px, out=out, client=client)
        wall_s = time.perf_counter() - t
        worker_peaks = client.run(max_rss_mb)  # each worker's own peak, asked before the cluster goes
    check = read_image(target)
    return {
        "image_px": [size_px, size_px],
        "input_lazy": type(image.data).__module__.split(".")[0],
        "should_tile": should_tile(image.data.shape),
        "tile_px": tile_px,
        "halo_px": halo_px,
        "tiles": math.ceil(size_px / tile_px) ** 2,
        "workers": workers,
        "make_input_s": make_s,
        "wall_s": wall_s,
        "peak_rss_mb": {
            "main": max_rss_mb(resource.RUSAGE_SELF),
            "workers": sorted(worker_peaks.values()),
            "children_max_after_exit": max_rss_mb(resource.RUSAGE_CHILDREN),
            "sum_main_and_workers": max_rss_mb(resource.RUSAGE_SELF) + sum(worker_peaks.values()),
        },
        "output_ok": bool(check.data.shape == (size_px, size_px) and check.pixel_um == image.pixel_um),
    }


# --------------------------------------------------------------------------------------------- (c) halo check
def bench_halo(size_px: int, tile_px: int, halos: list[int], iterations: int) -> dict:
    from awdvd.batch import tiled_map
    from awdvd.synth import synthetic_nuclei

    image = synthetic_nuclei((size_px, size_px), seed=7)
    fn = functools.partial(standin_tile, iterations=iterations)
    whole = fn(image, (0, 0))
    out = {}
    for halo in halos:
        tiled = tiled_map(image, fn, tile_px=tile_px, halo_px=halo)
        out[str(halo)] = float(np.abs(tiled - whole).max() / np.abs(whole).max())
    return {"image_px": size_px, "tile_px": tile_px, "psf_radius_px": standin_psf().shape[0] // 2,
            "max_abs_diff_rel_to_max_by_halo_px": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="files in the batch (default 20)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--task", default=None, help="MODULE:FUNCTION, FUNCTION(path, *, out_dir) -> dict "
                        "(default: the RL stand-in)")
    parser.add_argument("--large-px", type=int, default=8192, help="side of the large image (0 skips it)")
    parser.add_argument("--tile-px", type=int, default=1024)
    parser.add_argument("--halo-px", type=int, default=64)
    parser.add_argument("--large-workers", type=int, default=2)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--halo-check-px", type=int, default=512, help="image side for the halo check (0 skips)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    if args.task:
        module, _, name = args.task.partition(":")
        task = getattr(importlib.import_module(module), name)
    else:
        task = functools.partial(standin_task, iterations=args.iterations)
    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1min_at_start": os.getloadavg()[0]},
        "work": args.task or f"STAND-IN: numpy/scipy Richardson-Lucy, level-{STANDIN_LEVEL} PSF, "
                             f"{args.iterations} iterations (not awdvd.deconv)",
    }
    scratch = Path(tempfile.mkdtemp(prefix="awdvd-bench-batch-"))
    try:
        if not args.skip_batch:
            print("(a) batch", flush=True)
            results["batch"] = bench_batch(args.files, [int(w) for w in args.workers.split(",")], task, scratch,
                                           args.iterations)
        if args.halo_check_px:
            print("(c) halo check", flush=True)
            results["halo"] = bench_halo(args.halo_check_px, args.halo_check_px // 4, [16, 32, 64, 96],
                                         args.iterations)
        if args.large_px:  # last: its peak RSS is the one the floor is about
            print(f"(b) large image {args.large_px} x {args.large_px}", flush=True)
            results["large"] = bench_large(args.large_px, args.tile_px, args.halo_px, args.large_workers,
                                           args.iterations, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_avg_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
