"""How many threads awdvd's own numeric code may use: one setting for all of it.

awdvd asks for threads explicitly in two places: scipy.fft's ``workers=`` (Richardson-Lucy, blurring) and the
thread pool in which fast AWDVD runs its regions. Both take their count from :func:`allowed_threads`, so that
one setting governs them:

1. inside :func:`thread_limit` (or after :func:`set_thread_limit`), that limit: awdvd.batch.runner sets 1 in every
   Dask worker, so N workers use N cores instead of N x cores threads fighting over them;
2. else the environment variable ``AWDVD_NUM_THREADS`` (e.g. on a shared machine or a cluster node);
3. else every CPU this process may run on.

Libraries' own thread pools (OpenMP/BLAS, torch) follow their usual settings (``OMP_NUM_THREADS``,
``torch.set_num_threads``), which awdvd.batch.runner also sets to 1 in its workers.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["allowed_threads", "available_cpus", "set_thread_limit", "thread_limit", "THREADS_VARIABLE"]

THREADS_VARIABLE = "AWDVD_NUM_THREADS"

_lock = threading.Lock()
_limit: int | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def allowed_threads() -> int:
    """Threads awdvd may use for one FFT or one pool of regions (>= 1); see the module docstring.

    Raises ValueError for an ``AWDVD_NUM_THREADS`` that is not a whole number >= 1.
    """
    limit = _limit
    if limit is not None:
        return limit
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{THREADS_VARIABLE}={text!r}: give a whole number >= 1 of threads (or unset it)")
        return value
    return available_cpus()


def set_thread_limit(threads: int | None) -> None:
    """Set (or with None, remove) the process-wide limit that :func:`allowed_threads` returns."""
    global _limit
    with _lock:
        _limit = None if threads is None else _check_count(threads, "threads")


@contextlib.contextmanager
def thread_limit(threads: int | None):
    """``with thread_limit(1): ...`` runs the block with awdvd limited to ``threads`` threads (process-wide)."""
    global _limit
    with _lock:
        saved = _limit
        _limit = None if threads is None else _check_count(threads, "threads")
    try:
        yield
    finally:
        with _lock:
            _limit = saved
