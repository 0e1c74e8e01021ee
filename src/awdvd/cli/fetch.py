"""awdvd fetch-bbbc006: download and unpack the BBBC006 image set from the Broad's public server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.datasets import fetch_bbbc006, parse_planes


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fetch-bbbc006",
        help="download the BBBC006 z-stacks (needs network)",
        description="Download BBBC006v1 (U2OS Hoechst/phalloidin z-stacks, 34 planes 2 um apart) from the Broad "
        "Bioimage Benchmark Collection and unpack it into DIR in its original layout "
        "(BBBC006_v1_images_z_NN/). Already-unpacked planes are skipped.",
    )
    parser.add_argument("output", type=Path, metavar="DIR", help="folder to unpack into")
    parser.add_argument("--planes", default="all", help="z planes to fetch: 'all' or e.g. '0,16,33' or '10-20'")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="network timeout per request (s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    planes = parse_planes(args.planes)
    folders = fetch_bbbc006(args.output, planes=planes, timeout_s=args.timeout_s, progress=sys.stderr.isatty())
    print(f"BBBC006: {len(folders)} plane folder(s) ready in {args.output}")
    return 0
