"""`feedsvc serve`'s watch over its leader process (feedsvc.leader): started before the
serving workers, started again whenever it dies, and stopped last, once the workers have
finished their requests, after the scan in progress has committed. While it is down, the
workers say so (/status ``leader`` false, ``scan_error`` why)."""

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
from feedsvc.shared import say_of_leader

log = logging.getLogger(__name__)

RESTART_FIRST, RESTART_LAST = 1.0, 30.0  # seconds before a restart, doubling while it dies
STEADY_SECONDS = 60.0  # a leader that lived this long dies afresh: the first delay again
STOP_SECONDS = 120.0  # for the scan in progress to commit, then SIGKILL (nothing is lost)


class LeaderSupervisor:
    """Runs the leader in a process of its own and keeps it running. Only the watching
    thread waits for the process (two waits on one child race for its exit status)."""

    def __init__(self, settings: Settings, upgrade: bool) -> None:
        self.settings = settings
        self.upgrade = upgrade
        self._context = multiprocessing.get_context("fork")
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._process = self._spawn()
        self._thread = threading.Thread(target=self._watch, name="leader-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> BaseProcess:
        """Forked, as granian forks its workers: it shares this process's loaded code, and
        needs no interpreter it could be refused to execute."""
        process = self._context.Process(
            target=run, args=(self.settings, self.upgrade, os.getpid()), name="feedsvc-leader"
        )
        process.start()
        return process

    def _watch(self) -> None:
        delay = RESTART_FIRST
        while not self._stopping.is_set():
            process = self._process
            if process is not None:
                started = time.monotonic()
                process.join()
                if self._stopping.is_set():
                    return
                if process.exitcode == 0:  # it was told to stop (SIGTERM): not a death
                    log.warning(
                        "the leader process (pid %s) was stopped: this replica does not scan "
                        "until feedsvc serve is started again",
                        process.pid,
                    )
                    self._down("the leader process was stopped (SIGTERM)")
                    return
                if time.monotonic() - started >= STEADY_SECONDS:
                    delay = RESTART_FIRST
                why = f"the leader process (pid {process.pid}) exited with "
                why += f"{_exit_status(process.exitcode)}: starting it again in {delay:.0f} s"
                log.error("%s", why)
                self._down(why)
            if self._stopping.wait(delay):
                return
            try:
                self._process = self._spawn()
            except OSError as exc:  # (no memory or no process slot for a fork: try again)
                log.error("cannot start the leader process (%s): trying again", exc)
                self._process = None
            delay = min(delay * 2, RESTART_LAST)

    def _down(self, why: str) -> None:
        """Tell the workers the leader is not running (it clears this when it starts); a
        scratch directory removed under the server (a tmp cleaner) must not stop restarts."""
        try:
            say_of_leader(why, "not running", down=True)
        except OSError as exc:
            log.error("cannot tell the workers the leader is down: %s", exc)

    def stop(self) -> None:
        """SIGTERM, and wait for the scan in progress to commit (SIGKILL past STOP_SECONDS:
        a scan is one transaction, so a kill loses nothing that was committed)."""
        self._stopping.set()
        process, thread = self._process, self._thread
        if thread is None:
            return
        if process is not None and thread.is_alive():
            process.terminate()  # (a process the thread has reaped is not signalled)
        thread.join(STOP_SECONDS)  # (it waits for the process and returns)
        if thread.is_alive() and process is not None:
            log.error("the leader process did not stop in %.0f s: killing it", STOP_SECONDS)
            process.kill()
            thread.join()


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
