"""awdvd train: train DelpNet (or a comparison network) on a dataset from `awdvd simulate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import non_negative_int, positive_float, positive_int

from ..train import RECIPES, VARIANTS  # plain dataclasses: no torch at parse time

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
    from ..train import describe_variant, output_paths

    if args.list_variants:
        for name in VARIANT_NAMES:
            print(describe_variant(name))
        return 0
    if args.dataset is None or args.output is None:
        raise ValueError("give a DATASET and -o MODEL (or --list-variants)")
    paths = output_paths(args.output)
    existing = [p for key, p in paths.items() if key != "checkpoint" and p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; choose another output or pass --overwrite")
    if args.resume and not paths["checkpoint"].is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {paths['checkpoint']} to continue from")
    if paths["checkpoint"].exists() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{paths['checkpoint']} holds an interrupted run; continue it with --resume, or start "
                              "over with --overwrite")

    import torch

    from ..data import read_dataset
    from ..io import write_csv, write_json
    from ..optics import Optics
    from ..plots import training_curves
    from ..train import evaluate_model, get_recipe, train_model

    if args.threads:
        torch.set_num_threads(args.threads)
    init = None
    if args.init is not None:
        from ..model import load_model

        init = load_model(args.init)
    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    train, metadata = read_dataset(args.dataset, "train")
    val, _ = read_dataset(args.dataset, "val")
    test, _ = read_dataset(args.dataset, "test")
    optics = Optics.from_dict(metadata["optics"])
    data_info = {
        "path": str(args.dataset.resolve()),
        "format_version": metadata.get("format_version"),
        "optics": metadata.get("optics"),
        "noise": metadata.get("noise"),
        "spec": metadata.get("spec"),
        "psf_size": metadata.get("psf_size"),
        "sources": metadata.get("sources"),
        "n_patches": metadata.get("n_patches"),
        "counts": metadata.get("counts"),
    }
    print(describe_variant(args.variant, device="cpu"), file=sys.stderr)
    print(f"recipe {recipe.name}: {recipe.to_dict()}", file=sys.stderr)
    print(f"data: {len(train)} train / {len(val)} val / {len(test)} test patches from {args.dataset}", file=sys.stderr)
    def log_epoch(h: dict) -> None:  # without a progress bar, one line per epoch (e.g. for a log file)
        print(f"epoch {h['epoch']}: train loss {h['train_loss']:.4f} acc {h['train_accuracy']:.4f}, val loss "
              f"{h['val_loss']:.4f} acc {h['val_accuracy']:.4f}, {h['seconds']:.0f} s", file=sys.stderr, flush=True)

    try:
        result = train_model(train, val, optics=optics, recipe=recipe, variant=args.variant, seed=args.seed,
                             device=args.device, checkpoint_path=paths["checkpoint"], resume=args.resume,
                             progress=not args.no_progress, data_info=data_info,
                             on_epoch=log_epoch if args.no_progress else None, init=init)
    except KeyboardInterrupt:
        if paths["checkpoint"].exists():
            print(f"awdvd train: interrupted; the last complete epoch is saved in {paths['checkpoint']}: continue "
                  "with the same command and --resume", file=sys.stderr)
        else:
            print("awdvd train: interrupted before the first epoch ended; nothing saved", file=sys.stderr)
        return 130
    model = result.model
    summary = evaluate_model(model, test, metadata=metadata) if len(test) else None
    if summary is not None:
        model.info["test_metrics"] = {k: summary[k] for k in ("n", "accuracy", "macro", "mean_abs_level_error",
                                                              "within_one_level", "cmc", "per_class")}
    columns = ["epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    write_csv(paths["curves_csv"], columns, ([h[c] for c in columns] for h in result.history), overwrite=args.overwrite)
    training_curves({f"{args.variant} ({recipe.name})": result.history}, paths["curves_png"], overwrite=args.overwrite)
    model.save(paths["model"], overwrite=args.overwrite)
    sidecar = {k: v for k, v in model.info.items() if k != "training"}
    sidecar["training"] = {k: v for k, v in model.info["training"].items() if k != "history"}
    sidecar.update(model=str(paths["model"]), architecture=model.architecture, class_names=model.class_names)
    write_json(paths["sidecar"], sidecar, overwrite=args.overwrite)
    paths["checkpoint"].unlink(missing_ok=True)
    best = model.info["training"]
    line = (f"wrote {paths['model']}: best epoch {result.best_epoch}/{len(result.history)}, val accuracy "
            f"{best['best_val_accuracy']:.4f}")
    if summary is not None:
        line += f", test accuracy {summary['accuracy']:.4f} (macro F1 {summary['macro']['f1']:.4f})"
    print(line)
    return 0
