"""awdvd evaluate-restoration: the paper's restoration figures (Fig. 8 on test patches, Fig. 9 on a synthetic
tilted specimen) as JSON tables and PNG plots."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..io import check_output_folder
from ..validate.restoration import write_restoration_report
from ._common import non_negative_int, offset_arg, positive_int, psf_size
from .outputs import defaults, window_stride


def register(subparsers) -> None:
    d = defaults()
    parser = subparsers.add_parser(
        "evaluate-restoration",
        help="score depth-variant vs depth-invariant deconvolution (paper Fig. 8-9)",
        description="With --dataset: PSNR/SSIM per defocus level of noisy, depth-variant (true level, and the "
        "model's level with --model) and depth-invariant (level-0 PSF) RL on the test split's patches "
        "(patches.json, patches.png). With --in-focus: a synthetic tilted specimen per image (level rising "
        "across the field) restored by case (i), case (ii) and the fast method at --strides, with true levels "
        "(and the model's with --model): PSNR/SSIM and a seam ratio (whole.json, whole.png). With --bands also "
        "the PSNR change of every level band of those specimens for the model with the library defaults, with 30 "
        "iterations and with the true-level ceiling, and the floors of issue 12 (bands.json, REPORT.md, which "
        "also holds the Fig. 8 table when patches are scored).",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--dataset", type=Path, help="patch dataset folder from `awdvd simulate` (its test split)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test",
                        help="the --dataset split whose patches Fig. 8 scores (default test; another split is a "
                             "second sample where the test split holds few patches of a level)")
    parser.add_argument("--patches-from-in-focus", action="store_true",
                        help="without --dataset: score Fig. 8 on the test split of patches simulated from the "
                             "--in-focus images (20 crops x 8 realizations per image and level, seed 0)")
    parser.add_argument("--bands", action="store_true",
                        help="also the per level band table, the ceiling and the floors (bands.json, REPORT.md; "
                             "default model: the bundled one)")
    parser.add_argument("--in-focus", nargs="+", metavar="IMAGE", help="in-focus images for tilted specimens")
    parser.add_argument("--model", type=Path, help="model file: also score with predicted levels")
    parser.add_argument("--per-level", type=positive_int, default=45, help="patches per level (default 45)")
    parser.add_argument("--iterations", type=non_negative_int, default=d.iterations,
                        help="RL iterations for every level (default: the model's schedule where it has one, else 30)")
    parser.add_argument("--strides", type=window_stride, nargs="+",
                        help="strides of the fast method on whole images (default: half and a quarter of the "
                             "window, and 8: 42 21 8 for 84 px windows)")
    parser.add_argument("--psf-size", type=psf_size, default=d.psf_size,
                        help="odd PSF size in px (default: 99%% energy)")
    parser.add_argument("--offset", type=offset_arg, default=d.offset,
                        help="camera offset removed before RL (ADU), or 'auto' (default: the image's, or each "
                             "patch's, 1st percentile)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.output)  # before any work
    written = write_restoration_report(args.output, dataset=args.dataset, in_focus=args.in_focus or (),
                                       model=args.model, per_level=args.per_level, strides=args.strides,
                                       seed=args.seed, overwrite=args.overwrite, bands=args.bands,
                                       split=args.split,
                                       simulate_patches=args.patches_from_in_focus,
                                       command="awdvd " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                                       iterations=args.iterations, psf_size=args.psf_size, offset=args.offset)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
