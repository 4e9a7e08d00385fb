"""A requests session whose answers have a deadline: a server has ``seconds`` from the end
of a request to the end of its answer's headers, however it trickles them. requests' read
timeout restarts with every byte, so a server sending one byte a second would hold a
request for as long as it likes; here the socket is shut at the deadline instead, and the
request fails as one that timed out. (The body is the caller's to read or not: WebSub pings
never read it.)"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

R = TypeVar("R")


def session(seconds: float) -> requests.Session:
    """A session (plain and TLS, not through a proxy) whose answers' headers must all have
    arrived ``seconds`` after the request was sent."""

    class Plain(HTTPConnection):
        def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # (as urllib3)
            return _within(seconds, self.sock, super().getresponse)

    class Secure(HTTPSConnection):
        def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # (as urllib3)
            return _within(seconds, self.sock, super().getresponse)

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PlainPool, "https": SecurePool}

    timed = requests.Session()
    for prefix in ("http://", "https://"):
        timed.mount(prefix, Adapter())
    return timed


def _within(seconds: float, sock: socket.socket | None, answer: Callable[[], R]) -> R:
    """``answer()``, with ``sock`` shut if it has not returned in ``seconds``: a timeout
    then, whatever the headers read so far looked like (the end of the stream ends them)."""
    late = threading.Event()
    timer = threading.Timer(seconds, _shut, (sock, late))
    timer.daemon = True
    timer.start()
    try:
        answered = answer()
    finally:
        timer.cancel()
    if late.is_set():
        raise TimeoutError(f"no whole answer in {seconds:g} s")
    return answered


def _shut(sock: socket.socket | None, late: threading.Event) -> None:
    """End the exchange: the blocked read returns at once."""
    late.set()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
