"""awdvd calibrate-restoration: measure a model's per-level Richardson-Lucy schedule and write the model with it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import non_negative_int, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate-restoration",
        help="choose a model's per-level RL iterations on procedural validation specimens",
        description="Measure, for every defocus level and RL variant (plain, accelerated, tv), the restoration that "
        "procedural validation specimens (awdvd.calibrate: nuclei fields under the model's optics and camera, never "
        "the shared BBBC006 fields) gain most from, first on uniform fields per level, then level by level in AWDVD on "
        "tilted specimens; write MODEL with these schedules (info['restoration']) as a new model file. `awdvd "
        "deconvolve` uses them by default (--iterations N still forces one count). About 5 minutes on 2 CPU cores.",
    )
    parser.add_argument("model", nargs="?", type=Path, metavar="MODEL",
                        help="model file (default: the bundled model)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL_OUT",
                        help="the calibrated model file to write (never replaced without --overwrite)")
    parser.add_argument("--specimens", type=positive_int, default=3, help="uniform fields per level (default 3)")
    parser.add_argument("--tilted", type=non_negative_int, default=2,
                        help="tilted specimens of the second stage (default 2; 0 skips it)")
    parser.add_argument("--max-iterations", type=positive_int, default=150,
                        help="most RL iterations scored per level (default 150)")
    parser.add_argument("--seed", type=non_negative_int, default=20_000,
                        help="first seed of the validation specimens (default 20000)")
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL_OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..calibrate import CalibrationSpec, calibrate_model

    spec = CalibrationSpec(specimens_per_level=args.specimens, tilted_specimens=args.tilted,
                           max_iterations=args.max_iterations, seed=args.seed)
    path = calibrate_model(args.model, args.output, spec=spec, overwrite=args.overwrite,
                           progress=lambda message: print(message, file=sys.stderr, flush=True))
    from ..model import load_model
    from ..schedule import model_schedules

    block = model_schedules(load_model(path))
    print(f"wrote {path}: default {block['default_variant']} RL, iterations per level "
          f"{block['iterations_per_level']}")
    return 0
