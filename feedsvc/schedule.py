"""The watcher: scans on a schedule in the replica that holds the leader lock, and keeps every
replica's in-memory feeds in step with the store.

APScheduler runs one job every ``scan_interval`` seconds, first at start-up. ``max_instances=1``
keeps two ticks of one process apart; the scan lock keeps scans of different processes apart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from feedsvc.config import Settings
from feedsvc.locks import ScanLocks
from feedsvc.model import Scope
from feedsvc.scan import ScanError, Scanner, ScanReport
from feedsvc.service import FeedService
from feedsvc.store import Store

log = logging.getLogger(__name__)

# Told of the feeds a scan changed, and whether it was the store's first (baseline) scan.
ChangeListener = Callable[[list[Scope], bool], None]


class Watcher:
    """Owns the scan schedule of one process and what it knows about the last scan."""

    def __init__(self, store: Store, settings: Settings, service: FeedService) -> None:
        self.store = store
        self.settings = settings
        self.service = service
        self.locks = ScanLocks(store.engine)
        self.scanner = Scanner(store, settings, self.locks)
        self.listeners: list[ChangeListener] = []
        self.last_error: str | None = None
        self.ready = False
        self._scheduler: BackgroundScheduler | None = None
        self._tick_lock = threading.Lock()

    @property
    def is_scanner(self) -> bool:
        return self.locks.is_leader

    def tick(self) -> None:
        """Scan if this process leads, then pick up whatever any scan changed."""
        with self._tick_lock:
            try:
                self._check_database()
                report = self._scan() if self.locks.try_lead() else None
                self.catch_up()
                if report is not None and report.changed_scopes:
                    # told once this process serves what the scan wrote
                    for listener in self.listeners:
                        listener(report.changed_scopes, report.baseline)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("watcher tick failed")

    def catch_up(self) -> bool:
        """Load what the store holds now; True once this process has loaded the result of a
        finished scan (any replica's), i.e. once it can answer for every feed."""
        scanned = self.store.last_scan() is not None
        self.service.refresh()
        self.ready = self.ready or scanned
        return self.ready

    def _check_database(self) -> None:
        """A SQLite file deleted, corrupted or replaced under a running process: the scanner
        moves a broken file aside and rebuilds from the seeds; every process reconnects to
        whatever good file is there. Until the rebuild's first scan ends, what this process
        already holds keeps being served."""
        problem = self.store.problem()
        if problem is None:
            return
        if problem == "was replaced":
            log.warning("database %s was replaced: reconnecting", self.store.path)
            self.store.reopen()
        elif self.locks.try_lead():
            self.store.rebuild(problem)

    def _scan(self) -> ScanReport | None:
        try:
            report = self.scanner.scan()
        except ScanError as exc:
            self.last_error = str(exc)
            log.error("scan skipped: %s", exc)
            return None
        except SQLAlchemyError as exc:
            self.last_error = f"database: {getattr(exc, 'orig', exc)}"
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
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop scheduling, let a running scan finish, and give up the leader lock."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.locks.release()
