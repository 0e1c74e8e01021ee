"""The ``awdvd`` command. Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; parsing imports nothing heavy, so ``--help`` is instant and bad arguments fail fast.
Every subcommand is one library call; errors become one line on stderr and a non-zero exit, in the user's words
(flags, not Python's names: :mod:`awdvd.cli.words`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
import warnings

from .. import __version__
from ..physics.optics import UndersamplingWarning
from .words import error_line

# module names in this package, in the order `awdvd --help` lists them
_COMMAND_MODULES = ("demo", "psf", "simulate", "train", "evaluate", "evaluate_robustness", "predict", "deconvolve",
                    "evaluate_restoration", "calibrate_restoration", "reproduce", "fetch", "export_bioimageio",
                    "split_scenes")

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a batch system's time limit) while a command runs: raised in the main thread like
    a Ctrl-C, so that the same code stops the Dask cluster, removes half-written files and says so in one line
    (the default action would end the process at once, leaving the workers and a leaked-semaphore warning)."""


@contextlib.contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():  # main() called from a thread: leave signals
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (argparse prints the whole usage first, then the error)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    # The paper's optics are undersampled by design; saying so on every run helps nobody.
    warnings.simplefilter("ignore", UndersamplingWarning)
    try:
        with _sigterm_raises():
            result = args.func(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated): the one place both end
        hint = args.on_interrupt(args) if hasattr(args, "on_interrupt") else None
        what = "terminated" if isinstance(stop, Terminated) else "interrupted"
        print(f"awdvd {args.command}: {what}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        # a Dask cluster torn down by the signal can leave an asyncio future whose timeout nobody reads; asyncio
        # would log it at exit ("Future exception was never retrieved"), a second message about the same stop
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except Exception as error:  # one line, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"awdvd {args.command}: error: {error_line(error, args.command)}", file=sys.stderr)
        return EXIT_FAILURE
    return int(result or 0)
