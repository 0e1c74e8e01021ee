"""Offset policy (issue 12, item 4): "auto" (each image's 1st percentile) against 0 and the camera offset (96
ADU), on held-out procedural validation specimens (awdvd.restore.calibration.validation_specimens: seeds 20000 + 100 l + i,
never the shared BBBC006 fields) under BBBC006's camera, plain RL with the level's PSF. Prints, per level and
policy, the mean PSNR gain over the observation at 30 iterations and at the best count (<= 100).

    .venv/bin/python benchmarks/bench_offset_policy.py [--specimens 2] [--field-px 128] [--levels 2 5 8]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from awdvd.data.synth import CameraNoise, forward_bank
    from awdvd.physics.optics import Optics
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.calibration import CalibrationSpec, rl_curves, validation_specimens

    parser = argparse.ArgumentParser()
    parser.add_argument("--specimens", type=int, default=2)
    parser.add_argument("--field-px", type=int, default=128)
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 5, 8])
    parser.add_argument("--psf-size", type=int, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    optics, camera = Optics(), CameraNoise()
    spec = CalibrationSpec(specimens_per_level=args.specimens, shape_px=(args.field_px, args.field_px))
    psfs = psf_bank(optics, size=args.psf_size)
    forward = forward_bank(optics, size=args.psf_size)
    print(f"psf {psfs.shape[-1]} px, {args.specimens} fields of {args.field_px} px per level")
    print("level | policy | gain at 30 it (dB) | best gain (dB) @ count")
    for level in args.levels:
        pairs = validation_specimens(level, spec, optics=optics, camera=camera, forward=forward)
        for policy in ("auto", 0.0, camera.offset_adu):
            gains, _ = rl_curves(pairs, psfs[level], variant="plain", tv_weight=0.0, iterations=100, offset=policy,
                                 camera=camera)
            mean = gains.mean(axis=0)
            print(f"{level} | {policy} | {mean[30]:+.2f} | {mean.max():+.2f} @ {int(mean.argmax())}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
