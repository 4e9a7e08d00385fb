"""The URL scheme, both ways: every path and URL feedsvc serves or links to is made here, and
every path a request names is read back here, so the two can never drift apart.

    /                                   the site's page, with the directory of every feed
    /feeds/all.<fmt>                    everything, as atom, rss or json
    /feeds/search.<fmt>?q=<words>       the site-wide search feed (all.<fmt> with q=)
    /feeds/<kind>/<names>.<fmt>         one scope's feed: categories/a/b, authors/x, tags/x
    /<kind>/<names>                     that scope's page
    /entries/<id>                       one entry's page
    /opml, /static/..., /healthz, /readyz, /status, /metrics

Names are single path segments, percent-encoded as UTF-8 ('/' inside a name included), so a
path is read from the request as sent, never after decoding."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlencode

from feedsvc.config import Settings
from feedsvc.model import MAX_NAME_CHARS, Format, Html, Scope, ScopeKind, Variant, url_segment

# The longest request target (path and query, as sent) answered; longer ones get 414
# before anything is parsed or cached. Feed URLs are short; a filtered one fits easily.
MAX_TARGET = 4096
# The longest feed path a scope may have, a quarter of the target left for a query: a
# category hierarchy whose feeds would be longer is refused with its seed file (16 levels of
# 200-character names could need 38 KB, which no proxy's buffers take either).
MAX_FEED_PATH = MAX_TARGET * 3 // 4

FEEDS = "/feeds/"
ENTRIES = "/entries/"
STATIC = "/static"
OPML = "/opml"
HEALTHZ, READYZ, STATUS, METRICS = "/healthz", "/readyz", "/status", "/metrics"
SEARCH = "search"  # the stem of the search feed's path
ALL = "all"  # the stem of the site-wide feed's path
# The first segment of a scope's page path (and of its feed's path below /feeds/).
KIND_SEGMENTS = {
    ScopeKind.CATEGORY: "categories",
    ScopeKind.AUTHOR: "authors",
    ScopeKind.TAG: "tags",
}
_KINDS = {segment: kind for kind, segment in KIND_SEGMENTS.items()}


def scope_parts(scope: Scope, name: Callable[[str], str] = url_segment) -> list[str]:
    """The segments of a scope's page path, each name spelt by ``name`` (none for the site):
    what its URL and its exported file are made of."""
    if scope.kind is ScopeKind.ALL:
        return []
    return [KIND_SEGMENTS[scope.kind], *map(name, scope.names)]


def feed_parts(scope: Scope, fmt: Format, name: Callable[[str], str] = url_segment) -> list[str]:
    """The segments of a scope's feed path: 'feeds', then the page's, the last with the
    format's extension."""
    parts = scope_parts(scope, name) or [ALL]
    return ["feeds", *parts[:-1], f"{parts[-1]}.{fmt.value}"]


@functools.lru_cache(maxsize=16384)
def feed_path(scope: Scope, fmt: Format) -> str:
    """A feed's path on the site. (Bounded: the read side asks for every feed of every scope
    once per change.)"""
    return "/" + "/".join(feed_parts(scope, fmt))


@functools.lru_cache(maxsize=8192)
def page_path(scope: Scope) -> str:
    """A scope's page path: its feed's path without '/feeds' and the extension ('/' for the
    site)."""
    return "/" + "/".join(scope_parts(scope))


def entry_path(entry_id: str) -> str:
    return ENTRIES + entry_id


def paging_query(
    settings: Settings,
    page: int = 1,
    limit: int | None = None,
    params: Sequence[tuple[str, str]] = (),
) -> str:
    """The query of a page of a feed or of a scope's page: default page and limit are left
    out, so each page has one canonical URL; a query's own parameters come first."""
    query = list(params)
    if limit is not None and limit != settings.feed_limit:
        query.append(("limit", str(limit)))
    if page != 1:
        query.append(("page", str(page)))
    return "?" + urlencode(query) if query else ""


def document_url(
    settings: Settings,
    scope: Scope,
    variant: Variant,
    page: int = 1,
    limit: int | None = None,
    params: Sequence[tuple[str, str]] = (),
) -> str:
    """The canonical URL of one of a scope's documents: a feed, or its page (``Html.PAGE``)
    (``params``: a query's, see feedsvc.query)."""
    path = page_path(scope) if variant is Html.PAGE else feed_path(scope, Format(variant))
    return settings.public_url + path + paging_query(settings, page, limit, params)


def entry_page_url(settings: Settings, entry_id: str) -> str:
    return settings.public_url + entry_path(entry_id)


def site_url(settings: Settings, path: str) -> str:
    """A fixed path of the site ('/', OPML, a static file) as an absolute URL."""
    return settings.public_url + path


def parse_feed_path(raw: str) -> tuple[Scope, Format]:
    """The scope and format a percent-encoded path under /feeds/ names (the inverse of
    ``feed_path``). Raises ValueError for anything that cannot name a feed. Not cached: the
    read side knows the paths of the feeds that exist (any other is parsed each time)."""
    stem, fmt = _feed_stem(raw)
    if stem == ALL:
        return Scope.all(), fmt
    return _scope_of(stem), fmt


def search_format(raw: str) -> Format | None:
    """The format of the search feed a path names, if it names it."""
    try:
        stem, fmt = _feed_stem(raw)
    except ValueError:
        return None
    return fmt if stem == SEARCH else None


def _feed_stem(raw: str) -> tuple[str, Format]:
    stem, dot, ext = raw.removeprefix(FEEDS).rpartition(".")
    if not dot or ext not in Format.__members__.values():
        raise ValueError("unknown feed format")
    return stem, Format(ext)


def parse_page_path(raw: str) -> Scope:
    """The scope a percent-encoded page path names (the inverse of ``page_path``)."""
    if raw == "/":
        return Scope.all()
    return _scope_of(raw.removeprefix("/"))


def _scope_of(stem: str) -> Scope:
    """'categories/a/b', 'authors/x' or 'tags/x' (names percent-encoded) as a Scope."""
    kind_segment, _, names = stem.partition("/")
    kind = _KINDS.get(kind_segment)
    if kind is None or not names:
        raise ValueError("unknown feed kind")
    path = tuple(
        unicodedata.normalize("NFC", unquote(part, errors="strict")) for part in names.split("/")
    )
    if any(not part.strip() for part in path):
        raise ValueError("empty name in feed path")
    if any(len(part) > MAX_NAME_CHARS for part in path):
        raise ValueError("name in feed path is too long to be a name")
    if kind is not ScopeKind.CATEGORY and len(path) != 1:
        raise ValueError("author and tag feeds take one name")
    return Scope(kind, path)


# The web layer's rules (Werkzeug syntax), made from the same scheme.
FEED_RULE = FEEDS + "<path:_rest>"
PAGE_RULES = ("/", *(f"/{segment}/<path:_rest>" for segment in KIND_SEGMENTS.values()))
ENTRY_RULE = ENTRIES + "<entry_id>"
