"""Many files and very large images: per-file work on a Dask cluster, large images in tiles with a halo.

Everything here is generic: the work comes in as callables, so any per-file step (``awdvd deconvolve``,
``awdvd predict``) and any local per-image operation (Richardson-Lucy, AWDVD, a defocus map) plugs in.

- :func:`run_batch` runs ``task(path) -> dict`` over many files, serially (``workers=0``), on a local Dask
  cluster (``workers=N``) or on an existing cluster (``scheduler="tcp://host:port"``, the same code path, so
  it scales to many machines). Reruns skip files whose outputs all exist; one bad file never stops the rest;
  outputs may never be input files. Returns a :class:`BatchReport`.
- :func:`worker_resource` caches a heavy object (the model, the PSF bank) once per worker process.
- :func:`tiled_map` applies ``fn(block, origin_yx) -> block`` to a 2-D image tile by tile with a halo,
  equal to ``fn(image, (0, 0))`` for any operation whose reach is at most the halo, in bounded memory
  (input and output may be zarr arrays or memmaps). :func:`should_tile` decides tiled vs whole.
- :func:`local_cluster` is the cluster run_batch starts, for sharing one between several batches.
- :func:`submit_bounded` runs calls on a cluster with a bounded number in flight (tiles of one image).

awdvd's own per-file work (``awdvd predict`` / ``awdvd deconvolve``) is built on these in :mod:`awdvd.jobs`,
and AWDVD of images too large for memory in :mod:`awdvd.tiling`.

Example: one file's work as a picklable module-level function, its heavy objects cached per worker ::

    def deconvolve_file(path, *, out_dir, model_path, stride, iterations):
        model = worker_resource(("model", str(model_path)), lambda: load_model(model_path))
        image = read_image(path)
        check_pixel_size(image.pixel_um, model.optics.pixel_um)
        out = deconvolve(np.asarray(image.data), model, stride=stride, iterations=iterations)
        write_tiff(out_dir / f"{path.stem}_awdvd.tif", out, pixel_um=image.pixel_um, overwrite=True)
        return {"shape": list(out.shape)}

    report = run_batch(inputs, partial(deconvolve_file, out_dir=out_dir, model_path=..., stride=42,
                                       iterations=30),
                       outputs_for=lambda p: [out_dir / f"{p.stem}_awdvd.tif"], workers=4)
    print(report.summary())

For an image where ``should_tile(image.data.shape)``, the same function would write through
``awdvd.io.open_ome_zarr_output`` with ``tiled_map(image.data, fn, tile_px=..., halo_px=..., out=out)``
(serial inside the worker: ``tiled_map``'s default ``workers=0``).

Threads and memory in workers: a Dask worker here runs one task at a time on one thread, and
numpy/BLAS/OpenMP/torch and awdvd's own FFTs and thread pools use one thread inside workers
(``OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=AWDVD_NUM_THREADS=1`` is set before a worker process
starts, and each task sets awdvd's thread limit (``awdvd._threads``) and ``torch.set_num_threads(1)`` once torch
is loaded), so N workers use N cores instead of N x cores threads fighting over them. (Third-party code that
asks for threads explicitly, e.g. ``scipy.fft(..., workers=-1)``, still gets them.) The clusters started here also drop Dask's
default ``MALLOC_TRIM_THRESHOLD_=65536``, which made FFT-heavy work 3.5x slower (see ``local_cluster``);
workers you start yourself for ``scheduler=`` keep Dask's default unless you change
``distributed.nanny.pre-spawn-environ``. The serial path (``workers=0``) leaves your process's settings alone.

Dask and distributed are imported only when a cluster is used: ``import awdvd.batch`` is light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from ._checks import check_positive_int
from ._threads import THREADS_VARIABLE, set_thread_limit
from .io import LARGEST_IMAGE_IN_MEMORY_PX

__all__ = [
    "run_batch",
    "local_cluster",
    "BatchReport",
    "FileResult",
    "STATUSES",
    "worker_resource",
    "worker_resource_loads",
    "clear_worker_resources",
    "tiled_map",
    "tile_grid",
    "submit_bounded",
    "should_tile",
    "LARGEST_IMAGE_IN_MEMORY_PX",
]

STATUSES = ("done", "skipped", "failed")

# A task that kills its worker (segfault, out of memory) is retried once on another worker before it is
# recorded as failed: one retry absorbs a transient death without letting one poisonous file take down
# worker after worker. (Applies to the clusters run_batch starts; an existing cluster keeps its own setting.)
_ALLOWED_WORKER_DEATHS = 1
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_VARIABLE)

T = TypeVar("T")


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
    scheduler address.
    """

    results: tuple[FileResult, ...]
    seconds: float
    where: str

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
            "results": [r.as_dict() for r in self.results],
        }


