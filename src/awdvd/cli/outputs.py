"""Shared by the per-image subcommands (predict, deconvolve): model, cluster and tiling arguments, and running a
job over files with a report at the end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._device import DEVICE_CHOICES
from ..batch.jobs import ModelFile, run_jobs
from ..io import LARGEST_IMAGE_IN_MEMORY_PX, keep_previous, write_json
from ..restore.options import AWDVDOptions
from ..restore.tiling import DEFAULT_TILE_PX
from . import words
from ._common import non_negative_float, non_negative_int, positive_float, positive_int


def window_stride(text: str) -> int:
    """argparse type: a window step in px, >= 1 (checked against the model's window side once it is loaded)."""
    return positive_int(text)


def defaults():
    """``AWDVDOptions()``: the one place the restoration defaults are written (argparse takes them from it)."""

    return AWDVDOptions()


def tile_size(text: str) -> int:
    value = positive_int(text)
    if value < 128:
        raise argparse.ArgumentTypeError(f"expected a tile side of at least 128 px, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="model file from `awdvd train` (default: the bundled model)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=defaults().device,
                        help="where the network and the deconvolution run (default: auto, CUDA if available)")
    group = parser.add_argument_group(
        "the images' optics (default: what each file records; what it does not record is the model's, with a warning)")
    group.add_argument("--pixel-um", type=positive_float, help="pixel size in the specimen (um)")
    group.add_argument("--na", type=positive_float, help="numerical aperture of the objective")
    group.add_argument("--wavelength-um", type=positive_float, help="emission wavelength (um)")
    group.add_argument("--immersion-n", type=positive_float, help="refractive index of the immersion medium (1.0: air)")
    group.add_argument("--strict-optics", action="store_true",
                       help="fail an image whose optics would have to be assumed (the file records them and no flag "
                            "gives them) instead of a warning line")


def image_optics_from_args(args: argparse.Namespace) -> dict:
    """The optics given on the command line, as Optics fields (None: from each file)."""
    return {"pixel_um": args.pixel_um, "na": args.na, "wavelength_um": args.wavelength_um, "n": args.immersion_n}


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """--workers, --scheduler, --overwrite, --time-smoothing, --tile-px, --max-whole-px."""

    group = parser.add_argument_group("many files and large images")
    group.add_argument("--workers", type=non_negative_int, default=None,
                       help="worker processes on this machine (default: chosen from the work: this process for a "
                            "few files or a machine of under 4 CPUs, else one per CPU, at most one per 4 files; 0: "
                            "run everything in this process, with the same results)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://host:8786 (its workers must see the same "
                            "paths and have awdvd installed)")
    group.add_argument("--overwrite", action="store_true",
                       help="redo images whose outputs exist (by default they are skipped, so an interrupted run "
                            "can simply be started again); inputs are never replaced")

    group.add_argument("--time-smoothing", type=non_negative_float, default=0.0, metavar="FRAMES",
                       help="time-lapses (a T axis): combine each frame's depth map with its neighbours' over a "
                            "Gaussian of this many frames (default 0: every frame on its own); frames are read and "
                            "restored one at a time, and a stopped run goes on from the frames done")
    group.add_argument("--tile-px", type=tile_size, default=DEFAULT_TILE_PX,
                       help=f"tile side for large images (default {DEFAULT_TILE_PX})")
    group.add_argument("--max-whole-px", type=positive_int, default=LARGEST_IMAGE_IN_MEMORY_PX,
                       help=f"images with more pixels than this are processed in tiles, in bounded memory "
                            f"(default {LARGEST_IMAGE_IN_MEMORY_PX} = 4096 x 4096)")


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted run of predict / deconvolve leaves (awdvd.cli.main prints it after "interrupted")."""
    return (f"finished images are kept in {args.output} and half-written ones removed: run the same command "
            "again to go on (finished images are skipped)")


def model_file_from_args(args: argparse.Namespace):
    """The ModelFile of ``--model`` on ``--device`` (loaded by the job up front, so that a missing or broken
    model file is one error before any image is touched)."""

    return ModelFile(None if args.model is None else str(args.model), device=args.device)


def run_and_report(command: str, args: argparse.Namespace, job, noun: str) -> int:
    """Run ``job`` over ``args.inputs``; print warnings, a summary (stdout; stderr if a file failed), all in the
    user's words (:mod:`awdvd.cli.words`), and write the report as JSON in the output folder. Exit status 1 if
    any file failed."""

    if args.scheduler is not None and "://" not in args.scheduler:
        raise ValueError(f"--scheduler takes an address like tcp://host:8786, got {args.scheduler!r}")
    report = run_jobs(args.inputs, job, workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite,
                      progress=sys.stderr.isatty())
    warned: dict[str, list[str]] = {}
    for result in report.results:
        for message in result.value.get("warnings", []):
            warned.setdefault(message, []).append(result.path.name)
    for message, names in warned.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        print(f"awdvd {command}: warning: {shown}: {words.in_words(message)}", file=sys.stderr)
    c = report.counts
    if c["done"] or c["failed"]:
        path = Path(job.out_dir) / f"awdvd-{command}-report.json"
        keep_previous(path)  # the report of an earlier run stays, under its own date
        write_json(path, report.as_dict(), overwrite=True)
    for what, path in report.run_outputs.items():
        print(f"{what}: {path}")
    said = words.summary(report)
    if report.ok:
        print(f"{noun}: {said} Outputs in {job.out_dir}.")
        return 0
    print(f"awdvd {command}: {said} Details: {job.out_dir / f'awdvd-{command}-report.json'}", file=sys.stderr)
    return 1
