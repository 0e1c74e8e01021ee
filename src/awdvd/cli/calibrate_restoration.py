"""awdvd calibrate-restoration: measure a model's per-level Richardson-Lucy schedule and write the model with it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._device import resolve_device
from ..learn.model_files import load_model
from ..restore.calibration import CalibrationSpec, calibrate_model
from ..restore.rl import RL_VARIANTS
from ..restore.rl_schedule import model_schedules
from ._common import non_negative_int, positive_int


def field_px(text: str) -> int:
    """argparse type of ``--field-px``: an int >= 64."""
    value = positive_int(text)
    if value < 64:
        raise argparse.ArgumentTypeError(f"must be at least 64 px, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate-restoration",
        help="choose a model's per-level RL iterations on procedural validation specimens",
        description="Measure, for every defocus level and RL variant (plain, accelerated, tv), the restoration that "
        "procedural validation specimens (awdvd.restore.calibration: nuclei fields under the model's optics and camera, never "
        "the shared BBBC006 fields) gain most from, first on uniform fields per level, then level by level in AWDVD on "
        "tilted specimens (leaving a level, or keeping a share of its change, where its windows would cost the sharper "
        "band beside it more than they gain); write MODEL with these schedules (info['restoration']) as a new model file. `awdvd "
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
    parser.add_argument("--variants", nargs="+", choices=RL_VARIANTS, default=list(RL_VARIANTS),
                        help="RL variants to calibrate; the default variant is chosen among them (default: all)")
    parser.add_argument("--field-px", type=field_px, default=256,
                        help="side of the uniform validation fields in px, >= 64 (default 256)")
    parser.add_argument("--psf-size", type=positive_int,
                        help="odd PSF size in px, as `awdvd deconvolve --psf-size` will use (default: 99%% energy "
                             "of the deepest level, deconvolve's default)")
    parser.add_argument("--device", default="cpu", help="where RL runs: cpu (default), auto or cuda[:N]")
    parser.add_argument("--seed", type=non_negative_int, default=20_000,
                        help="first seed of the validation specimens (default 20000)")
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL_OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = CalibrationSpec(specimens_per_level=args.specimens, tilted_specimens=args.tilted,
                           max_iterations=args.max_iterations, seed=args.seed, variants=tuple(args.variants),
                           shape_px=(args.field_px, args.field_px))
    path = calibrate_model(args.model, args.output, spec=spec, overwrite=args.overwrite, psf_size=args.psf_size,
                           device=resolve_device(args.device),
                           progress=lambda message: print(message, file=sys.stderr, flush=True))

    block = model_schedules(load_model(path))
    strength = block["schedules"][block["default_variant"]].get("strength")
    print(f"wrote {path}: default {block['default_variant']} RL, iterations per level "
          f"{block['iterations_per_level']}" + (f", strength per level {strength}" if strength else ""))
    return 0