# --------------------------------------------------------------------------------------------- per-worker cache
_RESOURCES: dict[Hashable, Any] = {}
_RESOURCE_LOADS: Counter = Counter()
_RESOURCE_LOCK = threading.RLock()


def worker_resource(key: Hashable, factory: Callable[[], T]) -> T:
    """A heavy object built once per process (so once per Dask worker) and reused by every task there.

    Use it inside a task for whatever is expensive to build and the same for all files, e.g. ::

        model = worker_resource(("model", str(model_path)), lambda: load_model(model_path))

    so a worker loads the model and its PSF bank once, not once per file (and the task itself stays small,
    since only the task, not the model, is sent to the workers).

    Parameters
    ----------
    key : hashable, names the object; include everything that makes it differ (file path, optics).
    factory : called with no arguments to build the object the first time ``key`` is asked for in this process.

    Returns
    -------
    The cached object. Treat it as read-only: other tasks on the same worker get the same object.
    """
    with _RESOURCE_LOCK:  # re-entrant: a factory may itself ask for another resource
        try:
            return _RESOURCES[key]
        except KeyError:
            pass
        value = factory()
        _RESOURCES[key] = value
        _RESOURCE_LOADS[key] += 1
        return value


def worker_resource_loads() -> dict[Hashable, int]:
    """How many times each resource was built in this process (1 each when the cache works)."""
    with _RESOURCE_LOCK:
        return dict(_RESOURCE_LOADS)


def clear_worker_resources() -> None:
    """Forget this process's cached resources (their load counts too)."""
    with _RESOURCE_LOCK:
        _RESOURCES.clear()
        _RESOURCE_LOADS.clear()


# --------------------------------------------------------------------------------------------- workers
def _in_dask_worker() -> tuple[bool, str]:
    if "distributed" not in sys.modules:  # never imported: cannot be a worker
        return False, "serial"
    from distributed import get_worker

    try:
        return True, get_worker().address
    except ValueError:
        return False, "serial"


def _limit_threads() -> None:
    """One thread per worker for the numeric libraries (see the module docstring)."""
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")  # for libraries not loaded yet; the nanny already set them
    set_thread_limit(1)  # awdvd's own FFT workers and thread pools, also on workers started elsewhere
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _run_one(task: Callable[[Path], Mapping | None], path: Path) -> dict:
    """Run ``task(path)`` where we are (worker or main process); never raises for an error in the task."""
    in_worker, where = _in_dask_worker()
    if in_worker:
        _limit_threads()
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
        _limit_threads()  # the task may have imported torch just now
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
_LOCAL_CLUSTER_CONFIG = {
    # a file that kills its worker (out of memory, segfault) is retried once, then recorded as failed
    "distributed.scheduler.allowed-failures": _ALLOWED_WORKER_DEATHS,
    # queue files on the scheduler and send a worker one at a time (the default 1.1 sends a second file
    # ahead, which then dies with its worker)
    "distributed.scheduler.worker-saturation": 1.0,
    # the cluster object would otherwise shut down, for good, a worker that is not back 15 s after a death
    # (its nanny restarts it, but a second death around that moment loses it): with repeated crashes the
    # cluster ran out of workers and the batch waited forever
    "distributed.deploy.lost-worker-timeout": "7 days",
    # one numeric thread per worker, set before the worker process starts. Dask's default here also sets
    # MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap threshold: every large temporary
    # (an FFT of the image, each Richardson-Lucy iteration) is then mapped and unmapped afresh, and RL on a
    # 520 x 696 image ran 3.5x slower (0.46 s -> 1.59 s, 800 000 page faults; benchmarks/bench_batch.py)
    "distributed.nanny.pre-spawn-environ": {name: 1 for name in _THREAD_VARIABLES},
}
_NO_WORKERS_GRACE_S = 60.0  # a local cluster with no worker for this long fails the files left


