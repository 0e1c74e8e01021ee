"""Write the figures a model file carries in ``info`` (what MODEL_CARD.md quotes and `awdvd.load_model().info`
shows) from the measurements that made them, into a copy of the model file.

    python benchmarks/record_model_figures.py MODEL.pt --evaluation EVAL/summary.json \
        --robustness ROBUSTNESS.json [--fold a07] [--lineage JSON] -o OUT.pt

- ``info["test_metrics"]``: the paper split's test patches (`awdvd evaluate MODEL dsR8 -o EVAL`, its summary.json);
- ``info["held_out"]``: the robustness matrix on the held-out field (`benchmarks/bench_robustness.py --folds a07
  --work-dir W --unseen-cameras -o ROBUSTNESS.json`, with W/fold_a07.pt the model itself);
- ``info["real_data"]``: the real BBBC006 checks (`awdvd.validate.real_data`), per in-focus field and over the 20
  z00 planes, measured here (a few seconds);
- ``info["lineage"]`` (optional): how the weights were made, stage by stage, as a JSON list.

Needs ../shared/data/bbbc006 (relative to the project root).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bbbc006"
sys.path.insert(0, str(ROOT / "src"))


def real_data_figures(model, data: Path) -> dict:
    """The z00 planes called the three deepest levels, and each in-focus field called level 0-1."""
    from awdvd.io import find_images, read_image
    from awdvd.validate.real_data import real_data_checks

    z00 = [read_image(p).data for p in find_images(data / "defocus_z00")]
    figures = {"z00_called_8_10": real_data_checks(model, defocused=z00)["defocused"], "in_focus_called_0_1": {}}
    for path in find_images(data / "in_focus"):
        field = Path(path).name.split("__")[1]
        figures["in_focus_called_0_1"][field] = real_data_checks(model, in_focus=[read_image(path).data])["in_focus"]
    return figures


def held_out_figures(robustness: dict, fold: str, command: str) -> dict:
    """The robustness record's entry of ``fold`` in the shape ``info["held_out"]`` keeps."""
    entry = robustness["folds"][fold]

    def rows(part: str) -> dict:
        return {cam: {k: row[k] for k in ("top1", "within1", "mean_abs_error", "background_calls", "n")}
                for cam, row in entry[part]["cameras"].items()}

    held = {"field": fold,
            "what": f"robustness matrix (awdvd.validate.robustness.level_matrix) on BBBC006 {fold}, never trained on",
            "command": command, "cameras": rows("fields"), "procedural": entry["procedural"]["cameras"],
            f"real_in_focus_{fold}": entry["real_in_focus"],
            f"real_in_focus_{fold}_cells": entry["real_in_focus_cells"]}
    if "fields_unseen_cameras" in entry:
        held["unseen_cameras"] = rows("fields_unseen_cameras")
    return held


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--evaluation", type=Path, required=True, help="summary.json of `awdvd evaluate`")
    parser.add_argument("--robustness", type=Path, required=True, help="record of benchmarks/bench_robustness.py")
    parser.add_argument("--robustness-command", default="python benchmarks/bench_robustness.py --folds a07 "
                        "--work-dir W --unseen-cameras -o robustness.json (W/fold_a07.pt: this model)")
    parser.add_argument("--fold", default="a07")
    parser.add_argument("--lineage", help="a JSON list: the training stages that made the weights")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    from awdvd.learn.evaluate import recorded_metrics
    from awdvd.learn.model_files import load_model

    if args.output.exists() and args.output.resolve() == args.model.resolve():
        raise SystemExit("record_model_figures: write to another file than the model read")
    model = load_model(args.model)
    model.info["test_metrics"] = recorded_metrics(json.loads(args.evaluation.read_text()))
    model.info["held_out"] = held_out_figures(json.loads(args.robustness.read_text()), args.fold,
                                              args.robustness_command)
    model.info["real_data"] = real_data_figures(model, args.data)
    if args.lineage:
        model.info["lineage"] = json.loads(args.lineage)
    model.save(args.output)
    real = model.info["real_data"]
    print(f"paper split {model.info['test_metrics']['accuracy']:.3f}; held-out {args.fold} "
          f"{model.info['held_out']['cameras']['bbbc006']['top1']:.3f}; z00 called 8-10 "
          f"{real['z00_called_8_10']['fraction_expected']:.3f}; in focus called 0-1 "
          + ", ".join(f"{k} {v['fraction_expected']:.2f}" for k, v in real["in_focus_called_0_1"].items()))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
