"""Thin views: each one asks the read side (the service) and wraps the answer in HTTP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from feedsvc import routes
from feedsvc.doccache import Rendered
from feedsvc.model import Format, is_entry_id
from feedsvc.opml import render_opml
from feedsvc.store.errors import StorageError
from feedsvc.web.feedroute import (
    HTML_SECURITY,
    Answer,
    FeedRequest,
    answer_feed,
    answer_page,
    document_answer,
    not_ready_answer,
    text_answer,
    unavailable_answer,
)
from feedsvc.web.http import NotModified, raw_path
from feedsvc.web.metrics import exposition
from feedsvc.web.state import AppState

bp = Blueprint("feedsvc", __name__)


def state() -> AppState:
    found: AppState = current_app.extensions["feedsvc"]
    return found


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
    rule = request.url_rule.rule if request.url_rule else None
    if rule in _OPERATIONS or request.endpoint == "static":
        return None
    return None if state().ensure_ready() else not_ready()


def feed(_rest: str) -> Response:
    """The feed route; the event loop's fast path answers it first whenever no render is
    needed."""
    answer = answer_feed(state(), request_facts())
    assert answer is not None  # rendering allowed: always an answer
    return respond(answer)


def request_facts() -> FeedRequest:
    """What an answer depends on, from Flask's request."""
    return FeedRequest(
        request.method,
        raw_path(request.environ),
        request.args.to_dict(flat=False),
        request.headers.get("If-None-Match"),
        request.headers.get("If-Modified-Since"),
        request.headers.get("Accept-Encoding"),
    )


def send_document(rendered: Rendered, extra: Sequence[tuple[str, str]]) -> Response:
    """A page by the same 304-or-200 rule (and encodings) as every feed."""
    answer = document_answer(
        request_facts(),
        rendered.etag,
        rendered.last_modified,
        state().settings.scan_interval,
        extra,
        lambda: rendered,
    )
    assert answer is not None  # the document is at hand
    return respond(answer)


def scope_page(_rest: str = "") -> Response:
    """A scope's page ('/': everything, with the directory of every feed)."""
    return respond(answer_page(state(), request_facts()))


def opml() -> Response:
    app = state()
    page = app.service.generated(
        "opml", "text/x-opml", lambda: render_opml(app.settings, app.service.catalog())
    )
    return send_document(page, ())


def entry(entry_id: str) -> Response:
    found = state().service.entry_page(entry_id) if is_entry_id(entry_id) else None
    if found is None:
        return text_response(404, "no such entry")
    return send_document(found, HTML_SECURITY)


def healthz() -> Response:
    return text_response(200, "ok")


def readyz() -> Response:
    """Ready: the database answers and this process has loaded a finished scan. While the
    database does not answer, feeds already loaded keep being served; readiness comes back
    with it."""
    app = state()
    if not app.service.database_reachable():
        return text_response(503, "the database cannot be reached")
    if not app.ensure_ready():
        return not_ready()
    return text_response(200, "ready")


def status() -> Response:
    """What an operator needs to see why feeds are missing or stale: it answers whatever
    state the store is in (before the first scan too), the same from every worker."""
    app = state()
    catalog = app.service.catalog()
    database: dict[str, Any] = {"reachable": app.service.database_reachable()}
    body: dict[str, Any] = {
        "ready": app.service.ready,
        "entries": catalog.everything.count,
        "feeds": len(catalog.summaries),
        "formats": [fmt.value for fmt in Format],
        "database": database,
        "leader": None,
        "scanner": None,  # the old name of "leader", kept for the clients that read it
        "watch": None,
        "scan_error": None,
        "last_scan": None,
        "errors": [],
        "generation": app.service.generation,
        "websub": {"hubs": list(app.settings.websub_hubs)},
        "search": {"pending": None},
    }
    try:
        body["last_scan"] = app.service.last_scan()
        body["errors"] = [{"path": p, "error": e} for p, e in app.service.errors()]
        body["scan_error"] = app.leader.scan_error() if app.leader else app.service.scan_error()
        body["leader"] = body["scanner"] = bool(app.leader and app.leader.is_leader)
        body["watch"] = app.leader.watch_mode if app.leader else None
        body["websub"].update(app.service.websub_counts())
        body["search"]["pending"] = app.service.search_pending()
    except StorageError as exc:
        database["error"] = str(exc)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def metrics() -> Response:
    app = state()
    body, content_type = exposition(app.service, app.leader)
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


@dataclass(frozen=True)
class Route:
    """One rule of the site (Werkzeug syntax, from feedsvc.routes) and its view. ``content``:
    it answers from the loaded feeds, so 503 until the first scan is loaded."""

    rule: str
    view: Callable[..., Response]
    content: bool = True


# Every URL the app answers (static files aside: Flask's own, at routes.STATIC).
ROUTES = (
    Route(routes.FEED_RULE, feed),
    *(Route(rule, scope_page) for rule in routes.PAGE_RULES),
    Route(routes.OPML, opml),
    Route(routes.ENTRY_RULE, entry),
    Route(routes.HEALTHZ, healthz, content=False),
    Route(routes.READYZ, readyz, content=False),
    Route(routes.STATUS, status, content=False),
    Route(routes.METRICS, metrics, content=False),
)
_OPERATIONS = {route.rule for route in ROUTES if not route.content}
for _route in ROUTES:
    bp.add_url_rule(_route.rule, view_func=_route.view, methods=["GET"])


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors as one line of text; a 405 keeps its Allow header."""
    response = text_response(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name == "Allow":
            response.headers[name] = value
    return response


@bp.app_errorhandler(StorageError)
def database_error(exc: StorageError) -> Response:
    current_app.logger.error("database error on %s: %s", request.path, exc)
    return unavailable()


@bp.app_errorhandler(Exception)
def server_error(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error on %s", request.path)
    return text_response(500, "internal error")
