"""HTTP caching and encoding rules, kept apart from the views: conditional GET (RFC 9110),
compression negotiation, and the bounded integer query values feeds accept. They take plain
header values, so Flask's views and the event loop's fast path (feedsvc.web.asgi) share them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Response
from werkzeug.datastructures import Headers
from werkzeug.http import http_date, parse_accept_header, parse_date

MAX_PAGE = 1_000_000


def _etag_list(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def not_modified(
    method: str,
    if_none_match: str | None,
    if_modified_since: str | None,
    etag: str,
    last_modified: datetime,
) -> bool:
    """True when the client's copy is current. If-None-Match, when sent, decides alone
    (weak comparison, a list, or *); otherwise If-Modified-Since is compared in seconds."""
    if method not in ("GET", "HEAD"):
        return False
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        return "*" in tags or any(_weak_equal(tag, etag) for tag in tags)
    if if_modified_since:
        try:
            since = parse_date(if_modified_since)
        except (OverflowError, ValueError):  # a date no clock can hold: no date at all
            since = None
        if since is not None:
            return int(last_modified.timestamp()) <= int(since.timestamp())
    return False


def choose_encoding(accept_encoding: str | None) -> str:
    """brotli if the client takes it, else gzip, else the plain bytes."""
    accepted = parse_accept_header(accept_encoding)
    for encoding in ("br", "gzip"):
        if accepted[encoding] > 0:
            return encoding
    return "identity"


@functools.lru_cache(maxsize=4096)
def validator_headers(
    etag: str, last_modified: datetime, max_age: int
) -> tuple[tuple[str, str], ...]:
    """Cached: a feed's validators are formatted once, not per request."""
    return (
        ("ETag", etag),
        ("Last-Modified", http_date(last_modified)),
        ("Cache-Control", f"public, max-age={max_age}"),
    )


class NotModified(Response):
    """A 304 that keeps Last-Modified: Werkzeug drops it with the other entity headers, but
    clients that validate by date alone need the same validators a 200 carries."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        if "Last-Modified" in self.headers:
            headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


# Every printable ASCII byte but the space: what a request target may hold as it is.
_TARGET_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


def ascii_query(query: bytes) -> bytes:
    """A query string as a client should have sent it: raw UTF-8 (curl sends docs/urls.md's
    own examples so) and other bytes HTTP does not allow percent-encoded, the rest as it is."""
    if query.isascii() and b" " not in query:
        return query
    return quote(query, safe=_TARGET_SAFE).encode("ascii")


def scope_path(scope: Mapping[str, Any]) -> str:
    """An ASGI request's path still percent-encoded, so '%2F' inside a name is not a
    separator. Bytes HTTP does not allow in a request target (raw UTF-8, which some servers
    pass on) are percent-encoded as a client should have sent them."""
    raw: bytes = scope["raw_path"]
    if raw.isascii():
        return raw.decode("ascii")
    return quote(raw, safe="/%!$&'()*+,;=:@~")


def raw_path(environ: Mapping[str, Any]) -> str:
    """A WSGI request's path still percent-encoded (see ``scope_path``)."""
    scope = environ.get("asgi.scope")  # under the ASGI server (a2wsgi keeps the scope)
    if scope is not None and scope.get("raw_path"):
        return scope_path(scope)
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        return quote(path, safe="/")
    if raw.startswith(("http://", "https://")):
        raw = urlsplit(raw).path
    return str(raw).split("?", 1)[0]
