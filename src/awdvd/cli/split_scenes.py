"""awdvd split-scenes: each scene (position, well) of a CZI, ND2 or LIF file as an OME-TIFF of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import ImageReadError
from ..io.scenes import split_scenes
from .words import error_line


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "split-scenes",
        help="write each scene of a CZI, ND2 or LIF file as its own OME-TIFF",
        description="awdvd restores one field per file. Write every scene (position, well) of each FILE as "
        "DIR/STEM.SCENE.ome.tif, with every axis it holds (time, channels, planes), the channels' names and "
        "emission wavelengths, the pixel size and the objective's NA and immersion index where the file records "
        "them; then run awdvd deconvolve or predict on DIR. Needs pip install 'awdvd[formats]'.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="CZI, ND2 or LIF files")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for the scenes")
    parser.add_argument("--overwrite", action="store_true", help="replace existing scene files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.inputs:
        try:
            files = split_scenes(path, args.output, overwrite=args.overwrite,
                                 progress=lambda scene, target: print(f"{scene}: {target}", file=sys.stderr, flush=True))
        except (ImageReadError, OSError, ValueError) as error:  # this file fails alone; the others go on
            print(f"awdvd split-scenes: error: {error_line(error, 'split-scenes')}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path.name}: {len(files)} scene(s) written to {args.output}")
    return 1 if failed else 0
