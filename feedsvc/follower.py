"""A serving worker's side of the scanning: it never scans, writes or holds a pool. It loads
what a scan committed as soon as its server's leader says so, and every second in any case
(one small query when nothing moved: other replicas' leaders say nothing), and reconnects to
a SQLite file replaced under it; it answers /status and /metrics about its replica's leader
process from what that process shares (feedsvc.shared) and from the store."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import watchfiles

from feedsvc.service import FeedService
from feedsvc.shared import COMMITS_ENV, LEADER_STATE, replica
from feedsvc.store import Store, StoreProblem

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 1.0


class Follower:
    """Keeps one serving process's read side in step with the store."""

    def __init__(self, store: Store, service: FeedService) -> None:
        self.store = store
        self.service = service
        self.replica = replica()
        self._parent = os.getppid()  # the server: a worker never outlives it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this replica leads (its leader process holds the leader lock): the leader
        records its replica in the store, so every worker answers alike; not while the
        leader process is down (its supervisor says so)."""
        word = self._shared()
        if word is not None and word.get("down"):
            return False
        return self.store.get_meta("scanner") == self.replica

    def scan_error(self) -> str | None:
        """Why the last scan failed (None: it did not): this replica's leader's own word
        where it leads or has stepped down, else the leading replica's, from the store."""
        word = self._leaders_word()
        return word["error"] if word is not None else self.store.scan_error()

    @property
    def watch_mode(self) -> str:
        """How this replica's leader notices changes: "events", "polling" (and why), or
        that this replica does not lead."""
        word = self._leaders_word()
        return str(word["watch"]) if word is not None else "not scanning here"

    def _leaders_word(self) -> dict[str, Any] | None:
        """What this replica's leader (or its supervisor, while it is down) last said, if
        it leads, stepped down or is down; None otherwise."""
        word = self._shared()
        if word is None:
            return None
        return word if word.get("down") or word["stepped_down"] or self.is_leader else None

    def _shared(self) -> dict[str, Any] | None:
        shared = LEADER_STATE.get()
        if not isinstance(shared, dict) or shared.get("replica") != self.replica:
            return None
        return shared

    def catch_up(self) -> None:
        """Load what another process's scan wrote. Not while the SQLite file is missing or
        damaged (connecting would create an empty one): the leader repairs it, and a
        replaced file is reconnected to."""
        try:
            problem = self.store.problem()
            if problem is StoreProblem.REPLACED:
                log.warning("database %s was replaced: reconnecting", self.store.path)
                self.store.reopen()
                problem = self.store.problem()
            if problem is None:
                self.service.catch_up()
        except Exception as exc:
            log.debug("catch-up failed: %s", exc)

    def _ticks(self) -> Iterator[None]:
        """Every CATCH_UP_SECONDS (what other replicas' leaders commit is seen so), and at
        once when this server's leader says it committed (feedsvc.shared.tell_committed)."""
        named = os.environ.get(COMMITS_ENV)
        if named:
            told = os.path.abspath(named)
            try:
                yield from (
                    None
                    for _changes in watchfiles.watch(
                        os.path.dirname(told),
                        watch_filter=lambda _change, path: path == told,
                        stop_event=self._stop,
                        rust_timeout=int(CATCH_UP_SECONDS * 1000),
                        yield_on_timeout=True,
                        debounce=100,
                        step=10,
                        recursive=False,
                        raise_interrupt=False,
                    )
                )
                return
            except (OSError, RuntimeError) as exc:  # (e.g. no inotify watch left)
                log.warning("cannot watch for the leader's commits (%s): polling", exc)
        while not self._stop.wait(CATCH_UP_SECONDS):
            yield

    def _run(self) -> None:
        for _tick in self._ticks():
            if os.getppid() != self._parent:  # the server died (kill -9): so does this worker
                log.error("the server (pid %d) is gone: this worker stops", self._parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self.catch_up()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="catch-up", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
