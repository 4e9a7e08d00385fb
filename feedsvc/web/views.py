"""Thin views: each one asks the service or the store and wraps the answer in HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from feedsvc.feeds import EPOCH
from feedsvc.model import Format, Scope
from feedsvc.opml import render_opml
from feedsvc.pages import render_entry, render_index
from feedsvc.store import StorageError
from feedsvc.web.feedroute import (
    Answer,
    FeedRequest,
    answer_feed,
    not_ready_answer,
    text_answer,
    unavailable_answer,
)
from feedsvc.web.http import (
    NotModified,
    not_modified,
    not_modified_response,
    raw_path,
    validators,
)
from feedsvc.web.metrics import exposition
from feedsvc.web.state import AppState

bp = Blueprint("feedsvc", __name__)

HTML_SECURITY = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src http: https: data:; media-src http: https:; "
        "style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def state() -> AppState:
    return current_app.extensions["feedsvc"]


def text_response(status: int, message: str) -> Response:
    return respond(text_answer(status, message))


def respond(answer: Answer) -> Response:
    """An Answer as Flask's Response (a 304 keeps its Last-Modified)."""
    kind = NotModified if answer.status == 304 else Response
    return kind(answer.body, status=answer.status, headers=answer.headers)


def not_ready() -> Response:
    return respond(not_ready_answer())


def unavailable() -> Response:
    return respond(unavailable_answer())


@bp.before_app_request
def wait_for_first_scan() -> Response | None:
    """Before the first scan is loaded, content answers 503 (retry), never a false 404."""
    if request.endpoint in ("feedsvc.healthz", "feedsvc.readyz", "feedsvc.metrics", "static"):
        return None
    return None if state().ensure_ready() else not_ready()


@bp.get("/feeds/<path:_rest>")
def feed(_rest: str) -> Response:
    """The feed route; the fast WSGI layer answers it first whenever no render is needed."""
    req = FeedRequest(
        request.method,
        raw_path(request.environ),
        request.args.to_dict(flat=False),
        request.headers.get("If-None-Match"),
        request.headers.get("If-Modified-Since"),
        request.headers.get("Accept-Encoding"),
    )
    answer = answer_feed(state(), req)
    assert answer is not None  # rendering allowed: always an answer
    return respond(answer)


@dataclass(frozen=True)
class Page:
    """A generated document and its validators, cached until the store's generation moves."""

    body: bytes
    etag: str
    last_modified: datetime


def _cached_page(name: str, build: Callable[[], bytes]) -> Page:
    app = state()
    generation = app.service.generation
    cached = app.pages.get(name)
    if cached is None or cached[0] != generation:
        body = build()
        summaries = app.service.summaries()
        newest = max((s.newest_updated for s in summaries), default=EPOCH)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        cached = (generation, Page(body, etag, newest))
        app.pages[name] = cached
    return cached[1]


def _send_page(page: Page, mimetype: str, html: bool = False) -> Response:
    max_age = state().settings.scan_interval
    headers = request.headers
    if not_modified(
        request.method,
        headers.get("If-None-Match"),
        headers.get("If-Modified-Since"),
        page.etag,
        page.last_modified,
    ):
        return not_modified_response(page.etag, page.last_modified, max_age)
    response = Response(page.body, mimetype=mimetype)
    response.headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    validators(response, page.etag, page.last_modified, max_age)
    if html:
        response.headers.update(HTML_SECURITY)
    return response


@bp.get("/")
def index() -> Response:
    app = state()
    page = _cached_page(
        "index", lambda: render_index(app.settings, app.service.summaries()).encode("utf-8")
    )
    return _send_page(page, "text/html", html=True)


@bp.get("/opml")
def opml() -> Response:
    app = state()
    page = _cached_page("opml", lambda: render_opml(app.settings, app.service.summaries()))
    return _send_page(page, "text/x-opml")


@bp.get("/entries/<entry_id>")
def entry(entry_id: str) -> Response:
    app = state()
    found = app.store.entry(entry_id) if len(entry_id) == 36 else None
    if found is None:
        return text_response(404, "no such entry")
    body = render_entry(app.settings, found).encode("utf-8")
    page = Page(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', found.updated)
    return _send_page(page, "text/html", html=True)


@bp.get("/healthz")
def healthz() -> Response:
    return text_response(200, "ok")


@bp.get("/readyz")
def readyz() -> Response:
    if state().ensure_ready():
        return text_response(200, "ready")
    return not_ready()


@bp.get("/status")
def status() -> Response:
    app = state()
    summaries = app.service.summaries()
    everything = next((s for s in summaries if s.scope == Scope.all()), None)
    body = {
        "entries": everything.count if everything else 0,
        "feeds": len(summaries),
        "formats": [fmt.value for fmt in Format],
        "last_scan": app.store.last_scan(),
        "errors": [{"path": path, "error": error} for path, error in app.store.errors()],
        "scanner": bool(app.watcher and app.watcher.is_scanner),
        "watch": app.watcher.watch_mode if app.watcher else None,
        "scan_error": app.watcher.last_error if app.watcher else None,
        "generation": app.service.generation,
        "websub": {"hubs": list(app.settings.websub_hubs), **app.store.websub_counts()},
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    app = state()
    body, content_type = exposition(app.service, app.watcher)
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    return text_response(exc.code or 500, exc.description or exc.name)


@bp.app_errorhandler(StorageError)
def database_error(exc: StorageError) -> Response:
    current_app.logger.error("database error on %s: %s", request.path, exc)
    return unavailable()


@bp.app_errorhandler(Exception)
def server_error(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error on %s", request.path)
    return text_response(500, "internal error")
