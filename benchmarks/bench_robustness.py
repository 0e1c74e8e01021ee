"""Robustness matrix of the stream recipe: leave-one-source-out folds over the shared in-focus fields.

For each fold a model is trained on the stream of the other five shared fields (+ procedural fields) and judged
on the held-out field (never trained on) under every camera model of awdvd.data.training_stream.PAPER_CAMERAS, on procedural
nuclei of seeds no training used, on tilted specimens of the held-out field (map-level), and on the real
held-out in-focus image (fraction of its foreground tiles called level 0-1). Fold models are cached in
--work-dir, so a rerun only evaluates (training a fold takes tens of CPU minutes on 2 cores).

    python benchmarks/bench_robustness.py --folds a07,a04,a02 --work-dir /work/exp/folds \
        -o benchmarks/results/robustness_folds.json [--unseen-cameras]

The bundled model's recipe has two stages: the command above trains the first (5,000 steps, lr 3e-3); the
second trains each fold on from the first's model for 5,000 steps at lr 1e-3 with fresh batches:

    python benchmarks/bench_robustness.py --folds a07,a04,a02 --work-dir /work/exp/folds_ft \
        --init-dir /work/exp/folds --recipe-json '{"lr": 0.001}' --seed 1 -o ... --unseen-cameras

Prints the matrix as a Markdown table (also in the JSON) and the worst case over cameras.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc006"


def shared_fields() -> dict[str, np.ndarray]:
    from awdvd.io import read_image

    paths = sorted(glob.glob(str(SHARED / "in_focus" / "*.png")))
    return {os.path.basename(p).split("__")[1]: read_image(p).data.astype(np.float32) for p in paths}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="a07,a04,a02", help="held-out shared fields, comma separated")
    parser.add_argument("--work-dir", required=True, help="where fold models and checkpoints are kept")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--recipe-json", default=None, help="StreamRecipe fields as JSON (overrides)")
    parser.add_argument("--per-level", type=int, default=60)
    parser.add_argument("--procedural-fields", type=int, default=2, help="held-out procedural fields in the matrix")
    parser.add_argument("--init-dir", default=None,
                        help="train each missing fold model on from INIT_DIR/fold_FIELD.pt (a second stage: "
                             "awdvd train --images ... --init; the bundled model's recipe is a 5,000-step stage "
                             "and this one with --recipe-json '{\"lr\": 0.001}' --seed 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of new fold trainings (default 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--unseen-cameras", action="store_true",
                        help="also judge every fold under awdvd.data.training_stream.UNSEEN_CAMERAS (outside the training range)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    import torch

    from awdvd.learn.model_files import load_model
    from awdvd.learn.train_stream import STREAM_RECIPES, procedural_sources, train_from_stream
    from awdvd.validate.real_data import real_data_checks
    from awdvd.validate.robustness import level_matrix, map_matrix, robustness_markdown

    torch.set_num_threads(args.threads)
    fields = shared_fields()
    recipe = STREAM_RECIPES["stream"]
    if args.recipe_json:
        recipe = recipe.replace(**json.loads(args.recipe_json))
    if args.steps:
        recipe = recipe.replace(steps=args.steps)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    held_procedural = {f"procedural_{i}": f for i, f in enumerate(procedural_sources(args.procedural_fields, seed=9001))}
    results = {"recipe_of_new_folds": recipe.to_dict(), "folds": {}}  # each fold records its model's own recipe
    for fold in [f for f in args.folds.split(",") if f]:
        if fold not in fields:
            raise SystemExit(f"unknown field {fold!r}; shared fields: {', '.join(fields)}")
        model_path = work / f"fold_{fold}.pt"
        if not model_path.is_file():
            train = {name: image for name, image in fields.items() if name != fold}
            started = time.time()
            init = None if args.init_dir is None else load_model(Path(args.init_dir) / f"fold_{fold}.pt")
            model, history = train_from_stream(list(train.values()), source_names=list(train), recipe=recipe,
                                               seed=args.seed, init=init, checkpoint_path=work / f"fold_{fold}.checkpoint.pt",
                                               resume=(work / f"fold_{fold}.checkpoint.pt").is_file(),
                                               progress=lambda e: print(f"[{fold}] {e}", flush=True))
            model.info["training"]["wall_s"] = round(time.time() - started, 1)
            model.save(model_path)
        if args.train_only:
            continue
        model = load_model(model_path)
        started = time.time()
        entry = {"recipe": model.info.get("recipe"), "seed": model.info.get("seed"),
                 "trained_on": model.info.get("data", {}).get("sources"),
                 "training_s": model.info.get("training", {}).get("seconds"),
                 "fields": level_matrix(model, {fold: fields[fold]}, per_level=args.per_level),
                 "procedural": level_matrix(model, held_procedural, per_level=args.per_level),
                 "maps": map_matrix(model, {fold: fields[fold]}),
                 "real_in_focus": real_data_checks(model, in_focus=[fields[fold]])["in_focus"],
                 "real_in_focus_cells": real_data_checks(model, in_focus=[fields[fold]], rule="cells")["in_focus"]}
        if args.unseen_cameras:
            from awdvd.data.training_stream import UNSEEN_CAMERAS

            entry["fields_unseen_cameras"] = level_matrix(model, {fold: fields[fold]}, cameras=UNSEEN_CAMERAS,
                                                          per_level=args.per_level)
            entry["procedural_unseen_cameras"] = level_matrix(model, held_procedural, cameras=UNSEEN_CAMERAS,
                                                              per_level=args.per_level)
            print(f"fold {fold}: held-out field, unseen cameras\n"
                  + robustness_markdown({fold: entry["fields_unseen_cameras"]}), flush=True)
        entry["evaluation_s"] = round(time.time() - started, 1)
        results["folds"][fold] = entry
        print(f"fold {fold}: held-out field\n" + robustness_markdown({fold: entry["fields"]}), flush=True)
        print(f"fold {fold}: procedural\n" + robustness_markdown({fold: entry["procedural"]}), flush=True)
        print(f"fold {fold}: real in-focus field called 0-1: {entry['real_in_focus']['fraction_expected']:.3f} "
              f"(tiles that hold cells: {entry['real_in_focus_cells']['fraction_expected']:.3f})", flush=True)
    if results["folds"]:
        worst = {}
        kinds = ("fields", "procedural") + (("fields_unseen_cameras", "procedural_unseen_cameras")
                                             if args.unseen_cameras else ())
        for kind in kinds:
            for key in ("top1", "within1"):
                values = [(fold, cam, e[kind]["cameras"][cam][key]) for fold, e in results["folds"].items()
                          for cam in e[kind]["cameras"]]
                worst[f"{kind}_{key}"] = min(values, key=lambda v: v[2])
        results["worst_case"] = worst
        results["markdown"] = robustness_markdown({f: e["fields"] for f, e in results["folds"].items()})
        print("worst cases:", json.dumps(worst))
        Path(args.output).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
