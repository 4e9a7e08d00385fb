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

An entry is undated when its published date is the time it was first stored (its file
stated no usable date): filter_time always keeps undated entries, as RSSHub keeps items
without a pubDate.

Image URLs that differ only in their query string and fragment are no difference when the
URL names a picture file (`a.jpg?t=1733051234`: a cache-busting query) or a random-picture
service (`https://picsum.photos/400/300?random=9255`, a new number on every run); after
anything else (`thumbnail?mindmapId=…`) the query may name the picture, and it counts. A new version that
differs from the served one in nothing else leaves it as it is, old URLs and all; any other
difference takes the new version whole.

A file that states no `id` keeps the id its entry is served under. A headline edit renames
the file (file names are titles): a file that appears may take over the entry of one that
disappeared (feedsvc.scan decides which, by ``identity``), and then settles against it as an
edit: its id and published date stay, updated moves.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from feedsvc.config import PLACEHOLDER_IMAGE_HOSTS
from feedsvc.model import Entry
from feedsvc.sanitize import html_to_text, on_hosts
from feedsvc.seeds import Parsed

# A tag of clean_html's output (every '<' in its text is escaped), up to its '>' or the end
# of the input; the name of an opening tag captured. Possessive, and every alternative ends
# at the end of the input at the latest: no character is looked at twice.
_TAG = re.compile(r"""<(?P<name>[A-Za-z]++)?(?:[^>"']++|"[^"]*+"?|'[^']*+'?)*+""")
_MEDIA = frozenset({"img", "source", "video", "audio"})
# In a media tag: each quoted value (read whole, so nothing inside one is taken for an
# attribute), named when it is an image URL's.
_VALUE = re.compile(r"""(?P<url>(?<=[\t\n\f\r /])(?:src|srcset|poster)=)?(?:"[^"]*+"?|'[^']*+'?)""")
# A URL up to its query, then its query and fragment (from '?' or '#'), ending at a space, a
# comma (srcset lists URLs with commas) or a quote.
_URL = re.compile(r"""[^\t\n\f\r ,"'?#]++(?P<query>[?#][^\t\n\f\r ,"']*+)?""")
# A picture's or a recording's file: its query only busts caches; a query after anything else
# (an API's `thumbnail?id=…`, a proxy's `?url=`) may name the picture, so it counts.
_MEDIA_FILES = frozenset(
    [
        "jpg",
        "jpeg",
        "png",
        "gif",
        "webp",
        "avif",
        "bmp",
        "svg",
        "heic",
        "mp4",
        "m4v",
        "webm",
        "mov",
        "ogv",
        "mp3",
        "m4a",
        "ogg",
        "oga",
        "opus",
        "wav",
        "flac",
    ]
)


def _query_churns(url: str) -> bool:
    """Whether a URL's query can change without the picture changing: the URL names a
    picture or recording file, or a service that answers any URL with a random picture."""
    if on_hosts(url, PLACEHOLDER_IMAGE_HOSTS):
        return True
    name = url.rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[1].lower() in _MEDIA_FILES


def _bare_url(match: re.Match[str]) -> str:
    """A URL without its query and fragment, where those are churn."""
    if match["query"] is None:
        return match[0]
    base = match[0][: match.start("query") - match.start()]
    return base if _query_churns(base) else match[0]


def _bare_value(match: re.Match[str]) -> str:
    """A media tag's quoted value, without its URLs' queries when it is an image URL's."""
    if match["url"] is None:
        return match[0]
    return _URL.sub(_bare_url, match[0])


def _bare_tag(match: re.Match[str]) -> str:
    """A tag, its image URLs without their queries when it is an image's or media's."""
    if (match["name"] or "").lower() not in _MEDIA:
        return match[0]
    return _VALUE.sub(_bare_value, match[0])


def _without_image_queries(entry: Entry) -> Entry:
    """The entry with every image URL's query and fragment left out: its lead image, and
    the src, srcset and poster of the images and media in its content."""
    return replace(
        entry,
        image=_URL.sub(_bare_url, entry.image) if entry.image else entry.image,
        content=_TAG.sub(_bare_tag, entry.content),
    )


def same_to_readers(new: Entry, old: Entry) -> bool:
    """Whether a reader would see no difference between two versions of an entry: they differ
    at most in their dates and in the queries (and fragments) of their image URLs."""
    return new.same_content(old) or _without_image_queries(new).same_content(
        _without_image_queries(old)
    )


def _empty(content: str) -> bool:
    """Whether a body holds nothing to read or see: no text, no image or media."""
    if html_to_text(content):
        return False
    return not any((tag["name"] or "").lower() in _MEDIA for tag in _TAG.finditer(content))


def identity(entry: Entry) -> str | None:
    """What still names an item after its headline was edited: a digest of its body (as
    cleaned), categories and authors. None for an empty body (the producer's is an empty
    <div>), which names nothing."""
    if _empty(entry.content):
        return None
    named: list[Any] = [
        _without_image_queries(entry).content,  # (a rename meets the hourly image churn)
        [list(hierarchy) for hierarchy in entry.categories],
        [[author.name, author.email, author.url] for author in entry.authors],
    ]
    text = json.dumps(named, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def settle(
    parsed: Parsed, previous: Entry | None, seen_at: datetime, *, rebuild: bool = False
) -> Entry:
    """The entry to serve for a file just parsed, given the version served before (if any).

    ``previous`` is the entry the file's path serves, or the entry of another path that this
    file takes over (a renamed file). ``rebuild`` settles as if first stored (after the parse
    settings changed, every stored entry is re-derived), except that an undated entry keeps
    the time it was first stored. The result equals ``previous`` when nothing a reader sees
    changed (see ``same_to_readers``)."""
    entry = parsed.entry
    if entry is None:
        raise ValueError("a draft has no entry to settle")
    if previous is not None and entry.id == entry.path_id:
        entry = replace(entry, id=previous.id)  # the file states no id: it keeps the served one
    moved = previous is not None and previous.path != entry.path
    if previous is None or (rebuild and not moved):
        first_stored = previous.published if previous is not None else seen_at
        published = parsed.date or first_stored
        return replace(
            entry,
            published=published,
            updated=parsed.updated or published,
            undated=parsed.date is None,
        )
    changed = moved or not same_to_readers(entry, previous)
    # a new stated date is taken with a revision; a file taking over an entry keeps its date
    published = parsed.date if changed and parsed.date and not moved else previous.published
    if parsed.updated is not None:
        updated = parsed.updated
    elif changed:
        updated = max(seen_at, published)
    else:
        updated = previous.updated
    # (unchanged, the dates stay the previous version's, and so does whether it had one)
    undated = parsed.date is None if changed else previous.undated
    served = entry if changed else previous  # image URLs that only moved their query stay
    return replace(served, published=published, updated=updated, undated=undated)
