"""Many files on a Dask cluster (or in this process): the runner, the per-worker resource cache, the report.

Everything here is generic: the work comes in as callables, so any per-file step (``awdvd deconvolve``,
``awdvd predict``) plugs in. The clusters, the per-worker cache and the worker thread limits are :mod:`awdvd._cluster` (shared with the
tiles of large images, :mod:`awdvd.restore.tiles`); awdvd's own per-file work is :mod:`awdvd.batch.jobs`.

- :func:`awdvd.io.plan_outputs` discovers the files and names their outputs once (a ``BatchPlan``), checked:
  outputs may never be input files, nor shared by two files.
- :func:`run_batch` runs ``task(path) -> dict`` over the files, serially (``workers=0``), on a local Dask
  cluster (``workers=N``) or on an existing cluster (``scheduler="tcp://host:port"``, the same code path, so
  it scales to many machines). Reruns skip files whose outputs all exist; one bad file never stops the rest.
  Returns a :class:`BatchReport`.
- :func:`awdvd._cluster.worker_resource` caches a heavy object (the model, the PSF bank) once per worker process.
- :func:`awdvd._cluster.local_cluster` is the cluster run_batch starts, for sharing one between several batches.

Example: one file's work as a picklable module-level function, its heavy objects cached per worker ::

    def deconvolve_file(path, *, out_dir, model_path, options):
        model = worker_resource(("model", str(model_path)), lambda: load_model(model_path))
        image = read_image(path)
        out = deconvolve(image.data, model, options, pixel_um=image.pixel_um)
        write_tiff(out_dir / f"{path.stem}_awdvd.tif", out, pixel_um=image.pixel_um, overwrite=True)
        return {"shape": list(out.shape)}

    report = run_batch(inputs, partial(deconvolve_file, out_dir=out_dir, model_path=..., options=AWDVDOptions()),
                       outputs_for=lambda p: [out_dir / f"{p.stem}_awdvd.tif"], workers=4)
    print(report.summary())

Threads and memory in workers: a Dask worker here runs one task at a time on one thread, and
numpy/BLAS/OpenMP/torch and awdvd's own FFTs and thread pools use one thread inside workers
(``OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=AWDVD_NUM_THREADS=1`` is set before a worker process
starts, and each task sets awdvd's thread limit (``awdvd._threads``) and ``torch.set_num_threads(1)`` once torch
is loaded), so N workers use N cores instead of N x cores threads fighting over them. (Third-party code that
asks for threads explicitly, e.g. ``scipy.fft(..., workers=-1)``, still gets them.) The clusters started here also drop Dask's
default ``MALLOC_TRIM_THRESHOLD_=65536``, which made FFT-heavy work 3.5x slower (see ``local_cluster``);
workers you start yourself for ``scheduler=`` keep Dask's default unless you change
``distributed.nanny.pre-spawn-environ``. The serial path (``workers=0``) leaves your process's settings alone.

Dask and distributed are imported only when a cluster is used: ``import awdvd.batch.runner`` is light.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from .._checks import check_positive_int
from .._cluster import check_picklable, dask_client, in_dask_worker, limit_worker_threads
from ..io import BatchPlan, plan_outputs

__all__ = [
    "run_batch",
    "BatchReport",
    "FileResult",
    "STATUSES",
]

STATUSES = ("done", "skipped", "failed")

# A task that kills its worker (segfault, out of memory) is retried once on another worker before it is
# recorded as failed: one retry absorbs a transient death without letting one poisonous file take down
# worker after worker. (Applies to the clusters run_batch starts; an existing cluster keeps its own setting.)
# --------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    path : the input file.
    status : "done" (task ran, outputs written), "skipped" (all outputs existed) or "failed".
    outputs : the output paths ``outputs_for(path)`` named.
    error : one line, "ExceptionType: message", for a failed file; None otherwise.
    seconds : wall time of the task on its worker (0 for skipped files).
    worker : Dask worker address, "serial" for the in-process path, None if the task never ran.
    pid : process id that ran the task.
    value : the dict the task returned (empty unless done).
    traceback : the full traceback of a failure in the task, for debugging.
    """

    path: Path
    status: str
    outputs: tuple[Path, ...]
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None
    pid: int | None = None
    value: dict = field(default_factory=dict)
    traceback: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def as_dict(self) -> dict:
        """JSON-ready dict (paths as strings)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["outputs"] = [str(p) for p in self.outputs]
        return out


@dataclass(frozen=True)
class BatchReport:
    """The outcome of :func:`run_batch`: one :class:`FileResult` per input file, in input order.

    seconds : wall time of the whole batch; where : "serial", "local Dask cluster (N workers)" or the
    scheduler address. changed : files redone because their input changed since their outputs were made
    (:mod:`awdvd.batch.reruns`). run_outputs : {what: path} of files written for the whole run (e.g. a focus QC table).
    """

    results: tuple[FileResult, ...]
    seconds: float
    where: str
    changed: tuple[Path, ...] = ()
    run_outputs: Mapping[str, Path] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status: {"done": ., "skipped": ., "failed": .}."""
        counter = Counter(r.status for r in self.results)
        return {status: counter.get(status, 0) for status in STATUSES}

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return self.counts["failed"] == 0

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    def summary(self) -> str:
        """One paragraph for people: counts, time, where, and which files failed and why."""
        c = self.counts
        n = len(self.results)
        text = (
            f"{n} file{'s' if n != 1 else ''} in {self.seconds:.1f} s ({self.where}): {c['done']} done, "
            f"{c['skipped']} skipped, {c['failed']} failed."
        )
        if self.changed:
            names = ", ".join(p.name for p in self.changed[:3]) + (f" and {len(self.changed) - 3} more"
                                                                   if len(self.changed) > 3 else "")
            text += f" Redone because the input changed since its outputs were made: {names}."
        if c["skipped"]:
            text += " Skipped files already had all their outputs (overwrite=True / --overwrite redoes them)."
        if c["failed"]:
            shown = [f"{r.path.name} ({r.error})" for r in self.failed[:5]]
            more = f"; and {c['failed'] - 5} more" if c["failed"] > 5 else ""
            text += f" Failed: {'; '.join(shown)}{more}. Their outputs were not written; rerun to retry them."
        return text

    def as_dict(self) -> dict:
        """JSON-ready dict (for ``awdvd.io.write_json``)."""
        return {
            "seconds": self.seconds,
            "where": self.where,
            "counts": self.counts,
            "ok": self.ok,
            "changed": [str(p) for p in self.changed],
            "run_outputs": {k: str(v) for k, v in self.run_outputs.items()},
            "results": [r.as_dict() for r in self.results],
        }


