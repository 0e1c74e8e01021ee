"""awdvd evaluate: classification metrics of one or more models on a dataset split (paper 3.1-3.3)."""

from __future__ import annotations

import argparse
from pathlib import Path


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


_FILES = ("summary.json", "confusion.csv", "confusion.png", "cmc.csv", "cmc.png", "per_class.csv")


def run(args: argparse.Namespace) -> int:
    names = [m.with_suffix("").name if m.suffix == ".pt" else m.name for m in args.models]
    if len(set(names)) != len(names):
        raise ValueError(f"model file names must differ (they name the subfolders): {', '.join(names)}")
    folders = [args.output] if len(args.models) == 1 else [args.output / n for n in names]
    planned = [f / name for f in folders for name in _FILES]
    if len(args.models) > 1:
        planned += [args.output / "comparison.csv", args.output / "cmc.png", args.output / "curves.png"]
    existing = [p for p in planned if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; choose another -o DIR or pass --overwrite")

    from ..data import read_dataset
    from ..io import write_csv, write_json
    from ..model import load_model
    from ..plots import cmc_figure, confusion_figure, training_curves
    from ..train import evaluate_model

    models = [load_model(path) for path in args.models]  # all files checked before any work
    patches, metadata = read_dataset(args.dataset, args.split)
    if len(patches) == 0:
        raise ValueError(f"the {args.split} split of {args.dataset} is empty")
    curves, rows = {}, []
    for name, path, model, folder in zip(names, args.models, models, folders):
        summary = evaluate_model(model, patches, metadata=metadata)
        summary.update(model=str(path), dataset=str(args.dataset), split=args.split,
                       variant=model.info.get("variant", {}).get("name"), recipe=model.info.get("recipe", {}).get("name"))
        classes = summary["class_names"]
        write_json(folder / "summary.json", summary, overwrite=args.overwrite)
        write_csv(folder / "confusion.csv", ["true \\ predicted"] + classes,
                  ([classes[i]] + row for i, row in enumerate(summary["confusion"])), overwrite=args.overwrite)
        confusion_figure(summary["confusion"], classes, folder / "confusion.png",
                         title=f"{name}: accuracy {summary['accuracy']:.1%} ({args.split}, n = {summary['n']})",
                         overwrite=args.overwrite)
        write_csv(folder / "cmc.csv", ["k", "top_k_accuracy"], enumerate(summary["cmc"], start=1), overwrite=args.overwrite)
        cmc_figure({name: summary["cmc"]}, folder / "cmc.png", overwrite=args.overwrite)
        write_csv(folder / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
                  ([c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in summary["per_class"].items()),
                  overwrite=args.overwrite)
        curves[name] = summary["cmc"]
        rows.append([name, model.architecture, summary["n"], summary["accuracy"], summary["macro"]["precision"],
                     summary["macro"]["recall"], summary["macro"]["f1"], summary["mean_abs_level_error"],
                     summary["within_one_level"]])
        print(f"{name}: accuracy {summary['accuracy']:.4f}, macro precision {summary['macro']['precision']:.4f} "
              f"recall {summary['macro']['recall']:.4f} F1 {summary['macro']['f1']:.4f}, mean |level error| "
              f"{_number(summary['mean_abs_level_error'], 3)}, within +/-1 level {_number(summary['within_one_level'], 4)} "
              f"({summary['n']} {args.split} patches)")
    if len(args.models) > 1:
        write_csv(args.output / "comparison.csv", ["model", "architecture", "n", "accuracy", "macro_precision",
                                                   "macro_recall", "macro_f1", "mean_abs_level_error", "within_one_level"],
                  rows, overwrite=args.overwrite)
        cmc_figure(curves, args.output / "cmc.png", title=f"cumulative match curves ({args.split})", overwrite=args.overwrite)
        histories = {name: model.info.get("training", {}).get("history") for name, model in zip(names, models)}
        histories = {name: history for name, history in histories.items() if history}
        if histories:
            training_curves(histories, args.output / "curves.png", overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return 0
