"""What the processes of one server share without the database (which may be the thing that
is failing): the replica's name, and a little memory the leader process writes and every
serving worker reads. `feedsvc serve` names both in the environment before it starts any
process; a process started some other way (a test's in-process app) is a replica alone."""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import socket
import threading
from typing import Any

REPLICA_ENV = "FEEDSVC_REPLICA"  # this server: its host and its first process
STATE_ENV = "FEEDSVC_LEADER_STATE"  # the file behind the leader's shared word
COMMITS_ENV = "FEEDSVC_COMMITS"  # the file the leader writes when a scan moved a feed
_HEADER = 4  # bytes of the length that precedes the value


def replica() -> str:
    """The server this process belongs to, the same in all its processes."""
    return os.environ.get(REPLICA_ENV) or f"{socket.gethostname()}:{os.getpid()}"


class SharedValue:
    """One JSON value of at most ``size`` bytes in a file every process of the server maps
    (anonymous memory where no file is named: one process alone). Mapped on first use."""

    def __init__(self, env: str, size: int = 4096) -> None:
        self._env = env
        self._size = size
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()  # flock(2) keeps processes apart, this the threads

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            path = os.environ.get(self._env)
            if path:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if os.fstat(self._fd).st_size < _HEADER + self._size:
                    os.ftruncate(self._fd, _HEADER + self._size)
                self._map = mmap.mmap(self._fd, _HEADER + self._size)
            else:
                self._map = mmap.mmap(-1, _HEADER + self._size)
        return self._map

    def set(self, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False).encode()
        if len(data) > self._size:  # a long message is cut, never spilled
            data = json.dumps(str(value)[: self._size // 8], ensure_ascii=False).encode()
        with self._lock:
            shared = self._mapped()
            self._flock(fcntl.LOCK_EX)
            try:
                shared[:_HEADER] = len(data).to_bytes(_HEADER, "big")
                shared[_HEADER : _HEADER + len(data)] = data
            finally:
                self._flock(fcntl.LOCK_UN)

    def get(self) -> Any:
        with self._lock:
            shared = self._mapped()
            self._flock(fcntl.LOCK_SH)
            try:
                length = min(int.from_bytes(shared[:_HEADER], "big"), self._size)
                data = shared[_HEADER : _HEADER + length]
            finally:
                self._flock(fcntl.LOCK_UN)
        return json.loads(data) if data else None

    def _flock(self, operation: int) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, operation)


# What this server's leader process last said of its scanning (see feedsvc.leader).
LEADER_STATE = SharedValue(STATE_ENV)


def say_of_leader(
    error: str | None, watch: str, *, stepped_down: bool = False, down: bool = False
) -> None:
    """Tell this server's workers how its leader fares (feedsvc.follower reads it): its
    last failure, how it watches, whether it stepped down for good or is not running."""
    LEADER_STATE.set(
        {
            "replica": replica(),
            "error": error,
            "stepped_down": stepped_down,
            "watch": watch,
            "down": down,
        }
    )


def tell_committed() -> None:
    """Wake this server's workers to load what a scan just committed (feedsvc.follower
    watches the file; its writes through mmap above would raise no inotify event)."""
    path = os.environ.get(COMMITS_ENV)
    if not path:
        return
    with contextlib.suppress(OSError):  # (the workers still catch up within a second)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, b"\n", 0)
        finally:
            os.close(fd)