# --------------------------------------------------------------------------------------------- per-worker cache
# --------------------------------------------------------------------------------------------- workers
def _run_one(task: Callable[[Path], Mapping | None], path: Path) -> dict:
    """Run ``task(path)`` where we are (worker or main process); never raises for an error in the task."""
    in_worker, where = in_dask_worker()
    if in_worker:
        limit_worker_threads()
    start = time.perf_counter()
    record: dict = {"worker": where, "pid": os.getpid(), "value": {}, "error": None, "traceback": None}
    try:
        value = task(path)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise TypeError(f"the task returned {type(value).__name__}; it must return a dict (or None)")
        record.update(status="done", value=dict(value))
    except Exception as error:  # one bad file is recorded, the others go on
        record.update(status="failed", error=_one_line(error), traceback=traceback.format_exc())
    if in_worker:
        limit_worker_threads()  # the task may have imported torch just now
    record["seconds"] = time.perf_counter() - start
    return record


def _one_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _failure_from_dask(error: BaseException) -> dict:
    """A record for a file whose Dask task errored outside the task itself (worker died, unpicklable...)."""
    record: dict = {"status": "failed", "seconds": 0.0, "pid": None, "value": {}, "traceback": None, "worker": None}
    if type(error).__name__ == "KilledWorker":
        last = getattr(error, "last_worker", None)
        record["worker"] = getattr(last, "address", None)
        tries = getattr(error, "allowed_failures", None)
        tried = f" ({tries + 1} workers died trying)" if isinstance(tries, int) else ""
        record["error"] = (
            "WorkerDied: the worker process died while processing this file (out of memory, or a crash in "
            f"compiled code){tried}"
        )
    else:
        record["error"] = _one_line(error)
    return record


