"""awdvd simulate: build a synthetic defocus patch dataset from in-focus images (paper 2.1)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.datasets import simulate_dataset
from ..data.synth import CameraNoise, DatasetSpec
from ._common import add_optics_arguments, non_negative_int, optics_from_args, positive_float, positive_int, psf_size


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="make a synthetic defocus dataset from in-focus images",
        description="Blur in-focus images at every defocus level, add camera noise, split into train/val/test "
        "and crop 84 x 84 patches labelled with their level (or bg). INPUT: image files, folders or glob "
        "patterns; multi-page stacks contribute their in-focus (max-std) plane.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="in-focus images, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="dataset folder to create")
    parser.add_argument("--crops", type=positive_int, default=20, help="random crops per synthetic image (default 20)")
    parser.add_argument("--realizations", type=positive_int, default=1,
                        help="synthetic images per source and level, each with its own noise and crops (default 1)")
    parser.add_argument("--patch-px", type=positive_int, default=84, help="patch size in px (default 84)")
    parser.add_argument("--split-by", choices=("image", "source"), default="image",
                        help="'image': shuffle synthetic images (paper); 'source': keep each source image's levels in one split")
    parser.add_argument("--fractions", type=positive_float, nargs=3, default=(0.75, 0.15, 0.10),
                        metavar=("TRAIN", "VAL", "TEST"), help="split fractions (default 0.75 0.15 0.10)")
    parser.add_argument("--bg-max", type=positive_float, default=230.0, help="bg rule: patch max below this (raw units)")
    parser.add_argument("--bg-range", type=positive_float, default=30.0, help="bg rule: max - min below this (raw units)")
    parser.add_argument("--gain", type=positive_float, default=0.33, help="camera gain, ADU per photon (default: BBBC006's, measured)")
    parser.add_argument("--offset", type=float, default=96.0, help="camera offset, ADU (default: BBBC006's, measured)")
    parser.add_argument("--read-noise", type=float, default=0.0, help="Gaussian read noise, ADU (default 0)")
    parser.add_argument("--psf-size", type=psf_size, help="odd PSF size in px (default: 99%% energy)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in the folder")
    add_optics_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = DatasetSpec(patch_px=args.patch_px, crops_per_image=args.crops,
                       realizations=args.realizations, fractions=tuple(args.fractions),
                       split_by=args.split_by, bg_max_below=args.bg_max, bg_range_below=args.bg_range,
                       psf_size=args.psf_size, seed=args.seed)
    noise = CameraNoise(gain_adu_per_e=args.gain, offset_adu=args.offset, read_noise_adu=args.read_noise)
    metadata = simulate_dataset(args.inputs, args.output, optics=optics_from_args(args), noise=noise, spec=spec,
                                overwrite=args.overwrite, progress=sys.stderr.isatty())
    n, images_per_split = metadata["n_patches"], metadata["n_synthetic_images"]
    print(f"wrote {args.output}: {len(metadata['sources'])} source images x {len(metadata['level_depths_um'])} levels; "
          + ", ".join(f"{k} {images_per_split[k]} images / {n[k]} patches" for k in n))
    return 0