@contextlib.contextmanager
def _restored_environ():
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextlib.contextmanager
def local_cluster(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes on this machine, set
    up as :func:`run_batch` sets up its own: quiet logs, no dashboard, a file that kills its worker retried
    once then recorded as failed, one file per worker at a time, dead workers always restarted.

    Use it to share one cluster between several batches (pass ``cluster.scheduler_address`` as
    ``scheduler=``); it is closed when the ``with`` block ends. While it is open the settings above are
    part of the process's Dask configuration.
    """
    import dask
    from distributed import LocalCluster

    workers = check_positive_int(workers, "workers")
    # the nannies (which run in this process) write their workers' variables (OMP_NUM_THREADS=1, ...) into
    # this process's os.environ: put the environment back as it was when the cluster closes
    with dask.config.set(_LOCAL_CLUSTER_CONFIG), _restored_environ():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler serves health checks over HTTP even without a dashboard: any free local port,
            # not 8787 (which another cluster on the machine may hold)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,  # failures are reported per file in the BatchReport instead
        )
        try:
            yield cluster
        finally:
            cluster.close()


@contextlib.contextmanager
def _dask_client(workers: int, scheduler) -> Iterator[tuple[Any, str, bool]]:
    """A distributed Client: on an existing cluster (address or Client) or on a local cluster started here
    and shut down at the end. Yields (client, description, is_own_local_cluster)."""
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler, f"Dask cluster at {scheduler.scheduler.address}", False
        return
    if scheduler is not None:
        with Client(scheduler, set_as_default=False, timeout="30s") as client:
            yield client, f"Dask cluster at {scheduler}", False
        return
    with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
        yield client, f"local Dask cluster, {workers} worker{'s' if workers != 1 else ''}", True


def _check_picklable(obj, name: str) -> None:
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception as error:
        raise TypeError(
            f"{name} must be picklable to run on Dask workers (a module-level function or a functools.partial "
            f"of one, holding small arguments; load heavy objects inside with worker_resource): {error}"
        ) from error


def _check_workers(workers, scheduler) -> int:
    workers = check_positive_int(workers, "workers", minimum=0)
    if scheduler is not None:
        if workers == 0:
            raise ValueError("workers=0 means serial in this process; it cannot be combined with scheduler")
        if isinstance(scheduler, str) and "://" not in scheduler:
            raise ValueError(f"scheduler must be an address like 'tcp://host:8786', got {scheduler!r}")
    return workers


# --------------------------------------------------------------------------------------------- batches
def _plan_outputs(paths: Sequence[Path], outputs_for: Callable[[Path], Iterable]) -> dict[Path, tuple[Path, ...]]:
    """outputs_for(path) for every input, checked: at least one output per file, no output is any input
    file (or inside an input folder), and no two files share an output."""
    plan: dict[Path, tuple[Path, ...]] = {}
    for path in paths:
        outputs = outputs_for(path)
        if isinstance(outputs, (str, os.PathLike)):
            outputs = [outputs]
        outputs = tuple(Path(o).absolute() for o in outputs)
        if not outputs:
            raise ValueError(f"outputs_for({path.name}) named no output; every file needs at least one output to resume")
        plan[path] = outputs
    inputs = {p.resolve(): p for p in paths}
    owner: dict[Path, Path] = {}
    for path, outputs in plan.items():
        for output in outputs:
            resolved = output.resolve()
            clash = inputs.get(resolved)
            if clash is None:
                clash = next((p for p in resolved.parents if p in inputs), None)  # inside an input .zarr folder
            if clash is None and output.exists():
                clash = next((p for p in paths if _same_file(p, output)), None)  # hard links
            if clash is not None:
                raise ValueError(
                    f"the output {output} of {path.name} would overwrite the input {clash}; outputs never replace "
                    "inputs: write them to another folder (-o) or name them differently. (Were outputs of an earlier "
                    "run written into the input folder? Then keep outputs in a folder of their own.)"
                )
            if resolved in owner and owner[resolved] != path:
                raise ValueError(
                    f"{owner[resolved].name} and {path.name} would both write {output}; give each file its own outputs"
                )
            owner[resolved] = path
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run_batch(
    inputs,
    task: Callable[[Path], Mapping | None],
    *,
    outputs_for: Callable[[Path], Iterable[str | os.PathLike]],
    workers: int = 1,
    scheduler=None,
    overwrite: bool = False,
    progress: bool = True,
) -> BatchReport:
    """Run ``task`` on every input file, on Dask or serially; skip files already done; survive bad files.

    Parameters
    ----------
    inputs : files, folders (their images; ``*.zarr`` folders count as images) or glob patterns, one or a list;
        see :func:`awdvd.data.find_images`.
    task : ``task(path) -> dict``, run once per file to be done. It reads ``path``, computes, and writes the
        outputs itself, each atomically (``awdvd.io`` writers do) and with ``overwrite=True``: run_batch has
        already decided that this file is to be (re)done. It must be picklable (a module-level function, or a
        ``functools.partial`` of one with small arguments); load heavy objects inside it with
        :func:`worker_resource`. The dict it returns (plain, picklable values) is kept in the report.
    outputs_for : ``outputs_for(path) -> list of paths`` the task writes for ``path`` (at least one). Called
        here, up front, for every file: a file whose outputs all exist is skipped; outputs may not be any
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
    from .data import find_images

    if not callable(task) or not callable(outputs_for):
        raise TypeError("task and outputs_for must be callables: task(path) -> dict, outputs_for(path) -> paths")
    workers = _check_workers(workers, scheduler)
    start = time.perf_counter()
    paths = find_images(inputs)
    plan = _plan_outputs(paths, outputs_for)
    todo = [p for p in paths if overwrite or not all(o.exists() for o in plan[p])]
    records: dict[Path, dict] = {p: {"status": "skipped"} for p in set(paths) - set(todo)}

    from tqdm.auto import tqdm

    with tqdm(total=len(paths), initial=len(paths) - len(todo), unit="file", desc="awdvd", disable=not progress) as bar:
        if workers == 0 and scheduler is None:
            where = "serial"
            for path in todo:
                records[path] = _run_one(task, path)
                bar.update(1)
        else:
            _check_picklable(task, "task")
            with _dask_client(workers, scheduler) as (client, where, own):
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


# --------------------------------------------------------------------------------------------- large images
def should_tile(shape: Sequence[int], *, max_px: int = LARGEST_IMAGE_IN_MEMORY_PX) -> bool:
    """True if an image of ``shape`` (…, H, W) is too large to process whole (more than ``max_px`` pixels per
    plane, default :data:`LARGEST_IMAGE_IN_MEMORY_PX` = 4096 x 4096) and should go through :func:`tiled_map`."""
    max_px = check_positive_int(max_px, "max_px")
    if len(shape) < 2:
        raise ValueError(f"an image shape has at least 2 axes, got {tuple(shape)}")
    return math.prod(int(s) for s in shape[-2:]) > max_px


def _pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one int or a (y, x) pair, got {value!r}")
        return tuple(check_positive_int(v, name, minimum=minimum) for v in value)  # type: ignore[return-value]
    v = check_positive_int(value, name, minimum=minimum)
    return v, v


def tile_grid(shape: tuple[int, int], tile_px, halo_px) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """Tiles of a (H, W) image in row-major order: ``(core, read)`` slice pairs, where ``core`` (tile_px
    square, smaller at the right/bottom edges) is what the tile contributes to the output and ``read`` is the
    core grown by ``halo_px`` on every side and clipped to the image. Cores cover every pixel exactly once."""
    h, w = (check_positive_int(s, "shape") for s in shape)
    ty, tx = _pair(tile_px, "tile_px", minimum=1)
    hy, hx = _pair(halo_px, "halo_px", minimum=0)
    tiles = []
    for y0 in range(0, h, ty):
        for x0 in range(0, w, tx):
            y1, x1 = min(y0 + ty, h), min(x0 + tx, w)
            core = (slice(y0, y1), slice(x0, x1))
            read = (slice(max(0, y0 - hy), min(h, y1 + hy)), slice(max(0, x0 - hx), min(w, x1 + hx)))
            tiles.append((core, read))
    return tiles


def _read_block(image, read: tuple[slice, slice]) -> np.ndarray:
    block = image[read]
    if hasattr(block, "dask"):  # computed here, in this thread, never sent to a cluster (see io._compute)
        block = block.compute(scheduler="sync")
    return np.asarray(block)


def _apply_tile(fn, block: np.ndarray, origin: tuple[int, int], crop: tuple[slice, slice]) -> np.ndarray:
    """fn on one tile (with halo); returns only the core. Runs on a worker or in the main process."""
    in_worker, _ = _in_dask_worker()
    if in_worker:
        _limit_threads()
    result = np.asarray(fn(block, origin))
    if result.shape != block.shape:
        raise ValueError(
            f"fn returned shape {result.shape} for a block of shape {block.shape} at {origin}; tiled_map needs "
            "fn(block, origin_yx) to return an array of the block's shape"
        )
    return result[crop]


def tiled_map(
    image,
    fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    *,
    tile_px: int | tuple[int, int] = 1024,
    halo_px: int | tuple[int, int],
    out=None,
    workers: int = 0,
    client=None,
    max_in_flight: int | None = None,
    progress: bool = False,
):
    """Apply a local operation ``fn`` to a 2-D image tile by tile, each tile read with a halo around it.

    ``fn(block, origin_yx)`` gets a tile plus up to ``halo_px`` pixels of its surroundings (fewer where the
    image ends) and the global (y, x) of the block's top-left pixel, so that e.g. a grid of windows can be
    aligned to the whole image (choose ``tile_px`` and ``halo_px`` as multiples of the window stride); it
    returns an array of the block's shape. Only the tile's core is kept. For any operation whose reach is at
    most ``halo_px`` (a convolution with a PSF of radius <= halo_px, ...) and whose edge rule is local (e.g.
    symmetric padding) the result equals ``fn(image, (0, 0))`` to floating-point tolerance, image borders
    included: tiles at the border see the true border, as the whole-image call does. (Iterative operations
    such as Richardson-Lucy reach further with each iteration; their tiled result only converges to the
    whole-image one as the halo grows: benchmarks/bench_batch.py measures how fast.)

    Why own tiling rather than ``dask.array.map_overlap``: tiles here carry their global origin, need no
    chunk >= halo rule (any tile size, including sizes that do not divide the image), are read from any
    sliceable array (numpy, memmap, zarr, dask) and their results are written into ``out`` one tile at a
    time by this process alone, so tiles need not match the output's zarr chunks, workers need no access to
    the output store, and memory stays bounded by the tiles in flight.

    Parameters
    ----------
    image : (H, W) array-like that slices to numpy: numpy array, ``numpy.memmap``, zarr array, dask array.
    fn : ``fn(block, origin_yx) -> array of block.shape``; picklable when run on Dask. Load heavy objects it
        needs with :func:`worker_resource`.
    tile_px : core tile size (int or (y, x)); the last row/column of tiles may be smaller.
    halo_px : halo on each side (int or (y, x)), at least the operation's reach in pixels.
    out : (H, W) array to write into (numpy, memmap, zarr, e.g. from ``awdvd.io.open_ome_zarr_output``);
        None allocates a numpy array of the dtype ``fn`` returns. For zarr, a ``tile_px`` that is a multiple
        of the chunk size writes whole chunks.
    workers : 0 (default) runs the tiles one after another in this process; N >= 1 starts a local Dask
        cluster of N workers for this call. Ignored when ``client`` is given.
    client : a ``distributed.Client`` or scheduler address to run the tiles on an existing cluster.
    max_in_flight : tiles submitted to Dask and not yet written (default 2 per worker thread); bounds memory.
    progress : show a progress bar over tiles.

    Returns
    -------
    ``out`` (or the new numpy array), (H, W).
    """
    if not hasattr(image, "shape") or len(image.shape) != 2:
        raise ValueError(f"tiled_map takes a 2-D image (H, W), got shape {getattr(image, 'shape', None)}; "
                         "process a stack plane by plane")
    if not callable(fn):
        raise TypeError("fn must be callable: fn(block, origin_yx) -> block")
    shape = tuple(int(s) for s in image.shape)
    tiles = tile_grid(shape, tile_px, halo_px)
    if out is not None and tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}; it must match the image, {shape}")
    workers = check_positive_int(workers, "workers", minimum=0)
    holder = {"out": out}

    def write(core, result):
        if holder["out"] is None:
            holder["out"] = np.empty(shape, dtype=result.dtype)
        holder["out"][core] = result

    def crop_of(core, read):  # the core's position inside the block that was read
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read))

    from tqdm.auto import tqdm

    with tqdm(total=len(tiles), unit="tile", desc="tiles", disable=not progress) as bar:
        if client is None and workers == 0:
            for core, read in tiles:
                block = _read_block(image, read)
                write(core, _apply_tile(fn, block, (read[0].start, read[1].start), crop_of(core, read)))
                bar.update(1)
        else:
            _check_picklable(fn, "fn")
            with _dask_client(max(workers, 1), client) as (dask_client, _, _):
                limit = max_in_flight or 2 * max(1, sum(dask_client.nthreads().values()))
                limit = check_positive_int(limit, "max_in_flight")
                _tiles_on_dask(dask_client, image, fn, tiles, crop_of, write, limit, bar)
    return holder["out"]


