"""The ASGI application `feedsvc serve` runs (under granian): feed URLs answered in the event
loop from memory (a 304 or a cached document costs a few dictionary look-ups and no request
machinery), everything else, renders included, handed to the Flask app on a thread pool.

A pool thread runs Flask to the end and hands back the whole response; only the event loop
writes to the connection. A thread that waited on the loop for each chunk (a2wsgi's bridge)
could wait forever when SIGTERM stopped the loop after the client had its bytes, and the worker
would never exit.

ASGI rather than WSGI because its scope keeps the raw request path: '%2F' inside a name is
no separator, and granian's WSGI environ only has the decoded path. Both paths answer feed
URLs with the same function (feedsvc.web.feedroute), so they never disagree on a byte."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import parse_qsl

from a2wsgi.wsgi import build_environ
from flask import Flask
from werkzeug.test import run_wsgi_app

from feedsvc.web.feedroute import (
    EVERY_RESPONSE,
    Answer,
    FeedRequest,
    answer_feed,
    not_ready_answer,
    text_answer,
)
from feedsvc.web.http import ascii_query, scope_path
from feedsvc.web.metrics import REQUESTS
from feedsvc.web.state import AppState

log = logging.getLogger(__name__)

FEED_ROUTE = "/feeds/<path:_rest>"  # the Flask rule's name, so metrics count both paths alike
UNMATCHED = "unmatched"  # the route label of requests no rule answered
# The longest request target (path and query, as sent) answered; longer ones get 414
# before anything is parsed or cached. Feed URLs are short; a filtered one fits easily.
MAX_TARGET = 4096
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_WANTED = {b"if-none-match": 0, b"if-modified-since": 1, b"accept-encoding": 2}
_EVERY = [(name.lower().encode(), value.encode()) for name, value in EVERY_RESPONSE]


def query_args(query: bytes) -> dict[str, list[str]]:
    """The query's values as Werkzeug reads them (invalid bytes stay percent-encoded)."""
    args: dict[str, list[str]] = {}
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="werkzeug.url_quote")
    for name, value in pairs:
        args.setdefault(name, []).append(value)
    return args


def feed_request(scope: Scope) -> FeedRequest:
    """The values a feed answer depends on, from an ASGI HTTP scope."""
    found: list[str | None] = [None, None, None]
    for name, value in scope["headers"]:
        index = _WANTED.get(name)
        if index is not None:
            text = value.decode("latin-1")
            found[index] = text if found[index] is None else f"{found[index]},{text}"
    query = ascii_query(scope["query_string"])
    return FeedRequest(
        scope["method"],
        scope_path(scope),
        query_args(query) if query else {},
        *found,
    )


class Application:
    """The ASGI callable: lifespan starts and stops the process's background work; feed
    requests that need no render are answered here; the rest go to Flask on a thread pool."""

    def __init__(self, app: Flask, *, start: Callable[[], None], stop: Callable[[], None]):
        self.state: AppState = app.extensions["feedsvc"]
        self.app = app
        self._pool = ThreadPoolExecutor(self.state.settings.threads, thread_name_prefix="flask")
        self._start = start
        self._stop = stop
        self._counters: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not scope["raw_path"].startswith(b"/"):  # 'x:y', 'evil.example': no path
                bad = text_answer(400, "the request target must be a path")
                await self._send(bad, scope["method"], send, UNMATCHED)
                return
            if len(scope["raw_path"]) + len(scope["query_string"]) > MAX_TARGET:
                too_long = text_answer(414, f"the request target is over {MAX_TARGET} bytes")
                await self._send(too_long, scope["method"], send, UNMATCHED)
                return
            if scope["method"] in ("GET", "HEAD") and scope["raw_path"].startswith(b"/feeds/"):
                answer = self._answer(scope)
                if answer is not None:
                    await self._send(answer, scope["method"], send)
                    return
            try:
                await self._flask(scope, send)
            except Exception:  # Flask answers its own errors: this is a bug in this layer
                log.exception("unhandled error on %r", scope["raw_path"][:200])
                failed = text_answer(500, "internal error")
                await self._send(failed, scope["method"], send, UNMATCHED)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    def _answer(self, scope: Scope) -> Answer | None:
        try:
            if not self.state.ensure_ready():
                return not_ready_answer()
            return answer_feed(self.state, feed_request(scope), render=False)
        except Exception:  # Flask's error handling decides what the client sees
            log.debug("fast path handed a request on", exc_info=True)
            return None

    async def _send(self, answer: Answer, method: str, send: Send, route: str = FEED_ROUTE) -> None:
        headers = [(name.lower().encode(), value.encode()) for name, value in answer.headers]
        headers += _EVERY
        if answer.status != 304:
            headers.append((b"content-length", str(len(answer.body)).encode()))
        counter = self._counters.get((route, answer.status))
        if counter is None:
            counter = self._counters[(route, answer.status)] = REQUESTS.labels(
                route=route, status=str(answer.status)
            )
        counter.inc()
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        body = b"" if method == "HEAD" or answer.status == 304 else answer.body
        await send({"type": "http.response.body", "body": body})

    async def _flask(self, scope: Scope, send: Send) -> None:
        # No route reads a request body: it is left unread, as Flask would leave it.
        scope = {**scope, "query_string": ascii_query(scope["query_string"])}
        environ = cast(dict[str, Any], build_environ(cast(Any, scope), cast(Any, io.BytesIO())))
        loop = asyncio.get_running_loop()
        chunks, status, headers = await loop.run_in_executor(
            self._pool, lambda: run_wsgi_app(self.app, environ, buffered=True)
        )
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
