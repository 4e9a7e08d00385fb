"""Persistent entries, their feed memberships and per-feed summaries, on SQLAlchemy Core.

SQLite (WAL) by default, PostgreSQL for several replicas; both get the same schema and the
same statements. The scan writes; everything else reads. Each feed (scope) keeps a summary
row -- entry count, newest update, a fingerprint of its members -- recomputed only for the
scopes a scan touched, so readers can tell what changed without reading entries."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url

from feedsvc.model import Entry, Scope, stable_uuid

metadata = MetaData()
WRITE_OPTION = "feedsvc_write"

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
    Column("data", Text, nullable=False),
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
    Column("count", Integer, nullable=False),
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
file_errors = Table(
    "file_errors",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("path", Text, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("error", Text, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def scope_id(key: str) -> str:
    return stable_uuid("scope", key)


def path_id(rel: str) -> str:
    return stable_uuid("path", rel)


@dataclass(frozen=True)
class FileState:
    """What the store last saw of a seed file: its stat and whether it parsed."""

    mtime_ns: int
    size: int
    entry_id: str | None
    error: str | None


@dataclass(frozen=True)
class StoredEntry:
    """An entry as parsed, with the facts about the file it came from."""

    entry: Entry
    mtime_ns: int
    size: int
    content_hash: str


@dataclass
class Changes:
    """One batch of scan results, written in one transaction."""

    upserts: list[StoredEntry] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)
    errors: list[tuple[str, int, int, str]] = field(default_factory=list)
    drafts: list[tuple[str, int, int]] = field(default_factory=list)
    cleared_errors: list[str] = field(default_factory=list)
    new_paths: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.upserts or self.removed_paths or self.errors or self.drafts or self.cleared_errors
        )


@dataclass(frozen=True)
class ScopeSummary:
    """One feed's summary row: enough to answer validators and list the feed."""

    scope: Scope
    count: int
    newest_updated: datetime
    fingerprint: str


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, emit BEGIN (SQLAlchemy's documented pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (BEGIN IMMEDIATE), so two processes never both
    read and then fail to upgrade; readers begin deferred and never block in WAL mode."""
    immediate = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL; SQLite's directory is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    """All reads and writes of feedsvc's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._create_schema()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its first statement)."""
        with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            yield conn

    def _create_schema(self) -> None:
        """Create missing tables; safe when several processes start at once."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                key = "hashtextextended('feedsvc:schema:' || current_schema(), 0)"
                conn.execute(text(f"select pg_advisory_xact_lock({key})"))
            metadata.create_all(conn)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    @staticmethod
    def _set_meta(conn: Connection, key: str, value: str) -> None:
        changed = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
        if changed.rowcount == 0:
            conn.execute(insert(meta).values(key=key, value=value))

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            self._set_meta(conn, key, value)

    def generation(self) -> int:
        """Bumped by every scan that changed a feed: readers compare it to know when to reload."""
        return int(self.get_meta("generation") or 0)

    # -- scan side ------------------------------------------------------------------------

    def file_states(self) -> dict[str, FileState]:
        """Every seed file the store knows, by relative path; an error's stat wins, so a file
        that broke is not re-read until it changes again."""
        states: dict[str, FileState] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(entries.c.path, entries.c.mtime_ns, entries.c.size, entries.c.id)
            ):
                states[row.path] = FileState(row.mtime_ns, row.size, row.id, None)
            for row in conn.execute(select(file_errors)):
                kept = states.get(row.path)
                states[row.path] = FileState(
                    row.mtime_ns, row.size, kept.entry_id if kept else None, row.error or None
                )
        return states

    def apply(self, changes: Changes) -> list[str]:
        """Write one batch in one transaction, with a handful of set-wise statements.
        Returns the paths whose explicit id is already another file's (not written)."""
        now = int(time.time())
        with self._write() as conn:
            dirty: set[str] = set()
            gone_paths = changes.removed_paths + [rel for rel, _m, _s in changes.drafts]
            upserts = {stored.entry.path: stored for stored in changes.upserts}
            # Existing rows for every path this batch touches, and owners of the ids it writes.
            touched = [path_id(rel) for rel in [*gone_paths, *upserts]]
            old_rows = self._select_in(
                conn,
                select(entries.c.id, entries.c.path, entries.c.first_seen, entries.c.data),
                entries.c.path_id,
                touched,
            )
            owners = {
                row.id: row.path
                for row in self._select_in(
                    conn,
                    select(entries.c.id, entries.c.path),
                    entries.c.id,
                    [stored.entry.id for stored in upserts.values()],
                )
            }
            # An id stays with the file that holds it, unless that file is gone or re-read in
            # this batch; within a batch the first file (in walk order) wins.
            leaving = set(gone_paths) | set(upserts)
            claimed: set[str] = set()
            clashes = []
            for rel, stored in list(upserts.items()):
                owner = owners.get(stored.entry.id)
                if (owner is not None and owner not in leaving) or stored.entry.id in claimed:
                    clashes.append(rel)
                    del upserts[rel]
                else:
                    claimed.add(stored.entry.id)
            first_seen = {row.path: row.first_seen for row in old_rows}
            doomed = [row.id for row in old_rows if row.path in upserts or row.path in gone_paths]
            for row in old_rows:
                if row.id in doomed:
                    dirty.update(scope.key for scope in Entry.from_json(row.data).scopes())
            self._delete_in(conn, entry_scopes, entry_scopes.c.entry_id, doomed)
            self._delete_in(conn, entries, entries.c.id, doomed)

            entry_rows, scope_rows = [], []
            for rel, stored in upserts.items():
                entry = stored.entry
                data = entry.to_json()
                published = int(entry.published.timestamp())
                entry_rows.append(
                    {
                        "id": entry.id,
                        "path": rel,
                        "path_id": path_id(rel),
                        "published": published,
                        "updated": int(entry.updated.timestamp()),
                        "fingerprint": hashlib.sha256(data.encode()).hexdigest(),
                        "content_hash": stored.content_hash,
                        "mtime_ns": stored.mtime_ns,
                        "size": stored.size,
                        "first_seen": min(first_seen.get(rel, now), now),
                        "data": data,
                    }
                )
                for scope in entry.scopes():
                    dirty.add(scope.key)
                    scope_rows.append(
                        {
                            "scope_id": scope_id(scope.key),
                            "entry_id": entry.id,
                            "published": published,
                        }
                    )
            if entry_rows:
                conn.execute(insert(entries), entry_rows)
                conn.execute(insert(entry_scopes), scope_rows)

            notes = [(*error, "error") for error in changes.errors]
            notes += [(rel, mtime_ns, size, "", "draft") for rel, mtime_ns, size in changes.drafts]
            cleared = [
                *changes.removed_paths,
                *changes.cleared_errors,
                *(note[0] for note in notes),
            ]
            self._delete_in(conn, file_errors, file_errors.c.id, [path_id(rel) for rel in cleared])
            if notes:
                conn.execute(
                    insert(file_errors),
                    [
                        {
                            "id": path_id(rel),
                            "path": rel,
                            "mtime_ns": m,
                            "size": n,
                            "kind": kind,
                            "error": error,
                        }
                        for rel, m, n, error, kind in notes
                    ],
                )
            self._mark_dirty(conn, dirty)
        return clashes

    @staticmethod
    def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
        for start in range(0, len(values), size):
            yield values[start : start + size]

    def _select_in(self, conn: Connection, query: Any, column: Any, values: list[Any]) -> list[Any]:
        rows: list[Any] = []
        for chunk in self._chunks(values):
            rows.extend(conn.execute(query.where(column.in_(chunk))).all())
        return rows

    def _delete_in(self, conn: Connection, table: Table, column: Any, values: list[Any]) -> None:
        for chunk in self._chunks(values):
            conn.execute(delete(table).where(column.in_(chunk)))

    def _mark_dirty(self, conn: Connection, keys: Iterable[str]) -> None:
        wanted = {scope_id(key): key for key in keys}
        present = {
            row.id
            for row in self._select_in(
                conn, select(dirty_scopes.c.id), dirty_scopes.c.id, list(wanted)
            )
        }
        rows = [{"id": sid, "key": key} for sid, key in wanted.items() if sid not in present]
        if rows:
            conn.execute(insert(dirty_scopes), rows)

    def refresh_scopes(self) -> list[Scope]:
        """Recompute the summary of every scope a write touched; bump the generation when a
        summary really changed. Returns the scopes whose feeds changed."""
        changed: list[Scope] = []
        with self._write() as conn:
            dirty = dict(conn.execute(select(dirty_scopes.c.id, dirty_scopes.c.key)).all())
            for chunk in self._chunks(sorted(dirty), 200):
                old = dict(
                    conn.execute(
                        select(scopes.c.id, scopes.c.fingerprint).where(scopes.c.id.in_(chunk))
                    ).all()
                )
                members = conn.execute(
                    select(
                        entry_scopes.c.scope_id,
                        entries.c.id,
                        entries.c.fingerprint,
                        entries.c.updated,
                    )
                    .join(entries, entry_scopes.c.entry_id == entries.c.id)
                    .where(entry_scopes.c.scope_id.in_(chunk))
                    .order_by(entry_scopes.c.scope_id, entries.c.id)
                ).all()
                summaries: dict[str, dict[str, Any]] = {}
                for sid, group in itertools.groupby(members, key=lambda row: row.scope_id):
                    rows = list(group)
                    digest = hashlib.sha256()
                    for row in rows:
                        digest.update(f"{row.id}:{row.fingerprint};".encode())
                    summaries[sid] = {
                        "id": sid,
                        "key": dirty[sid],
                        "count": len(rows),
                        "newest_updated": max(row.updated for row in rows),
                        "fingerprint": digest.hexdigest(),
                    }
                conn.execute(delete(scopes).where(scopes.c.id.in_(chunk)))
                if summaries:
                    conn.execute(insert(scopes), list(summaries.values()))
                for sid in chunk:
                    new = summaries.get(sid, {}).get("fingerprint")
                    if new != old.get(sid):
                        changed.append(Scope.from_key(dirty[sid]))
            conn.execute(delete(dirty_scopes))
            if changed:
                generation = conn.execute(
                    select(meta.c.value).where(meta.c.key == "generation")
                ).scalar()
                self._set_meta(conn, "generation", str(int(generation or 0) + 1))
        return sorted(changed)

    def reset(self) -> None:
        """Forget every entry and error (the next scan re-reads every file)."""
        with self._write() as conn:
            for table in (entry_scopes, entries, file_errors, dirty_scopes):
                conn.execute(delete(table))
            for key in (row[0] for row in conn.execute(select(scopes.c.key))):
                self._mark_dirty(conn, [key])
            conn.execute(delete(scopes))

    # -- read side ------------------------------------------------------------------------

    def scope_summaries(self) -> list[ScopeSummary]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(scopes)).all()
        return sorted(
            (
                ScopeSummary(
                    Scope.from_key(row.key),
                    row.count,
                    datetime.fromtimestamp(row.newest_updated, UTC),
                    row.fingerprint,
                )
                for row in rows
            ),
            key=lambda s: s.scope,
        )

    def page(self, scope: Scope, offset: int, limit: int) -> list[Entry]:
        """Entries of a scope, newest published first, then by id (a total, stable order)."""
        query = (
            select(entries.c.data)
            .join(entry_scopes, entry_scopes.c.entry_id == entries.c.id)
            .where(entry_scopes.c.scope_id == scope_id(scope.key))
            .order_by(entry_scopes.c.published.desc(), entry_scopes.c.entry_id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Entry.from_json(data) for data in conn.execute(query).scalars()]

    def entry(self, entry_id: str) -> Entry | None:
        with self.engine.connect() as conn:
            data = conn.execute(select(entries.c.data).where(entries.c.id == entry_id)).scalar()
        return Entry.from_json(data) if data else None

    def entry_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(entries)).scalar() or 0)

    def errors(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(file_errors.c.path, file_errors.c.error).where(file_errors.c.kind == "error")
            ).all()
        return sorted((row.path, row.error) for row in rows)

    def last_scan(self) -> dict[str, Any] | None:
        value = self.get_meta("last_scan")
        return json.loads(value) if value else None

    def record_scan(self, summary: dict[str, Any]) -> None:
        self.set_meta("last_scan", json.dumps(summary, sort_keys=True))

    def record_websub(self, counts: dict[str, int]) -> None:
        self.set_meta("websub", json.dumps(counts, sort_keys=True))

    def websub_counts(self) -> dict[str, int]:
        value = self.get_meta("websub")
        return json.loads(value) if value else {"sent": 0, "failed": 0, "retries": 0, "pending": 0}

    def all_entries(self) -> Sequence[Entry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(entries.c.data).order_by(entries.c.id)).scalars()
            return [Entry.from_json(data) for data in rows]
