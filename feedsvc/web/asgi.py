"""The ASGI application `feedsvc serve` runs (under granian), as layers composed in one place
(``compose``): the lifespan starts and stops the process's background work; ``Finish`` gives
every response, whoever answered it, the same closing headers and request count; ``Guard``
refuses request targets no route can take; ``FastPath`` answers feed URLs in the event loop
from memory (a 304 or a cached document costs a few dictionary look-ups and no request
machinery); ``FlaskBridge`` hands everything else, renders included, to the Flask app on a
thread pool.

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

from feedsvc.routes import FEED_RULE, FEEDS, MAX_TARGET
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

UNMATCHED = "unmatched"  # the route label of requests no rule answered
# Where an inner layer leaves the route label (a Flask rule) of the request it answered:
# in the ASGI scope, and in the WSGI environ Flask is run with.
ROUTE_KEY = "feedsvc.route"
# The most header bytes (names and values, all fields together) a request may carry; more
# get 431. Accept-Encoding and If-None-Match are parsed per request, in time linear in their
# length, repeated fields joined: a client must not make that a megabyte's worth. (nginx's
# default buffers take 32 KiB of headers, an 8 KiB line at most.)
MAX_HEADERS = 16384
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_WANTED = {b"if-none-match": 0, b"if-modified-since": 1, b"accept-encoding": 2}
_EVERY = [(name.lower().encode(), value.encode()) for name, value in EVERY_RESPONSE]
_FEEDS = FEEDS.encode()


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


async def send_answer(send: Send, answer: Answer, method: str) -> None:
    """An Answer on the connection (no body for HEAD or a 304)."""
    headers = [(name.lower().encode(), value.encode()) for name, value in answer.headers]
    if answer.status != 304:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    body = b"" if method == "HEAD" or answer.status == 304 else answer.body
    await send({"type": "http.response.body", "body": body})


class FlaskBridge:
    """The Flask app on a thread pool, for every request the layers above hand on."""

    def __init__(self, app: Flask, threads: int) -> None:
        self.app = app
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="flask")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No route reads a request body: it is left unread, as Flask would leave it.
        asgi_scope = {**scope, "query_string": ascii_query(scope["query_string"])}
        environ = cast(
            dict[str, Any], build_environ(cast(Any, asgi_scope), cast(Any, io.BytesIO()))
        )
        loop = asyncio.get_running_loop()
        chunks, status, headers = await loop.run_in_executor(
            self._pool, lambda: run_wsgi_app(self.app, environ, buffered=True)
        )
        scope[ROUTE_KEY] = environ.get(ROUTE_KEY, UNMATCHED)
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"".join(chunks)})


class FastPath:
    """Feed requests that need no render, answered in the event loop; the rest handed on."""

    def __init__(self, state: AppState, inner: ASGIApp) -> None:
        self.state = state
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in ("GET", "HEAD") and scope["raw_path"].startswith(_FEEDS):
            answer = self._answer(scope)
            if answer is not None:
                scope[ROUTE_KEY] = FEED_RULE  # counted as Flask's rule counts the rest
                await send_answer(send, answer, scope["method"])
                return
        await self.inner(scope, receive, send)

    def _answer(self, scope: Scope) -> Answer | None:
        try:
            if not self.state.ensure_ready():
                return not_ready_answer()
            return answer_feed(self.state, feed_request(scope), render=False)
        except Exception:  # Flask's error handling decides what the client sees
            log.debug("fast path handed a request on", exc_info=True)
            return None


class Guard:
    """Request targets no route can take, and headers too long to parse, refused before
    anything is parsed or cached."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not scope["raw_path"].startswith(b"/"):  # 'x:y', 'evil.example': no path
            bad = text_answer(400, "the request target must be a path")
            await send_answer(send, bad, scope["method"])
        elif len(scope["raw_path"]) + len(scope["query_string"]) > MAX_TARGET:
            too_long = text_answer(414, f"the request target is over {MAX_TARGET} bytes")
            await send_answer(send, too_long, scope["method"])
        elif sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADERS:
            too_big = text_answer(431, f"the request headers are over {MAX_HEADERS} bytes")
            await send_answer(send, too_big, scope["method"])
        else:
            await self.inner(scope, receive, send)


class Finish:
    """What every response gets, whichever layer answered: the headers every response
    carries, and one count by route and status. A layer below that fails before it answers
    is a bug: logged, and answered 500."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self._counters: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def finish(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._count(scope.get(ROUTE_KEY, UNMATCHED), message["status"])
                names = {name for name, _value in message["headers"]}
                extra = [(name, value) for name, value in _EVERY if name not in names]
                message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)

        try:
            await self.inner(scope, receive, finish)
        except Exception:
            log.exception("unhandled error on %r", scope["raw_path"][:200])
            if not started:
                scope[ROUTE_KEY] = UNMATCHED
                await send_answer(finish, text_answer(500, "internal error"), scope["method"])

    def _count(self, route: str, status: int) -> None:
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self._counters[(route, status)] = REQUESTS.labels(
                route=route, status=str(status)
            )
        counter.inc()


class Lifespan:
    """The process's background work tied to the server's lifespan; HTTP to ``inner``."""

    def __init__(self, inner: ASGIApp, *, start: Callable[[], None], stop: Callable[[], None]):
        self.inner = inner
        self._start = start
        self._stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.inner(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return


def compose(
    app: Flask, *, start: Callable[[], None] = lambda: None, stop: Callable[[], None] = lambda: None
) -> Lifespan:
    """The serving application over a Flask app whose extensions hold its AppState."""
    state: AppState = app.extensions["feedsvc"]
    flask = FlaskBridge(app, state.settings.threads)
    return Lifespan(Finish(Guard(FastPath(state, flask))), start=start, stop=stop)
