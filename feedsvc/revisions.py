"""When a re-read seed file is news, and which dates its entry is served with.

The job that writes real seed directories rewrites every file every hour: new modification
times, mostly the same bytes, and the crawl time as `date` for items their source did not
date. So an entry's identity is what a reader sees of it (title, body, summary, authors,
categories, tags, image, link, id), never the file's metadata, and its dates are settled
against the version already served:

- first stored: published is the stated `date`, else the time of that scan; updated is the
  stated `updated`, else the published date (nothing from the clock or the file leaks into a
  dated entry, so a fresh database gives the same bytes);
- afterwards: published follows a new stated date only when something a reader sees changed
  with it (a date-only change is crawl-time noise), and an undated entry keeps the time it was
  first stored; updated is the stated `updated`, else the time of the scan that first saw
  different content.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from feedsvc.model import Entry
from feedsvc.seeds import Parsed


def settle(
    parsed: Parsed, previous: Entry | None, seen_at: datetime, *, rebuild: bool = False
) -> Entry:
    """The entry to serve for a file just parsed, given the version served before (if any).

    ``rebuild`` settles as if first stored (after the parse settings changed, every stored
    entry is re-derived), except that an undated entry keeps the time it was first stored.
    The result equals ``previous`` when nothing a reader sees changed."""
    entry = parsed.entry
    if entry is None:
        raise ValueError("a draft has no entry to settle")
    if previous is None or rebuild:
        first_stored = previous.published if previous is not None else seen_at
        published = parsed.date or first_stored
        return replace(entry, published=published, updated=parsed.updated or published)
    changed = not entry.same_content(previous)
    published = parsed.date if changed and parsed.date else previous.published
    if parsed.updated is not None:
        updated = parsed.updated
    elif changed:
        updated = max(seen_at, published)
    else:
        updated = previous.updated
    return replace(entry, published=published, updated=updated)
