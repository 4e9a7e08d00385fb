"""The tables, their version, and the ids rows are keyed by.

SQLite (WAL) by default, PostgreSQL for several replicas; both get the same schema and the
same statements. Each feed (scope) keeps a summary row -- entry count, newest update, a
fingerprint of its members -- recomputed only for the scopes a scan touched, so readers can
tell what changed without reading entries. A database of another schema version is emptied
and filled again from the seeds (always possible: ids derive from paths, not from rows)."""

from __future__ import annotations

import functools

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from feedsvc.model import stable_uuid

metadata = MetaData()
# Bumped whenever the tables change; a database of another version is rebuilt from the seeds.
SCHEMA_VERSION = "4"

entries = Table(
    "entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("path", Text, nullable=False),
    Column("path_id", String(36), nullable=False, index=True),
    Column("published", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    # When a scan first found the file gone (it is removed once delete_grace has passed).
    Column("missing_since", BigInteger, nullable=True),
    Column("data", Text, nullable=False),
    # Covers what a scan compares with each file, so a rescan on SQLite reads this index, not
    # the rows (whose inline JSON makes the table hundreds of megabytes at 100k entries).
    # PostgreSQL keeps long values out of line already, and caps index entries' size.
    Index(
        "entries_file_state", "path", "mtime_ns", "size", "content_hash", "id", "missing_since"
    ).ddl_if(dialect="sqlite"),
)

# Scope ids are UUIDs derived from scope keys: keys can be far longer than an index allows.
entry_scopes = Table(
    "entry_scopes",
    metadata,
    Column("scope_id", String(36), primary_key=True),
    Column("entry_id", String(36), primary_key=True),
    Column("published", BigInteger, nullable=False),
    Index("entry_scopes_order", "scope_id", "published", "entry_id"),
    Index("entry_scopes_entry", "entry_id"),
)

scopes = Table(
    "scopes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key", Text, nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("newest_updated", BigInteger, nullable=False),
    Column("fingerprint", String(64), nullable=False),
)

dirty_scopes = Table(
    "dirty_scopes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key", Text, nullable=False),
)

# Files that gave no entry: errors (kind "error") and drafts (kind "draft"), kept with their
# stat so an unchanged file is not read again.
unpublished = Table(
    "unpublished",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("path", Text, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("error", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
)

# The digest of each feed document as last announced to the WebSub hubs, by URL id: a hub
# is pinged only when a document's bytes changed since.
pinged = Table(
    "pinged",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("digest", String(64), nullable=False),
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
