"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import math

from ..physics.optics import Optics


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


#: the largest PSF side the commands accept: the deepest level of strongly defocused, finely sampled optics
#: (0.1 um pixels, NA 0.75, 20 um) needs 367 px; a 2001 px PSF took 190 s to compute and gained nothing
MAX_PSF_PX = 1001


def psf_size(text: str) -> int:
    """argparse type of ``--psf-size``: an odd number of px, 3..:data:`MAX_PSF_PX` (1 px would be a delta,
    which deconvolves nothing)."""
    value = _int_at_least(text, 1)
    if value < 3:
        raise argparse.ArgumentTypeError(f"expected an odd size of at least 3 px, got {value} (a {value} px PSF "
                                         "deconvolves nothing)")
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd size (the PSF needs a centre pixel), got {value}")
    if value > MAX_PSF_PX:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_PSF_PX} px, got {value} (the default, from the "
                                         "deepest level's energy, is what the optics need)")
    return value


def offset_arg(text: str) -> float | str:
    """argparse type of ``--offset``: a finite number (ADU) or "auto"."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_optics_arguments(parser: argparse.ArgumentParser) -> None:
    """--wavelength-um, --na, --n, --pixel-um, --z-step-um, --levels (defaults: the paper's / BBBC006)."""
    group = parser.add_argument_group("optics (defaults: the paper's, i.e. BBBC006 at 20x with 2x2 binning)")
    group.add_argument("--wavelength-um", type=positive_float, default=0.451, help="emission wavelength (um)")
    group.add_argument("--na", type=positive_float, default=0.5, help="numerical aperture")
    group.add_argument("--n", type=positive_float, default=1.0, help="refractive index of the immersion medium")
    group.add_argument("--pixel-um", type=positive_float, default=0.65, help="pixel size in the specimen (um)")
    group.add_argument("--z-step-um", type=positive_float, default=2.0, help="defocus step between levels (um)")
    group.add_argument("--levels", type=positive_int, default=11, help="number of defocus levels")


def optics_from_args(args: argparse.Namespace):
    return Optics(
        wavelength_um=args.wavelength_um,
        na=args.na,
        n=args.n,
        pixel_um=args.pixel_um,
        z_step_um=args.z_step_um,
        n_levels=args.levels,
    )


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def add_map_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """``--tta`` and ``--smoothing`` (AWDVDOptions.tta / smoothing_px; ``defaults`` is an AWDVDOptions)."""
    parser.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=defaults.tta,
                        help=f"average the defocus map over 1, 2, 4 or 8 dihedral transforms of the image (default "
                             f"{defaults.tta}; 8 costs 8x the map's time)")
    parser.add_argument("--smoothing", type=non_negative_float, default=defaults.smoothing_px, metavar="PX",
                        help="combine each window's level probabilities with its neighbours' by a Gaussian of this "
                             f"sigma in px (default {defaults.smoothing_px:g}: none)")
