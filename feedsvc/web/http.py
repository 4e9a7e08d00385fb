"""HTTP caching and encoding rules, kept apart from the views: conditional GET (RFC 9110),
compression negotiation, and the bounded integer query values feeds accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Request, Response
from werkzeug.datastructures import Headers
from werkzeug.http import http_date, parse_date

MAX_PAGE = 1_000_000


class BadQuery(ValueError):
    """A query value that cannot be used; the message is the one-line reason sent with 400."""


def query_int(request: Request, name: str, default: int, high: int) -> int:
    """A whole number from 1 to ``high``; absent means ``default``."""
    raw = request.args.getlist(name)
    if not raw:
        return default
    if len(raw) > 1:
        raise BadQuery(f"{name} is given more than once")
    text = raw[0].strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not 1 <= int(text) <= high:
        raise BadQuery(f"{name} must be a whole number from 1 to {high}, got {raw[0][:40]!r}")
    return int(text)


def _etag_list(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """True when the client's copy is current. If-None-Match, when sent, decides alone
    (weak comparison, a list, or *); otherwise If-Modified-Since is compared in seconds."""
    if request.method not in ("GET", "HEAD"):
        return False
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        return "*" in tags or any(_weak_equal(tag, etag) for tag in tags)
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since:
        since = parse_date(if_modified_since)
        if since is not None:
            return int(last_modified.timestamp()) <= int(since.timestamp())
    return False


def choose_encoding(request: Request) -> str:
    """brotli if the client takes it, else gzip, else the plain bytes."""
    accepted = request.accept_encodings
    for encoding in ("br", "gzip"):
        if accepted[encoding] > 0:
            return encoding
    return "identity"


def validators(response: Response, etag: str, last_modified: datetime, max_age: int) -> None:
    response.headers["ETag"] = etag
    response.headers["Last-Modified"] = http_date(last_modified)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"


class NotModified(Response):
    """A 304 that keeps Last-Modified: Werkzeug drops it with the other entity headers, but
    clients that validate by date alone need the same validators a 200 carries."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        if "Last-Modified" in self.headers:
            headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


def not_modified_response(etag: str, last_modified: datetime, max_age: int) -> Response:
    response = NotModified(status=304)
    validators(response, etag, last_modified, max_age)
    response.headers["Vary"] = "Accept-Encoding"
    return response
