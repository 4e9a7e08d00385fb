"""The values that flow through feedsvc: an Entry made from one seed file, and the Scope
(site, category path, author or tag) a feed is built for."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

# Fixed namespace for every id feedsvc derives: ids must never depend on anything but input.
NAMESPACE = uuid.UUID("6f1d8a52-4c1e-5b7a-9d2e-3c8f0b1a7e64")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the date of nothing: an empty feed's update


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def stable_uuid(kind: str, name: str) -> str:
    """A name-based (version 5) UUID; works for any str, including undecodable file names."""
    digest = hashlib.sha1(
        NAMESPACE.bytes + f"{kind}:".encode() + name.encode("utf-8", "surrogateescape")
    )
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


def is_entry_id(text: str) -> bool:
    """Whether ``text`` is an entry id as feedsvc writes them (a UUID in its canonical
    form): anything else names no entry and never reaches the database."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


# The longest category, author or tag name: longer ones are refused in seed files and
# name no feed in a URL.
MAX_NAME_CHARS = 200


@functools.lru_cache(maxsize=4096)
def url_segment(name: str) -> str:
    """One name as a URL path segment, percent-encoded as UTF-8 ('/' included). Cached: a
    scan asks for the same few hundred names once per entry. (Bounded: at most 4,096 names
    of at most MAX_NAME_CHARS characters, whoever asks.)"""
    return quote(name, safe="")


class Format(StrEnum):
    ATOM = "atom"
    RSS = "rss"
    JSON = "json"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]


_MEDIA_TYPES = {
    Format.ATOM: "application/atom+xml",
    Format.RSS: "application/rss+xml",
    Format.JSON: "application/feed+json",
}


class Html(StrEnum):
    """A scope's HTML page, cached and validated like its feeds (beside ``Format``)."""

    PAGE = "html"

    @property
    def media_type(self) -> str:
        return "text/html"


Variant = Format | Html  # what the service renders for a scope


class ScopeKind(StrEnum):
    ALL = "all"
    CATEGORY = "category"
    AUTHOR = "author"
    TAG = "tag"

    @property
    def noun(self) -> str:
        """What a reader calls a scope of this kind, in titles and headings."""
        return {
            ScopeKind.ALL: "Everything",
            ScopeKind.CATEGORY: "Category",
            ScopeKind.AUTHOR: "Author",
            ScopeKind.TAG: "Tag",
        }[self]


@dataclass(frozen=True, order=True)
class Scope:
    """What a feed covers. ``names`` is the category hierarchy, or the one author or tag name."""

    kind: ScopeKind
    names: tuple[str, ...] = ()

    @classmethod
    def all(cls) -> Scope:
        return cls(ScopeKind.ALL)

    @functools.cached_property
    def key(self) -> str:
        """A unique text key: the kind, then each name percent-encoded (so '/' stays inside)."""
        if self.kind is ScopeKind.ALL:
            return "all"
        return self.kind.value + ":" + "/".join(map(url_segment, self.names))

    @classmethod
    def from_key(cls, key: str) -> Scope:
        if key == "all":
            return cls.all()
        kind, _, rest = key.partition(":")
        return cls(ScopeKind(kind), tuple(unquote(part) for part in rest.split("/")))

    @property
    def feed_id(self) -> str:
        return "urn:uuid:" + stable_uuid("feed", self.key)

    @property
    def parents(self) -> list[Scope]:
        """The categories above this one, outermost first (the breadcrumb)."""
        if self.kind is not ScopeKind.CATEGORY:
            return []
        return category_levels(self.names)[:-1]

    @property
    def label(self) -> str:
        """A human name: 'All entries', '新媒体 › 快科技', or the author or tag."""
        if self.kind is ScopeKind.ALL:
            return "All entries"
        return " › ".join(self.names)


def json_digest(data: str) -> bytes:
    """The digest of an entry's canonical JSON (Entry.to_json): what the store keeps of it
    (hex) and what a document's ETag is made of."""
    return hashlib.sha256(data.encode()).digest()


def category_levels(hierarchy: Sequence[str]) -> list[Scope]:
    """Each level of a category hierarchy as its scope, outermost first: an entry filed
    under a/b/c is in a, a/b and a/b/c."""
    names = tuple(hierarchy)
    return [Scope(ScopeKind.CATEGORY, names[:depth]) for depth in range(1, len(names) + 1)]