# How run_batch's own clusters behave (also set, process-wide, while a local_cluster is open):
_NO_WORKERS_GRACE_S = 60.0  # a local cluster with no worker for this long fails the files left


def _check_workers(workers, scheduler) -> int:
    workers = check_positive_int(workers, "workers", minimum=0)
    if scheduler is not None:
        if workers == 0:
            raise ValueError("workers=0 means serial in this process; it cannot be combined with scheduler")
        if isinstance(scheduler, str) and "://" not in scheduler:
            raise ValueError(f"scheduler must be an address like 'tcp://host:8786', got {scheduler!r}")
    return workers


# --------------------------------------------------------------------------------------------- batches
def run_batch(
    inputs,
    task: Callable[[Path], Mapping | None],
    *,
    outputs_for: Callable[[Path], Iterable[str | os.PathLike]] | None = None,
    workers: int = 1,
    scheduler=None,
    overwrite: bool = False,
    progress: bool = True,
) -> BatchReport:
    """Run ``task`` on every input file, on Dask or serially; skip files already done; survive bad files.

    Parameters
    ----------
    inputs : files, folders (their images; ``*.zarr`` folders count as images) or glob patterns, one or a list
        (see :func:`awdvd.io.find_images`); or an :class:`awdvd.io.BatchPlan` made before
        (:func:`awdvd.io.plan_outputs`; ``outputs_for`` is then not needed).
    task : ``task(path) -> dict``, run once per file to be done. It reads ``path``, computes, and writes the
        outputs itself, each atomically (``awdvd.io`` writers do) and with ``overwrite=True``: run_batch has
        already decided that this file is to be (re)done. It must be picklable (a module-level function, or a
        ``functools.partial`` of one with small arguments); load heavy objects inside it with
        :func:`worker_resource`. The dict it returns (plain, picklable values) is kept in the report.
    outputs_for : ``outputs_for(path) -> list of paths`` the task writes for ``path`` (at least one). Called
        up front (:func:`awdvd.io.plan_outputs`), for every file: a file whose outputs all exist is skipped; outputs may not be any
        input file (ValueError before anything runs), and two files may not share an output.
    workers : 0 runs in this process, one file after another (identical results, no Dask); N >= 1 starts a
        local Dask cluster of N single-threaded worker processes for this batch. Ignored with ``scheduler``.
    scheduler : address of a running Dask scheduler (``"tcp://host:8786"``), or a ``distributed.Client``, to
        run on an existing cluster, e.g. many machines; their workers must see the files at the same paths and
        have awdvd installed.
    overwrite : redo files whose outputs exist (their outputs are replaced).
    progress : show a progress bar over files (stderr).

    Returns
    -------
    BatchReport, with one FileResult per file in input order. A failure in one file (an exception in the
    task, a worker process dying, a task that returns without writing its outputs) is recorded there and
    the other files go on; ``report.ok`` says whether all succeeded and ``report.summary()`` says it in words.

    Raises
    ------
    FileNotFoundError / ValueError for inputs that name nothing, ValueError for outputs that would replace
    inputs or collide, TypeError for a task that cannot be sent to workers.
    """
    if not callable(task):
        raise TypeError("task must be a callable: task(path) -> dict")
    workers = _check_workers(workers, scheduler)
    start = time.perf_counter()

    if not isinstance(inputs, BatchPlan):
        if outputs_for is None:
            raise TypeError("run_batch needs outputs_for (outputs_for(path) -> paths), or a BatchPlan as inputs")
        inputs = plan_outputs(inputs, outputs_for)
    paths, plan = list(inputs.paths), inputs.outputs
    todo = inputs.todo(overwrite=overwrite)
    records: dict[Path, dict] = {p: {"status": "skipped"} for p in set(paths) - set(todo)}

    with tqdm(total=len(paths), initial=len(paths) - len(todo), unit="file", desc="awdvd", disable=not progress) as bar:
        if workers == 0 and scheduler is None:
            where = "serial"
            for path in todo:
                records[path] = _run_one(task, path)
                bar.update(1)
        else:
            check_picklable(task, "task")
            with dask_client(workers, scheduler) as (client, where, own):
                grace_s = _NO_WORKERS_GRACE_S if own else None  # an external cluster may be scaling up
                records.update(_run_on_dask(client, task, todo, bar, no_workers_grace_s=grace_s))

    results = []
    for path in paths:
        record = records[path]
        if record["status"] == "done":
            missing = [o for o in plan[path] if not o.exists()]
            if missing:  # a task that "succeeds" without its outputs would be redone forever: say so
                record = {**record, "status": "failed", "error": f"the task finished but did not write {missing[0]}"}
        results.append(
            FileResult(
                path=path,
                status=record["status"],
                outputs=plan[path],
                error=record.get("error"),
                seconds=float(record.get("seconds", 0.0)),
                worker=record.get("worker"),
                pid=record.get("pid"),
                value=record.get("value") or {},
                traceback=record.get("traceback"),
            )
        )
    return BatchReport(results=tuple(results), seconds=time.perf_counter() - start, where=where)


