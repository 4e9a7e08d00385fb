"""Each entry rendered once per revision, in every feed format, by the leader once the feeds
are live: a document on a cache miss is then its head and these parts joined
(feedsvc.feeds.assemble), in whichever process misses it, byte for byte a whole render."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from feedsvc.config import Settings
from feedsvc.feeds import PART_FORMATS, parts, render_key, shown
from feedsvc.store import Store

log = logging.getLogger(__name__)

BATCH = 200  # entries rendered per document and kept per transaction


def prerender(store: Store, settings: Settings, stop: Callable[[], bool] = lambda: False) -> int:
    """Render and keep the parts of every entry that has none for these settings (all of
    them when the settings changed), a batch per transaction, until ``stop`` says so between
    batches; how many it rendered."""
    key = render_key(settings)
    after, done, began = "", 0, time.monotonic()
    while not stop():
        batch = store.unrendered(key, after, BATCH)
        if not batch:
            break
        entries = [shown(settings, entry) for _fingerprint, entry in batch]
        rendered = [parts(settings, entries, fmt) for fmt in PART_FORMATS]
        store.keep_parts(
            key,
            [
                (entry.id, fingerprint, [each[i] for each in rendered])
                for i, (fingerprint, entry) in enumerate(batch)
            ],
        )
        after, done = batch[-1][1].id, done + len(batch)
    if done:
        duration = round((time.monotonic() - began) * 1000)
        log.info(
            "rendered %d entries in every format in %d ms",
            done,
            duration,
            extra={"rendered": done, "duration_ms": duration},
        )
    return done
