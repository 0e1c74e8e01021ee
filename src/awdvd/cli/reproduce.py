"""awdvd reproduce: regenerate the paper's results section (Tables 1-2, Fig. 3-9) into one Markdown report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..reproduce import default_data_path, reproduce

SCALE_NAMES = ("smoke", "cpu", "full")  # awdvd.reproduce.SCALES, named here so that parsing imports nothing


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables and figures into a report",
        description="Synthesise a patch dataset from in-focus images, train the networks the paper compares, run "
        "the restoration experiments and write DIR/REPORT.md (every table and figure of the paper's section 3, "
        "each number beside the paper's with the conditions it was measured under), DIR/results.json and the "
        "figures as PNG. --scale smoke checks that everything runs (minutes; numbers meaningless), cpu fits in "
        "well under an hour on two CPU cores, full is the paper's setting as far as the data allow (GPU).",
    )
    parser.add_argument("--scale", required=True, choices=SCALE_NAMES, help="how much work to do")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="folder for REPORT.md, results.json and the figures (absent or empty, or --overwrite)")
    parser.add_argument("--data", nargs="+", metavar="PATH",
                        help="in-focus images: files, folders or a BBBC006 folder (default: the shared BBBC006 "
                        "images beside the repository if found, else procedural images; 'procedural' forces those)")
    parser.add_argument("--model", type=Path, help="a trained DelpNet for Fig. 3 and 7-9 (default: the bundled "
                        "model if this installation has one, else one trained at the chosen scale)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where training, inference and deconvolution run (default: CUDA if available)")
    parser.add_argument("--save-models", action="store_true", help="also write the models trained here to DIR/models/")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.data == ["procedural"]:
        data = None
    elif args.data:
        missing = [p for p in args.data if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"no such file or folder: {missing[0]}")
        data = args.data
    else:
        data = default_data_path()
    results = reproduce(args.output, scale=args.scale, data=data, model=args.model, device=args.device,
                        overwrite=args.overwrite, save_models=args.save_models)
    print(f"reproduced the paper's section 3 at scale {args.scale} in {results['wall_seconds']:.0f} s on "
          f"{results['device']} from {results['data']['description']}")
    print(f"report: {results['report']}")
    return 0
