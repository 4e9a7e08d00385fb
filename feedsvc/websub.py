"""WebSub publishing: after a scan changes feeds, tell every hub which feed documents changed.

A scan reports the feeds (scopes) whose entries changed; a hub is pinged for a feed URL only
when that document's bytes changed since the hubs were last told of it (its digest is kept
in the store, so a restart or another replica's leader remembers it). An edit to an entry
that is not on a feed's first page changes that feed's ETag, not the document a hub fetches.

Neither a scan nor a request ever waits for a hub: one thread finds the changed documents,
and each hub has a thread and a queue of its own, so a hub that hangs delays only its own
pings. A URL already waiting for a hub is not queued twice. Each ping is retried with
exponential backoff on network errors, 5xx and 429; other 4xx answers and redirects are
final, and a hub's answer body is never read. A hub that never answers one ping is given up
on for everything queued for it at that moment. A digest is recorded as told once every hub
has had its ping (or given up on it): pings still queued when the leader stops or dies are
sent by the next leader, which compares what it serves with what the hubs were told as soon
as it leads (a URL never told of is news too, once hubs were told of anything here). Counts are kept in the store, so /status
shows the same figures whichever worker or replica answers, across changes of leader."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum, IntEnum
from typing import Any, TypeVar

import requests

from feedsvc import __version__, deadline
from feedsvc.config import Settings
from feedsvc.model import Format, Scope
from feedsvc.routes import document_url
from feedsvc.store import Store

log = logging.getLogger(__name__)

# The bytes of a feed's default document as served now; None when the feed is gone.
Document = Callable[[Scope, Format], bytes | None]
Digest = str | None  # of a document's bytes; None: the feed is gone
ANSWER_SECONDS = 10.0  # for a hub's answer to a try, however it trickles in
K = TypeVar("K")
V = TypeVar("V")


class Mode(IntEnum):
    """What a feed's changed documents are to the hubs (the higher wins when queued twice)."""

    RECORD = 0  # a baseline scan, the first into an empty store: news to nobody
    RECONCILE = 1  # a new leader: ping what differs from what hubs were told of it
    ANNOUNCE = 2  # a scan changed it: ping every document that differs


class Outcome(Enum):
    """How a ping ended."""

    SENT = "sent"
    REFUSED = "refused"  # a final answer (4xx but 429, or a redirect)
    UNANSWERED = "unanswered"  # no answer, or 5xx and 429, at every try


