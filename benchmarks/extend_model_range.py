"""Assemble a range-extended model (awdvd.learn.range_extension): a near model for its own range and a far model
trained over a deeper range at the same optics, read as one model over the far range.

    python benchmarks/extend_model_range.py NEAR.pt FAR.pt --far-schedule FAR_CALIBRATED.pt -o OUT.pt

The restoration schedule of OUT is the near model's calibrated schedule for the near levels and, for the levels
beyond them, FAR_CALIBRATED's (``awdvd calibrate-restoration FAR.pt -o FAR_CALIBRATED.pt``; the schedule depends
on the optics and the camera only, not on the network). OUT's info is the near model's (its lineage, data,
held-out fields) with ``info["range_extension"]`` describing the far model and how the two were joined.

The bundled model was made with
    python benchmarks/extend_model_range.py src/awdvd/models/delpnet_default.pt deep2.pt \
        --far-schedule deep_calibrated.pt -o delpnet_default.pt
where deep2.pt is the deep-range model of docs/benchmarks.md ("A first deep-range model", 3,500 + 3,000 steps of
benchmarks/train_bundled_model.py at 21 levels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

LIST_KEYS = ("iterations", "discrepancy", "strength")


def joined_schedule(near_block: dict, far_block: dict, n_near: int) -> dict:
    """The near model's restoration block with each variant's per-level lists continued by the far block's levels
    n_near and beyond."""
    out = dict(near_block)
    schedules = {}
    for variant, near in near_block["schedules"].items():
        far = far_block["schedules"].get(variant)
        if far is None:
            raise ValueError(f"the far schedule has no {variant!r} variant")
        for key in ("variant", "tv_weight", "gain_adu_per_e", "offset_adu", "read_noise_adu"):
            if near.get(key) != far.get(key):
                raise ValueError(f"the schedules differ in {variant} {key}: {near.get(key)!r} vs {far.get(key)!r}")
        schedules[variant] = dict(near, **{k: list(near[k])[:n_near] + list(far[k])[n_near:] for k in LIST_KEYS})
    out["schedules"] = schedules
    default = out["default_variant"]
    out["iterations_per_level"] = schedules[default]["iterations"]
    out["method"] = (f"{near_block['method']}; levels 0-{n_near - 1} from the near model's calibration, levels "
                     f"{n_near} and beyond from the far model's (benchmarks/extend_model_range.py)")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("near", type=Path)
    parser.add_argument("far", type=Path)
    parser.add_argument("--far-schedule", type=Path, required=True, help="the far model calibrated "
                        "(awdvd calibrate-restoration FAR.pt -o FAR_CALIBRATED.pt)")
    parser.add_argument("--switch", type=float, default=0.5)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from awdvd.learn.model_files import load_model
    from awdvd.learn.range_extension import RangeExtendedModel
    from awdvd.restore.rl_schedule import INFO_KEY

    near, far, calibrated = load_model(args.near), load_model(args.far), load_model(args.far_schedule)
    n_near = near.optics.n_levels
    info = dict(near.info)
    info[INFO_KEY] = joined_schedule(near.info[INFO_KEY], calibrated.info[INFO_KEY], n_near)
    info["range_extension"] = {
        "what": (f"levels 0-{n_near - 1} (0-{near.optics.depths_um[-1]:g} um) read by the near network; in an image "
                 f"with at least a quarter of its foreground at level {n_near - 1}, at windows the near network reads "
                 f"in its last three levels, the far network's reading ({far.optics.n_levels} levels, "
                 f"0-{far.optics.depths_um[-1]:g} um) where it puts more than {args.switch:g} of the window's "
                 f"foreground probability beyond level {n_near - 1}"),
        "command": "python benchmarks/extend_model_range.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "far_recipe": far.info.get("recipe"), "far_training": far.info.get("training"),
        "far_data": far.info.get("data"),
    }
    model = RangeExtendedModel(near, far, switch=args.switch, info=info)
    model.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {model.optics.n_levels} levels, 0-{model.optics.depths_um[-1]:g} um; "
          f"iterations per level {info[INFO_KEY]['iterations_per_level']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
