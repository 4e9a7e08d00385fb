"""The answer to a feed URL (/feeds/...) or a scope's page, as status, headers and body, from
plain request values: Flask's view and the event loop's fast path (feedsvc.web.asgi) both
send exactly this, so the two can never disagree on a byte or a header."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from feedsvc.config import Settings
from feedsvc.doccache import Rendered
from feedsvc.model import Format, Html, Scope, Variant
from feedsvc.query import PLAIN, BadQuery, FeedQuery, parse_query, query_int, query_limit
from feedsvc.routes import document_url, parse_feed_path, parse_page_path, search_format
from feedsvc.service import Busy, FeedGone, FeedNotFound, StoreBehind
from feedsvc.web.http import MAX_PAGE, choose_encoding, not_modified, validator_headers
from feedsvc.web.state import AppState

T = TypeVar("T")

NOT_READY = "feeds are not loaded yet: the first scan is running"
UNAVAILABLE = "the database is being rebuilt or cannot be reached; retry shortly"
# Sent with every response, whichever path answers it.
EVERY_RESPONSE = (("X-Content-Type-Options", "nosniff"),)
# Sent with every HTML page: its own stylesheet and script only, images from anywhere.
HTML_SECURITY = (
    (
        "Content-Security-Policy",
        "default-src 'none'; img-src http: https: data:; media-src http: https:; "
        "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
)


@dataclass(frozen=True)
class Answer:
    """A response before any framework sees it (Content-Length is the sender's to add)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def text_answer(status: int, message: str, retry_after: int | None = None) -> Answer:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    return Answer(status, headers, (message + "\n").encode())


def not_ready_answer() -> Answer:
    return text_answer(503, NOT_READY, retry_after=1)


def unavailable_answer() -> Answer:
    return text_answer(503, UNAVAILABLE, retry_after=5)


VARY = ("Vary", "Accept-Encoding")


def feed_links(
    settings: Settings, scope: Scope, fmt: Format, query: FeedQuery
) -> tuple[tuple[str, str], ...]:
    """The Link header of a feed (self, with its query, and each WebSub hub), formatted
    once per feed without a query (a query's is formatted each time: queries are many)."""
    if query.plain:
        return _plain_links(settings, scope, fmt)
    return _links(settings, scope, fmt, query)


@functools.lru_cache(maxsize=4096)
def _plain_links(settings: Settings, scope: Scope, fmt: Format) -> tuple[tuple[str, str], ...]:
    return _links(settings, scope, fmt, PLAIN)


def _links(
    settings: Settings, scope: Scope, fmt: Format, query: FeedQuery
) -> tuple[tuple[str, str], ...]:
    links = [f'<{document_url(settings, scope, fmt, params=query.params())}>; rel="self"']
    links += [f'<{hub}>; rel="hub"' for hub in settings.websub_hubs]
    return (("Link", ", ".join(links)),)


@dataclass(frozen=True)
class FeedRequest:
    """What an answer depends on: the method, the still percent-encoded path (so '%2F' in a
    name is no separator), the query's values, and three request headers."""

    method: str
    raw_path: str
    args: Mapping[str, Sequence[str]]
    if_none_match: str | None = None
    if_modified_since: str | None = None
    accept_encoding: str | None = None


def _query(state: AppState, req: FeedRequest) -> FeedQuery:
    return parse_query(req.args, user_hotlink=_user_hotlink(state.settings))


def _user_hotlink(settings: Settings) -> bool:
    """A request's hotlink templates count where the operator allows them and has set no
    template of their own (RSSHub's rule: the operator's wins)."""
    return settings.allow_user_hotlink_template and not settings.hotlink_template


def _format(req: FeedRequest, fmt: Format) -> Format:
    """RSSHub's ``format=atom|rss|json``, the path's extension being the default."""
    values = req.args.get("format", ())
    if not values:
        return fmt
    if len(values) > 1 or values[0] not in Format.__members__.values():
        raise BadQuery(f"format must be atom, rss or json, got {values[0][:40]!r}")
    return Format(values[0])


def answer_feed(state: AppState, req: FeedRequest, *, render: bool = True) -> Answer | None:
    """The answer to a feed request. With ``render`` False, None when the document would
    have to be rendered: the caller hands the request on instead of rendering itself."""
    try:
        query = _query(state, req)
    except BadQuery as exc:
        return text_answer(400, str(exc))
    found = state.service.feed_at(req.raw_path)
    searched = search_format(req.raw_path) if found is None else None
    if searched is not None:
        if query.search is None:  # the site-wide search feed: /feeds/all.<fmt> with ?q=
            return text_answer(400, "the search feed needs q=<words>")
        found = Scope.all(), searched
    found = found or _read_path(parse_feed_path, req.raw_path)
    if found is None:
        return text_answer(404, "no such feed")
    scope, fmt = found
    try:
        fmt = _format(req, fmt)
    except BadQuery as exc:
        return text_answer(400, str(exc))
    # (a scope that does not exist is answered 404 below: nothing is formatted for it)
    links = feed_links(state.settings, scope, fmt, query) if state.service.exists(scope) else ()
    return answer_scope(state, req, scope, fmt, query, links, render)


def answer_page(state: AppState, req: FeedRequest) -> Answer:
    """The answer to a scope's HTML page: the same paging, validators and encodings as its
    feeds, rendered once per change of the scope."""
    scope = state.service.page_at(req.raw_path) or _read_path(parse_page_path, req.raw_path)
    if scope is None:
        return text_answer(404, "no such page")
    try:
        query = _query(state, req)
    except BadQuery as exc:
        return text_answer(400, str(exc))
    answer = answer_scope(state, req, scope, Html.PAGE, query, HTML_SECURITY, True)
    assert answer is not None  # rendering allowed: always an answer
    return answer


def _read_path(parse: Callable[[str], T], raw_path: str) -> T | None:
    """What the routes read a path as that the service does not know by heart (a feed
    with no entries yet answers 404 later, from the service); None: no document's path."""
    try:
        return parse(raw_path)
    except ValueError:
        return None


def answer_scope(
    state: AppState,
    req: FeedRequest,
    scope: Scope,
    variant: Variant,
    query: FeedQuery,
    extra: Sequence[tuple[str, str]],
    render: bool,
) -> Answer | None:
    settings = state.settings
    try:
        page = query_int(req.args, "page", 1, MAX_PAGE)
        limit = query_limit(req.args, settings.feed_limit, settings.max_limit)
    except BadQuery as exc:
        return text_answer(400, str(exc))
    service = state.service

    def document() -> Rendered | None:
        rendered = service.cached_feed(scope, variant, page, limit, query)
        if rendered is None and render:
            rendered = service.feed(scope, variant, page, limit, query)
        return rendered

    try:
        # Without ``render`` (on the event loop) nothing is read: unknown validators are
        # learnt in the thread pool, by the view that may render.
        known = service.validators(scope, variant, page, limit, query, read=render)
        if known is None:  # the validators are the bytes': render once to learn them
            rendered = document()
            if rendered is None:
                return None
            known = rendered.etag, rendered.last_modified
        etag, last_modified = known
        return document_answer(req, etag, last_modified, settings.scan_interval, extra, document)
    except FeedGone as exc:
        return text_answer(410, str(exc))
    except FeedNotFound as exc:
        return text_answer(404, str(exc))
    except Busy as exc:
        return text_answer(429, str(exc), retry_after=1)
    except StoreBehind:
        return unavailable_answer()


def document_answer(
    req: FeedRequest,
    etag: str,
    last_modified: datetime,
    max_age: int,
    extra: Sequence[tuple[str, str]],
    document: Callable[[], Rendered | None],
) -> Answer | None:
    """The 304-or-200 answer for any document feedsvc serves (feeds and pages alike): a 304
    from the validators alone, else the document in the encoding the client prefers (None
    when ``document`` gives none: it would have had to be rendered)."""
    if not_modified(req.method, req.if_none_match, req.if_modified_since, etag, last_modified):
        return Answer(304, [*validator_headers(etag, last_modified, max_age), VARY, *extra], b"")
    rendered = document()
    if rendered is None:
        return None
    encoding = choose_encoding(req.accept_encoding)
    headers: list[tuple[str, str]] = [("Content-Type", f"{rendered.media_type}; charset=utf-8")]
    if encoding != "identity":
        headers.append(("Content-Encoding", encoding))
    headers.append(VARY)
    headers += validator_headers(rendered.etag, rendered.last_modified, max_age)
    return Answer(200, [*headers, *extra], rendered.encoded(encoding))
