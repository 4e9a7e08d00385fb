"""The read side: which feeds exist, their validators, and their rendered bytes, kept in memory.

Feeds are read far more often than seeds change, so a request should cost a dictionary
look-up. The service keeps every scope's summary (loaded when the store's generation moves)
and an LRU of rendered feeds keyed by the scope's fingerprint, so a changed scope simply
misses and an unchanged one is never rendered twice. ETags are derived from fingerprints,
not from bytes, so a 304 needs no rendering, and every replica computes the same ones."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import brotli

from feedsvc import __version__
from feedsvc.catalog import Catalog
from feedsvc.config import RENDER_SETTINGS, Settings, settings_key
from feedsvc.feeds import FeedPage, page_count, render
from feedsvc.model import Entry, Format, Html, Scope, ScopeKind, Variant
from feedsvc.pages import render_entry, render_scope_page
from feedsvc.query import PLAIN, FeedQuery, select
from feedsvc.store import ScopeSummary, Store

QUERY_RENDER_WAIT = 0.5  # seconds a filtered render waits for a free slot before Busy
CACHE_ENTRIES = 4096  # Last-Modified values and ETags kept without their documents
# Deleted entries an Atom feed's first page tells of (newest first): enough for a reader
# polling daily to learn of a regeneration's deletions, bounded whatever was deleted.
MAX_TOMBSTONES = 100
# Bytes a cached document costs beyond its bodies and key (its objects and the cache's
# entries), measured: tens of thousands of tiny documents must not outgrow cache_bytes.
DOCUMENT_OVERHEAD = 1536
RENDER_VERSION = "2"  # bump when the bytes change for the same content and settings


class FeedNotFound(LookupError):
    """No such scope, or a page past its end."""


class Busy(RuntimeError):
    """Too many uncached filtered documents are being rendered at once: answered 429."""


class StoreBehind(RuntimeError):
    """The store does not (yet) hold the state this process serves, e.g. while a rebuilt
    database is being filled: cached feeds are still served, others must wait."""


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": lambda body: brotli.compress(body, quality=9),
    "gzip": lambda body: gzip.compress(body, compresslevel=9, mtime=0),
}


@dataclass
class Rendered:
    """A feed document ready to send. Each compressed form is computed the first time a
    client asks for it and kept as long as the document is (deterministically: gzip carries
    no timestamp), so every replica sends the same bytes for the same encoding. ``grew`` is
    told how many bytes each new form adds (the cache that holds it keeps count)."""

    body: bytes
    etag: str
    last_modified: datetime
    media_type: str
    grew: Callable[[int], None] | None = field(default=None, repr=False)
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def encoded(self, encoding: str) -> bytes:
        if encoding == "identity":
            return self.body
        with self._lock:
            form = self._encoded.get(encoding)
            if form is None:
                form = self._encoded[encoding] = ENCODERS[encoding](self.body)
                if self.grew is not None:
                    self.grew(len(form))
            return form


def strong_etag(material: bytes) -> str:
    """The one ETag format: a strong validator from a digest of what identifies the bytes."""
    return '"' + hashlib.sha256(material).hexdigest()[:32] + '"'


class FeedService:
    """Answers 'what is this feed's ETag / bytes' from memory, refreshing from the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._settings_key = settings_key(settings, RENDER_SETTINGS, RENDER_VERSION, __version__)
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._summaries: dict[str, ScopeSummary] = {}
        self._catalog = Catalog.of([])
        # The paths of the feeds and pages that exist, as the site writes them: a request
        # for one is routed by a look-up; any other path is parsed and never kept.
        self._feed_paths: dict[str, tuple[Scope, Format]] = {}
        self._page_paths: dict[str, Scope] = {}
        self._generated: dict[str, tuple[str | None, Rendered]] = {}  # index, OPML: by name
        # Rendered documents, least recently used first, bounded by their bytes in all forms.
        self._cache: OrderedDict[tuple[str, ...], Rendered] = OrderedDict()
        self._sizes: dict[tuple[str, ...], int] = {}  # bytes counted for each document
        self.cached_bytes = 0
        self._last_modified: dict[tuple[str, ...], datetime] = {}
        self._etags: dict[tuple[str, ...], str] = {}
        self._query_renders = threading.BoundedSemaphore(settings.query_renders)
        self.renders = 0  # feed documents rendered by this process (a metric)

    @property
    def generation(self) -> str | None:
        return self._generation

    def refresh(self) -> bool:
        """Reload scope summaries if a scan changed anything; True when it did."""
        generation = self.store.generation()
        if generation is None or generation == self._generation:
            return False
        summaries = {s.scope.key: s for s in self.store.scope_summaries()}
        feed_paths, page_paths = _paths([s.scope for s in summaries.values()])
        with self._lock:
            self._summaries = summaries
            self._feed_paths, self._page_paths = feed_paths, page_paths
            self._catalog = Catalog.of(list(summaries.values()))
            self._generation = generation
            live = {s.fingerprint for s in summaries.values()}
            for key in [k for k in self._cache if k[1] not in live]:
                self._evict(key)
            for key in [k for k in self._last_modified if k[1] not in live]:
                del self._last_modified[key]
            for key in [k for k in self._etags if k[1] not in live]:
                del self._etags[key]
        return True

    def catch_up(self) -> bool:
        """Load what the store holds now; True once this process has loaded the result of
        a finished scan (any replica's), i.e. once it can answer for every feed. It stays
        True: a rebuilt, still empty database keeps what was loaded being served."""
        self.refresh()
        return self._generation is not None

    @property
    def ready(self) -> bool:
        return self._generation is not None

    def feed_at(self, path: str) -> tuple[Scope, Format] | None:
        """The feed a percent-encoded path names, if it is one that exists and is spelt as
        the site spells it (None: parse the path)."""
        return self._feed_paths.get(path)

    def page_at(self, path: str) -> Scope | None:
        """The same for a scope's page."""
        return self._page_paths.get(path)

    def exists(self, scope: Scope) -> bool:
        """Whether the scope has a feed (the whole site always has one)."""
        return scope.key in self._summaries or scope == Scope.all()

    def summaries(self) -> list[ScopeSummary]:
        return list(self._catalog.summaries)

    def catalog(self) -> Catalog:
        """Every feed, arranged (tree, authors, tags), as of the loaded generation."""
        return self._catalog

    def generated(self, name: str, media_type: str, build: Callable[[], bytes]) -> Rendered:
        """A document built from the catalog (the index page, OPML): built once per
        generation, dated by the newest entry."""
        generation = self._generation
        cached = self._generated.get(name)
        if cached is None or cached[0] != generation:
            body = build()
            rendered = Rendered(body, strong_etag(body), self._catalog.newest, media_type)
            cached = self._generated[name] = (generation, rendered)
        return cached[1]

    # The rest of the read side, for the web layer (which never holds the store itself).

    def entry(self, entry_id: str) -> Entry | None:
        return self.store.entry(entry_id)

    def last_scan(self) -> dict[str, Any] | None:
        return self.store.last_scan()

    def scan_error(self) -> str | None:
        return self.store.scan_error()

    def errors(self) -> list[tuple[str, str]]:
        return self.store.errors()

    def database_reachable(self) -> bool:
        return self.store.reachable()

    def websub_counts(self) -> dict[str, int]:
        return self.store.websub_counts()

    def _locate(
        self, scope: Scope, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> tuple[ScopeSummary, int]:
        """The scope's summary and last page. A page past the end is known here for a plain
        document; a filtered one knows its length only once its entries are chosen."""
        summary = self._summaries.get(scope.key)
        if summary is None:
            if scope != Scope.all():
                raise FeedNotFound(f"no feed for {scope.label}")
            summary = ScopeSummary.empty(scope)
        last = page_count(summary.count, limit)
        if page > last and not query.filters:
            raise FeedNotFound(f"page {page} is past the last page ({last})")
        return summary, last

    def _key(
        self, summary: ScopeSummary, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> tuple[str, ...]:
        key = (summary.scope.key, summary.fingerprint, fmt.value, str(page), str(limit))
        return key if query.plain else (*key, query.key)

    def _read(self, scope: Scope, offset: int, limit: int) -> tuple[ScopeSummary, list[Entry]]:
        """Entries of a scope as of the summary this process holds. If the store has moved
        on (a scan committed since the last refresh), catch up first: bytes cached under a
        fingerprint must be exactly the bytes of that fingerprint, in every replica."""
        for _attempt in range(3):
            summary = self._summaries.get(scope.key) or ScopeSummary.empty(scope)
            entries, fingerprint = self.store.page(scope, offset, limit)
            if (fingerprint or "empty") == summary.fingerprint:
                return summary, entries
            self.refresh()  # (or another thread did, since this one read its summary)
            now = self._summaries.get(scope.key) or ScopeSummary.empty(scope)
            if now.fingerprint == summary.fingerprint:
                break  # the store holds a state this process has not loaded yet
        raise StoreBehind("the database does not hold what this process serves yet")

    def _chosen(
        self, scope: Scope, page: int, limit: int, query: FeedQuery
    ) -> tuple[ScopeSummary, int, list[Entry]]:
        """One page of the entries a query chooses, and the number of pages. Filters look at
        the newest ``filter_window`` entries of the scope; a search asks the index over the
        whole scope (its newest ``filter_window`` matches)."""
        window = self.settings.filter_window
        if query.search:
            summary, _ = self._read(scope, 0, 1)  # the state the search must answer for
            candidates = self.store.search(scope, query.search, window)
        else:
            summary, candidates = self._read(scope, 0, window)
        chosen = select(candidates, query)
        last = page_count(len(chosen), limit)
        if page > last:
            raise FeedNotFound(f"page {page} is past the last page ({last})")
        return summary, last, chosen[(page - 1) * limit : page * limit]

    def etag(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> str:
        """The strong ETag of a document, known without rendering it."""
        summary, _last = self._locate(scope, page, limit, query)
        return self._etag(self._key(summary, fmt, page, limit, query), query.plain)

    def _etag(self, key: tuple[str, ...], keep: bool) -> str:
        """Kept (``keep``) for the scope's own documents only: a query's key is as long as
        its query, and any number of queries can be asked for."""
        etag = self._etags.get(key)
        if etag is None:
            etag = strong_etag("\n".join((self._settings_key, *key)).encode())
            if not keep:
                return etag
            with self._lock:
                if len(self._etags) >= CACHE_ENTRIES:
                    self._etags.clear()
                self._etags[key] = etag
        return etag

    def last_modified(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> datetime:
        """The newest update among a page's entries, from one query, without rendering. A
        filtered document is dated by its scope's newest update (it moves when they do)."""
        summary, _last = self._locate(scope, page, limit, query)
        if not query.plain:
            return summary.newest_updated
        key = self._key(summary, fmt, page, limit)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.last_modified
        value = self._last_modified.get(key)
        if value is None:
            summary, entries = self._read(scope, (page - 1) * limit, limit)
            key = self._key(summary, fmt, page, limit)
            value = FeedPage(scope, entries, page, page, limit).updated
            with self._lock:
                if len(self._last_modified) >= CACHE_ENTRIES:
                    self._last_modified.clear()
                self._last_modified[key] = value
        return value

    def cached_feed(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> Rendered | None:
        """The rendered document if it is cached (a dictionary look-up), else None."""
        summary, _last = self._locate(scope, page, limit, query)
        key = self._key(summary, fmt, page, limit, query)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
            return cached

    def feed(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> Rendered:
        """The rendered document (a feed's, or with ``Html.PAGE`` the scope's HTML page),
        from the cache or rendered once now. A query's documents render under a limit on
        how many at once (Busy past it): their number has no bound but the cache's."""
        cached = self.cached_feed(scope, fmt, page, limit, query)
        if cached is not None:
            return cached
        if query.plain:
            return self._render(scope, fmt, page, limit, query)
        if not self._query_renders.acquire(timeout=QUERY_RENDER_WAIT):
            raise Busy("too many filtered documents are being rendered; retry shortly")
        try:
            return self._render(scope, fmt, page, limit, query)
        finally:
            self._query_renders.release()

    def _render(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery
    ) -> Rendered:
        if query.filters:
            summary, last, entries = self._chosen(scope, page, limit, query)
        else:
            summary, entries = self._read(scope, (page - 1) * limit, limit)
            last = page_count(summary.count, limit)
        entries = [query.transform(entry) for entry in entries]
        graves = (
            self.store.tombstones(scope, MAX_TOMBSTONES) if fmt is Format.ATOM and page == 1 else []
        )
        feed_page = FeedPage(
            scope, entries, page, last, limit, tuple(query.params()), tuple(graves)
        )
        if isinstance(fmt, Html):
            body = render_scope_page(self.settings, feed_page, self._catalog).encode("utf-8")
        else:
            body = render(self.settings, feed_page, fmt)
        self.renders += 1
        key = self._key(summary, fmt, page, limit, query)
        last_modified = feed_page.updated if query.plain else summary.newest_updated
        rendered = Rendered(body, self._etag(key, query.plain), last_modified, fmt.media_type)
        return self._keep(key, rendered)

    def entry_page(self, entry_id: str) -> Rendered | None:
        """An entry's HTML page (None: no such entry), rendered once per generation: it
        links the entries beside it in its first category, which any scan may change."""
        key = ("entry:" + entry_id, self._generation or "", Html.PAGE.value, "", "")
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        entry = self.store.entry(entry_id)
        if entry is None:
            return None
        first = entry.categories[0] if entry.categories else None
        newer, older = (
            self.store.neighbours(Scope(ScopeKind.CATEGORY, first), entry_id)
            if first
            else (None, None)
        )
        body = render_entry(self.settings, entry, newer, older).encode("utf-8")
        return self._keep(key, Rendered(body, strong_etag(body), entry.updated, "text/html"))

    def _keep(self, key: tuple[str, ...], rendered: Rendered) -> Rendered:
        """Cache a rendered document (or return the one another thread cached meanwhile)."""
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            self._cache[key] = rendered
            self._sizes[key] = 0
            rendered.grew = partial(self._grew, key)
            # the key counts too (a query's is as long as the query), and what holds it
            self._count(key, len(rendered.body) + sum(map(len, key)) + DOCUMENT_OVERHEAD)
        return rendered

    def _grew(self, key: tuple[str, ...], nbytes: int) -> None:
        """A cached document gained an encoded form."""
        with self._lock:
            self._count(key, nbytes)

    def _count(self, key: tuple[str, ...], nbytes: int) -> None:
        """Count a cached document's new bytes; drop the least recently used documents
        while the cache holds more than ``cache_bytes`` (never the one that just grew).
        The caller holds the lock."""
        if key not in self._cache:
            return
        self._sizes[key] += nbytes
        self.cached_bytes += nbytes
        while self.cached_bytes > self.settings.cache_bytes and len(self._cache) > 1:
            oldest = next(iter(self._cache))
            if oldest == key:
                self._cache.move_to_end(key)
                oldest = next(iter(self._cache))
            self._evict(oldest)

    def _evict(self, key: tuple[str, ...]) -> None:
        """Drop one document (the caller holds the lock)."""
        del self._cache[key]
        self.cached_bytes -= self._sizes.pop(key)

    def document(self, scope: Scope, fmt: Format) -> bytes | None:
        """The bytes of a feed's default document (first page, default limit) as served now;
        None when there is no such feed."""
        try:
            return self.feed(scope, fmt, 1, self.settings.feed_limit).body
        except FeedNotFound:
            return None


def _paths(scopes: list[Scope]) -> tuple[dict[str, tuple[Scope, Format]], dict[str, Scope]]:
    """Every feed's and every page's path on the site, for the scopes that exist."""
    every = [Scope.all(), *scopes]
    feeds = {scope.url_path(fmt): (scope, fmt) for scope in every for fmt in Format}
    return feeds, {scope.page_path: scope for scope in every}
