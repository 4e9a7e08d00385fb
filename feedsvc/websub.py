"""WebSub publishing: after a scan changes feeds, tell every hub which feed URLs changed.

Pings go out from one background thread, so neither a scan nor a request ever waits for a
hub. A URL already waiting is not queued twice. Each ping is retried with exponential
backoff on network errors, 5xx and 429; other 4xx answers are final. Counts are kept in the
store, so /status shows the same figures whichever worker or replica answers."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import requests

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.feeds import feed_url
from feedsvc.model import Format, Scope

log = logging.getLogger(__name__)

Recorder = Callable[[dict[str, int]], None]


class WebSubPublisher:
    """Queues (hub, feed URL) pings and sends them in the background."""

    def __init__(
        self,
        settings: Settings,
        record: Recorder | None = None,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (3.05, 10.0),
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self._record = record
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"feedsvc/{__version__} (WebSub publisher)"
        self._pending: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {"sent": 0, "failed": 0, "retries": 0}

    def feeds_changed(self, scopes: list[Scope]) -> None:
        """Queue one ping per hub and per changed feed URL (each format); returns at once."""
        with self._cond:
            for hub in self.settings.websub_hubs:
                for scope in scopes:
                    for fmt in Format:
                        self._pending[(hub, feed_url(self.settings, scope, fmt))] = None
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="websub", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the ping in flight; pings still queued are dropped (hubs re-fetch anyway)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._session.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._pending and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                (hub, url), _ = self._pending.popitem(last=False)
            outcome = "sent" if self._publish(hub, url) else "failed"
            self.counts[outcome] += 1
            pending = self.pending
            # Record when the queue drains, and now and then during a long wave of pings.
            if self._record is not None and (pending == 0 or self.counts[outcome] % 50 == 0):
                try:
                    self._record({**self.counts, "pending": pending})
                except Exception:
                    log.exception("could not record WebSub counts")

    def _publish(self, hub: str, url: str) -> bool:
        data = {"hub.mode": "publish", "hub.url": url}
        for attempt in range(self.attempts):
            if attempt:
                self.counts["retries"] += 1
                if self._stopping.wait(self.backoff * 2 ** (attempt - 1)):
                    return False
            try:
                response = self._session.post(hub, data=data, timeout=self.timeout)
            except requests.RequestException as exc:
                reason: Any = exc
            else:
                if response.ok:
                    return True
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            log.warning(
                "WebSub ping to %s for %s failed (attempt %d): %s", hub, url, attempt + 1, reason
            )
        log.error("WebSub ping to %s for %s gave up", hub, url)
        return False
