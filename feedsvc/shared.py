"""A little memory that every worker process of one server shares: mapped when this module is
first imported, which `feedsvc serve` does before the server forks its workers, so each worker
reads what any other wrote, without the database (which may be the thing that is failing)."""

from __future__ import annotations

import json
import mmap
import multiprocessing
from typing import Any

_HEADER = 4  # bytes of the length that precedes the value


class SharedValue:
    """One JSON value of at most ``size`` bytes, shared by the processes forked after it."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._map = mmap.mmap(-1, _HEADER + size)
        self._lock = multiprocessing.get_context("fork").Lock()

    def set(self, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False).encode()
        if len(data) > self._size:  # a long message is cut, never spilled
            data = json.dumps(str(value)[: self._size // 8], ensure_ascii=False).encode()
        with self._lock:
            self._map[:_HEADER] = len(data).to_bytes(_HEADER, "big")
            self._map[_HEADER : _HEADER + len(data)] = data

    def get(self) -> Any:
        with self._lock:
            length = int.from_bytes(self._map[:_HEADER], "big")
            data = self._map[_HEADER : _HEADER + length]
        return json.loads(data) if data else None


# What this server's scanning process last failed with: {"error": ...} (see feedsvc.schedule).
SCAN_STATE = SharedValue()