def _collect(future) -> dict | None:
    """The record of a finished future, a failure record for an erred one, None if it is not done (yet, or
    again: the state changes under us on the client's event loop, e.g. a result lost with a dead worker)."""
    status = future.status  # read once
    try:
        if status == "finished":
            return future.result(timeout=5)
        if status == "cancelled":
            return {**_failure_from_dask(RuntimeError()), "error": "Cancelled: the task was cancelled on the cluster"}
        if status == "error":  # it could not run, or its worker died (errors in the task are caught inside)
            error = future.exception(timeout=5)
            return None if error is None else _failure_from_dask(error)
    except TimeoutError:  # the result went down with a worker and is being recomputed: wait again
        return None
    except Exception as error:  # it erred between reading the status and fetching
        return _failure_from_dask(error)
    return None


def _run_on_dask(client, task, paths: Sequence[Path], bar, *, no_workers_grace_s: float | None) -> dict[Path, dict]:
    """Submit one task per file and collect the records as they finish.

    Polls the futures rather than blocking on one: a finished file's result can be lost when its worker dies
    before we fetch it (Dask then recomputes it, and waiting for it must not block the others), and a local
    cluster left without workers must end the batch rather than hang it."""
    if not paths:
        return {}
    run = uuid.uuid4().hex[:8]  # keys unique to this run: batches sharing a cluster must not share results
    keys = [f"awdvd-{run}-{i}-{p.name}" for i, p in enumerate(paths)]
    futures = client.map(_run_one, [task] * len(paths), paths, key=keys, pure=False)
    pending = dict(zip(futures, paths))
    records: dict[Path, dict] = {}
    failed = 0
    idle_since = time.monotonic()
    next_worker_check = idle_since + 5.0
    pause = 0.01
    while pending:
        ready = []
        for future in list(pending):
            record = _collect(future)
            if record is None:
                continue
            ready.append(future)
            path = pending.pop(future)
            records[path] = record
            failed += record["status"] == "failed"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)
            future.release()
        now = time.monotonic()
        if ready:
            idle_since, pause = now, 0.01
            continue
        if no_workers_grace_s is not None and now >= next_worker_check:
            next_worker_check = now + 5.0
            if client.nthreads():
                idle_since = now
            elif now - idle_since > no_workers_grace_s:
                message = f"NoWorkers: the local Dask cluster had no worker left for {no_workers_grace_s:.0f} s"
                client.cancel(list(pending))
                for path in pending.values():
                    records[path] = {"status": "failed", "error": message, "seconds": 0.0, "value": {}}
                    bar.update(1)
                break
        time.sleep(pause)
        pause = min(0.5, pause * 1.5)
    return records
