"""Dask clusters and workers, shared by the tiles of a large image (:mod:`awdvd.restore.tiles`) and the batches of
many files (:mod:`awdvd.batch.runner`): a client on a local or an existing cluster, one numeric thread per
worker, and a per-worker cache of heavy objects.

Dask and distributed are imported only when a cluster is used: ``import awdvd._cluster`` is light.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections import Counter
from typing import Any, Callable, Hashable, Iterator, TypeVar

import cloudpickle

from ._checks import check_positive_int
from ._threads import THREADS_VARIABLE, set_thread_limit

__all__ = ["worker_resource", "worker_resource_loads", "clear_worker_resources", "in_dask_worker",
           "limit_worker_threads", "local_cluster", "quiet_dask", "dask_client", "check_picklable"]


_ALLOWED_WORKER_DEATHS = 1


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_VARIABLE)


T = TypeVar("T")


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


def in_dask_worker() -> tuple[bool, str]:
    """(True, the worker's address) inside a Dask worker, else (False, "serial")."""
    if "distributed" not in sys.modules:  # never imported: cannot be a worker
        return False, "serial"
    from distributed import get_worker

    try:
        return True, get_worker().address
    except ValueError:
        return False, "serial"


def limit_worker_threads() -> None:
    """One thread per worker for the numeric libraries (see the module docstring); call it in a worker."""
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")  # for libraries not loaded yet; the nanny already set them
    set_thread_limit(1)  # awdvd's own FFT workers and thread pools, also on workers started elsewhere
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


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
    # workers ignore Ctrl-C (the main process stops them): awdvd._dask_preload
    "distributed.worker.preload": ["awdvd._dask_preload"],
}


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
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: stop the workers without their log
            with quiet_dask():
                cluster.close()
            raise
        cluster.close()


@contextlib.contextmanager
def quiet_dask():
    """While the block runs, distributed and tornado log nothing below CRITICAL (closing a cluster that was
    interrupted logs the tasks and connections it cancels, none of which the user can act on)."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def dask_client(workers: int, scheduler) -> Iterator[tuple[Any, str, bool]]:
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
    with local_cluster(workers) as cluster:
        client = Client(cluster, set_as_default=False)
        try:
            yield client, f"local Dask cluster, {workers} worker{'s' if workers != 1 else ''}", True
        except BaseException:
            with quiet_dask():
                client.close()
            raise
        client.close()


def check_picklable(obj, name: str) -> None:
    try:
        cloudpickle.dumps(obj)
    except Exception as error:
        raise TypeError(
            f"{name} must be picklable to run on Dask workers (a module-level function or a functools.partial "
            f"of one, holding small arguments; load heavy objects inside with worker_resource): {error}"
        ) from error
