"""The scan's worker processes: a pool for reading and parsing seed files that ends with
the scan, even one killed with SIGKILL (whose workers would otherwise wait forever), and
takes multiprocessing's helper processes with it."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver, resource_tracker

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 0.5
WORKER_NICENESS = 10


def _start_worker(parent: int) -> None:
    """In each worker: yield the CPU to request handling (parsing can wait a little, a
    reader should not), and leave as soon as the process that started the pool is gone.
    Ctrl-C reaches every process of a terminal's group: the scan in progress is the leader's
    to finish (it stops once the scan has committed), not its workers' to abort."""
    os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # alive, owned by someone else (pid reused): keep going
                pass

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_pool(workers: int) -> ProcessPoolExecutor | None:
    """``workers`` processes from a forkserver (never a fork of this threaded process), or
    None when they cannot start here (e.g. a __main__ they cannot import)."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        pool.submit(os.getpid).result(timeout=60)
    except Exception as exc:
        log.warning("cannot start scan workers (%s): reading in this process", exc)
        stop_pool(pool)
        return None
    return pool


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End the pool, then the forkserver and the resource tracker it started: each is a
    process of its own that multiprocessing keeps for the next pool, and between scans
    the leader is to be one process. (There is no public way to stop them; both start
    again when the next pool needs them.)"""
    pool.shutdown(cancel_futures=True)
    gc.collect()  # (the pool's locks tell the tracker they are gone when collected)
    forkserver._forkserver._stop()  # type: ignore[attr-defined]
    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]
