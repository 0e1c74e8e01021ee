"""Foundation benchmarks (issue 2): PSF accuracy against adaptive quadrature, PSF-bank time, dataset throughput.

    .venv/bin/python benchmarks/bench_foundation.py [--out benchmarks/results/foundation.json]

Figures are printed and saved as JSON. Needs ../shared/data/bbbc006 for the throughput figure.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "bbbc006"


def quad_intensity(z_um, r_um, optics):
    from scipy import integrate, special

    k = 2 * math.pi / optics.wavelength_um
    a, b = k * optics.na / optics.n, 0.5 * k * z_um * optics.na**2 / optics.n**2
    opts = dict(limit=400, epsabs=1e-13, epsrel=1e-12)
    re = integrate.quad(lambda p: special.j0(a * r_um * p) * math.cos(b * p * p) * p, 0, 1, **opts)[0]
    im = integrate.quad(lambda p: special.j0(a * r_um * p) * math.sin(b * p * p) * p, 0, 1, **opts)[0]
    return re * re + im * im


def psf_accuracy(optics, size=61, n_points=60, seed=0):
    from awdvd import defocus_psf

    rng = np.random.default_rng(seed)
    c = size // 2
    result = {}
    for z in (0.0, 2.0, 10.0, 20.0):
        psf = defocus_psf(z, optics=optics, size=size, oversample=1)
        pts = rng.integers(-c, c + 1, size=(n_points, 2))
        q = np.array([quad_intensity(z, math.hypot(*p) * optics.pixel_um, optics) for p in pts])
        ref = np.unravel_index(np.argmax(psf), psf.shape)
        q_peak = quad_intensity(z, math.hypot(ref[0] - c, ref[1] - c) * optics.pixel_um, optics)
        ours = np.array([psf[c + p[0], c + p[1]] for p in pts]) / psf[ref]
        result[f"z={z:g}um"] = float(np.abs(ours - q / q_peak).max())
    return result


def bank_time(optics, size=61, repeats=5):
    from awdvd import psf_bank
    from awdvd.physics import psf

    psf._radial_spline.cache_clear()
    t = time.perf_counter()
    psf_bank(optics, size=size)
    cold = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        psf._radial_spline.cache_clear()
        t = time.perf_counter()
        psf_bank(optics, size=size)
        times.append(time.perf_counter() - t)
    # per-point quadrature of the same bank, point-sampled (oversample 1): time a sample of points and scale
    # to the number of distinct radii a 61 x 61 grid needs per level (the cheapest per-point approach)
    c = size // 2
    distinct = len({i * i + j * j for i in range(c + 1) for j in range(i, c + 1)})
    sample = [(i, (3 * i) % (c + 1)) for i in range(40)]
    t = time.perf_counter()
    for z in (0.0, 10.0, 20.0):
        for i, j in sample:
            quad_intensity(z, math.hypot(i, j) * optics.pixel_um, optics)
    per_point = (time.perf_counter() - t) / (3 * len(sample))
    quad_bank = per_point * distinct * optics.n_levels
    return {
        "size_px": size,
        "first_call_s": cold,
        "median_s": float(np.median(times)),
        "quadrature_per_point_s": per_point,
        "quadrature_bank_estimate_s": quad_bank,
        "quadrature_bank_distinct_radii_per_level": distinct,
        "speedup_vs_quadrature": quad_bank / float(np.median(times)),
        "note": "ours integrates each pixel over 7 x 7 sub-samples; the quadrature estimate samples pixel centres only",
    }


def dataset_throughput(repeats_of_sources=3):
    from awdvd.data.datasets import load_in_focus_images
    from awdvd.data.synth import DatasetSpec, make_patch_dataset

    if not (SHARED / "in_focus").is_dir():
        return {"skipped": f"{SHARED} not found"}
    images, names = load_in_focus_images(SHARED / "in_focus")
    sources = images * repeats_of_sources
    make_patch_dataset(images[:1], spec=DatasetSpec(seed=1))  # warm-up (imports, PSF bank cache)
    t = time.perf_counter()
    splits, meta = make_patch_dataset(sources, spec=DatasetSpec(seed=0))
    elapsed = time.perf_counter() - t
    n_images = sum(meta["n_synthetic_images"].values())
    return {
        "synthetic_images": n_images,
        "image_shape": list(images[0].shape),
        "patches": sum(meta["n_patches"].values()),
        "seconds": elapsed,
        "images_per_minute": n_images / elapsed * 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "foundation.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from awdvd import Optics

    optics = Optics()
    results = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "psf_max_abs_error_rel_peak": psf_accuracy(optics),
        "psf_bank": bank_time(optics),
        "dataset": dataset_throughput(),
    }
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
