"""The read side: which feeds exist, their validators, and their rendered bytes, kept in memory.

Feeds are read far more often than seeds change, so a request should cost a dictionary
look-up. The service keeps every scope's summary (loaded when the store's generation moves)
and an LRU of rendered feeds keyed by the scope's fingerprint, so a changed scope simply
misses and an unchanged one is never rendered twice. A document's ETag is a digest of what
its bytes are made of (the settings, the page's place, the entries and tombstones it shows),
so it moves exactly when the bytes do (a deletion beyond page 1, or one RSS cannot show,
moves nothing), every replica computes the same one, and a 304 needs no rendering."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from feedsvc.catalog import Catalog
from feedsvc.config import Settings
from feedsvc.doccache import DocumentCache, Rendered
from feedsvc.feeds import PART_FORMATS, FeedPage, assemble, page_count, render, render_key, shown
from feedsvc.model import EPOCH, Entry, Format, Html, Scope, ScopeKind, Variant
from feedsvc.pages import render_entry, render_scope_page
from feedsvc.query import PLAIN, FeedQuery, select
from feedsvc.routes import feed_path, page_path
from feedsvc.store import EntryPart, ScopeMembers, ScopeSummary, Store
from feedsvc.validators import KnownValidators, document_etag, from_members, strong_etag

QUERY_RENDER_WAIT = 0.5  # seconds a filtered render waits for a free slot before Busy
# Deleted entries an Atom feed's first page tells of (newest first): enough for a reader
# polling daily to learn of a regeneration's deletions, bounded whatever was deleted.
MAX_TOMBSTONES = 100


class FeedNotFound(LookupError):
    """No such scope, or a page past its end."""


class FeedGone(FeedNotFound):
    """The scope lost its last entry and its tombstones have expired: answered 410, so
    readers stop polling it (while it has tombstones it is an empty feed that tells them)."""


class Busy(RuntimeError):
    """Too many uncached filtered documents are being rendered at once: answered 429."""


class StoreBehind(RuntimeError):
    """The store does not (yet) hold the state this process serves, e.g. while a rebuilt
    database is being filled: cached feeds are still served, others must wait."""


@dataclass(frozen=True)
class _PageRead:
    """Entries of a scope (or their parts: see Store.page_parts), the summary of the state
    they were read in, and when the newest was first stored; ``current``: that state is the
    one this process has loaded."""

    summary: ScopeSummary
    entries: list[Entry]
    stored: datetime
    current: bool
    parts: list[EntryPart] | None = None


class FeedService:
    """Answers 'what is this feed's ETag / bytes' from memory, refreshing from the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._settings_key = render_key(settings)
        self._lock = threading.Lock()
        # One refresh at a time: two overlapping ones could store the older state last.
        self._refreshing = threading.Lock()
        self._generation: str | None = None
        self._search_version = ""
        self._summaries: dict[str, ScopeSummary] = {}
        # What every plain document's validators are made of, by scope: a 304 reads nothing.
        self._members: dict[str, ScopeMembers] = {}
        self._catalog = Catalog.of([])
        # The paths of the feeds and pages that exist, as the site writes them: a request
        # for one is routed by a look-up; any other path is parsed and never kept.
        self._feed_paths: dict[str, tuple[Scope, Format]] = {}
        self._page_paths: dict[str, Scope] = {}
        self._generated: dict[str, tuple[str | None, Rendered]] = {}  # index, OPML: by name
        # Rendered documents, least recently used first, bounded by their bytes in all forms.
        self._cache = DocumentCache(settings.cache_bytes)
        self._validators = KnownValidators()
        self._query_renders = threading.BoundedSemaphore(settings.query_renders)
        self.renders = 0  # feed documents rendered by this process (a metric)

    @property
    def cached_bytes(self) -> int:
        """What the cached documents hold, in every form (a metric)."""
        return self._cache.nbytes

    @property
    def generation(self) -> str | None:
        return self._generation

    def refresh(self) -> bool:
        """Reload scope summaries if a scan changed anything; True when it did. Search
        documents are keyed by the search version too: one cached while entries waited to
        be indexed is not served once they are."""
        with self._refreshing:
            return self._reload()

    def _reload(self) -> bool:
        generation, self._search_version = self.store.versions()
        if generation is None or generation == self._generation:
            return False
        summaries = {s.scope.key: s for s in self.store.scope_summaries()}
        feed_paths, page_paths = _paths([s.scope for s in summaries.values()])
        # Only the scopes that changed are read again (a scan changes a few of them).
        kept = {
            name: held
            for name, held in self._members.items()
            if name in summaries and summaries[name].fingerprint == held.fingerprint
        }
        wanted = [name for name in summaries if name not in kept]
        for name, held in self.store.members(wanted, MAX_TOMBSTONES).items():
            if held.fingerprint == summaries[name].fingerprint:  # (else a scan came since)
                kept[name] = held
        with self._lock:
            self._summaries = summaries
            self._members = kept
            self._feed_paths, self._page_paths = feed_paths, page_paths
            self._catalog = Catalog.of([s for s in summaries.values() if s.listed])
            self._generation = generation
            live = {s.fingerprint for s in summaries.values()}
        self._cache.keep_only(lambda key: key[1] in live)
        self._validators.keep_only(lambda key: key[1] in live)
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
        summary = self._summaries.get(scope.key)
        return (summary is not None and not summary.gone) or scope == Scope.all()

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

    def search_pending(self) -> int:
        return self.store.search_pending()

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
        if summary is None or (summary.gone and scope == Scope.all()):
            if scope != Scope.all():
                raise FeedNotFound(f"no feed for {scope.label}")
            summary = ScopeSummary.empty(scope)  # (the site's own feed is never gone)
        if summary.gone:
            raise FeedGone(f"the feed for {scope.label} is gone: its entries were deleted")
        last = page_count(summary.count, limit)
        if page > last and not query.filters:
            raise FeedNotFound(f"page {page} is past the last page ({last})")
        return summary, last

    def _key(
        self, summary: ScopeSummary, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> tuple[str, ...]:
        key = (summary.scope.key, summary.fingerprint, fmt.value, str(page), str(limit))
        if query.plain:
            return key
        return (*key, query.key, self._search_version) if query.search else (*key, query.key)

    def _read(self, scope: Scope, offset: int, limit: int, part: int | None = None) -> _PageRead:
        """Entries of a scope as of the summary this process holds (with ``part``: their
        parts in that format, if all are kept; else no entries). If the store has moved
        on (a scan committed since the last refresh), catch up first: bytes cached under a
        fingerprint must be exactly the bytes of that fingerprint, in every replica. A store
        that keeps moving faster than this process catches up is answered from the state
        the entries were read in (uncached: this process has not loaded it); only a store
        holding no state this process can load (one rebuilt, before its first scan ends)
        is StoreBehind."""
        for _attempt in range(3):
            loaded = self._generation  # (read first: the summary is at least this new)
            held = self._summaries.get(scope.key) or ScopeSummary.empty(scope)
            entries: list[Entry] = []
            if part is None:
                entries, read, stored = self.store.page(scope, offset, limit)
                found = None
            else:
                found, read, stored = self.store.page_parts(
                    scope, offset, limit, part, self._settings_key
                )
            if (read.fingerprint if read else "empty") == held.fingerprint:
                return _PageRead(held, entries, stored, True, found)
            self.refresh()  # (or another thread did, since this one read its summary)
            if self._generation == loaded:
                raise StoreBehind("the database does not hold what this process serves yet")
        if read is None and scope != Scope.all():
            raise FeedNotFound(f"no feed for {scope.label}")
        return _PageRead(read or ScopeSummary.empty(scope), entries, stored, False, found)

    def _chosen(
        self, scope: Scope, page: int, limit: int, query: FeedQuery
    ) -> tuple[_PageRead, int, tuple[float, float] | None]:
        """One page of the entries a query chooses, and the number of pages. Filters look at
        the newest ``filter_window`` entries of the scope; a search asks the index over the
        whole scope (its newest ``filter_window`` matches)."""
        window = self.settings.filter_window
        read = self._read(scope, 0, 1 if query.search else window)
        if query.search:  # (the read: the state the search answers for)
            candidates = self.store.search(scope, query.search, window)
        else:
            candidates = read.entries
        chosen = select(candidates, query)
        last = page_count(len(chosen), limit)
        if page > last:
            raise FeedNotFound(f"page {page} is past the last page ({last})")
        shown = replace(read, entries=chosen[(page - 1) * limit : page * limit])
        return shown, last, _cutoffs(candidates, query)

    def validators(
        self,
        scope: Scope,
        fmt: Variant,
        page: int,
        limit: int,
        query: FeedQuery = PLAIN,
        *,
        read: bool = True,
    ) -> tuple[str, datetime] | None:
        """A document's (ETag, Last-Modified) if this process knows them without rendering
        (a dictionary look-up; with ``read``, else by reading its page's entries); None:
        render it to learn them."""
        cached = self.cached_feed(scope, fmt, page, limit, query)
        if cached is not None:
            return cached.etag, cached.last_modified
        if not query.plain:
            return None  # (rendered to learn: the entries a query chooses cost a render's read)
        summary, last = self._locate(scope, page, limit, query)
        key = self._key(summary, fmt, page, limit)
        known = self._validators.get(key)
        members = self._members.get(summary.scope.key)
        if known is None and members is not None and members.fingerprint == summary.fingerprint:
            made = from_members(self._settings_key, summary, members, fmt, page, last, limit)
            known = self._validators.remember(key, *made)
        if known is None and read:
            got = self._read(scope, (page - 1) * limit, limit)
            last = page_count(got.summary.count, limit)
            feed_page, removed = self._page(got.summary, fmt, got.entries, page, last, limit, query)
            known = (
                document_etag(self._settings_key, got.summary, fmt, feed_page),
                max(feed_page.updated, got.stored, removed),
            )
            if got.current:
                self._validators.remember(self._key(got.summary, fmt, page, limit), *known)
        return known

    def _page(
        self,
        summary: ScopeSummary,
        fmt: Variant,
        entries: list[Entry],
        page: int,
        last: int,
        limit: int,
        query: FeedQuery,
    ) -> tuple[FeedPage, datetime]:
        """The page a document shows (its tombstones: an Atom feed's first page), and when
        the scope last lost an entry (a deletion is news to Last-Modified in every form)."""
        scope = summary.scope
        shows_graves = fmt is Format.ATOM and page == 1
        graves = self.store.tombstones(scope, MAX_TOMBSTONES if shows_graves else 1)
        removed = max((when for _id, when in graves), default=EPOCH)
        shown = tuple(graves) if shows_graves else ()
        params = tuple(query.params())
        return FeedPage(scope, entries, page, last, limit, params, shown), removed

    def cached_feed(
        self, scope: Scope, fmt: Variant, page: int, limit: int, query: FeedQuery = PLAIN
    ) -> Rendered | None:
        """The rendered document if it is cached (a dictionary look-up), else None."""
        summary, _last = self._locate(scope, page, limit, query)
        key = self._key(summary, fmt, page, limit, query)
        cached = self._cache.get(key)
        if cached is not None and cached.cutoffs is not None and query.since is not None:
            low, high = cached.cutoffs
            if not low < query.since <= high:
                return None  # an entry left (or joined) the window since
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
        cutoffs = None
        if query.plain and fmt in PART_FORMATS:
            assert isinstance(fmt, Format)
            got = self._read(scope, (page - 1) * limit, limit, PART_FORMATS.index(fmt))
            if got.parts is not None:
                return self._assembled(got, fmt, page, limit)
        if query.filters:
            got, last, cutoffs = self._chosen(scope, page, limit, query)
        else:
            got = self._read(scope, (page - 1) * limit, limit)
            last = page_count(got.summary.count, limit)
        summary, entries = got.summary, got.entries
        as_stored, removed = self._page(summary, fmt, entries, page, last, limit, query)
        etag = document_etag(self._settings_key, summary, fmt, as_stored)
        shows = [shown(self.settings, query.transform(entry)) for entry in entries]
        feed_page = replace(as_stored, entries=shows)
        if isinstance(fmt, Html):
            body = render_scope_page(self.settings, feed_page, self._catalog).encode("utf-8")
        else:
            body = render(self.settings, feed_page, fmt)
        # Last-Modified moves whenever the bytes may have: an entry shown was edited, newly
        # stored (whatever its date) or deleted, or (a query's) an entry left its time window.
        last_modified = max(feed_page.updated, got.stored, removed)
        if not query.plain:
            moved = _window_moved(cutoffs, query)
            last_modified = max(last_modified, summary.newest_updated, moved)
        rendered = Rendered(body, etag, last_modified, fmt.media_type, cutoffs)
        key = self._key(summary, fmt, page, limit, query)
        return self._rendered(got, key, rendered, query.plain)

    def _assembled(self, got: _PageRead, fmt: Format, page: int, limit: int) -> Rendered:
        """A plain feed document from its entries' kept parts: its head rendered, the parts
        joined (the same bytes and validators as rendering it whole)."""
        assert got.parts is not None
        last = page_count(got.summary.count, limit)
        head, removed = self._page(got.summary, fmt, [], page, last, limit, PLAIN)
        head = replace(head, newest=max((part.updated for part in got.parts), default=None))
        etag = document_etag(
            self._settings_key, got.summary, fmt, head, [part.digest for part in got.parts]
        )
        body = assemble(self.settings, head, fmt, [part.part for part in got.parts])
        last_modified = max(head.updated, got.stored, removed)
        rendered = Rendered(body, etag, last_modified, fmt.media_type, None)
        return self._rendered(got, self._key(got.summary, fmt, page, limit), rendered, True)

    def _rendered(
        self, got: _PageRead, key: tuple[str, ...], rendered: Rendered, plain: bool
    ) -> Rendered:
        """A document just rendered, kept (with a ``plain`` one's validators) if it is of
        the state this process has loaded."""
        self.renders += 1
        if not got.current:
            return rendered  # (kept once this process has loaded that state)
        if plain:
            self._validators.remember(key, rendered.etag, rendered.last_modified)
        return self._cache.keep(key, rendered)

    def entry_page(self, entry_id: str) -> Rendered | None:
        """An entry's HTML page (None: no such entry), rendered once per generation: it
        links the entries beside it in its first category, which any scan may change."""
        key = ("entry:" + entry_id, self._generation or "", Html.PAGE.value, "", "")
        cached = self._cache.get(key)
        if cached is not None:
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
        newer, older = (None if e is None else shown(self.settings, e) for e in (newer, older))
        body = render_entry(self.settings, shown(self.settings, entry), newer, older).encode(
            "utf-8"
        )
        return self._cache.keep(key, Rendered(body, strong_etag(body), entry.updated, "text/html"))

    def document(self, scope: Scope, fmt: Format) -> bytes | None:
        """The bytes of a feed's default document (first page, default limit) as served now;
        None when there is no such feed."""
        try:
            return self.feed(scope, fmt, 1, self.settings.feed_limit).body
        except FeedNotFound:
            return None


def _cutoffs(candidates: list[Entry], query: FeedQuery) -> tuple[float, float] | None:
    """The cut-offs that choose the same entries as ``query.since`` among ``candidates``
    (undated ones pass any): from the newest dated entry before it (exclusive) to the
    oldest at or after it. None when the query has no moving window."""
    since = query.since
    if query.window is None or since is None:
        return None
    low, high = -math.inf, math.inf
    for entry in candidates:
        if entry.undated:
            continue
        published = entry.published.timestamp()
        if published < since:
            low = max(low, published)
        else:
            high = min(high, published)
    return low, high


def _window_moved(cutoffs: tuple[float, float] | None, query: FeedQuery) -> datetime:
    """When the newest entry older than a filter_time window left it (EPOCH: none did)."""
    if cutoffs is None or query.window is None or cutoffs[0] == -math.inf:
        return EPOCH
    return datetime.fromtimestamp(cutoffs[0] + query.window + 1, UTC)


def _paths(scopes: list[Scope]) -> tuple[dict[str, tuple[Scope, Format]], dict[str, Scope]]:
    """Every feed's and every page's path on the site, for the scopes that exist."""
    every = [Scope.all(), *scopes]  # (gone scopes too: answered 410 by a look-up)
    feeds = {feed_path(scope, fmt): (scope, fmt) for scope in every for fmt in Format}
    return feeds, {page_path(scope): scope for scope in every}
