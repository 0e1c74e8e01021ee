"""awdvd psf: one defocus PSF or the whole bank, as a TIFF plus a PNG montage."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..io import check_output_file, write_tiff
from ..physics.psf import defocus_psf, psf_bank
from ..plots import psf_montage
from ._common import add_optics_arguments, optics_from_args, positive_int, psf_size


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "psf",
        help="compute defocus PSFs (Eq. 2) and save them",
        description="Compute the defocus PSF of one depth (--z-um) or of every level (the bank), write a "
        "float32 TIFF (one plane per level) and a PNG montage for a quick look.",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="output TIFF path (PNG beside it)")
    parser.add_argument("--z-um", type=float, help="one defocus in um (default: the bank of all levels)")
    parser.add_argument("--size", type=psf_size, help="odd PSF size in px (default: 99%% energy of the deepest level)")
    parser.add_argument("--oversample", type=positive_int, default=7, help="sub-samples per pixel side (default 7)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_optics_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    optics = optics_from_args(args)
    output = args.output if args.output.suffix.lower() in (".tif", ".tiff") else args.output.with_suffix(".tif")
    png = output.with_suffix(".png")

    for path in (output, png):
        check_output_file(path, overwrite=args.overwrite, example="bank.tif")
    if args.z_um is not None:
        psfs = defocus_psf(args.z_um, optics=optics, size=args.size, oversample=args.oversample)[None]
        depths = [args.z_um]
    else:
        psfs = psf_bank(optics, size=args.size, oversample=args.oversample)
        depths = list(optics.depths_um)
    description = {"awdvd": "psf", "optics": optics.to_dict(), "depths_um": depths, "oversample": args.oversample}
    write_tiff(output, psfs[0] if len(psfs) == 1 else psfs.astype(np.float32), pixel_um=optics.pixel_um,
               overwrite=args.overwrite, description=description)
    psf_montage(psfs, depths, png, overwrite=args.overwrite)
    print(f"wrote {output} ({len(psfs)} PSF(s), {psfs.shape[-1]} x {psfs.shape[-1]} px) and {png}")
    return 0
