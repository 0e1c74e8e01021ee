"""awdvd evaluate-restoration: the paper's restoration figures (Fig. 8 on test patches, Fig. 9 on a synthetic
tilted specimen) as JSON tables and PNG plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import non_negative_int, positive_int
from ._outputs import window_stride


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate-restoration",
        help="score depth-variant vs depth-invariant deconvolution (paper Fig. 8-9)",
        description="With --dataset: PSNR/SSIM per defocus level of noisy, depth-variant (true level, and the "
        "model's level with --model) and depth-invariant (level-0 PSF) RL on the test split's patches "
        "(patches.json, patches.png). With --in-focus: a synthetic tilted specimen per image (level rising "
        "across the field) restored by case (i), case (ii) and the fast method at --strides, with true levels "
        "(and the model's with --model): PSNR/SSIM and a seam ratio (whole.json, whole.png).",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--dataset", type=Path, help="patch dataset folder from `awdvd simulate` (its test split)")
    parser.add_argument("--in-focus", nargs="+", metavar="IMAGE", help="in-focus images for tilted specimens")
    parser.add_argument("--model", type=Path, help="model file: also score with predicted levels")
    parser.add_argument("--per-level", type=positive_int, default=45, help="patches per level (default 45)")
    parser.add_argument("--iterations", type=non_negative_int, default=30, help="RL iterations (default 30)")
    parser.add_argument("--strides", type=window_stride, nargs="+", default=[42, 21, 8],
                        help="strides of the fast method on whole images (default 42 21 8)")
    parser.add_argument("--psf-size", type=positive_int, help="odd PSF size in px (default: 99%% energy)")
    parser.add_argument("--offset", type=float, default=0.0, help="camera offset removed before RL (default 0)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import load_in_focus_images, read_dataset
    from ..evaluate_restoration import (evaluate_patches, evaluate_whole_image, plot_patch_metrics,
                                        plot_whole_image, tilted_specimen)
    from ..io import write_json
    from ..optics import Optics
    from ..psf import psf_bank

    if args.dataset is None and not args.in_focus:
        raise ValueError("give --dataset (patch evaluation) and/or --in-focus (whole-image evaluation)")
    targets = []
    if args.dataset is not None:
        targets += [args.output / "patches.json", args.output / "patches.png"]
    if args.in_focus:
        targets += [args.output / "whole.json", args.output / "whole.png"]
    for target in targets:
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target} exists; choose another -o folder or pass --overwrite")
    model = None
    if args.model is not None:
        from ..model import load_model

        model = load_model(args.model)
    if args.dataset is not None:
        patches, metadata = read_dataset(args.dataset, "test")
        optics = Optics.from_dict(metadata["optics"])
        psfs = psf_bank(optics, size=args.psf_size)
        report = evaluate_patches(patches, psfs, model=model, per_level=args.per_level, iterations=args.iterations,
                                  seed=args.seed, offset=args.offset)
        report["settings"]["dataset"] = str(args.dataset)
        write_json(args.output / "patches.json", report, overwrite=args.overwrite)
        plot_patch_metrics(report, args.output / "patches.png", overwrite=args.overwrite)
        print(f"wrote {args.output / 'patches.json'} and patches.png")
    if args.in_focus:
        optics = model.optics if model is not None else Optics()
        psfs = psf_bank(optics, size=args.psf_size)
        images, names = load_in_focus_images(args.in_focus)
        reports = []
        for index, (image, name) in enumerate(zip(images, names)):
            specimen = tilted_specimen(image, optics=optics, psf_size=args.psf_size, seed=args.seed + index)
            report = evaluate_whole_image(specimen, psfs, strides=args.strides, iterations=args.iterations,
                                          model=model, offset=args.offset, keep_images=index == 0)
            if index == 0:
                plot_whole_image(report, args.output / "whole.png", overwrite=args.overwrite)
                del report["images"]
            reports.append({"image": name, **report})
        write_json(args.output / "whole.json", {"images": reports}, overwrite=args.overwrite)
        print(f"wrote {args.output / 'whole.json'} and whole.png ({len(images)} specimen(s))")
    return 0
