"""WebSub publishing: after a scan changes feeds, tell every hub which feed documents changed.

A scan reports the feeds (scopes) whose entries changed; a hub is pinged for a feed URL only
when that document's bytes changed since the hubs were last told of it (its digest is kept
in the store, so a restart or another replica's scanner remembers it). An edit to an entry
that is not on a feed's first page changes that feed's ETag, not the document a hub fetches.

The work goes on in one background thread, so neither a scan nor a request ever waits for a
hub. A feed already waiting is not queued twice. Each ping is retried with exponential
backoff on network errors, 5xx and 429; other 4xx answers are final. Counts are kept in the
store, so /status shows the same figures whichever worker or replica answers."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import requests

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.model import Format, Scope
from feedsvc.routes import document_url
from feedsvc.store import Store

log = logging.getLogger(__name__)

# The bytes of a feed's default document as served now; None when the feed is gone.
Document = Callable[[Scope, Format], bytes | None]


class WebSubPublisher:
    """Queues changed feeds and pings the hubs, in the background, for each document of
    theirs whose bytes changed."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        document: Document,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (3.05, 10.0),
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self._store = store
        self._document = document
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"feedsvc/{__version__} (WebSub publisher)"
        self._pending: OrderedDict[Scope, bool] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {"sent": 0, "failed": 0, "retries": 0}

    def feeds_changed(self, scopes: list[Scope], baseline: bool = False) -> None:
        """Queue the feeds a scan changed; returns at once. After a ``baseline`` scan (the
        first into an empty store: nothing is news to anyone) their digests are only
        recorded, so that later pings go out for real changes only."""
        with self._cond:
            for scope in scopes:
                self._pending[scope] = self._pending.get(scope, False) or not baseline
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
                scope, announce = self._pending.popitem(last=False)
            try:
                changed = self._changed_documents(scope)
            except Exception:
                log.exception("could not tell whether the documents of %s changed", scope.key)
                continue
            urls = changed if announce else []
            for url in urls:
                for hub in self.settings.websub_hubs:
                    outcome = "sent" if self._publish(hub, url) else "failed"
                    self.counts[outcome] += 1
            if urls or not self.pending:
                self._record_counts()

    def _changed_documents(self, scope: Scope) -> list[str]:
        """The feed's URLs whose bytes differ from what the hubs were last told (or were
        never told), recorded now as told: a ping that fails for good is not sent again for
        the same bytes."""
        digests: dict[str, str | None] = {}
        for fmt in Format:
            body = self._document(scope, fmt)
            url = document_url(self.settings, scope, fmt)
            digests[url] = hashlib.sha256(body).hexdigest() if body is not None else None
        told = self._store.pinged_digests(list(digests))
        changed = {url: digest for url, digest in digests.items() if told.get(url) != digest}
        if changed:
            self._store.record_pinged(changed)
        return list(changed)

    def _record_counts(self) -> None:
        try:
            self._store.record_websub({**self.counts, "pending": self.pending})
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
