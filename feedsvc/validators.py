"""A document's validators (its strong ETag and Last-Modified), by one rule for the render
that makes the document and for the 304 that answers from memory without it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from feedsvc.feeds import FeedPage
from feedsvc.model import EPOCH, Format, Html, Variant
from feedsvc.store import ScopeMembers, ScopeSummary

KNOWN_DOCUMENTS = 4096  # validators kept without their documents

Validators = tuple[str, datetime]  # (ETag, Last-Modified)


def strong_etag(material: bytes) -> str:
    """The one ETag format: a strong validator from a digest of what identifies the bytes."""
    return '"' + hashlib.sha256(material).hexdigest()[:32] + '"'


def document_etag(
    render_key: str,
    summary: ScopeSummary,
    fmt: Variant,
    page: FeedPage,
    digests: list[bytes] | None = None,
) -> str:
    """The strong ETag of a document: a digest of everything its bytes are made of, the
    entries as stored (before a query transforms them; ``digests``: theirs, when the page
    holds none). An HTML page also shows its scope's sub-categories and counts: its scope's
    fingerprint stands for them."""
    # (JSON Feed shows no last page, only whether there is a next one)
    last = str(page.page < page.last_page) if fmt is Format.JSON else str(page.last_page)
    head = [summary.scope.key, fmt.value, str(page.page), last, str(page.limit)]
    parts = [render_key.encode(), "\n".join([*head, urlencode(page.params), ""]).encode()]
    if isinstance(fmt, Html):
        parts.append(summary.fingerprint.encode())
    parts += [entry.digest() for entry in page.entries] if digests is None else digests
    parts += [f"-{entry_id}:{when.timestamp()}".encode() for entry_id, when in page.tombstones]
    return strong_etag(b"".join(parts))


def from_members(
    render_key: str,
    summary: ScopeSummary,
    members: ScopeMembers,
    fmt: Variant,
    page: int,
    last: int,
    limit: int,
) -> Validators:
    """A plain document's validators from what a process holds of its scope: the same as
    rendering it gives (the ETag from the same digests, Last-Modified from the same times),
    with no read."""
    start = (page - 1) * limit
    graves = members.graves if fmt is Format.ATOM and page == 1 else ()
    shown = FeedPage(summary.scope, [], page, last, limit, (), graves)
    digests = members.digests_of(start, start + limit)
    times = [*members.updated[start : start + limit], *members.stored[start : start + limit]]
    modified = max(
        datetime.fromtimestamp(max(times, default=0), UTC),
        shown.updated,
        members.graves[0][1] if members.graves else EPOCH,
    )
    return document_etag(render_key, summary, fmt, shown, digests), modified


class KnownValidators:
    """Plain documents' validators by the key they are rendered under, kept without the
    documents (bounded: KNOWN_DOCUMENTS, then it starts again); safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, ...], Validators] = {}

    def get(self, key: tuple[str, ...]) -> Validators | None:
        return self._known.get(key)

    def remember(self, key: tuple[str, ...], etag: str, modified: datetime) -> Validators:
        with self._lock:
            if len(self._known) >= KNOWN_DOCUMENTS:
                self._known.clear()
            known = self._known[key] = (etag, modified)
        return known

    def keep_only(self, wanted: Callable[[tuple[str, ...]], bool]) -> None:
        """Forget every document's whose key is not ``wanted`` (e.g. of a state gone by)."""
        with self._lock:
            for key in [key for key in self._known if not wanted(key)]:
                del self._known[key]
