"""How far is Eq. 2 (paraxial, scalar Born-Wolf) from the Gibson-Lanni and vectorial PSFs at high NA? (DESIGN 7)

    .venv/bin/python benchmarks/bench_high_na_psf.py [--depths 0 1 2 4] [--oversample 7] [-o FILE]

For each objective and defocus z (um), three pixel-integrated 2-D PSFs on the same grid (same pixel, same odd
size, normalised to sum 1) are compared:

- ``eq2``: awdvd.physics.psf.defocus_psf with that Optics (k = 2 pi n / lambda, the wavenumber in the immersion
  medium: the paraxial limit of the physical PSF);
- ``eq2_vacuum_k``: the same formula with k = 2 pi / lambda (the vacuum wavenumber, the literal reading of the
  paper's Eq. 2, which awdvd used before; identical to ``eq2`` in air, so only reported for n != 1);
- ``gibson_lanni`` and ``vectorial``: psfmodels.make_psf(model="scalar" / "vectorial") at the plane z of a point
  source on the coverslip (pz = 0), with sample, coverslip and immersion indices all equal to n and the design
  values equal to the actual ones: an aberration-free objective, so the differences are only the paraxial
  approximation (Gibson-Lanni keeps the exact defocus phase k n z cos(theta)) and, for ``vectorial``, polarisation
  and the aplanatic sqrt(cos theta) apodisation.

Per case: the relative L2 difference ||a - b|| / ||b||, the radii (um) holding 50% and 90% of the energy in the
window, the peak ratio, and the depth z' (and its relative L2) at which ``eq2`` best matches the vectorial PSF: a
mismatch that a depth rescaling removes costs the depth estimate nothing, a shape mismatch costs restoration.
The paraxial control (BBBC006's 20x / 0.5 air) shows the comparison's own floor (pixel integration, conventions).
psfmodels is optional: without it the script says so and exits 0. It is not an awdvd dependency.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "high_na_psf.json"

# name, emission um, NA, n, pixel um
CASES = [
    ("20x/0.5 air, BBBC006 (paraxial control)", 0.451, 0.5, 1.0, 0.65),
    ("40x/0.75 air", 0.52, 0.75, 1.0, 0.1625),
    ("40x/0.95 air", 0.52, 0.95, 1.0, 0.1625),
    ("60x/1.4 oil", 0.52, 1.4, 1.518, 0.108),
]


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0], help="defocus (um)")
    parser.add_argument("--oversample", type=int, default=7, help="sub-samples per pixel side, both models")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args()


def window_size_px(z_um: float, na: float, n: float, wavelength_um: float, pixel_um: float) -> int:
    """Odd side holding the physical geometric blur (z tan theta) with margin, plus ten Airy radii."""
    half_um = 1.25 * abs(z_um) * na / math.sqrt(n**2 - na**2) + 10 * 0.61 * wavelength_um / na
    return 2 * math.ceil(half_um / pixel_um) + 1


def energy_radii_um(psf: np.ndarray, pixel_um: float, fractions=(0.5, 0.9), subsamples: int = 9) -> list[float]:
    """Radius (um) of the disc about the centre pixel's centre holding each fraction of the window's energy.

    The PSF is taken as piecewise constant over its pixels (what a camera records), each pixel split into
    ``subsamples`` x ``subsamples`` equal parts placed at their centres' radii, and the cumulative energy is
    interpolated linearly in radius: the same estimator for every model, good to a small fraction of a pixel.
    """
    size = psf.shape[0]
    offsets = ((np.arange(size * subsamples) + 0.5) / subsamples - 0.5 - size // 2) * pixel_um
    radius = np.hypot(offsets[:, None], offsets[None, :]).ravel()
    energy = np.repeat(np.repeat(psf / psf.sum(), subsamples, axis=0), subsamples, axis=1).ravel()
    order = np.argsort(radius, kind="stable")
    cumulative = np.r_[0.0, np.cumsum(energy[order] / subsamples**2)]
    return [float(np.interp(f, cumulative, np.r_[0.0, radius[order]])) for f in fractions]


def rel_l2(a: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(a - reference) / np.linalg.norm(reference))


def main() -> None:
    args = _parse()
    try:
        import psfmodels
    except ImportError:
        print("psfmodels is not installed (pip install psfmodels); nothing to compare against, skipping")
        return
    from scipy.optimize import minimize_scalar

    from awdvd.physics.optical_units import level_step_um
    from awdvd.physics.optics import Optics, UndersamplingWarning
    from awdvd.physics.psf import defocus_psf

    warnings.simplefilter("ignore", UndersamplingWarning)
    model_optics = Optics()
    started = time.perf_counter()

    def reference(kind, z, size, na, n, wavelength, pixel):
        psf = psfmodels.make_psf([float(z)], size, dxy=pixel, NA=na, wvl=wavelength, ns=n, ni=n, ni0=n, ng=n,
                                 ng0=n, oversample_factor=args.oversample, normalize=False, model=kind)[0]
        return psf / psf.sum()

    def best_depth(optics, target, z, size):
        """z' (um) minimising ||eq2(z') - target||: a coarse scan, then a bounded refinement."""
        def cost(zp):
            return rel_l2(defocus_psf(zp, optics=optics, size=size, oversample=args.oversample), target)
        grid = np.linspace(0.0, 3.0 * z, 31)
        costs = [cost(zp) for zp in grid]
        i = int(np.argmin(costs))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        fit = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3 * max(z, 1.0)})
        return float(fit.x), float(fit.fun)

    cases = []
    for name, wavelength, na, n, pixel in CASES:
        optics = Optics(wavelength_um=wavelength, na=na, n=n, pixel_um=pixel)
        vacuum_k = Optics(wavelength_um=wavelength * n, na=na, n=n, pixel_um=pixel)  # 2 pi n / (lambda n)
        size = window_size_px(max(args.depths), na, n, wavelength, pixel)
        step = level_step_um(optics, model_optics)
        rows = []
        for z in args.depths:
            psfs = {"eq2": defocus_psf(z, optics=optics, size=size, oversample=args.oversample)}
            if n != 1.0:
                psfs["eq2_vacuum_k"] = defocus_psf(z, optics=vacuum_k, size=size, oversample=args.oversample)
            psfs["gibson_lanni"] = reference("scalar", z, size, na, n, wavelength, pixel)
            psfs["vectorial"] = reference("vectorial", z, size, na, n, wavelength, pixel)
            radii = {key: energy_radii_um(p, pixel) for key, p in psfs.items()}
            row = {
                "z_um": z,
                "model_levels": round(z / step, 3),
                "r50_um": {key: round(r[0], 4) for key, r in radii.items()},
                "r90_um": {key: round(r[1], 4) for key, r in radii.items()},
                "comparisons": {},
            }
            for candidate in [key for key in ("eq2", "eq2_vacuum_k") if key in psfs] + ["gibson_lanni"]:
                for ref in ("gibson_lanni", "vectorial"):
                    if candidate == ref:
                        continue
                    row["comparisons"][f"{candidate} vs {ref}"] = {
                        "rel_l2": round(rel_l2(psfs[candidate], psfs[ref]), 4),
                        "r50_diff_um": round(radii[candidate][0] - radii[ref][0], 4),
                        "r90_diff_um": round(radii[candidate][1] - radii[ref][1], 4),
                        "r50_ratio": round(radii[candidate][0] / radii[ref][0], 3),
                        "r90_ratio": round(radii[candidate][1] / radii[ref][1], 3),
                        "peak_ratio": round(float(psfs[candidate].max() / psfs[ref].max()), 3),
                    }
            if z > 0:
                row["best_depth_vs_vectorial"] = {}
                for key, opt in (("eq2", optics), ("eq2_vacuum_k", vacuum_k)):
                    if key in psfs:
                        zp, err = best_depth(opt, psfs["vectorial"], z, size)
                        row["best_depth_vs_vectorial"][key] = {"z_um": round(zp, 3), "z_ratio": round(zp / z, 3),
                                                                "rel_l2": round(err, 4)}
            rows.append(row)
            _print_row(name, row)
        cases.append({"name": name, "wavelength_um": wavelength, "na": na, "n": n, "pixel_um": pixel,
                      "size_px": size, "model_level_um": round(step, 4), "depths": rows})

    result = {
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "psfmodels_version": psfmodels.__version__,
        "numpy_version": np.__version__,
        "oversample": args.oversample,
        "reference_setup": "psfmodels.make_psf, pz = 0, ns = ni = ni0 = ng = ng0 = n, tg = tg0 = 170, ti0 = 150: "
                           "aberration-free; every PSF pixel-integrated and normalised to sum 1 in the window",
        "model_optics": "BBBC006 (awdvd Optics defaults); model_levels = z / level_step_um(optics, model)",
        "wall_s": round(time.perf_counter() - started, 1),
        "cases": cases,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}")


def _print_row(name: str, row: dict) -> None:
    print(f"{name}  z = {row['z_um']:g} um ({row['model_levels']:g} model levels)")
    print("   r50 / r90 (um): " + ", ".join(f"{k} {row['r50_um'][k]:.3f} / {row['r90_um'][k]:.3f}" for k in row["r50_um"]))
    for pair, c in row["comparisons"].items():
        print(f"   {pair:28s} relL2 {c['rel_l2']:.3f}  dr50 {c['r50_diff_um']:+.3f}  dr90 {c['r90_diff_um']:+.3f} um  "
              f"peak x{c['peak_ratio']:.2f}")
    for key, fit in row.get("best_depth_vs_vectorial", {}).items():
        print(f"   best {key} depth vs vectorial: {fit['z_um']:.3f} um (x{fit['z_ratio']:.2f}), relL2 {fit['rel_l2']:.3f}")


if __name__ == "__main__":
    main()