def _tiles_on_dask(client, image, fn, tiles, crop_of, write, limit: int, bar) -> None:
    calls = (
        (core, _apply_tile, (fn, _read_block(image, read), (read[0].start, read[1].start), crop_of(core, read)))
        for core, read in tiles
    )
    for core, result in submit_bounded(client, calls, limit=limit):
        write(core, result)
        bar.update(1)


_SCATTER_BYTES = 1 << 16


def _call_here(fn, *args):
    """fn(*args) on a worker (with its thread limits) or in this process."""
    in_worker, _ = _in_dask_worker()
    if in_worker:
        _limit_threads()
    return fn(*args)


def submit_bounded(client, calls: Iterable[tuple[Hashable, Callable, tuple]], *, limit: int) -> Iterator[tuple[Hashable, Any]]:
    """Run ``fn(*args)`` for every ``(tag, fn, args)`` of ``calls`` on a Dask client, with at most ``limit`` calls
    submitted and not yet collected, and yield ``(tag, result)`` as they finish (in any order).

    ``calls`` is consumed lazily, so its arguments (e.g. image blocks read from a large file) are made only
    as room frees up: memory stays bounded by ``limit`` calls. Numpy arguments of 64 KB or more are scattered
    (sent to one worker once, not embedded in the task graph); futures among ``args`` are resolved by Dask
    (e.g. a model scattered once with ``client.scatter(model, broadcast=True)``). On the worker, the thread
    limits of the module docstring apply. The first error raised by a call is raised here: used for tiles of
    one image, where an error is a bug for every tile, not a bad file.
    """
    from distributed import as_completed

    limit = check_positive_int(limit, "limit")
    calls = iter(calls)
    tags: dict[str, Hashable] = {}
    queue = as_completed(loop=client.loop)

    def submit_next() -> bool:
        item = next(calls, None)
        if item is None:
            return False
        tag, fn, args = item
        args = tuple(
            client.scatter(a, hash=False) if isinstance(a, np.ndarray) and a.nbytes >= _SCATTER_BYTES else a
            for a in args
        )
        future = client.submit(_call_here, fn, *args, pure=False)
        tags[future.key] = tag
        queue.add(future)
        return True

    for _ in range(limit):
        if not submit_next():
            break
    for future in queue:
        result = future.result()
        tag = tags.pop(future.key)
        future.release()
        submit_next()
        yield tag, result
