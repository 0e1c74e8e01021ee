"""awdvd deconvolve: AWDVD restoration of out-of-focus images (DelpNet levels + depth-variant RL)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..batch.jobs import FORMATS, DeconvolveJob
from ..restore.options import LEVEL_BLENDS, MAP_MODES, METHODS, AWDVDOptions
from ..restore.rl import BOUNDARIES, RL_VARIANTS
from ..restore.windows import WEIGHTINGS
from ._common import add_map_arguments, non_negative_int, offset_arg, psf_size
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
        "deconvolve",
        help="restore images with depth-variant deconvolution (AWDVD)",
        description="Predict the defocus level of every window (84 x 84 px for DelpNet), deconvolve each region "
        "with its level's PSF (Richardson-Lucy) and blend the windows with triangular (or rectangular) weights. "
        "Writes, per image, STEM.awdvd.tif (float32 by default, with the pixel size; .ome.tif or .ome.zarr with "
        "--format) and STEM.awdvd.json (options, what was resolved, levels used, timings). Many images run in "
        "parallel worker processes when that pays; a rerun skips images already done; a bad image is reported "
        "and the others go on. Images larger than --max-whole-px are processed in tiles and written as OME-Zarr "
        "by default. INPUT: files (TIFF, PNG, CZI, ND2, LIF), folders, glob patterns or "
        "OME-Zarr folders (*.zarr); each scene of a CZI, ND2 or LIF file is restored as STEM.SCENE.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="2-D images, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--stride", type=window_stride, default=d.stride,
                        help=f"window step in px, 1..the model's window side (default {d.stride}; the paper's case "
                             "(i) is 84 with --weighting rectangular)")
    parser.add_argument("--iterations", type=non_negative_int, default=d.iterations,
                        help="Richardson-Lucy iterations for every level, the paper's behaviour (default: the "
                             "model's calibrated per-level schedule where it has one, else 30; the sidecar records "
                             "which was used)")
    parser.add_argument("--rl", choices=RL_VARIANTS, default=d.rl,
                        help="Richardson-Lucy variant: plain (the paper's), accelerated (Biggs-Andrews) or tv "
                             "(total-variation regularised) (default: the model schedule's, else plain)")
    parser.add_argument("--level-blend", choices=LEVEL_BLENDS, default=d.level_blend,
                        help=f"restoration of a window whose levels are uncertain: probability (its likely levels' "
                             f"restorations in proportion) or argmax (its most likely level's, the paper's) "
                             f"(default {d.level_blend})")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=d.weighting,
                        help=f"window blending weights (default {d.weighting})")
    parser.add_argument("--boundary", choices=BOUNDARIES, default=d.boundary,
                        help="the image's outside for RL: extended (default: unknown, so the light of nuclei beyond "
                             "the field of view is restored as such and the borders as well as the interior) or "
                             "symmetric (the image mirrored at its edges; keeps the image's flux exactly)")
    parser.add_argument("--method", choices=METHODS, default=d.method,
                        help="fast: one RL per level over its region (default); patchwise: one RL per window (the paper's)")
    parser.add_argument("--map-mode", choices=MAP_MODES, default=d.map_mode,
                        help="how the defocus map is computed: patch (every window through the network, the "
                             "reference) or dense (one network pass; much faster, advisable for large images); see "
                             "`awdvd predict --help`")
    add_map_arguments(parser, d)
    parser.add_argument("--offset", type=offset_arg, default=d.offset,
                        help="camera offset + background (ADU) removed before RL and added back: a number, or "
                             "'auto' (default): the image's 1st percentile (on BBBC006-like data worth 0.4-2.7 dB "
                             "PSNR over 0)")
    parser.add_argument("--psf-size", type=psf_size, default=d.psf_size,
                        help="odd PSF size in px (default: 99%% energy of the deepest level)")
    parser.add_argument("--halo-px", type=non_negative_int, default=d.halo_px,
                        help="image context around each RL region in px (default: 3 x the PSF's 99%% radius, per level)")
    parser.add_argument("--dtype", choices=("float32", "input"), default="float32",
                        help="output pixel type: float32 (default) or the input's (rounded, clipped; clipped pixels are counted)")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="restored image format: auto (default: TIFF, OME-Zarr for images processed in tiles), "
                             "tiff (ImageJ TIFF), ome-tiff (.ome.tif) or ome-zarr (.ome.zarr folder)")
    channels = parser.add_argument_group("multi-channel files (OME-TIFF, ImageJ hyperstacks, OME-Zarr with a channel "
                                         "axis, CZI, ND2, LIF)")
    channels.add_argument("--map-channel", metavar="NAME|INDEX", default=None,
                          help="the channel the depth map is made from, once per field (default: a channel named like "
                               "a nuclear stain, DAPI or Hoechst, else the first); every restored channel uses it "
                               "with the PSFs of its own emission wavelength. Written as STEM.awdvd.ome.tif with the "
                               "channels' names (STEM.awdvd.ome.zarr with --format ome-zarr)")
    channels.add_argument("--channels", metavar="LIST", default=None,
                          help="the channels to restore, names or indices separated by commas (default: all)")
    add_batch_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run, on_interrupt=interrupted)


def run(args: argparse.Namespace) -> int:
    options = AWDVDOptions(stride=args.stride, iterations=args.iterations, rl=args.rl, method=args.method,
                           weighting=args.weighting, level_blend=args.level_blend, boundary=args.boundary,
                           offset=args.offset,
                           psf_size=args.psf_size, halo_px=args.halo_px, map_mode=args.map_mode, device=args.device,
                           tta=args.tta, smoothing_px=args.smoothing)
    job = DeconvolveJob(out_dir=args.output, model=model_file_from_args(args), options=options, dtype=args.dtype,
                        output_format=args.format, tile_px=args.tile_px, max_px=args.max_whole_px,
                        strict_optics=args.strict_optics, optics=image_optics_from_args(args), time_smoothing=args.time_smoothing,
                        map_channel=args.map_channel, channels=args.channels)
    return run_and_report("deconvolve", args, job, "restored")
