"""``awdvd deconvolve`` and ``awdvd predict`` of a CZI, ND2 or LIF file of several scenes (positions, wells): every
scene in turn, as a field of its own.

Each scene is written plane by plane (:func:`awdvd.io.scenes.write_scene`) to a temporary OME-TIFF in a hidden
folder of the output folder, ``.STEM.awdvd-scenes``, with every axis, the channels and the optics the file
records; the job runs on it as on any file (one plane, channels, a time-lapse, a z-stack for ``predict``), so its
outputs are named ``STEM.SCENE`` (``plate.A1.awdvd.tif``, ``plate.A1.defocus.json``, ...), and the temporary file
is removed. Each scene's sidecar names the vendor file and the scene it came from. The file's own sidecar
(``STEM.awdvd.json`` / ``STEM.defocus.json``), written last, lists the scenes and their outputs (and, for
``predict``, each scene's focus-QC row, so the run's table and plate heat-map get a row per scene).

A run stopped midway goes on where it stopped: a scene whose outputs exist, made from the same file with the same
settings by the same awdvd, is not done again while the file's own sidecar is missing (once it exists, a rerun
redoes every scene: the file changed, or ``--overwrite``). With a Dask client the scenes run on its workers, a task
each (a large scene here, its tiles on the workers); else one after another, one scene on disk at a time.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from .._cluster import dask_client, in_dask_worker
from ..io import image_stem, read_json, write_json
from ..io.scenes import write_scene
from ..restore.tiling import submit_bounded
from .job_base import Layout, Recorder, load_counts
from .reruns import input_record

__all__ = ["run_scenes", "scenes_folder"]


def scenes_folder(job, path: Path) -> Path:
    """The hidden folder of ``job.out_dir`` where the scene being processed is written."""
    return job.out_dir / f".{image_stem(path)}.awdvd-scenes"


def _same_settings(made: dict | None, job, source: dict) -> bool:
    """Whether the sidecar ``made`` of a scene was made from this file's content, with ``job``'s settings, by this
    awdvd."""
    if not isinstance(made, dict) or made.get("version") != __version__:
        return False
    recorded = made.get("input_file") or {}
    if recorded.get("hash") != source.get("hash") or recorded.get("size") != source.get("size"):
        return False
    wanted = json.loads(json.dumps(job.settings(), default=str))
    return all(made.get(section) == values for section, values in wanted.items())


def _finished(job, stem: str, layout: Layout, source: dict) -> dict | None:
    outputs = job.named_outputs(stem, layout)
    if not all(o.exists() for o in outputs):
        return None
    try:
        made = read_json(outputs[-1])
    except (OSError, ValueError):
        return None
    return made if _same_settings(made, job, source) else None


def _in_scene(error: Exception, scene_path: Path, words: str) -> Exception:
    """``error`` of the temporary scene file, its message naming the vendor file and the scene instead."""
    text = str(error).replace(str(scene_path), words).replace(scene_path.name, words)
    try:
        return type(error)(text)
    except Exception:  # an exception that takes other arguments
        return RuntimeError(text)


def _one_scene(job, path: Path, index: int, scene: str, stem: str, source: dict, folder: Path, *, client=None,
               progress: bool = False) -> tuple[dict, str]:
    """Scene ``index`` of ``path`` through ``job`` (here or on a Dask worker): written to ``folder`` as
    ``STEM.SCENE.ome.tif``, processed, removed; returns its sidecar, completed with the vendor file's record, and
    where it ran ("this process" or the worker's address)."""
    folder.mkdir(parents=True, exist_ok=True)
    scene_path = folder / f"{stem}.ome.tif"
    recorder = Recorder()
    try:
        with recorder.capture():
            write_scene(path, index, scene_path, overwrite=True)
        dataclasses.replace(job, scene_of=(str(path), scene))(scene_path, client=client, progress=progress)
    except Exception as error:
        raise _in_scene(error, scene_path, f"{path.name} scene {scene}") from error
    finally:
        scene_path.unlink(missing_ok=True)
    made = read_json(job.sidecar(scene_path))
    made["input_file"] = source  # the vendor file's: a rerun resumes from it
    made["warnings"] = [*recorder.messages, *(m for m in made.get("warnings", []) if m not in recorder.messages)]
    if "focus_qc" in made:  # rows named like the scene's outputs (STEM.SCENE), not the temporary file
        made["focus_qc"] = json.loads(json.dumps(made["focus_qc"]).replace(scene_path.name, stem))
    write_json(job.sidecar(scene_path), made, overwrite=True)
    worker, address = in_dask_worker()
    return made, address if worker else "this process"


def run_scenes(job, path: Path, *, client=None, progress: bool = False) -> dict:
    """Run ``job`` (a :class:`awdvd.batch.jobs.DeconvolveJob` or :class:`~awdvd.batch.jobs.PredictJob`) on every
    scene of ``path``, then write ``path``'s own sidecar. With ``client`` (a Dask client or scheduler address) the
    scenes run on its workers, one task each (a large scene here, its tiles on the workers); else one after
    another here. A scene that fails stops the file (its error names the scene); the scenes done are kept and
    not redone by the next run."""
    path = Path(path)
    start = time.perf_counter()
    source = input_record(path)  # before reading: a file changed meanwhile is caught when its sidecar is written
    scenes = job.scenes(path)
    resume = not job.sidecar(path).exists()  # it exists: the file changed since, or --overwrite: every scene redone
    folder = scenes_folder(job, path)
    done: dict[int, tuple[dict, str]] = {}  # scene -> (its sidecar, where it ran)
    for index, (_, stem, layout) in enumerate(scenes):
        made = _finished(job, stem, layout, source) if resume else None
        if made is not None:
            done[index] = (made, "resumed")
    todo = [i for i in range(len(scenes)) if i not in done]
    here = [i for i in todo if client is None or len(todo) == 1 or scenes[i][2].large]
    there = [i for i in todo if i not in here]
    bar = tqdm(total=len(scenes), initial=len(done), desc=f"{path.name}: scenes", unit="scene", disable=not progress)
    try:
        if there:
            with dask_client(1, client) as (cluster, _, _):
                calls = ((i, _one_scene, (job, path, i, *scenes[i][:2], source, folder)) for i in there)
                for i, result in submit_bounded(cluster, calls, limit=2 * max(1, sum(cluster.nthreads().values()))):
                    done[i] = result
                    bar.update(1)
        for i in here:
            done[i] = _one_scene(job, path, i, *scenes[i][:2], source, folder, client=client, progress=progress)
            bar.update(1)
    finally:
        bar.close()
        shutil.rmtree(folder, ignore_errors=True)
    entries, messages, rows = [], [], []
    for index, (scene, stem, layout) in enumerate(scenes):
        made, where = done[index]
        messages += [m for m in made.get("warnings", []) if m not in messages]
        qc = made.get("focus_qc")
        rows += qc if isinstance(qc, list) else [qc] if isinstance(qc, dict) else []
        entries.append({"scene": scene, "outputs": [str(o) for o in job.named_outputs(stem, layout)],
                        "resumed": where == "resumed", "ran_on": where})
    meta = {"awdvd": done[0][0].get("awdvd"), "version": __version__, "input": str(path), **job.settings(),
            "input_file": source, "scenes": entries, "warnings": messages,
            "timings_s": {"total": round(time.perf_counter() - start, 4)}}
    if rows:
        meta["focus_qc"] = rows
    job.write_sidecar(path, meta)  # last: its presence says the file is done
    return {"scenes": len(entries), "resumed_scenes": sum(e["resumed"] for e in entries), "warnings": messages,
            "outputs": [o for e in entries for o in e["outputs"]], "loads": load_counts()}
