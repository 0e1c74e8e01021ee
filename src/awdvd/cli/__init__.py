"""The ``awdvd`` command. Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; parsing imports nothing heavy, so ``--help`` is instant and bad arguments fail fast.
Every subcommand is one library call; errors become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .. import __version__

# module names in this package, in the order `awdvd --help` lists them
_COMMAND_MODULES = ("demo", "psf", "simulate", "train", "evaluate", "predict", "deconvolve", "evaluate_restoration",
                    "calibrate_restoration", "reproduce", "fetch", "export_bioimageio")

EXIT_USAGE = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="awdvd",
        description="Depth-variant deconvolution of out-of-focus widefield fluorescence images "
        "(DelpNet defocus levels + adaptive-weighting Richardson-Lucy, He et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"awdvd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from ..optics import UndersamplingWarning

    # The paper's optics are undersampled by design; saying so on every run helps nobody.
    warnings.simplefilter("ignore", UndersamplingWarning)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"awdvd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line, never a traceback, unless --debug
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"awdvd {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    return int(result or 0)
