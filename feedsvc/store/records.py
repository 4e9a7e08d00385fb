"""What the store and the scan hand each other: files, entries, notes, feed summaries."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from feedsvc.model import EPOCH, Entry, Scope


@dataclass(frozen=True)
class FileState:
    """What the store last saw of a seed file: its stat and the hash of its bytes, whether it
    gave an entry, and whether it is noted as an error or a draft (whose stat then wins)."""

    mtime_ns: int
    size: int
    content_hash: str
    entry_id: str | None
    noted: bool
    missing_since: int | None


@dataclass(frozen=True)
class FileStat:
    """A file whose new version serves exactly what is served now: only its stat (and the
    hash of its bytes) is recorded, on its entry or, when ``noted``, its error or draft note."""

    rel: str
    mtime_ns: int
    size: int
    content_hash: str
    noted: bool


@dataclass(frozen=True)
class StoredEntry:
    """An entry as parsed, with the facts about the file it came from."""

    entry: Entry
    mtime_ns: int
    size: int
    content_hash: str


class NoteKind(StrEnum):
    """Why a file the store keeps a note of gives no entry (``unpublished.kind``)."""

    ERROR = "error"
    DRAFT = "draft"


@dataclass(frozen=True)
class Note:
    """A file that gave no entry: an error (with its reason) or a draft (reason '')."""

    rel: str
    mtime_ns: int
    size: int
    content_hash: str
    reason: str


@dataclass
class Changes:
    """One batch of scan results."""

    upserts: list[StoredEntry] = field(default_factory=list)
    restats: list[FileStat] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)
    errors: list[Note] = field(default_factory=list)
    drafts: list[Note] = field(default_factory=list)
    cleared_errors: list[str] = field(default_factory=list)
    new_paths: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.upserts
            or self.restats
            or self.missing
            or self.removed_paths
            or self.errors
            or self.drafts
            or self.cleared_errors
        )


GONE = "gone"  # the fingerprint of a scope that lost its last entry and its tombstones


@dataclass(frozen=True)
class ScopeSummary:
    """One feed's summary row: enough to answer validators and list the feed."""

    scope: Scope
    count: int
    newest_updated: datetime
    fingerprint: str

    @classmethod
    def empty(cls, scope: Scope) -> ScopeSummary:
        """A feed with no entries (the all-entries feed of an empty store)."""
        return cls(scope, 0, EPOCH, "empty")

    @property
    def gone(self) -> bool:
        """The scope had entries and has neither entries nor tombstones now (410 Gone)."""
        return self.fingerprint == GONE

    @property
    def listed(self) -> bool:
        """Whether the scope shows in the catalog (index, OPML): it has entries. A scope
        whose last entry left keeps a summary, empty while its tombstones last, then gone."""
        return self.count > 0


DIGEST_BYTES = 32  # an entry's digest: sha256 of its canonical JSON (Entry.digest)


@dataclass(frozen=True)
class ScopeMembers:
    """A scope's entries in feed order, reduced to what a document's validators are made of,
    as of the scope's ``fingerprint``: each entry's digest, update time and first-stored
    time, and the newest tombstones. Compact (about 48 bytes an entry): every serving
    process holds one per scope, so that no 304 has to read the store."""

    fingerprint: str
    digests: bytes  # DIGEST_BYTES per entry, in feed order
    updated: array[int]  # epoch seconds, in feed order
    stored: array[int]  # first stored (0: by the store's first scan), in feed order
    graves: tuple[tuple[str, datetime], ...]  # (entry id, when removed), newest first

    def __len__(self) -> int:
        return len(self.updated)

    def digests_of(self, start: int, end: int) -> list[bytes]:
        """The digests of the entries in [start, end) of the feed order."""
        end = min(end, len(self))
        return [self.digests[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES] for i in range(start, end)]


@dataclass(frozen=True)
class EntryPart:
    """An entry as a document of one format holds it (its bytes rendered once: see
    feedsvc.prerender), with what the document's validators and head are made of."""

    digest: bytes  # Entry.digest
    updated: datetime
    part: bytes
