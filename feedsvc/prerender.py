"""Each entry rendered once per revision, in every feed format, by the leader once the feeds
are live: a document on a cache miss is then its head and these parts joined
(feedsvc.feeds.assemble), in whichever process misses it, byte for byte a whole render."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from feedsvc.config import Settings
from feedsvc.feeds import PART_FORMATS, parts, render_key, shown
from feedsvc.logs import log_done
from feedsvc.model import Entry
from feedsvc.store import Store

log = logging.getLogger(__name__)

BATCH = 200  # entries read and kept per transaction
# Content rendered per document at most (a batch of long bodies is rendered in several: a
# render holds its document's tree, about ten times the content, in each format at once).
RENDER_BYTES = 1 << 20


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
        kept = []
        for group in _groups([shown(settings, entry) for _fingerprint, entry in batch]):
            rendered = [parts(settings, group, fmt) for fmt in PART_FORMATS]
            kept += [[each[i] for each in rendered] for i in range(len(group))]
        store.keep_parts(
            key,
            [
                (entry.id, fingerprint, entry_parts)
                for (fingerprint, entry), entry_parts in zip(batch, kept, strict=True)
            ],
        )
        after, done = batch[-1][1].id, done + len(batch)
    log_done(log, "rendered", done, "entries in every format", began)
    return done


def _groups(entries: list[Entry]) -> list[list[Entry]]:
    """The entries in order, in runs of at most RENDER_BYTES of content (at least one each)."""
    groups: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        length = len(entry.content) + len(entry.summary)
        if groups[-1] and size + length > RENDER_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += length
    return [group for group in groups if group]
