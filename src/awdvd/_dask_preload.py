"""Run by every Dask worker process of the clusters awdvd starts (``distributed.worker.preload``).

A terminal's Ctrl-C goes to the whole foreground process group, so every worker process got its own SIGINT and
printed a page of tracebacks (64 lines for two workers) while the main process was already stopping the
cluster. The workers ignore SIGINT; the main process, which gets it too, closes the cluster (awdvd.batch.runner).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading


def dask_setup(worker=None) -> None:
    """Called by distributed in the worker process when it starts. Only worker processes (children of the
    process that started the cluster) ignore Ctrl-C: a worker in the caller's own process (``processes=False``)
    must leave the caller's Ctrl-C alone, and the processes the caller starts later would inherit the ignore."""
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
