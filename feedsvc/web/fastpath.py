"""Feed URLs answered in front of Flask: a 304, a cached document, a 400 or a 404 costs a few
dictionary look-ups and no request machinery. Whatever would need a render, and every other
route, goes on to the Flask app, which answers the feed route with the very same function
(feedsvc.web.feedroute), so both paths send the same bytes and headers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.http import HTTP_STATUS_CODES

from feedsvc.web.feedroute import (
    EVERY_RESPONSE,
    Answer,
    FeedRequest,
    answer_feed,
    not_ready_answer,
)
from feedsvc.web.http import raw_path
from feedsvc.web.metrics import REQUESTS
from feedsvc.web.state import AppState

log = logging.getLogger(__name__)

FEED_ROUTE = "/feeds/<path:_rest>"  # the Flask rule's name, so metrics count both paths alike
StartResponse = Callable[..., Any]


def _query_args(query: str) -> dict[str, list[str]]:
    """The query's values as Werkzeug reads them (invalid bytes stay percent-encoded)."""
    args: dict[str, list[str]] = {}
    pairs = parse_qsl(
        query.encode("latin-1").decode(), keep_blank_values=True, errors="werkzeug.url_quote"
    )
    for name, value in pairs:
        args.setdefault(name, []).append(value)
    return args


def _status_line(code: int) -> str:
    return f"{code} {HTTP_STATUS_CODES[code].upper()}"


class FastFeeds:
    """WSGI middleware (installed as the Flask app's ``wsgi_app``): feed requests it can
    answer from memory, everything else to ``wsgi_app``, Flask's own request handling."""

    def __init__(self, state: AppState, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.state = state
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD") and environ.get("PATH_INFO", "").startswith("/feeds/"):
            try:
                answer = self._answer(environ, method)
            except Exception:  # Flask's error handling decides what the client sees
                log.debug("fast path handed a request on", exc_info=True)
                answer = None
            if answer is not None:
                return self._send(answer, method, start_response)
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ: dict[str, Any], method: str) -> Answer | None:
        if not self.state.ensure_ready():
            return not_ready_answer()
        query = environ.get("QUERY_STRING", "")
        req = FeedRequest(
            method,
            raw_path(environ),
            _query_args(query) if query else {},
            environ.get("HTTP_IF_NONE_MATCH"),
            environ.get("HTTP_IF_MODIFIED_SINCE"),
            environ.get("HTTP_ACCEPT_ENCODING"),
        )
        return answer_feed(self.state, req, render=False)

    @staticmethod
    def _send(answer: Answer, method: str, start_response: StartResponse) -> Iterable[bytes]:
        headers = [*answer.headers, *EVERY_RESPONSE]
        if answer.status != 304:
            headers.append(("Content-Length", str(len(answer.body))))
        REQUESTS.labels(route=FEED_ROUTE, status=str(answer.status)).inc()
        start_response(_status_line(answer.status), headers)
        return [] if method == "HEAD" or answer.status == 304 else [answer.body]
