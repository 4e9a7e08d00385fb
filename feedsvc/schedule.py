"""The scheduler: scans in the replica that holds the leader lock, and keeps every replica's
in-memory feeds in step with the store.

The leader watches the seeds directory for filesystem events (feedsvc.events) and scans just
the files they name, within a short debounce; a full scan (stat only for unchanged files)
runs every ``rescan_interval`` seconds as a safety net. Where events cannot be had, or with
``watch = "polling"``, a full scan runs every ``scan_interval`` seconds instead. APScheduler
runs the scan job every ``scan_interval`` seconds (first at start-up; between full scans it
only retires missing files whose grace has passed) and, in every process, a cheap catch-up
every second. ``max_instances=1`` keeps two ticks of one process apart; the scan lock keeps
scans of different processes apart."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from feedsvc.config import Settings
from feedsvc.events import SeedEvents
from feedsvc.locks import ScanLocks
from feedsvc.model import Scope
from feedsvc.scan import ScanError, Scanner, ScanReport
from feedsvc.service import FeedService
from feedsvc.shared import SCAN_STATE
from feedsvc.store import FileProblem, NewerSchema, StorageError, Store

log = logging.getLogger(__name__)

# Told of the feeds a scan changed, and whether it was the store's first (baseline) scan.
ChangeListener = Callable[[list[Scope], bool], None]


class Scheduler:
    """Owns the scan schedule of one process and what it knows about the last scan."""

    def __init__(self, store: Store, settings: Settings, service: FeedService) -> None:
        self.store = store
        self.settings = settings
        self.service = service
        self.locks = ScanLocks(store.engine, store.path)
        self.scanner = Scanner(store, settings, self.locks)
        self.listeners: list[ChangeListener] = []
        self.last_error: str | None = None  # this process's last scan failure
        self._published_error: str | None = None  # what the store says of it
        self._scheduler: BackgroundScheduler | None = None
        self._tick_lock = threading.Lock()
        self._events: SeedEvents | None = None
        self._last_full = float("-inf")
        self.stepped_down = False  # a newer feedsvc owns the database: never lead again
        # This server: the host and the process that started the workers (the server's master).
        self.replica = f"{socket.gethostname()}:{os.getppid()}"

    @property
    def is_scanner(self) -> bool:
        """Whether this replica (any process of this server) holds the scan lock: the
        leading process records its replica in the store, so every worker answers alike."""
        return self.store.get_meta("scanner") == self.replica

    def scan_error(self) -> str | None:
        """Why the last scan failed (None: it did not), the same from every worker: this
        server's own word where one of its processes scans, else the scanner's in the store."""
        word = self._scanners_word()
        return word["error"] if word is not None else self.store.scan_error()

    def _scanners_word(self) -> dict[str, Any] | None:
        """What this server's scanning process last shared (see ``_publish_error``), if one
        of this server's processes scans or has stepped down; None otherwise."""
        shared = SCAN_STATE.get()
        if shared is None or shared["replica"] != self.replica:
            return None
        return shared if shared["stepped_down"] or self.is_scanner else None

    @property
    def watch_mode(self) -> str:
        """How this process notices changes: "events", "polling" (and why), or that it
        does not scan (another process holds the scan lock)."""
        if self.settings.watch == "polling":
            return "polling"
        if self._events is not None:
            return self._events.mode
        word = self._scanners_word()  # this server's scanning process says how it watches
        return str(word["watch"]) if word is not None else "not scanning here"

    def tick(self) -> None:
        """Scan if this process leads (fully when a full scan is due, else only the files
        already missing), then pick up whatever any scan changed."""
        with self._tick_lock:
            try:
                self._check_database()
                if not self.stepped_down and self.locks.try_lead():
                    if self.store.get_meta("scanner") != self.replica:
                        self.store.set_meta("scanner", self.replica)
                    self._watch_events()
                    # a tick comes every scan_interval: half of one is slack for its jitter
                    slack = self.settings.scan_interval / 2
                    due = time.monotonic() - self._last_full >= self._full_interval() - slack
                    self._scan_and_tell(None if due else set())
                else:
                    self.service.catch_up()
            except StorageError as exc:
                self._unavailable(exc)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("watcher tick failed")
            self._publish_error()

    def _publish_error(self) -> None:
        """The scanning process records its last failure (null once a scan succeeds) where
        every worker of this server reads it, and in the store for the other replicas (which
        a full disk or a read-only database cannot carry: see ``scan_error``)."""
        if not (self.locks.is_leader or self.stepped_down):
            return
        SCAN_STATE.set(
            {
                "replica": self.replica,
                "error": self.last_error,
                "stepped_down": self.stepped_down,
                "watch": self.watch_mode,
            }
        )
        if self.stepped_down or self.last_error == self._published_error:
            return  # (a database a newer feedsvc owns is never written)
        try:
            self.store.record_scan_error(self.last_error)
            self._published_error = self.last_error
        except StorageError as exc:
            log.debug("cannot record the scan error: %s", exc)

    def on_events(self, paths: set[str] | None) -> None:
        """Filesystem events named these files (None: something only a full scan can see)."""
        with self._tick_lock:
            try:
                if self.locks.is_leader:
                    self._scan_and_tell(paths)
            except StorageError as exc:
                self._unavailable(exc)

    def _unavailable(self, exc: StorageError) -> None:
        """The database failed mid-work (e.g. the SQLite file vanished between the health
        check and a statement): the next tick repairs or reconnects; no bug to trace."""
        self.last_error = f"database: {exc}"
        log.warning("database unavailable (%s): retrying at the next tick", exc)

    def _scan_and_tell(self, paths: set[str] | None) -> None:
        started = time.monotonic()
        report = self._scan(paths)
        if report is None:  # failed: what it was to look at is looked at by a full scan
            self._last_full = float("-inf")
        elif paths is None:
            self._last_full = started
        self.service.catch_up()
        if report is not None and report.changed_scopes:
            # told once this process serves what the scan wrote
            for listener in self.listeners:
                listener(report.changed_scopes, report.baseline)
        if report is not None:
            self.scanner.index_search()  # once the feeds are live

    def _full_interval(self) -> int:
        events = self._events is not None and self._events.mode == "events"
        return self.settings.rescan_interval if events else self.settings.scan_interval

    def _watch_events(self) -> None:
        """Start watching the seeds directory once this process leads (and may scan)."""
        if self._events is not None or self.settings.watch == "polling":
            return
        self._events = SeedEvents(self.settings.seeds, self.on_events)
        self._events.start()

    def _refresh(self) -> None:
        """Every second: load what another process's scan wrote (one small query). Not while
        the SQLite file is missing or damaged: connecting would create an empty one; the
        next tick repairs or reconnects first."""
        try:
            if self.store.problem() is None:
                self.service.catch_up()
        except Exception as exc:
            log.debug("catch-up failed: %s", exc)

    def _check_database(self) -> None:
        """A SQLite file deleted, corrupted or replaced under a running process: the scanner
        moves a broken file aside and rebuilds from the seeds; every process reconnects to
        whatever good file is there. Until the rebuild's first scan ends, what this process
        already holds keeps being served."""
        problem = self.store.problem()
        if problem is None:
            return
        if problem is FileProblem.REPLACED:
            log.warning("database %s was replaced: reconnecting", self.store.path)
            self.store.reopen()
        elif self.locks.try_lead():
            self.store.rebuild(problem.value)

    def _scan(self, paths: set[str] | None = None) -> ScanReport | None:
        try:
            report = self.scanner.scan(paths=paths, index=False)
        except ScanError as exc:
            self.last_error = exc.reason
            log.error("scan skipped: %s", exc)
            return None
        except NewerSchema as exc:
            self.last_error = f"database: {exc}"
            log.error("%s: this process stops scanning and keeps serving what it holds", exc)
            self.stepped_down = True
            self.locks.release()
            return None
        except StorageError as exc:
            self.last_error = f"database: {exc}"
            log.error("scan failed, serving what was there: %s", self.last_error)
            return None
        self.last_error = None
        return report

    def start(self) -> None:
        """Start the schedule; the first tick runs at once."""
        scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.settings.scan_interval,
            id="scan",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._refresh,
            "interval",
            seconds=1,
            id="catch-up",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop scheduling, let a running scan finish, and give up the leader lock."""
        if self._events is not None:
            self._events.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.locks.release()
