"""awdvd predict: defocus maps (levels and probabilities per window) and a colour overlay (paper Fig. 2(c))."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._outputs import add_model_arguments, window_stride


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict defocus maps of images",
        description="Classify every 84 x 84 window of each image into a defocus level or background with a "
        "DelpNet model. Writes, per image, STEM.defocus.tif (float32 planes: the level of every window, -1 = "
        "background, then one probability plane per class; window positions in the JSON), STEM.defocus.png (the "
        "levels as colours over the image) and STEM.defocus.json. INPUT: files, folders or glob patterns.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="2-D images, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--stride", type=window_stride, default=42, help="window step in px, 1..84 (default 42)")
    parser.add_argument("--mode", choices=("patch", "dense"), default="patch",
                        help="patch: every window on its own (reference); dense: one network pass per image (fast)")
    parser.add_argument("--normalization", choices=("local", "global"), default="local",
                        help="dense mode: per-pixel min-max over the centred window (local) or the whole image")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from .. import __version__
    from ..data import find_images
    from ..io import write_json, write_tiff
    from ..plots import defocus_overlay
    from ..predict import defocus_map
    from ._outputs import load_model_from_args, plan_outputs, read_plane

    inputs = find_images(args.inputs)
    plans = plan_outputs(inputs, args.output, {"tiff": ".defocus.tif", "png": ".defocus.png", "json": ".defocus.json"},
                         overwrite=args.overwrite)
    model, device = load_model_from_args(args)
    for path, plan in tqdm(list(zip(inputs, plans)), desc="predicting", unit="image", disable=None):
        image, _ = read_plane(path)
        start = time.perf_counter()
        dmap = defocus_map(image, model, stride=args.stride, mode=args.mode, normalization=args.normalization)
        seconds = time.perf_counter() - start
        class_names = ["bg" if level < 0 else str(int(level)) for level in dmap.class_levels]
        planes = np.concatenate([dmap.levels[None].astype(np.float32), np.moveaxis(dmap.proba, -1, 0)])
        meta = {
            "awdvd": "predict",
            "version": __version__,
            "input": str(path),
            "image_shape": list(dmap.image_shape),
            "planes": ["level"] + [f"p({name})" for name in class_names],
            "patch_px": dmap.patch_px,
            "stride": dmap.stride,
            "window_rows": dmap.ys.tolist(),
            "window_cols": dmap.xs.tolist(),
            "mode": dmap.mode,
            "normalization": dmap.normalization,
            "model": str(args.model) if args.model else "bundled",
            "device": device,
        }
        write_tiff(plan["tiff"], planes, overwrite=args.overwrite, description=meta)
        defocus_overlay(image, dmap, plan["png"], depths_um=model.optics.depths_um, overwrite=args.overwrite,
                        title=f"{path.name}: defocus levels, stride {dmap.stride} px")
        write_json(plan["json"], {**meta, "levels": dmap.levels.tolist(), "counts": dmap.level_counts(),
                                  "timings_s": {"map": round(seconds, 4)}}, overwrite=args.overwrite)
    print(f"wrote defocus maps of {len(inputs)} image(s) to {args.output}")
    return 0
