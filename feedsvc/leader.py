"""The leader: the one process per database that scans. `feedsvc serve` runs it as a process
of its own beside the serving workers (feedsvc.supervise), so parsing never shares a GIL
with requests and its pool ends with each scan; the serving workers only read
(feedsvc.follower).

Every replica runs a leader process; the leader lock (feedsvc.locks) lets one of them lead.
It watches the seeds directory for filesystem events (feedsvc.events) and scans just the
files they name, within a short debounce; a full scan (stat only for unchanged files) runs
every ``rescan_interval`` seconds as a safety net. Where events cannot be had, or with
``watch = "polling"``, a full scan runs every ``scan_interval`` seconds instead. APScheduler
runs the tick every ``scan_interval`` seconds (first at start-up; between full scans it only
retires missing files whose grace has passed); ``max_instances=1`` keeps two ticks apart and
the scan lock keeps scans of different processes apart. After a scan's commit the search
index catches up, in transactions of its own, and the WebSub hubs are told."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import logging.config
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from feedsvc.config import Settings
from feedsvc.events import SeedEvents
from feedsvc.locks import ScanLocks
from feedsvc.logs import log_config
from feedsvc.model import Scope
from feedsvc.prerender import prerender
from feedsvc.scan import ScanError, Scanner, ScanReport
from feedsvc.service import FeedService
from feedsvc.shared import LEADER_STATE, replica, say_of_leader, tell_committed
from feedsvc.store import NewerSchema, SchemaRefused, StorageError, Store, StoreProblem
from feedsvc.websub import WebSubPublisher

log = logging.getLogger(__name__)

# Told of the feeds a scan changed, and whether it was the store's first (baseline) scan.
ChangeListener = Callable[[list[Scope], bool], None]
PROCESS_NAME = b"feedsvc-leader"  # what ps and /proc/PID/comm show
_PR_SET_NAME, _PR_SET_PDEATHSIG = 15, 1


class Leader:
    """Leads when it can: scans, repairs the SQLite file, renders parts, indexes, and says
    how it went to the other processes of its server (LEADER_STATE) and to other replicas
    (the store)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.locks = ScanLocks(store.engine, store.path)
        self.scanner = Scanner(store, settings, self.locks)
        self.listeners: list[ChangeListener] = []
        self.on_lead: list[Callable[[], None]] = []  # called as this process takes the lead
        self.last_error: str | None = None  # the last scan's failure
        self._published_error: str | None = None  # what the store says of it
        self._scheduler: BackgroundScheduler | None = None
        self._tick_lock = threading.Lock()
        self._events: SeedEvents | None = None
        self._last_full = float("-inf")
        self._rendered_at: str | None = None  # the generation whose parts are all kept
        self._stopping = threading.Event()  # the search index stops between its batches
        self.stepped_down = False  # a newer feedsvc owns the database: never lead again
        self.replica = replica()

    @property
    def watch_mode(self) -> str:
        """How changes are noticed: "events", or "polling" (and why)."""
        if self.settings.watch == "polling" or self._events is None:
            return "polling"
        return self._events.mode

    def tick(self) -> None:
        """Scan if this process leads (fully when a full scan is due, else only the files
        already missing)."""
        with self._tick_lock:
            led = self.locks.is_leader
            try:
                self._check_database()
                if self.locks.is_leader and not self.locks.still_leading():
                    led = False
                    log.error(
                        "the leader lock was lost with its database session: leading "
                        "again only if no other replica has taken it"
                    )
                if not self.stepped_down and self.locks.try_lead():
                    if self.store.get_meta("scanner") != self.replica:
                        self.store.set_meta("scanner", self.replica)
                    if not led:
                        self._took_the_lead()
                    self._watch_events()
                    self._publish_state()  # (how it watches, before a first long scan)
                    # a tick comes every scan_interval: half of one is slack for its jitter
                    slack = self.settings.scan_interval / 2
                    due = time.monotonic() - self._last_full >= self._full_interval() - slack
                    self._scan_and_tell(None if due else set())
            except StorageError as exc:
                self._unavailable(exc)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("leader tick failed")
            self._publish_state()

    def _took_the_lead(self) -> None:
        """Tell whoever asked that this process leads now (before its first scan)."""
        for listener in self.on_lead:
            try:
                listener()
            except StorageError as exc:
                log.warning("database unavailable as this process took the lead: %s", exc)
            except Exception:
                log.exception("taking the lead failed")

    def _publish_state(self) -> None:
        """Say how scanning goes where every worker of this server reads it, and record the
        last failure (null once a scan succeeds) in the store for the other replicas (which
        a full disk or a read-only database cannot carry: see feedsvc.follower)."""
        if not (self.locks.is_leader or self.stepped_down):
            return
        say_of_leader(self.last_error, self.watch_mode, stepped_down=self.stepped_down)
        if self.stepped_down or self.last_error == self._published_error:
            return  # (a database a newer feedsvc owns is never written)
        try:
            self.store.record_scan_error(self.last_error)
            self._published_error = self.last_error
        except StorageError as exc:
            log.debug("cannot record the scan error: %s", exc)

    def step_down(self, exc: SchemaRefused) -> None:
        """A newer feedsvc owns the database: stop scanning for good, and say why."""
        self.last_error = f"database: {exc}"
        log.error("%s: this replica stops scanning and keeps serving what it holds", exc)
        self.stepped_down = True
        self.locks.release()
        self._publish_state()

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
        error = f"database: {exc}"
        # (once, and again when the reason changes: not a line per tick for a long outage)
        level = logging.WARNING if error != self.last_error else logging.DEBUG
        log.log(level, "database unavailable (%s): retrying at the next tick", exc)
        self.last_error = error

    def _scan_and_tell(self, paths: set[str] | None) -> None:
        started = time.monotonic()
        report = self._scan(paths)
        if report is None:  # failed: what it was to look at is looked at by a full scan
            self._last_full = float("-inf")
            return
        if paths is None:
            self._last_full = started
        if report.changed_scopes:
            for listener in self.listeners:
                listener(report.changed_scopes, report.baseline)
        self._prerender()  # once the feeds are live
        self.scanner.index_search(self._stopping.is_set)
        if report.added or report.updated or report.removed:
            _trim_heap()

    def _prerender(self) -> None:
        """Render the parts of what the scans stored, whenever one changed what is served
        since the last time (or this process has not looked yet)."""
        generation = self.store.generation()
        if generation == self._rendered_at:
            return
        prerender(self.store, self.settings, self._stopping.is_set)
        if not self._stopping.is_set():
            self._rendered_at = generation

    def _full_interval(self) -> int:
        events = self._events is not None and self._events.mode == "events"
        return self.settings.rescan_interval if events else self.settings.scan_interval

    def _watch_events(self) -> None:
        """Start watching the seeds directory once this process leads (and may scan)."""
        if self._events is not None or self.settings.watch == "polling":
            return
        self._events = SeedEvents(self.settings.seeds, self.on_events)
        self._events.start()

    def _check_database(self) -> None:
        """A SQLite file deleted, corrupted or replaced under a running process: the leader
        moves a broken file aside and rebuilds from the seeds, or reconnects to whatever
        good file is there (as every serving worker does). A PostgreSQL schema emptied
        under it is rebuilt the same way; one dropped is an outage until it is created
        again (feedsvc creates tables, never schemas)."""
        problem = self.store.problem()
        if problem is None:
            return
        if problem is StoreProblem.REPLACED:
            log.warning("database %s was replaced: reconnecting", self.store.path)
            self.store.reopen()
        elif problem is StoreProblem.SCHEMA_DROPPED:
            raise StorageError(f"{self.store.where} {problem.value}: create it again")
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
            self.step_down(exc)
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
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop scheduling, let a running scan commit, and give up the leader lock."""
        self._stopping.set()
        if self._events is not None:
            self._events.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.locks.release()


def run(settings: Settings, upgrade: bool, parent: int) -> None:
    """The leader process's life: lead (or wait to) until SIGTERM, then let the scan in
    progress commit and leave; leave too when the server that started it dies."""
    _bind_to_parent(parent)
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format, "stdout"))
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("leader: %s: stopping once the scan in progress commits", signal.strsignal(signum))
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C and a reload reach every process of the group: the server stops (or reloads
    # its workers) and then tells this one, once its workers have finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    LEADER_STATE.set(None)  # (whatever the supervisor said while this process was down)
    try:
        store = Store(settings.db, wait=True, upgrade=upgrade)
    except SchemaRefused as exc:  # (a newer feedsvc took the database while this restarted)
        say_of_leader(f"database: {exc}", "not scanning", stepped_down=True)
        log.error("%s: this replica does not scan", exc)
        _wait(stopping)
        return
    leader = Leader(store, settings)
    leader.listeners.append(lambda _scopes, _baseline: tell_committed())
    publisher = None
    if settings.websub_hubs:
        service = FeedService(store, settings)  # the documents whose digests hubs are told of
        publisher = WebSubPublisher(settings, store, service.document)

        def load(_scopes: list[Scope], _baseline: bool) -> None:
            service.refresh()  # what the scan wrote, before any digest is taken

        def lead() -> None:
            service.refresh()  # (what other replicas' leaders wrote meanwhile)
            publisher.leading()

        leader.listeners += [load, publisher.feeds_changed]
        leader.on_lead.append(lead)
        publisher.start()
    leader.start()
    _wait(stopping)
    leader.stop()
    if publisher is not None:
        publisher.stop()
    store.close()
    log.info("leader: stopped")


def _wait(stopping: threading.Event) -> None:
    """Until a signal handler sets ``stopping``. The kernel may hand the signal to any
    thread, and Python runs handlers only in this one, between its bytecodes: a wait with
    no timeout could sleep through it, so this one wakes up to run them."""
    while not stopping.wait(0.25):
        pass


def _trim_heap() -> None:
    """Give the memory a scan's batches freed back to the system: glibc keeps it in its
    arenas otherwise, and the leader would hold its biggest scan's peak for its whole life."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _bind_to_parent(parent: int) -> None:
    """Name this process, and have the kernel send it SIGTERM when the server that started
    it dies, however it dies (kill -9 included): no leader outlives its server."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux with glibc: the parent check below stays
        pass
    if os.getppid() != parent:  # it died before the request was made
        os._exit(0)
