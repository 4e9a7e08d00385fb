"""`feedsvc serve`'s watch over its leader process (feedsvc.leader): started before the
serving workers, started again whenever it dies, and stopped last, once the workers have
finished their requests, after the scan in progress has committed."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess

from feedsvc.config import Settings
from feedsvc.leader import run

log = logging.getLogger(__name__)

RESTART_FIRST, RESTART_LAST = 1.0, 30.0  # seconds before a restart, doubling while it dies
STEADY_SECONDS = 60.0  # a leader that lived this long dies afresh: the first delay again
STOP_SECONDS = 120.0  # for the scan in progress to commit, then SIGKILL (nothing is lost)


class LeaderSupervisor:
    """Runs the leader in a process of its own and keeps it running."""

    def __init__(self, settings: Settings, upgrade: bool) -> None:
        self.settings = settings
        self.upgrade = upgrade
        self._context = multiprocessing.get_context("fork")
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="leader-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        """Forked, as granian forks its workers: it shares this process's loaded code, and
        needs no interpreter it could be refused to execute."""
        process = self._context.Process(
            target=run, args=(self.settings, self.upgrade, os.getpid()), name="feedsvc-leader"
        )
        process.start()
        self._process = process

    def _watch(self) -> None:
        delay = RESTART_FIRST
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            process.join()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STEADY_SECONDS:
                delay = RESTART_FIRST
            log.error(
                "the leader process (pid %s) exited with %s: starting it again in %.0f s",
                process.pid,
                _exit_status(process.exitcode),
                delay,
            )
            if self._stopping.wait(delay):
                return
            self._spawn()
            delay = min(delay * 2, RESTART_LAST)

    def stop(self) -> None:
        """SIGTERM, and wait for the scan in progress to commit (SIGKILL past STOP_SECONDS:
        a scan is one transaction, so a kill loses nothing that was committed)."""
        self._stopping.set()
        process = self._process
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            process.join(STOP_SECONDS)
            if process.is_alive():
                log.error("the leader process did not stop in %.0f s: killing it", STOP_SECONDS)
                process.kill()
                process.join()
        if self._thread is not None:
            self._thread.join()


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
