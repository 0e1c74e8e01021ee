"""awdvd predict: defocus maps (levels and probabilities per window) and a colour overlay (paper Fig. 2(c))."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..batch.jobs import PredictJob
from ..restore.options import MAP_MODES, NORMALIZATIONS, AWDVDOptions
from ._common import add_map_arguments
from .outputs import (
    add_batch_arguments,
    add_model_arguments,
    defaults,
    image_optics_from_args,
    interrupted,
    model_file_from_args,
    run_and_report,
    window_stride,
)


def register(subparsers) -> None:
    d = defaults()
    parser = subparsers.add_parser(
        "predict",
        help="predict defocus maps of images",
        description="Classify every window (84 x 84 px for DelpNet) of each image into a defocus level or background with a "
        "DelpNet model. Writes, per image, STEM.defocus.tif (float32 planes: the level of every window, -1 = "
        "background, then one probability plane per class; window positions in the JSON), STEM.defocus.png (the "
        "levels as colours over the image; not drawn for images processed in tiles) and STEM.defocus.json (with "
        "the optics the file records beside the model's). For the whole run, awdvd-predict-focus.csv: one focus "
        "QC row per image (fraction of windows per level, median and mean level, confidence, background "
        "fraction, out-of-focus flag at median level >= 2), and awdvd-predict-plate.png, the median level per "
        "well, where file names carry plate wells (..._B03_...). Images run in parallel worker processes; a rerun "
        "skips images already done. INPUT: files (TIFF, PNG, CZI, ND2, LIF), folders, glob patterns or OME-Zarr "
        "folders (*.zarr); each scene of a CZI, ND2 or LIF file is mapped as STEM.SCENE, a QC row each.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="2-D images, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--stride", type=window_stride, default=d.stride,
                        help=f"window step in px, 1..the model's window side (default {d.stride})")
    parser.add_argument("--mode", choices=MAP_MODES, default=d.map_mode,
                        help="patch: every window on its own (reference); dense: one network pass per image (fast; "
                             "advisable for large images)")
    add_map_arguments(parser, d)
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default=d.normalization,
                        help="dense mode: per-pixel min-max over the centred window (local) or the whole image")
    parser.add_argument("--map-channel", metavar="NAME|INDEX", default=None,
                        help="of a multi-channel file, the channel mapped (default: a channel named like a nuclear "
                             "stain, DAPI or Hoechst, else the first), with its own emission wavelength")
    add_batch_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run, on_interrupt=interrupted)


def run(args: argparse.Namespace) -> int:
    options = AWDVDOptions(stride=args.stride, map_mode=args.mode, normalization=args.normalization, device=args.device,
                           tta=args.tta, smoothing_px=args.smoothing)
    job = PredictJob(out_dir=args.output, model=model_file_from_args(args), options=options, tile_px=args.tile_px,
                     max_px=args.max_whole_px, strict_optics=args.strict_optics, optics=image_optics_from_args(args),
                     time_smoothing=args.time_smoothing, map_channel=args.map_channel)
    return run_and_report("predict", args, job, "defocus maps")
