"""The tables, and the ids rows are keyed by.

SQLite (WAL) by default, PostgreSQL for several replicas; both get the same schema and the
same statements. Each feed (scope) keeps a summary row -- entry count, newest update, a
fingerprint of its members -- recomputed only for the scopes a scan touched, so readers can
tell what changed without reading entries. These are the models the code queries through;
the revisions in feedsvc/store/migrations create and change the tables (and the search
index, which is not a model), and a test keeps the two in agreement."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.schema import SchemaItem

from feedsvc.model import stable_uuid

metadata = MetaData()


def _uuid_key(name: str = "id") -> Column[str]:
    """A primary key holding a derived id (``stable_uuid``: see scope_id, path_id, url_id)."""
    return Column(name, String(36), primary_key=True)


def _file_stat() -> list[Column[Any]]:
    """What a scan compares with a seed file (records.FileState): where it is, its stat and
    the hash of its bytes."""
    return [
        Column("path", Text, nullable=False),
        Column("mtime_ns", BigInteger, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("content_hash", String(64), nullable=False),
    ]


def _membership(*columns: SchemaItem) -> list[SchemaItem]:
    """The key of a row tying an entry to a feed (scope), and its other columns."""
    return [_uuid_key("scope_id"), _uuid_key("entry_id"), *columns]


entries = Table(
    "entries",
    metadata,
    _uuid_key(),
    *_file_stat(),
    Column("path_id", String(36), nullable=False, index=True),
    Column("updated", BigInteger, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    # When the entry became news: the time of the scan that first stored it, or 0 when that
    # was the store's first scan (read for Last-Modified: see Store.page).
    Column("first_seen", BigInteger, nullable=False),
    # When a scan first found the file gone (it is removed once delete_grace has passed).
    Column("missing_since", BigInteger, nullable=True),
    # The entry's JSON and its searchable text, compressed together (feedsvc.store.parts).
    Column("data", LargeBinary, nullable=False),
    # Covers what a scan compares with each file, so a rescan on SQLite reads this index, not
    # the rows (whose inline JSON makes the table hundreds of megabytes at 100k entries).
    # PostgreSQL keeps long values out of line already, and caps index entries' size.
    Index(
        "entries_file_state",
        "path",
        "mtime_ns",
        "size",
        "content_hash",
        "id",
        "missing_since",
    ).ddl_if(dialect="sqlite"),
)

# Scope ids are UUIDs derived from scope keys: keys can be far longer than an index allows.
entry_scopes = Table(
    "entry_scopes",
    metadata,
    *_membership(
        Column("published", BigInteger, nullable=False),
        Index("entry_scopes_order", "scope_id", "published", "entry_id"),
        Index("entry_scopes_entry", "entry_id"),
    ),
)

scopes = Table(
    "scopes",
    metadata,
    _uuid_key(),
    Column("key", Text, nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("newest_updated", BigInteger, nullable=False),
    Column("fingerprint", String(64), nullable=False),
)

# The scopes a scan's writes touched, whose summaries it recomputes before it commits.
dirty_scopes = Table("dirty_scopes", metadata, _uuid_key(), Column("key", Text, nullable=False))

# Files that gave no entry: errors and drafts (``kind``: records.NoteKind), kept with their
# stat so an unchanged file is not read again.
unpublished = Table(
    "unpublished",
    metadata,
    _uuid_key(),
    *_file_stat(),
    Column("kind", String(8), nullable=False),
    Column("error", Text, nullable=False),
)

# The digest of each feed document as last announced to the WebSub hubs, by URL id: a hub
# is pinged only when a document's bytes changed since.
pinged = Table(
    "pinged",
    metadata,
    _uuid_key(),
    Column("url", Text, nullable=False),
    Column("digest", String(64), nullable=False),
)

# Entries that left a feed because their file was deleted (RFC 6721 at:deleted-entry in the
# Atom feed), kept tombstone_days; part of the scope's fingerprint, so feeds move with them.
tombstones = Table(
    "tombstones",
    metadata,
    *_membership(
        Column("removed", BigInteger, nullable=False),
        Index("tombstones_removed", "removed"),
    ),
)

# Each entry's place in the search index, which finds it once ``indexed`` is set: a scan
# writes the rows (the searchable text itself, title and plain-text body case-folded, is
# packed in entries.data), and the scanner indexes them after the feeds are live
# (Store.index_search); a search matches candidates against that text. The index holds
# tokens (feedsvc.store.search): SQLite in a contentless FTS5 table without positions,
# PostgreSQL in ``tokens`` under a GIN index. Both indexes are made by the revisions, not by
# these models (``tokens`` stays empty on SQLite).
entry_text = Table(
    "entry_text",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("indexed", Boolean, nullable=False),
    Column("tokens", Text().with_variant(TSVECTOR(), "postgresql"), nullable=True),
    Index(
        "entry_text_pending",
        "id",
        sqlite_where=text("indexed = 0"),  # (as SQLAlchemy writes ~indexed there)
        postgresql_where=text("NOT indexed"),
    ),
)
SEARCH_TABLE = "entry_search"  # SQLite's FTS5 index of entry_text's tokens

# Each entry's bytes in every feed format, rendered once per revision after the feeds are
# live (feedsvc.prerender), so that a document is its head and these joined. ``parts``: one
# compressed stream of them all (feedsvc.store.parts); ``fingerprint`` is the entry's when
# they were rendered, so an edited entry's old parts are never taken for its new ones. They
# hold for the render settings the meta row ``parts_key`` names.
fragments = Table(
    "fragments",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("parts", LargeBinary, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


@functools.lru_cache(maxsize=65536)
def scope_id(key: str) -> str:
    return stable_uuid("scope", key)


def path_id(rel: str) -> str:
    return stable_uuid("path", rel)


def url_id(url: str) -> str:
    return stable_uuid("url", url)
