"""awdvd demo: run awdvd on the bundled example (no network needed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run on the bundled example (no network)",
        description="Build a procedural tilted specimen of nuclei with known defocus (levels 0-10), write it, "
        "the PSF bank and a side-by-side figure into the output folder.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the example (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    summary = run_demo(args.output, overwrite=args.overwrite, seed=args.seed)
    print(f"demo written to {args.output}/ in {summary['seconds']:.1f} s:")
    for name, path in summary["outputs"].items():
        print(f"  {name:12s} {path}")
    return 0
