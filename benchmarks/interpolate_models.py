"""Interpolate the weights of two models of one lineage (WiSE-FT, Wortsman et al. 2022): a model trained on
from another keeps its parent's strengths when its weights are taken part of the way back to the parent's.

    python benchmarks/interpolate_models.py PARENT.pt FINE_TUNED.pt --alpha 0.3 -o OUT.pt

OUT has every floating-point tensor of the state (weights, biases, BatchNorm running statistics) at
(1 - alpha) x PARENT + alpha x FINE_TUNED, integer tensors (BatchNorm's batch counters) and everything else of the
file (optics, levels, normalisation, restoration schedule, info) from FINE_TUNED, and records the interpolation
in ``info["interpolation"]``. The two must share architecture, network configuration, optics and levels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

MUST_AGREE = ("architecture", "architecture_args", "optics", "class_levels", "normalization", "patch_px")


def interpolate(parent: dict, tuned: dict, alpha: float) -> dict:
    """A model payload ``alpha`` of the way from ``parent``'s weights to ``tuned``'s (both torch.load payloads)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    for key in MUST_AGREE:
        if parent.get(key) != tuned.get(key):
            raise ValueError(f"the models differ in {key}: {parent.get(key)!r} vs {tuned.get(key)!r}")
    if parent["state_dict"].keys() != tuned["state_dict"].keys():
        raise ValueError("the models' state dicts hold different tensors")
    state = {}
    for name, value in tuned["state_dict"].items():
        other = parent["state_dict"][name]
        state[name] = (1 - alpha) * other + alpha * value if value.is_floating_point() else value.clone()
    out = dict(tuned, state_dict=state)
    out["info"] = dict(tuned.get("info", {}))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parent", type=Path, help="the model trained on (alpha 0)")
    parser.add_argument("tuned", type=Path, help="the model trained on from it (alpha 1)")
    parser.add_argument("--alpha", type=float, required=True, help="share of the fine-tuned weights, 0-1")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.output.exists():
        raise SystemExit(f"interpolate_models: {args.output} exists; choose another output")
    parent = torch.load(args.parent, map_location="cpu", weights_only=True)
    tuned = torch.load(args.tuned, map_location="cpu", weights_only=True)
    try:
        out = interpolate(parent, tuned, args.alpha)
    except ValueError as error:
        raise SystemExit(f"interpolate_models: {error}") from None
    out["info"]["interpolation"] = {"method": "WiSE-FT weight interpolation (benchmarks/interpolate_models.py)",
                                    "alpha": args.alpha, "parent": args.parent.name, "tuned": args.tuned.name,
                                    "parent_training": parent.get("info", {}).get("training", {}).get("kind"),
                                    "parent_recipe": parent.get("info", {}).get("recipe", {}).get("name")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.output)
    print(f"wrote {args.output}: {args.alpha:g} x {args.tuned.name} + {1 - args.alpha:g} x {args.parent.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
