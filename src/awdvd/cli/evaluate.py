"""awdvd evaluate: classification metrics of one or more models on a dataset split (paper 3.1-3.3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..learn.evaluate import write_evaluation


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate defocus-level models on a dataset",
        description="Classify the patches of DATASET's test split (or --split) with each MODEL and write to DIR: "
        "summary.json (accuracy, macro and per-class precision/recall/F1, mean |level error|, accuracy within "
        "+/-1 level, top-k), confusion.csv/.png (paper Fig. 3), cmc.csv/.png (top-k cumulative match curve, Fig. "
        "5/6) and per_class.csv. With several models, each gets a subfolder named after its file, and DIR gets "
        "comparison.csv and one cmc.png over all models (Tables 1/2, Fig. 5/6), and curves.png with their "
        "training curves (Fig. 4: validation loss against epoch). Ordinal measures ignore bg (see awdvd.metrics).",
    )
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="model file(s) from awdvd train")
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (awdvd simulate)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for the results")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="split to evaluate (default test)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results in DIR")
    parser.set_defaults(func=run)


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    done = write_evaluation(args.models, args.dataset, args.output, split=args.split, overwrite=args.overwrite)
    for name, s in done.summaries.items():
        print(f"{name}: accuracy {s['accuracy']:.4f}, macro precision {s['macro']['precision']:.4f} "
              f"recall {s['macro']['recall']:.4f} F1 {s['macro']['f1']:.4f}, mean |level error| "
              f"{_number(s['mean_abs_level_error'], 3)}, within +/-1 level {_number(s['within_one_level'], 4)} "
              f"({s['n']} {done.split} patches)")
    print(f"wrote {args.output}")
    return 0
