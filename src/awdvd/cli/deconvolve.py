"""awdvd deconvolve: AWDVD restoration of out-of-focus images (DelpNet levels + depth-variant RL)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import non_negative_int, positive_int
from ._outputs import add_model_arguments, window_stride


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "deconvolve",
        help="restore images with depth-variant deconvolution (AWDVD)",
        description="Predict the defocus level of every 84 x 84 window, deconvolve each region with its level's "
        "PSF (Richardson-Lucy) and blend the windows with triangular (or rectangular) weights. Writes, per image, "
        "STEM.awdvd.tif (float32 by default, with the pixel size) and STEM.awdvd.json (parameters, levels used, "
        "timings). INPUT: files, folders or glob patterns.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="2-D images, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--stride", type=window_stride, default=42,
                        help="window step in px, 1..84 (default 42; the paper's case (i) is 84 with --weighting rectangular)")
    parser.add_argument("--iterations", type=non_negative_int, default=30, help="Richardson-Lucy iterations (default 30)")
    parser.add_argument("--weighting", choices=("triangular", "rectangular"), default="triangular",
                        help="window blending weights (default triangular)")
    parser.add_argument("--method", choices=("fast", "patchwise"), default="fast",
                        help="fast: one RL per level over its region (default); patchwise: one RL per window (the paper's)")
    parser.add_argument("--map-mode", choices=("patch", "dense"), default="patch",
                        help="how the defocus map is computed (see `awdvd predict --help`)")
    parser.add_argument("--offset", type=float, default=0.0,
                        help="camera offset / background (ADU) removed before RL and added back (default 0)")
    parser.add_argument("--psf-size", type=positive_int, help="odd PSF size in px (default: 99%% energy of the deepest level)")
    parser.add_argument("--halo-px", type=non_negative_int,
                        help="image context around each RL region in px (default: 3 x the PSF's 99%% radius, per level)")
    parser.add_argument("--dtype", choices=("float32", "input"), default="float32",
                        help="output pixel type: float32 (default) or the input's (rounded, clipped; clipped pixels are counted)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from .. import __version__
    from ..data import find_images
    from ..deconv import deconvolve_levels, to_input_dtype
    from ..io import write_json, write_tiff
    from ..predict import defocus_map
    from ..psf import psf_bank
    from ._outputs import load_model_from_args, plan_outputs, read_plane

    inputs = find_images(args.inputs)
    plans = plan_outputs(inputs, args.output, {"tiff": ".awdvd.tif", "json": ".awdvd.json"}, overwrite=args.overwrite)
    model, device = load_model_from_args(args)
    start = time.perf_counter()
    psfs = psf_bank(model.optics, size=args.psf_size)
    psf_seconds = time.perf_counter() - start
    total_clipped = 0
    for path, plan in tqdm(list(zip(inputs, plans)), desc="deconvolving", unit="image", disable=None):
        image, pixel_um = read_plane(path)
        t0 = time.perf_counter()
        dmap = defocus_map(image, model, stride=args.stride, mode=args.map_mode)
        t1 = time.perf_counter()
        restored = deconvolve_levels(image, dmap.levels, psfs, stride=args.stride, patch_px=model.patch_px,
                                     iterations=args.iterations, method=args.method, weighting=args.weighting,
                                     offset=args.offset, halo_px=args.halo_px, device=device)
        t2 = time.perf_counter()
        clipped = 0
        if args.dtype == "input":
            restored, clipped = to_input_dtype(restored, image.dtype)
            total_clipped += clipped
        pixel_um = pixel_um or model.optics.pixel_um
        meta = {
            "awdvd": "deconvolve",
            "version": __version__,
            "input": str(path),
            "output": str(plan["tiff"]),
            "parameters": {
                "stride": args.stride, "iterations": args.iterations, "weighting": args.weighting,
                "method": args.method, "map_mode": args.map_mode, "offset": args.offset,
                "psf_size": int(psfs.shape[-1]), "halo_px": args.halo_px, "dtype": str(restored.dtype),
                "model": str(args.model) if args.model else "bundled", "device": device,
                "optics": model.optics.to_dict(), "pixel_um": pixel_um,
            },
            "levels_used": {name: n for name, n in dmap.level_counts().items() if n},
            "level_grid": dmap.levels.tolist(),
            "clipped_pixels": clipped,
            "timings_s": {"psf_bank": round(psf_seconds, 4), "defocus_map": round(t1 - t0, 4),
                          "deconvolution": round(t2 - t1, 4)},
        }
        write_tiff(plan["tiff"], restored, pixel_um=pixel_um, overwrite=args.overwrite,
                   description={k: meta[k] for k in ("awdvd", "version", "input", "parameters")})
        write_json(plan["json"], meta, overwrite=args.overwrite)
    note = f"; {total_clipped} pixel(s) clipped to the input's range" if args.dtype == "input" else ""
    print(f"wrote {len(inputs)} restored image(s) to {args.output}{note}")
    return 0
