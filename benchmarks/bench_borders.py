"""Restoration near image borders: tilted specimens cropped from larger fields (so the light of nuclei outside
the crop is in the recording, as in a real field of view), the PSNR gain of the outer band (``--band`` px wide)
against the interior's.

Each unseen field (BBBC006 a07 and held-out BBBC039 fields) is blurred whole as a tilted specimen (depth rising
from 0 to the model's deepest level along x, Eq. 2 PSFs, BBBC006's camera), then its central crop (``--margin``
px from every side) is restored as the image awdvd is given: with the true depth map (boundary handling alone)
and with the model's map (what users get). Gains are PSNR(restored) - PSNR(recorded) over the band and over the
interior, in the field's own units.

    python benchmarks/bench_borders.py -o benchmarks/results/borders.json [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bundled_model import SHARED, split_bbbc039  # noqa: E402


def band_psnr_gain(truth, recorded, restored, band: int) -> dict:
    from awdvd.metrics import truth_data_range

    data_range = truth_data_range(truth)

    def psnr(reference, image, *, data_range):  # over the pixels of a mask (awdvd.metrics.psnr takes 2-D images)
        return 10 * np.log10(data_range**2 / np.mean((np.asarray(reference, np.float64) - image) ** 2))
    outer = np.zeros(truth.shape, bool)
    outer[:band], outer[-band:], outer[:, :band], outer[:, -band:] = True, True, True, True

    def gain(mask):
        return (psnr(truth[mask], restored[mask], data_range=data_range)
                - psnr(truth[mask], recorded[mask], data_range=data_range))

    return {"outer": gain(outer), "interior": gain(~outer)}


def extended_domain_rl(image, psf, iterations: int) -> np.ndarray:
    """Plain RL on a domain extended by the PSF radius, the data term only inside the image (Bertero & Boccacci
    2005; deconwolf's boundary): o <- o / H^T M * H^T (M i / H o), M = 1 inside. Written out in float64 as an
    independent reference for awdvd's ``boundary="extended"`` (awdvd.restore.rl_kernels.rl_numpy_extended)."""
    from scipy.signal import fftconvolve

    r = psf.shape[0] // 2
    h, w = image.shape
    inside = np.zeros((h + 2 * r, w + 2 * r))
    inside[r:r + h, r:r + w] = 1.0
    data = np.zeros_like(inside)
    data[r:r + h, r:r + w] = image
    estimate = np.pad(image, r, mode="symmetric").astype(np.float64)
    flipped = psf[::-1, ::-1]
    alpha = np.maximum(fftconvolve(inside, flipped, mode="same"), 1e-3)
    for _ in range(iterations):
        ratio = np.where(inside > 0, data / np.maximum(fftconvolve(estimate, psf, mode="same"), 1e-6), 0.0)
        estimate *= fftconvolve(ratio, flipped, mode="same") / alpha
    return estimate[r:r + h, r:r + w]


def boundary_lever(field, *, level: int, margin: int, band: int, iterations: int = 30) -> dict:
    """One depth everywhere (``level``), a central crop of ``field``: plain RL with awdvd's symmetric extension
    against the extended domain, outer band and interior gains of each."""
    from awdvd.data.synth import blur_levels, forward_bank
    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.rl import richardson_lucy

    psf = psf_bank(Optics())[level]
    blurred = blur_levels(field.astype(np.float32) - 96, forward_bank(Optics())[level:level + 1])[0] + 96
    observed = PAPER_CAMERAS["bbbc006"].record(blurred, np.random.default_rng(0), source_offset_adu=96.0)
    crop = (slice(margin, -margin), slice(margin, -margin))
    truth, recorded = field[crop].astype(np.float64), np.asarray(observed, np.float64)[crop]
    offset = float(np.percentile(recorded, 1))
    symmetric = richardson_lucy((recorded - offset).astype(np.float32), psf, iterations=iterations) + offset
    extended = extended_domain_rl(np.maximum(recorded - offset, 0), psf, iterations) + offset
    return {"level": level, "iterations": iterations, "symmetric": band_psnr_gain(truth, recorded, symmetric, band),
            "extended_domain": band_psnr_gain(truth, recorded, extended, band)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--band", type=int, default=40)
    parser.add_argument("--margin", type=int, default=60)
    parser.add_argument("--bbbc039", type=int, default=3)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from awdvd.data.synth import depth_variant_blur, forward_bank, tilted_levels
    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.io import read_image
    from awdvd.learn.model_files import load_model
    from awdvd.learn.range_extension import near_optics
    from awdvd.restore.pipeline import restore_image
    from awdvd.restore.windows import DefocusMap

    model = load_model(args.model)
    camera = PAPER_CAMERAS["bbbc006"]
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    fields = {"a07": read_image(next((SHARED / "bbbc006" / "in_focus").glob("*__a07__*.png"))).data}
    fields.update({p.name.split("_w1")[0]: read_image(p).data for p in held[: args.bbbc039]})
    bank = forward_bank(near_optics(model))  # tilts over the range the model reads level by level (0-20 um)
    m = args.margin
    rows = []
    for i, (name, field) in enumerate(fields.items()):
        field = field.astype(np.float32)
        levels = tilted_levels(field.shape, len(bank)).astype(np.int64)
        offset = min(96.0, float(field.min()))
        observed = camera.record(depth_variant_blur(field - offset, levels, bank) + offset,
                                 np.random.default_rng([i, 7]), source_offset_adu=96.0)
        crop = (slice(m, -m), slice(m, -m))
        truth, recorded, crop_levels = field[crop], np.asarray(observed, np.float64)[crop], levels[crop]
        recorded_src = recorded - camera.offset_adu + 96.0
        made = restore_image(recorded.astype(np.float32), model)
        dmap = made.dmap
        centre = dmap.patch_px // 2
        true_grid = crop_levels[dmap.ys[:, None] + centre, dmap.xs[None, :] + centre]
        true_map = DefocusMap.from_levels(true_grid, dmap.image_shape, stride=dmap.stride, patch_px=dmap.patch_px,
                                          n_levels=model.optics.n_levels, z_step_um=dmap.z_step_um)
        with_truth = restore_image(recorded.astype(np.float32), model, dmap=true_map).image
        row = {"field": name, "crop_shape": list(truth.shape),
               "true_map": band_psnr_gain(truth, recorded_src, np.asarray(with_truth, np.float64) - camera.offset_adu + 96.0, args.band),
               "model_map": band_psnr_gain(truth, recorded_src, np.asarray(made.image, np.float64) - camera.offset_adu + 96.0, args.band)}
        rows.append(row)
        print(f"{name}: true map outer {row['true_map']['outer']:+.2f} dB / interior {row['true_map']['interior']:+.2f}; "
              f"model map outer {row['model_map']['outer']:+.2f} / interior {row['model_map']['interior']:+.2f}",
              flush=True)
    summary = {kind: {part: float(np.mean([r[kind][part] for r in rows])) for part in ("outer", "interior")}
               for kind in ("true_map", "model_map")}
    for kind in summary:
        summary[kind]["outer_minus_interior"] = summary[kind]["outer"] - summary[kind]["interior"]
    lever = boundary_lever(fields["a07"], level=6, margin=m, band=args.band)
    print("plain RL, level 6 everywhere, a07:", json.dumps(lever), flush=True)
    report = {"command": "python benchmarks/bench_borders.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "band_px": args.band, "margin_px": m, "fields": rows, "mean": summary, "boundary_lever": lever,
              "split": "a07 and BBBC039 every-8th fields: never trained on"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
