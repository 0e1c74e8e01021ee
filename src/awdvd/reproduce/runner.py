"""Run a reproduction: check the call, load the sources and the main model, run the experiments in a staging
folder and move the report, results and figures into place."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .._device import resolve_device
from ..data.datasets import load_in_focus_images
from ..data.synth import synthetic_nuclei
from ..learn.model import DefocusModel
from ..learn.model_files import bundled_model_path, load_model
from .experiments import Reproduction
from .report import write_report
from .scales import SCALES, Scale, get_scale

__all__ = ["reproduce", "default_data_path", "load_sources"]


def reproduce(out_dir, *, scale: Scale | str, data=None, model=None, device: str = "cpu", progress: bool = True,
              overwrite: bool = False, save_models: bool = False) -> dict:
    """Regenerate Tables 1-2 and Fig. 3-9 of the paper and write ``REPORT.md``, ``results.json`` and the figures
    (PNG) into ``out_dir``.

    Parameters
    ----------
    out_dir : output folder; it must be absent or empty unless ``overwrite`` (then files of the same names are
        replaced, others left alone). Outputs are made in a temporary folder beside it and moved in at the end,
        so a failed run leaves nothing half-written.
    scale : a :class:`Scale` or the name of one of :data:`SCALES`.
    data : in-focus source images: a file or folder path (see :func:`awdvd.data.datasets.load_in_focus_images`), a list
        of paths, or a list of 2-D arrays (ADU); None: 6 procedural images (:func:`awdvd.data.synth.synthetic_nuclei`),
        and the report says so.
    model : the main DelpNet for Fig. 3 and 7-9: a :class:`~awdvd.learn.model.DefocusModel` or a model file; None:
        the bundled model if this installation has one, else one trained here at the scale's main budget. Of a
        range-extended model (the bundled one) its near network, whose levels are the paper's.
    device : "cpu", "cuda" or "auto" (training, inference and Richardson-Lucy).
    progress : print one line per step (and per training epoch) on stderr.
    save_models : also write every model trained here to ``out_dir/models/<name>.pt``.

    Returns
    -------
    The content of ``results.json`` (every number of the report), with ``"report"`` and ``"results"`` paths added.
    """

    started = time.perf_counter()
    scale = get_scale(scale) if isinstance(scale, str) else scale
    if not isinstance(scale, Scale):
        raise TypeError(f"scale must be a Scale or one of {', '.join(SCALES)}, got {type(scale).__name__}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file; -o takes a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another output folder or pass --overwrite")

    def log(message: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    device = resolve_device(device)
    # everything that can fail on the user's arguments fails here, before any work
    model_source = None
    if isinstance(model, DefocusModel):
        main_model, model_source = model, "given DefocusModel"
    elif model is not None:
        main_model, model_source = load_model(model), str(Path(model).resolve())
    elif bundled_model_path().is_file():
        main_model, model_source = load_model(), f"bundled model ({bundled_model_path()})"
    else:
        main_model = None
    if hasattr(main_model, "range_parts"):  # a range-extended model: the paper's 11 levels are its near network's
        main_model, model_source = main_model.range_parts[0], f"{model_source}, its near network (the paper's levels)"
    if main_model is not None and main_model.architecture != "delpnet":
        raise ValueError(f"the main model must be a DelpNet, got a {main_model.architecture} model")
    images, names, provenance = load_sources(data, log)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        job = Reproduction(staging, scale=scale, device=device, log=log, save_models=save_models)
        results = job.run(images, names, provenance, main_model, model_source)
        results["wall_seconds"] = time.perf_counter() - started
        write_report(staging, results)
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = out_dir / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"done: {out_dir / 'REPORT.md'}")
    results["report"] = str(out_dir / "REPORT.md")
    results["results"] = str(out_dir / "results.json")
    return results


def default_data_path() -> Path | None:
    """The shared BBBC006 in-focus images beside the repository (``../shared/data/bbbc006/in_focus``), if there."""
    repo = Path(__file__).resolve().parents[3]
    folder = repo.parent / "shared" / "data" / "bbbc006" / "in_focus"
    return folder if folder.is_dir() else None


def load_sources(data, log) -> tuple[list[np.ndarray], list[str], dict]:
    """(images, names, provenance) of the in-focus source images ``data`` (see :func:`reproduce`); ``log`` is
    called with a line when files are read."""

    if data is None:
        images = [synthetic_nuclei((520, 696), seed=seed) for seed in range(6)]
        names = [f"synthetic_nuclei(seed={seed})" for seed in range(6)]
        return images, names, {"kind": "procedural", "path": None,
                               "description": "6 procedural nuclei images (awdvd.data.synth.synthetic_nuclei, 520 x 696): "
                                              "no real in-focus images were found"}
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    items = list(data)
    if items and all(isinstance(item, np.ndarray) for item in items):
        names = [f"image_{i}" for i in range(len(items))]
        shapes = sorted({tuple(item.shape) for item in items})
        return items, names, {"kind": "arrays", "path": None,
                              "description": f"{len(items)} in-memory images {', '.join(map(str, shapes))}"}
    log(f"reading in-focus images from {', '.join(map(str, items))}")
    images, names = load_in_focus_images(items)
    bbbc006 = all("BBBC006" in name or "mcf-z-stacks" in name for name in names)
    shapes = sorted({tuple(np.shape(image)) for image in images})
    what = "in-focus BBBC006 images (U2OS, Hoechst)" if bbbc006 else "in-focus images"
    return images, names, {"kind": "bbbc006" if bbbc006 else "files", "path": [str(Path(p).resolve()) for p in items],
                           "description": f"{len(images)} {what}, {' / '.join(f'{h} x {w}' for h, w in shapes)} px, "
                                          f"from {', '.join(map(str, items))}"}