class WebSubPublisher:
    """Queues changed feeds, finds their documents whose bytes changed, and has each hub's
    thread ping it of them, in the background."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        document: Document,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (3.05, ANSWER_SECONDS),
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self._store = store
        self._document = document
        self._pending: OrderedDict[Scope, Mode] = OrderedDict()
        self._cond = threading.Condition()  # guards everything below, hubs' queues too
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._hubs = [_Hub(url) for url in settings.websub_hubs]
        # A URL whose digest is not recorded yet, and the hubs still to be told of it.
        self._untold: dict[str, tuple[Digest, set[str]]] = {}
        self.counts = {"sent": 0, "failed": 0, "retries": 0}
        # Whether hubs were ever told of anything here (else nothing is news to them yet).
        self._told_any = False

    def feeds_changed(self, scopes: list[Scope], baseline: bool = False) -> None:
        """Queue the feeds a scan changed; returns at once. After a ``baseline`` scan their
        digests are only recorded, so that later pings go out for real changes only."""
        self._queue(scopes, Mode.RECORD if baseline else Mode.ANNOUNCE)

    def leading(self) -> None:
        """This process has just become the leader: carry on the counts where the last
        leader left them, and ping the hubs of every feed whose documents differ from
        what they were told (what a leader that stopped or died had still to send)."""
        counts = self._store.websub_counts()
        told_any = self._store.pinged_any()
        with self._cond:
            self.counts = {name: int(counts.get(name, 0)) for name in self.counts}
            self._told_any = told_any
        self._queue([summary.scope for summary in self._store.scope_summaries()], Mode.RECONCILE)

    def _queue(self, scopes: list[Scope], mode: Mode) -> None:
        with self._cond:
            for scope in scopes:
                self._pending[scope] = max(self._pending.get(scope, mode), mode)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Feeds still to be looked at, and pings still to be sent (or under way)."""
        with self._cond:
            return len(self._pending) + sum(len(hubs) for _d, hubs in self._untold.values())

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, name="websub", daemon=True)]
        self._threads += [
            threading.Thread(target=self._tell, args=(hub,), name="websub-hub", daemon=True)
            for hub in self._hubs
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop, waiting ``timeout`` in all for the pings in flight: what is not told by
        then, and what is still queued, is the next leader's to send."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for hub in self._hubs:
            hub.session.close()

    def _next(self, queue: OrderedDict[K, V]) -> tuple[K, V] | None:
        """The first of a queue, once there is one; None once the publisher stops."""
        with self._cond:
            while not queue and not self._stopping.is_set():
                self._cond.wait()
            return None if self._stopping.is_set() else queue.popitem(last=False)

    def _run(self) -> None:
        while (item := self._next(self._pending)) is not None:
            scope, mode = item
            try:
                self._look_at(scope, mode)
            except Exception:
                log.exception("could not tell whether the documents of %s changed", scope.key)

    def _look_at(self, scope: Scope, mode: Mode) -> None:
        """Queue a ping to every hub for each of the feed's documents whose bytes differ
        from what the hubs were (or are being) told; record the rest as told at once."""
        digests: dict[str, Digest] = {}
        for fmt in Format:
            body = self._document(scope, fmt)
            url = document_url(self.settings, scope, fmt)
            digests[url] = hashlib.sha256(body).hexdigest() if body is not None else None
        told = self._store.pinged_digests(list(digests))
        record: dict[str, Digest] = {}
        queued = False
        with self._cond:
            for url, digest in digests.items():
                last = self._untold[url][0] if url in self._untold else told.get(url)
                if last == digest:
                    continue
                if mode is Mode.RECORD or (mode is Mode.RECONCILE and not self._told_any):
                    record[url] = digest
                    continue
                self._untold[url] = (digest, {hub.url for hub in self._hubs})
                for hub in self._hubs:
                    hub.queue[url] = digest
                queued = True
            self._cond.notify_all()
        if record:
            self._store.record_pinged(record)
        if queued or not self.pending:
            self._record_counts()

    def _tell(self, hub: _Hub) -> None:
        """A hub's thread: its pings, one at a time, in the order they were queued. A hub
        that has not answered any try of one ping is given up on for everything queued for
        it then (each would take as long): their digests are recorded, as for the other
        hubs, and the next change pings it again."""
        while (item := self._next(hub.queue)) is not None:
            url, digest = item
            outcome = self._publish(hub, url)
            if self._stopping.is_set() and outcome is not Outcome.SENT:
                return  # (not told: the next leader sends it)
            self._told(hub.url, url, digest, outcome is Outcome.SENT)
            if outcome is Outcome.UNANSWERED:
                with self._cond:
                    dropped = list(hub.queue.items())
                    hub.queue.clear()
                if dropped:
                    log.error(
                        "WebSub hub %s is not answering: giving up the %d more pings queued for it",
                        hub.url,
                        len(dropped),
                    )
                for url, digest in dropped:
                    self._told(hub.url, url, digest, False)

    def _told(self, hub: str, url: str, digest: Digest, sent: bool) -> None:
        """A hub's ping is over; the digest is recorded once every hub's is."""
        with self._cond:
            self.counts["sent" if sent else "failed"] += 1
            untold = self._untold.get(url)
            done = untold is not None and untold[0] == digest
            if untold is not None and done:
                untold[1].discard(hub)
                done = not untold[1]
                if done:
                    del self._untold[url]
        if done:
            try:
                self._store.record_pinged({url: digest})
            except Exception:
                log.exception("could not record the WebSub ping for %s", url)
        self._record_counts()

    def _record_counts(self) -> None:
        try:
            self._store.record_websub({**self.counts, "pending": self.pending})
        except Exception:
            log.exception("could not record WebSub counts")

    def _publish(self, hub: _Hub, url: str) -> Outcome:
        data = {"hub.mode": "publish", "hub.url": url}
        for attempt in range(self.attempts):
            if attempt:
                with self._cond:
                    self.counts["retries"] += 1
                if self._stopping.wait(self.backoff * 2 ** (attempt - 1)):
                    return Outcome.UNANSWERED
            try:
                # Streamed, and closed unread: a hub's body, however big, is never read. A
                # redirect is an answer, not followed: the ping goes to the hub configured.
                with hub.session.post(
                    hub.url, data=data, timeout=self.timeout, stream=True, allow_redirects=False
                ) as response:
                    status = response.status_code
            except requests.RequestException as exc:
                reason: Any = exc
            else:
                if status < 300:
                    return Outcome.SENT
                reason = f"HTTP {status}"
                if status < 500 and status != 429:
                    log.error("WebSub ping to %s for %s refused: %s", hub.url, url, reason)
                    return Outcome.REFUSED
            log.warning(
                "WebSub ping to %s for %s failed (attempt %d): %s",
                hub.url,
                url,
                attempt + 1,
                reason,
            )
        log.error("WebSub ping to %s for %s gave up", hub.url, url)
        return Outcome.UNANSWERED


class _Hub:
    """One hub: the URLs it is still to be told of (the newest digest of each), in order,
    and its own connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: OrderedDict[str, Digest] = OrderedDict()  # (guarded by the publisher's lock)
        self.session = deadline.session(ANSWER_SECONDS)
        self.session.headers["User-Agent"] = f"feedsvc/{__version__} (WebSub publisher)"
