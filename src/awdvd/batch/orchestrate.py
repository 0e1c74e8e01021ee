"""Running a job of :mod:`awdvd.batch.jobs` over many files: the plan (files and outputs, checked once), what a
rerun does with existing outputs (:mod:`awdvd.batch.reruns`), how many Dask workers (:func:`auto_workers`), small
files one per worker, large ones and files of several scenes one at a time with their tiles or scenes on the
cluster, one report
(:class:`awdvd.batch.runner.BatchReport`) and the run's own outputs (``job.finish``). :func:`run_jobs` is also
importable from :mod:`awdvd.batch.jobs`.
"""

from __future__ import annotations

import dataclasses
import functools
import time

from .._checks import check_positive_int
from .._cluster import local_cluster
from .._threads import available_cpus
from ..io import plan_outputs, sweep_orphans
from ..io.scenes import scene_count
from .reruns import check_existing_outputs
from .runner import BatchReport, run_batch

__all__ = ["run_jobs", "auto_workers", "CLUSTER_MIN_CPUS", "CLUSTER_MIN_FILES_PER_WORKER"]


def _sweep(plan) -> None:
    """Remove the pieces that killed runs left beside this batch's outputs (awdvd.io.sweep_orphans: only those of
    processes that are gone); resumable parts of tiled outputs stay for the job to resume."""

    by_folder: dict = {}
    for outputs in plan.outputs.values():
        for output in outputs:
            by_folder.setdefault(output.parent, set()).add(output.name)
    for folder, names in by_folder.items():
        sweep_orphans(folder, names)


def _merge(reports, paths, seconds: float, where: str, changed):
    by_path = {r.path: r for report in reports for r in report.results}
    return BatchReport(results=tuple(by_path[p] for p in paths), seconds=seconds, where=where, changed=tuple(changed))


#: a local cluster is started for small files only with at least this many CPUs ...
CLUSTER_MIN_CPUS = 4
#: ... and at least this many files to do per worker (see :func:`auto_workers`)
CLUSTER_MIN_FILES_PER_WORKER = 4


def auto_workers(n_files: int, *, any_large: bool, cpus: int | None = None) -> int:
    """The number of Dask workers when none is asked for: 0 (everything in this process) unless a local cluster
    of single-threaded workers can be expected to pay for itself.

    In this process every file gets all the CPUs (RL's FFTs and its regions in a thread pool, torch's
    threads); a cluster first starts its workers (a few seconds), each loads torch and the model, and each
    file then runs on one core. Measured on 2 shared cores with BBBC006 fields and the bundled model
    (``benchmarks/bench_batch.py --files N --workers auto,0,2``): one process took 11 s for 6 files and 36 s
    for 20, a local cluster of 2 workers 22 s and 46 s (load average 3.3-4.2; at 9-11: 29 / 78 s against
    51 / 96 s). Where a cluster starts to pay was not measured (no machine with more cores was at hand): the
    thresholds below are deliberately cautious. So:

    - a large image (tiled) anywhere in the batch: one worker per CPU (its tiles use them all);
    - fewer than :data:`CLUSTER_MIN_CPUS` CPUs: 0;
    - else one worker per CPU, at most one per :data:`CLUSTER_MIN_FILES_PER_WORKER` files, and 0 if that
      leaves fewer than two workers.

    ``cpus`` defaults to the CPUs this process may use (:func:`awdvd._threads.available_cpus`).
    """

    cpus = available_cpus() if cpus is None else check_positive_int(cpus, "cpus")
    if any_large:
        return cpus
    if cpus < CLUSTER_MIN_CPUS:
        return 0
    workers = min(cpus, n_files // CLUSTER_MIN_FILES_PER_WORKER)
    return workers if workers >= 2 else 0


def run_jobs(inputs, job, *, workers: int | None = None, scheduler=None, overwrite: bool = False,
             progress: bool = False):
    """Run ``job`` (a :class:`DeconvolveJob` or :class:`PredictJob`) over image files.

    Parameters
    ----------
    inputs : files, folders or glob patterns (see :func:`awdvd.io.find_images`).
    workers : None (default): :func:`auto_workers`; 0: everything in this process (identical results);
        N >= 1: a local Dask cluster of N single-threaded workers, shared by all files (ignored with
        ``scheduler``).
    scheduler : address of a running Dask scheduler to use instead of a local cluster.
    overwrite : redo files whose outputs exist. Without it they are skipped, unless their input changed since
        (redone, listed in ``report.changed``) or their sidecar records other settings
        (:class:`awdvd.batch.reruns.OtherSettingsError`, a ValueError: rerunning with new options into the same
        folder must not look done); see :mod:`awdvd.batch.reruns`.
    progress : progress bars (files; tiles of large images).

    Returns
    -------
    :class:`awdvd.batch.runner.BatchReport` over all files, in input order. Small files run one per worker; large
    ones one after another in this process, their tiles on the cluster.

    Raises
    ------
    Before any file is processed: FileNotFoundError / ValueError for inputs that name nothing, outputs that
    would replace inputs or collide, finished files made with other settings (OtherSettingsError), a model
    file that cannot be loaded or options it cannot take (a stride larger than its windows); FileExistsError
    (:class:`awdvd.batch.reruns.ForeignOutputError`) for an existing file with an output's name that awdvd did
    not write. Files found in folders or by patterns that are awdvd's own
    outputs are not inputs; pieces that killed runs left beside the outputs are removed first.
    """

    start = time.perf_counter()
    # collisions, outputs that would replace inputs: refused up front; awdvd's own outputs are never inputs
    plan = plan_outputs(inputs, job.outputs, exclude=job.is_own_output)
    _sweep(plan)
    job.check_model()
    rerun = check_existing_outputs(plan, job, overwrite=overwrite)  # foreign files, changed inputs, other settings
    plan = rerun.plan
    todo = plan.todo(overwrite=overwrite)
    # a file of several scenes runs here like a large one, its scenes spread over the workers (batch.scene_files)
    scenes = {p: job.scenes(p) for p in todo if scene_count(p) > 1}
    large = {p for p in todo if p in scenes or job.is_large(p)}
    if workers is None and scheduler is None:
        tasks = len(todo) + sum(len(s) - 1 for s in scenes.values())
        any_large = any(p not in scenes for p in large) or any(layout.large for s in scenes.values()
                                                                  for _, _, layout in s)
        workers = auto_workers(tasks, any_large=any_large)
    workers = check_positive_int(0 if workers is None else workers, "workers", minimum=0)
    small_plan = plan.subset(p for p in plan.paths if p not in large)
    large_plan = plan.subset(large)
    common = dict(overwrite=overwrite, progress=progress)

    def run_all(address):
        reports = []
        if small_plan.paths:
            if address is None:
                reports.append(run_batch(small_plan, job, workers=0, **common))
            else:
                reports.append(run_batch(small_plan, job, scheduler=address, **common))
        if large_plan.paths:  # here, one at a time; their tiles (or scenes) go to the cluster
            reports.append(run_batch(large_plan, functools.partial(job, client=address, progress=progress),
                                     workers=0, **common))
        return reports

    if scheduler is not None:
        reports = run_all(scheduler)
        where = f"Dask cluster at {scheduler}"
    elif workers == 0 or not todo:
        reports = run_all(None)
        where = "serial"
    else:
        with local_cluster(workers) as cluster:
            reports = run_all(cluster.scheduler_address)
        where = f"local Dask cluster, {workers} worker{'s' if workers != 1 else ''}"
    report = _merge(reports, plan.paths, time.perf_counter() - start, where, rerun.changed)
    return dataclasses.replace(report, run_outputs=job.finish(plan, report))
