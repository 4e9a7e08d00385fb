"""Rendered documents ready to send, and the cache that holds them: least recently used
first, bounded by their bytes in every form a client asked for (the keys count too)."""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import brotli

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": lambda body: brotli.compress(body, quality=9),
    "gzip": lambda body: gzip.compress(body, compresslevel=9, mtime=0),
}
# Bytes a cached document costs beyond its bodies and key (its objects and the cache's
# entries), measured: tens of thousands of tiny documents must not outgrow the bound.
DOCUMENT_OVERHEAD = 1536

Key = tuple[str, ...]


@dataclass
class Rendered:
    """A feed document ready to send. Each compressed form is computed the first time a
    client asks for it and kept as long as the document is (deterministically: gzip carries
    no timestamp), so every replica sends the same bytes for the same encoding. ``grew`` is
    told how many bytes each new form adds (the cache that holds it keeps count)."""

    body: bytes
    etag: str
    last_modified: datetime
    media_type: str
    # A filter_time document is the same for every cut-off in (low, high]: it is served
    # for each of them, so a window moving by the second renders only when an entry leaves.
    cutoffs: tuple[float, float] | None = None
    grew: Callable[[int], None] | None = field(default=None, repr=False)
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def encoded(self, encoding: str) -> bytes:
        if encoding == "identity":
            return self.body
        with self._lock:
            form = self._encoded.get(encoding)
            if form is None:
                form = self._encoded[encoding] = ENCODERS[encoding](self.body)
                if self.grew is not None:
                    self.grew(len(form))
            return form


class DocumentCache:
    """Documents by key, dropped least recently used first once they hold more than
    ``max_bytes``; safe from any thread."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._lock = threading.Lock()
        self._documents: OrderedDict[Key, Rendered] = OrderedDict()
        self._sizes: dict[Key, int] = {}  # bytes counted for each document

    def get(self, key: Key) -> Rendered | None:
        """The document, now the most recently used (None: not held)."""
        with self._lock:
            found = self._documents.get(key)
            if found is not None:
                self._documents.move_to_end(key)
            return found

    def keep(self, key: Key, rendered: Rendered) -> Rendered:
        """Hold a document (or return the one another thread kept meanwhile, unless it is
        a moving window's older document, which this one replaces)."""
        with self._lock:
            held = self._documents.get(key)
            if held is not None and held.cutoffs == rendered.cutoffs:
                return held
            if held is not None:
                self._drop(key)
            self._documents[key] = rendered
            self._sizes[key] = 0
            rendered.grew = partial(self._grew, key)
            # the key counts too (a query's is as long as the query), and what holds it
            self._count(key, len(rendered.body) + sum(map(len, key)) + DOCUMENT_OVERHEAD)
        return rendered

    def keep_only(self, wanted: Callable[[Key], bool]) -> None:
        """Drop every document whose key is not ``wanted`` (e.g. of a state gone by)."""
        with self._lock:
            for key in [key for key in self._documents if not wanted(key)]:
                self._drop(key)

    def _grew(self, key: Key, nbytes: int) -> None:
        """A held document gained an encoded form."""
        with self._lock:
            self._count(key, nbytes)

    def _count(self, key: Key, nbytes: int) -> None:
        """Count a held document's new bytes; drop the least recently used documents while
        the cache holds more than its bound (never the one that just grew, unless it alone
        is over the bound: it is served, not held). The caller holds the lock."""
        if key not in self._documents:
            return
        self._sizes[key] += nbytes
        self.nbytes += nbytes
        if self._sizes[key] > self.max_bytes:
            self._drop(key)
        while self.nbytes > self.max_bytes and len(self._documents) > 1:
            oldest = next(iter(self._documents))
            if oldest == key:
                self._documents.move_to_end(key)
                oldest = next(iter(self._documents))
            self._drop(oldest)

    def _drop(self, key: Key) -> None:
        """Forget a document; its later encoded forms are no longer counted here."""
        self._documents.pop(key).grew = None
        self.nbytes -= self._sizes.pop(key)
