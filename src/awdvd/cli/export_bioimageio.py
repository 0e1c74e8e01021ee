"""awdvd export-bioimageio: a DelpNet model as a bioimage.io model package (zip, format 0.5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io import check_output_file
from ..learn.bioimageio import export_bioimageio


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-bioimageio",
        help="write a model as a bioimage.io package (zip) for bioimage.io tools",
        description="Write MODEL (default: the bundled model) as a bioimage.io model package, format 0.5: "
        "rdf.yaml, TorchScript and state-dict weights (the network takes raw intensities, and for an image-range "
        "model each window's image range as a second input, and returns class probabilities), test tensors made by the model, cover, README, licence and citations. Check it with "
        "`bioimageio test OUTPUT`; `awdvd.load_model(OUTPUT)` loads it back. Needs pip install 'awdvd[bioimageio]'.",
    )
    parser.add_argument("model", nargs="?", type=Path, metavar="MODEL", help="model file (default: the bundled model)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the package to write (.zip)")
    parser.add_argument("--name", help="the package's name (default: 'awdvd DelpNet defocus levels')")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_file(args.output, overwrite=args.overwrite, example="delpnet.zip")  # before any work
    path = export_bioimageio(args.model, args.output, name=args.name, overwrite=args.overwrite)
    print(f"wrote {path}; check it with: bioimageio test {path}")
    return 0