@dataclass(frozen=True)
class Author:
    name: str
    email: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Entry:
    """One published seed file, normalised: every text field is sanitised and XML-safe."""

    id: str
    path: str
    title: str
    published: datetime
    updated: datetime
    authors: tuple[Author, ...]
    categories: tuple[tuple[str, ...], ...]
    tags: tuple[str, ...]
    link: str | None
    image: str | None
    summary: str
    content: str
    lang: str | None = None  # BCP 47, when the seed file states one
    # The seed file stated no usable date: ``published`` is when the entry was first stored.
    # (RSSHub keeps items without a date whatever filter_time says; so does feedsvc.)
    undated: bool = False

    @property
    def urn(self) -> str:
        return "urn:uuid:" + self.id

    @property
    def path_id(self) -> str:
        """The id the entry's path gives: a file that states no ``id`` is first stored under
        it (an explicit id never equals it: the two are named apart)."""
        return stable_uuid("path", self.path)

    def scopes(self) -> list[Scope]:
        """Every feed this entry belongs to: the site, each level of each hierarchy, authors, tags."""
        found = {Scope.all()}
        for hierarchy in self.categories:
            found.update(category_levels(hierarchy))
        found.update(Scope(ScopeKind.AUTHOR, (author.name,)) for author in self.authors)
        found.update(Scope(ScopeKind.TAG, (tag,)) for tag in self.tags)
        return sorted(found)

    def _content(self) -> dict[str, Any]:
        """Every field but the dates: what a reader sees of the entry (and where it lives)."""
        return {
            "id": self.id,
            "path": self.path,
            "title": self.title,
            "authors": [{"name": a.name, "email": a.email, "url": a.url} for a in self.authors],
            "categories": [list(hierarchy) for hierarchy in self.categories],
            "tags": list(self.tags),
            "link": self.link,
            "image": self.image,
            "summary": self.summary,
            "content": self.content,
            "lang": self.lang,
        }

    def same_content(self, other: Entry) -> bool:
        """Whether the two differ at most in their dates."""
        return self._content() == other._content()

    def digest(self) -> bytes:
        """What the entry is known by in validators: its canonical JSON's digest."""
        return json_digest(self.to_json())

    def to_json(self) -> str:
        """Canonical JSON of the entry's fields (sorted keys), stored and hashed as it is."""
        data = {
            **self._content(),
            "published": int(self.published.timestamp()),
            "updated": int(self.updated.timestamp()),
        }
        if self.undated:
            data["undated"] = True
        offset = _offset_minutes(self.published)
        if offset:  # the UTC offset the date was written with, for showing it as written
            data["offset"] = offset
        return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        return cls(
            id=data["id"],
            path=data["path"],
            title=data["title"],
            published=datetime.fromtimestamp(
                data["published"], timezone(timedelta(minutes=data.get("offset", 0)))
            ),
            updated=datetime.fromtimestamp(data["updated"], UTC),
            authors=tuple(Author(**a) for a in data["authors"]),
            categories=tuple(tuple(h) for h in data["categories"]),
            tags=tuple(data["tags"]),
            link=data["link"],
            image=data["image"],
            summary=data["summary"],
            content=data["content"],
            lang=data.get("lang"),
            undated=data.get("undated", False),
        )


@dataclass(frozen=True)
class IdClash:
    """A seed file (``path``, as the store knows it) refused the explicit id ``entry_id``
    that the file ``keeper`` keeps."""

    path: str
    entry_id: str
    keeper: str

    @property
    def reason(self) -> str:
        return f"id {self.entry_id} is already used by {self.keeper}"


def settle_claims(
    claimants: Mapping[str, Sequence[str]], served_by: Mapping[str, str]
) -> tuple[dict[str, str], list[IdClash]]:
    """Which file keeps each explicit id several files give (``claimants``, by id), and
    the clashes: the file serving it now (``served_by``, by id) if that one still gives it,
    else the first in path order. Scan and check both decide by this, so they blame the
    same file in the same words."""
    keepers: dict[str, str] = {}
    clashes: list[IdClash] = []
    for entry_id, paths in claimants.items():
        served = served_by.get(entry_id)
        keeper = served if served is not None and served in paths else min(paths)
        keepers[entry_id] = keeper
        clashes += [IdClash(path, entry_id, keeper) for path in paths if path != keeper]
    return keepers, clashes
