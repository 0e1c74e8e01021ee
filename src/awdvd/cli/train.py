"""awdvd train: train DelpNet (or a comparison network) on a dataset from `awdvd simulate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import non_negative_int, positive_float, positive_int

from ..recipes import RECIPES, VARIANTS  # plain dataclasses: no torch at parse time

RECIPE_NAMES = tuple(RECIPES)
VARIANT_NAMES = tuple(VARIANTS)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the defocus-level classifier on a dataset",
        description="Train a defocus-level classifier on DATASET's train split, validating on its val split after "
        "every epoch and keeping the best epoch; then evaluate it on the test split. Writes MODEL and, beside "
        "it, STEM.curves.csv / STEM.curves.png (learning curves) and STEM.json (what was done); STEM.checkpoint.pt "
        "holds the state after each epoch while training runs, so that an interrupted run continues with "
        "--resume, and is removed at the end.",
    )
    parser.add_argument("dataset", nargs="?", type=Path, metavar="DATASET", help="dataset folder (awdvd simulate)")
    parser.add_argument("-o", "--output", type=Path, metavar="MODEL", help="model file to write (.pt)")
    parser.add_argument("--recipe", choices=RECIPE_NAMES, default="fast",
                        help="'paper': Adam 6e-5, Keras time decay 5e-6, batch 128, 1000 epochs; 'fast' (default): "
                        "AdamW + one-cycle, dihedral augmentation, 60 epochs")
    parser.add_argument("--variant", choices=VARIANT_NAMES, default="delpnet",
                        help="network and label set (the paper's comparisons; see --list-variants)")
    parser.add_argument("--list-variants", action="store_true",
                        help="print the variants with their parameter counts beside the paper's, and exit")
    parser.add_argument("--epochs", type=positive_int, help="override the recipe's number of epochs")
    parser.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    parser.add_argument("--lr", type=positive_float, help="override the recipe's (peak) learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train (default auto)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--init", type=Path, metavar="MODEL",
                        help="start from this trained model's weights instead of random ones (same variant; e.g. "
                             "to train on with --lr lower, or on more data)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model (and its curves) or "
                        "a stale checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import describe_variant, output_paths, train_to_file

    if args.list_variants:
        for name in VARIANT_NAMES:
            print(describe_variant(name))
        return 0
    if args.dataset is None or args.output is None:
        raise ValueError("give a DATASET and -o MODEL (or --list-variants)")
    try:
        done = train_to_file(args.dataset, args.output, recipe=args.recipe, variant=args.variant, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                             threads=args.threads, init=args.init, resume=args.resume, overwrite=args.overwrite,
                             progress=not args.no_progress, log=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        checkpoint = output_paths(args.output)["checkpoint"]
        if checkpoint.exists():
            print(f"awdvd train: interrupted; the last complete epoch is saved in {checkpoint}: continue with the "
                  "same command and --resume", file=sys.stderr)
        else:
            print("awdvd train: interrupted before the first epoch ended; nothing saved", file=sys.stderr)
        return 130
    training, summary = done.result.model.info["training"], done.test_summary
    line = (f"wrote {done.paths['model']}: best epoch {done.result.best_epoch}/{len(done.result.history)}, val "
            f"accuracy {training['best_val_accuracy']:.4f}")
    if summary is not None:
        line += f", test accuracy {summary['accuracy']:.4f} (macro F1 {summary['macro']['f1']:.4f})"
    print(line)
    return 0
