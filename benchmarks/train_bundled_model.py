"""Train the bundled model's deep-range stage: 0-40 um (21 levels of 2 um at the bundled optics), on the BBBC006
and BBBC039 in-focus fields, each brought from its own optics to the model's grid.

Starts from a model of the bundled optics (by default the bundled 11-level one: its weights, the output layer
extended so that levels 11-20 start as level 10) and trains on the stream (awdvd.learn.train_stream) with
- real sources: BBBC006 a02-a06 (20x / NA 0.5, 0.65 um, emission 0.451 um: the model's own optics) and 140 of
  the 160 BBBC039 fields (20x / NA 0.45, 0.645 um, Hoechst emission about 0.46 um: resampled by 0.875 to the
  model's grid); every 8th BBBC039 field by name and BBBC006 a07 are held out (listed in the model's info);
- one copy of each real source downsampled by a log-uniform 0.55-1.0 (smaller object scales: 10x objectives);
- 16 procedural fields with nuclei 0.6-2.5 x BBBC006's size (larger object scales: 40x, 60x objectives);
- the randomized camera, dihedral transforms, ordinal loss (cross-entropy + 0.5 x expected level distance).

Resumable: rerun the same command with --resume after an interruption.

    python benchmarks/train_bundled_model.py -o /work/exp/deep/model.pt --threads 2 [--resume]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: BBBC039's optics from its README (MetaMorph metadata: 20x Plan Fluor ELWD NA 0.45 in air, 0.645 um, DAPI cube)
BBBC039_OPTICS = {"wavelength_um": 0.46, "na": 0.45, "n": 1.0, "pixel_um": 0.645}
HELD_OUT_BBBC006 = ("a07",)


def split_bbbc039(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training, held out): every 8th field by name is held out."""
    paths = sorted(paths)
    return [p for i, p in enumerate(paths) if i % 8 != 0], [p for i, p in enumerate(paths) if i % 8 == 0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, type=Path)
    parser.add_argument("--init", default=None, help="model to start from (default: the bundled one)")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--levels", type=int, default=21)
    parser.add_argument("--loss", default="ordinal", choices=("ce", "ordinal"))
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--bbbc006-share", type=float, default=None,
                        help="share of the real windows drawn from the BBBC006 fields (default: every field alike)")
    args = parser.parse_args(argv)

    from awdvd.data.datasets import load_in_focus_images
    from awdvd.io import write_json
    from awdvd.learn.model_files import load_model
    from awdvd.learn.train_stream import STREAM_RECIPES, train_from_stream
    from awdvd.physics.optics import Optics

    init = load_model(args.init)
    optics = init.optics.replace(n_levels=args.levels)
    b006 = sorted(p for p in (SHARED / "bbbc006" / "in_focus").glob("*.png")
                  if not any(f"__{name}__" in p.name for name in HELD_OUT_BBBC006))
    b039_train, b039_held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    images, names = load_in_focus_images([str(p) for p in b006 + b039_train])
    source_optics = [None] * len(b006) + [Optics(**BBBC039_OPTICS)] * len(b039_train)
    weights = None
    if args.bbbc006_share is not None:
        share = args.bbbc006_share
        weights = [share / len(b006)] * len(b006) + [(1 - share) / len(b039_train)] * len(b039_train)
    recipe = STREAM_RECIPES["stream"].replace(name="deep-range", steps=args.steps, lr=args.lr, loss=args.loss,
                                              procedural_scale=(0.6, 2.5), object_scale_copies=1,
                                              object_scale=(0.55, 1.0), val_every=500)
    checkpoint = args.output.with_suffix(".checkpoint.pt")
    started = time.time()

    def progress(entry):
        print(f"step {entry['step']}: loss {entry['train_loss']:.3f}, val {entry['val_accuracy']:.3f} "
              f"(+/-1 {entry['val_within1']:.3f}), {entry['seconds']:.0f} s, {entry['cpu_seconds']:.0f} CPU s",
              flush=True)

    print(f"{len(images)} real sources ({len(b006)} BBBC006, {len(b039_train)} BBBC039), {args.levels} levels, "
          f"{args.steps} steps", flush=True)
    model, history = train_from_stream(images, source_names=names, optics=optics, recipe=recipe, seed=args.seed,
                                       threads=args.threads, checkpoint_path=checkpoint, resume=args.resume,
                                       progress=progress, init=init, source_optics=source_optics,
                                       source_weights=weights)
    model.info["data"]["held_out"] = {"bbbc006": list(HELD_OUT_BBBC006), "bbbc039": [p.name for p in b039_held]}
    model.info["data"]["bbbc039_optics"] = BBBC039_OPTICS
    model.save(args.output, overwrite=True)
    write_json(args.output.with_suffix(".history.json"), {"history": history, "wall_s": time.time() - started},
               overwrite=True)
    print(f"saved {args.output} (best step {model.info['training']['best_step']}, "
          f"{time.time() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
