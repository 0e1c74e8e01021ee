"""awdvd evaluate-robustness: how models hold on fields, cameras and specimens they never saw."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..validate.robustness import worst_case, write_robustness
from ._common import non_negative_int, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate-robustness",
        help="judge models on unseen fields under several camera models (the robustness matrix)",
        description="Blur in-focus FIELDS the models never trained on at every defocus level, record them with "
        "each camera model (BBBC006's camera, the paper's Eq. 1, gain 1 + offset 96, a dim high-gain camera, no "
        "noise) and classify the same foreground windows: top-1, within +/-1, mean |level error| and background "
        "calls per camera; also procedural nuclei and, on tilted specimens of FIELDS, the defocus map against "
        "the true levels and the AWDVD PSNR they give. Writes DIR/robustness.json and DIR/robustness.md.",
    )
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="model files (.pt)")
    parser.add_argument("--fields", nargs="+", default=[], metavar="FIELD",
                        help="in-focus images none of the models trained on (files, folders, globs)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for the results")
    parser.add_argument("--procedural", type=non_negative_int, default=2,
                        help="procedural nuclei fields to add (default 2; 0: none)")
    parser.add_argument("--per-level", type=positive_int, default=60, help="windows per field and level (default 60)")
    parser.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                        help="dihedral transforms averaged per window (default 1)")
    parser.add_argument("--no-maps", action="store_true", help="skip the tilted-specimen maps")
    parser.add_argument("--cameras", choices=("matrix", "unseen", "all"), default="matrix",
                        help="camera models: the matrix's five (default), three outside the training stream's "
                             "camera range (high offset and read noise, gain 8 on a dim specimen, a bright "
                             "specimen), or all")
    parser.add_argument("--optics", action="store_true",
                        help="also the optics axis on FIELDS: sharp fields brought to pixel sizes 0.65, 0.43, 0.325, "
                             "0.22 and 0.98 um (share read in focus), and synthetic defocus under the model's "
                             "objective, 20x/0.45, 10x/0.3, 40x/0.75 and 60x/1.4 oil at their own pixel sizes "
                             "(depth error in level-equivalents); FIELDS are taken at the model's pixel size")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="noise and window seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = write_robustness(args.models, args.fields, args.output, procedural=args.procedural,
                               per_level=args.per_level, tta=args.tta, maps=not args.no_maps, seed=args.seed,
                               cameras=args.cameras, optics=args.optics,
                               overwrite=args.overwrite, log=lambda line: print(line, file=sys.stderr, flush=True))
    for label, result in results.items():
        for kind in ("fields", "procedural"):
            if kind in result:
                camera, value = worst_case(result[kind])
                print(f"{label} ({kind}): worst top-1 {value:.3f} ({camera}); within +/-1 "
                      f"{min(s['within1'] for s in result[kind]['cameras'].values()):.3f}")
        if "optics" in result:
            objects = result["optics"]["defocus_under_optics"]["object"].items()
            print(f"{label} (optics, object scale): within one level-equivalent "
                  + ", ".join(f"{name} {v['within_1']:.3f}" for name, v in objects if v["within_1"] is not None))
    print(f"wrote {args.output / 'robustness.json'} and {args.output / 'robustness.md'}")
    return 0
