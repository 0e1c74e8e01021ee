"""awdvd train: train DelpNet on the stream of in-focus images (--images), or DelpNet (or a comparison network)
on a fixed dataset from `awdvd simulate` (the paper's way)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..learn.recipes import RECIPES, VARIANTS  # plain dataclasses: no torch at parse time
from ..learn.train import describe_variant
from ..learn.train_files import output_paths, train_to_file
from ..learn.train_stream import train_stream_to_file
from ._common import add_optics_arguments, non_negative_int, optics_from_args, positive_float, positive_int

RECIPE_NAMES = tuple(RECIPES)
STREAM_RECIPE_NAMES = ("stream", "smoke")  # awdvd.learn.train_stream.STREAM_RECIPES (kept torch-free here)
VARIANT_NAMES = tuple(VARIANTS)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the defocus-level classifier on a dataset",
        description="Train a defocus-level classifier. With --images IMAGES (recommended): on an endless stream "
        "of fresh windows of the in-focus IMAGES blurred at every level, recorded by a randomized camera, mixed "
        "with procedural nuclei (recipe 'stream', DelpNet-lean; --steps). With DATASET: on the fixed dataset of "
        "`awdvd simulate` (the paper's way), validating on its val split after "
        "every epoch and keeping the best epoch; then evaluate it on the test split. Writes MODEL and, beside "
        "it, STEM.curves.csv / STEM.curves.png (learning curves) and STEM.json (what was done); STEM.checkpoint.pt "
        "holds the state after each epoch while training runs, so that an interrupted run continues with "
        "--resume, and is removed at the end.",
    )
    parser.add_argument("dataset", nargs="?", type=Path, metavar="DATASET", help="dataset folder (awdvd simulate)")
    parser.add_argument("--images", nargs="+", metavar="IMAGES",
                        help="train on the stream of these in-focus images (files, folders or globs) instead of a "
                             "dataset")
    parser.add_argument("--steps", type=positive_int, help="--images: optimiser steps (default: the recipe's, 5000)")
    parser.add_argument("--gain", type=positive_float, default=0.33,
                        help="--images: gain of the images' camera, ADU per photon (default: BBBC006's)")
    parser.add_argument("--offset", type=float, default=96.0,
                        help="--images: offset of the images' camera, ADU (default: BBBC006's)")
    parser.add_argument("-o", "--output", type=Path, metavar="MODEL", help="model file to write (.pt)")
    parser.add_argument("--recipe", choices=RECIPE_NAMES + STREAM_RECIPE_NAMES,
                        help="with --images: 'stream' (default: 5000 steps of 128 windows) or 'smoke' (a few steps, "
                        "to try the pipeline); with DATASET: 'paper' (Adam 6e-5, Keras time decay 5e-6, batch 128, "
                        "1000 epochs) or 'fast' (default: AdamW + one-cycle, dihedral augmentation, 60 epochs)")
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
                        help="start from this trained model's weights instead of random ones (same variant, or "
                             "with --images a stream-trained model; e.g. to train on with --lr lower, or on more "
                             "data)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model (and its curves) or "
                        "a stale checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (there are none when stderr is not a terminal, e.g. a log file)")
    add_optics_arguments(parser)
    parser.set_defaults(func=run, on_interrupt=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted (Ctrl-C, SIGTERM) training leaves (awdvd.cli.main prints it)."""

    if args.output is None:
        return ""
    checkpoint = output_paths(args.output)["checkpoint"]
    if checkpoint.exists():
        what = "the last validation's state" if args.images is not None else "the last complete epoch"
        return f"{what} is saved in {checkpoint}: continue with the same command and --resume"
    return "interrupted before the first checkpoint; nothing saved"


def run(args: argparse.Namespace) -> int:
    if args.list_variants:
        for name in VARIANT_NAMES:
            print(describe_variant(name))
        return 0
    if (args.dataset is None) == (args.images is None) or args.output is None:
        raise ValueError("give --images IMAGES (in-focus images: the stream) or a DATASET folder, and -o MODEL "
                         "(or --list-variants)")
    if args.images is not None:
        return _run_stream(args)
    if args.recipe in STREAM_RECIPE_NAMES:
        raise ValueError(f"recipe {args.recipe!r} trains on the stream of --images, not on a DATASET")
    args.recipe = args.recipe or "fast"
    done = train_to_file(args.dataset, args.output, recipe=args.recipe, variant=args.variant, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                         threads=args.threads, init=args.init, resume=args.resume, overwrite=args.overwrite,
                         progress=not args.no_progress and sys.stderr.isatty(),
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    training, summary = done.result.model.info["training"], done.test_summary
    line = (f"wrote {done.paths['model']}: best epoch {done.result.best_epoch}/{len(done.result.history)}, val "
            f"accuracy {training['best_val_accuracy']:.4f}")
    if summary is not None:
        line += f", test accuracy {summary['accuracy']:.4f} (macro F1 {summary['macro']['f1']:.4f})"
    print(line)
    return 0


def _run_stream(args: argparse.Namespace) -> int:
    if args.variant != "delpnet" or args.recipe in RECIPE_NAMES or args.epochs or args.batch_size:
        raise ValueError("--images trains DelpNet-lean on the stream (recipes stream, smoke); --variant, --recipe "
                         "paper/fast, --epochs and --batch-size apply to DATASET training")
    model, paths = train_stream_to_file(args.images, args.output, recipe=args.recipe or "stream",
                                        steps=args.steps, lr=args.lr, init=args.init,
                                        optics=optics_from_args(args),
                                        source_offset_adu=args.offset, source_gain_adu_per_e=args.gain,
                                        seed=args.seed, threads=args.threads, resume=args.resume,
                                        overwrite=args.overwrite,
                                        log=lambda line: print(line, file=sys.stderr, flush=True))
    training = model.info["training"]
    print(f"wrote {paths['model']}: best step {training['best_step']}/{training['steps']}, validation accuracy "
          f"{training['best_val_accuracy']:.4f} (randomized cameras)")
    return 0
