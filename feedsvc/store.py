"""Persistent entries, their feed memberships and per-feed summaries, on SQLAlchemy Core.

SQLite (WAL) by default, PostgreSQL for several replicas; both get the same schema and the
same statements. The scan writes; everything else reads. Each feed (scope) keeps a summary
row -- entry count, newest update, a fingerprint of its members -- recomputed only for the
scopes a scan touched, so readers can tell what changed without reading entries."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import itertools
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DatabaseError

from feedsvc.model import Entry, Scope, stable_uuid

log = logging.getLogger(__name__)

metadata = MetaData()
# Bumped whenever the tables change; a database of another version is rebuilt from the seeds.
SCHEMA_VERSION = "3"
WRITE_OPTION = "feedsvc_write"
SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite messages that mean the file itself is damaged, not that one statement failed.
_READ_ONLY_MARKERS = ("readonly", "read-only", "unable to open database file")
_CORRUPT_MARKERS = ("malformed", "not a database", "file is encrypted", "database disk image")

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
    # Switching a new file to WAL takes a lock without calling the busy handler: another
    # process creating the database at the same moment makes it fail at once ("database is
    # locked"), so wait as busy_timeout would.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (BEGIN IMMEDIATE), so two processes never both
    read and then fail to upgrade; readers begin deferred and never block in WAL mode."""
    immediate = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_connect_read_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for a SQLite or PostgreSQL URL; SQLite's directory is created if missing.
    ``read_only`` opens an existing SQLite file that cannot be written (nothing is locked
    or changed, so it works on a read-only file system)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if read_only:
        uri = f"sqlite:///file:{quote(str(Path(parsed.database).resolve()))}?mode=ro&immutable=1&uri=true"
        engine = create_engine(uri)
        event.listen(engine, "connect", _sqlite_connect_read_only)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def is_read_only(exc: BaseException) -> bool:
    """Whether a database error means the file or its directory cannot be written."""
    return isinstance(exc, DatabaseError) and any(
        m in str(exc.orig).lower() for m in _READ_ONLY_MARKERS
    )


def is_corruption(exc: BaseException) -> bool:
    """Whether a database error means the SQLite file is damaged (rebuild it from the seeds)."""
    return isinstance(exc, DatabaseError) and any(
        m in str(exc.orig).lower() for m in _CORRUPT_MARKERS
    )


def _chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _select_in(conn: Connection, query: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``values``, asked in bounded chunks."""
    rows: list[Any] = []
    for chunk in _chunks(values):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows


def _delete_in(conn: Connection, table: Table, column: Any, values: Sequence[Any]) -> None:
    for chunk in _chunks(values):
        conn.execute(delete(table).where(column.in_(chunk)))


class Writer:
    """The write side, bound to one transaction: a whole scan commits at once, so readers
    (in this process or a replica) never see entries whose feed summaries are not written yet,
    and a scan killed at any point leaves the store exactly as the last finished scan left it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def set_meta(self, key: str, value: str) -> None:
        changed = self.conn.execute(update(meta).where(meta.c.key == key).values(value=value))
        if changed.rowcount == 0:
            self.conn.execute(insert(meta).values(key=key, value=value))

    def get_meta(self, key: str) -> str | None:
        return self.conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def file_states(self, paths: Sequence[str] | None = None) -> dict[str, FileState]:
        """The seed files the store knows (only ``paths`` and the files missing now, when
        given), by relative path; an error's or a draft's stat wins, so a file that broke
        is not re-read until it changes again."""
        entry_query = select(
            entries.c.path,
            entries.c.mtime_ns,
            entries.c.size,
            entries.c.content_hash,
            entries.c.id,
            entries.c.missing_since,
        )
        note_query = select(file_errors)
        if paths is None:
            entry_rows = self.conn.execute(entry_query).all()
            note_rows = self.conn.execute(note_query).all()
        else:
            ids = [path_id(rel) for rel in paths]
            missing = entry_query.where(entries.c.missing_since.is_not(None))
            entry_rows = _select_in(self.conn, entry_query, entries.c.path_id, ids)
            entry_rows += self.conn.execute(missing).all()
            note_rows = _select_in(self.conn, note_query, file_errors.c.id, ids)
        states: dict[str, FileState] = {}
        for row in entry_rows:
            states[row.path] = FileState(
                row.mtime_ns, row.size, row.content_hash, row.id, False, row.missing_since
            )
        for row in note_rows:
            kept = states.get(row.path)
            states[row.path] = FileState(
                row.mtime_ns,
                row.size,
                row.content_hash,
                kept.entry_id if kept else None,
                True,
                kept.missing_since if kept else None,
            )
        return states

    def entries_at(self, paths: Sequence[str]) -> dict[str, Entry]:
        """The entries served now for these seed files, by relative path."""
        rows = _select_in(
            self.conn,
            select(entries.c.path, entries.c.data),
            entries.c.path_id,
            [path_id(rel) for rel in paths],
        )
        return {row.path: Entry.from_json(row.data) for row in rows}

    def apply(self, changes: Changes, seen_at: int) -> list[str]:
        """Write one batch in one transaction, with a handful of set-wise statements;
        ``seen_at`` is the scan's time (a new entry's first_seen, a missing file's start).
        Returns the paths whose explicit id is already another file's (not written)."""
        conn = self.conn
        dirty: set[str] = set()
        self._restat(changes.restats)
        for chunk in _chunks([path_id(rel) for rel in changes.missing]):
            conn.execute(
                update(entries).where(entries.c.path_id.in_(chunk)).values(missing_since=seen_at)
            )
        gone_paths = changes.removed_paths + [note.rel for note in changes.drafts]
        upserts = {stored.entry.path: stored for stored in changes.upserts}
        # Existing rows for every path this batch touches, and owners of the ids it writes.
        touched = [path_id(rel) for rel in [*gone_paths, *upserts]]
        old_rows = _select_in(
            self.conn,
            select(entries.c.id, entries.c.path, entries.c.first_seen, entries.c.data),
            entries.c.path_id,
            touched,
        )
        owners = {
            row.id: row.path
            for row in _select_in(
                self.conn,
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
        _delete_in(self.conn, entry_scopes, entry_scopes.c.entry_id, doomed)
        _delete_in(self.conn, entries, entries.c.id, doomed)

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
                    "first_seen": first_seen.get(rel, seen_at),
                    "missing_since": None,
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

        notes = [(note, "error") for note in changes.errors]
        notes += [(note, "draft") for note in changes.drafts]
        cleared = [
            *changes.removed_paths,
            *changes.cleared_errors,
            *(note.rel for note, _kind in notes),
        ]
        _delete_in(self.conn, file_errors, file_errors.c.id, [path_id(rel) for rel in cleared])
        if notes:
            conn.execute(
                insert(file_errors),
                [
                    {
                        "id": path_id(note.rel),
                        "path": note.rel,
                        "mtime_ns": note.mtime_ns,
                        "size": note.size,
                        "kind": kind,
                        "error": note.reason,
                        "content_hash": note.content_hash,
                    }
                    for note, kind in notes
                ],
            )
        self._mark_dirty(dirty)
        return clashes

    def _restat(self, restats: list[FileStat]) -> None:
        """Record the new stat of files whose bytes did not change: nothing served moves."""
        targets = ((entries, entries.c.path_id, False), (file_errors, file_errors.c.id, True))
        for table, key, noted in targets:
            rows = [
                {
                    "pid": path_id(item.rel),
                    "m": item.mtime_ns,
                    "n": item.size,
                    "h": item.content_hash,
                }
                for item in restats
                if item.noted is noted
            ]
            if not rows:
                continue
            values: dict[str, Any] = {
                "mtime_ns": bindparam("m"),
                "size": bindparam("n"),
                "content_hash": bindparam("h"),
            }
            if table is entries:
                values["missing_since"] = None
            self.conn.execute(update(table).where(key == bindparam("pid")).values(**values), rows)

    def _mark_dirty(self, keys: Iterable[str]) -> None:
        wanted = {scope_id(key): key for key in keys}
        present = {
            row.id
            for row in _select_in(
                self.conn, select(dirty_scopes.c.id), dirty_scopes.c.id, list(wanted)
            )
        }
        rows = [{"id": sid, "key": key} for sid, key in wanted.items() if sid not in present]
        if rows:
            self.conn.execute(insert(dirty_scopes), rows)

    def refresh_scopes(self) -> list[Scope]:
        """Recompute the summary of every scope a write touched; bump the generation when a
        summary really changed. Returns the scopes whose feeds changed."""
        changed: list[Scope] = []
        conn = self.conn
        dirty = dict(conn.execute(select(dirty_scopes.c.id, dirty_scopes.c.key)).all())
        for chunk in _chunks(sorted(dirty), 200):
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
            )  # streamed, one scope's members at a time: at 100k entries the chunk's are millions
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
            self.set_meta("generation", str(int(generation or 0) + 1))
        return sorted(changed)

    def error_count(self) -> int:
        query = select(func.count()).select_from(file_errors).where(file_errors.c.kind == "error")
        return int(self.conn.execute(query).scalar() or 0)


class Store:
    """All reads and writes of feedsvc's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (
            None,
            "",
            ":memory:",
        )
        self.path: Path | None = Path(parsed.database).resolve() if sqlite_file else None
        existed = self.path is None or self.path.exists()
        self._identity: tuple[int, int] | None = None
        self._held: int | None = None  # a descriptor of that file, kept open: see problem()
        self.read_only = False
        if self.path is not None and existed and not self._writable(self.path):
            self._open_read_only("the file or its directory is read-only")
            return
        self.engine = make_engine(url)
        try:
            self._create_schema()
            if not existed:
                log.info("created database %s: the first scan fills it from the seeds", self.path)
        except DatabaseError as exc:
            if self.path is not None and existed and is_read_only(exc):
                self.engine.dispose()
                self._open_read_only(str(exc.orig))
            elif self.path is not None and is_corruption(exc):
                self._repair(f"is unreadable ({exc.orig})", self._file_identity())
            else:
                raise

    @staticmethod
    def _writable(path: Path) -> bool:
        """Whether SQLite could write the file and its WAL beside it; asked of the file system
        (a read-only mount says no even to root), not learnt from a write that may not happen."""
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)

    def _open_read_only(self, reason: str) -> None:
        """Serve what an unwritable database holds; every scan fails (and says why) until
        the file can be written again and the process restarts."""
        log.error(
            "database %s cannot be written (%s): serving what it holds; scans fail until it can be written",
            self.path,
            reason,
        )
        self.engine = make_engine(self.url, read_only=True)
        self.read_only = True
        self._remember_file()

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its first statement)."""
        with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        """One write transaction: everything done through the Writer commits together."""
        with self._write() as conn:
            yield Writer(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see one committed state."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _schema_current(self) -> bool:
        """Whether every table exists at this schema version: asked in a read, because a
        long scan holds the write lock and a worker starting meanwhile must not wait for it."""
        with self.engine.connect() as conn:
            inspector = inspect(conn)
            if not all(inspector.has_table(table.name) for table in metadata.sorted_tables):
                return False
            keys = ["epoch", "schema_version"]
            found = dict(
                conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(keys))).all()
            )
        return "epoch" in found and found.get("schema_version") == SCHEMA_VERSION

    def _create_schema(self) -> None:
        """Create missing tables; safe when several processes start at once."""
        if self._schema_current():
            self._remember_file()
            return
        with self._write() as conn:
            if self.dialect == "postgresql":
                key = "hashtextextended('feedsvc:schema:' || current_schema(), 0)"
                conn.execute(text(f"select pg_advisory_xact_lock({key})"))
            self._check_version(conn)
            metadata.create_all(conn)
            writer = Writer(conn)
            if writer.get_meta("epoch") is None:
                writer.set_meta("epoch", uuid.uuid4().hex)
                writer.set_meta("schema_version", SCHEMA_VERSION)
        self._remember_file()

    def _check_version(self, conn: Connection) -> None:
        """A database written by another schema version is emptied, to be filled again from
        the seeds by the next scan (always possible: ids derive from paths, not from rows)."""
        if not inspect(conn).has_table(meta.name):
            return
        found = Writer(conn).get_meta("schema_version") or "1"
        if found == SCHEMA_VERSION:
            return
        log.warning(
            "database %s has schema version %s, this feedsvc writes %s: rebuilding it from the seeds",
            self.path or self.dialect,
            found,
            SCHEMA_VERSION,
        )
        metadata.drop_all(conn)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
        self._release_file()

    # -- the SQLite file's health ----------------------------------------------------------

    def _remember_file(self) -> None:
        """Note which file this process opened, and keep a descriptor of it open to read
        its header. SQLite's locks are POSIX locks, which a process loses on *every* file
        of its own when it closes *any* descriptor of that file: opening and closing the
        database to look at it would let another process think it is alone, checkpoint and
        delete the WAL under this one ("disk I/O error")."""
        self._release_file()
        self._identity = self._file_identity()
        if self.path is not None and self._identity is not None:
            try:
                self._held = os.open(self.path, os.O_RDONLY)
            except OSError:
                self._held = None

    def _release_file(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def _file_identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """What is wrong with the SQLite file under this process, if anything: deleted,
        replaced by another file, or not an SQLite file any more."""
        if self.path is None or self.read_only:  # nothing to repair where nothing can be written
            return None
        identity = self._file_identity()
        if identity is None:
            return "was deleted"
        try:
            if identity == self._identity and self._held is not None:
                header = os.pread(self._held, len(SQLITE_HEADER), 0)
            else:  # another file: closing a descriptor of it costs this process no lock
                with open(self.path, "rb") as handle:
                    header = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        if len(header) == len(SQLITE_HEADER) and header != SQLITE_HEADER:
            return "is corrupt"
        if identity != self._identity:
            return "was replaced"
        return None

    def reopen(self) -> None:
        """Drop every connection and open the database file that is there now."""
        self.engine.dispose()
        self.engine = make_engine(self.url)
        self._create_schema()

    def rebuild(self, reason: str) -> None:
        """Move a damaged or vanished database aside and start an empty one; the next scan
        fills it from the seeds with the same ids (ids derive from paths, not from rows)."""
        self._repair(reason, self._file_identity())

    def _repair(self, reason: str, broken: tuple[int, int] | None) -> None:
        """Under a lock shared by every process: move the broken file (if it is still the one
        that failed) and a stale WAL aside, then open a fresh database."""
        assert self.path is not None
        self.engine.dispose()
        with open(self.path.with_name(self.path.name + ".repair.lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self._file_identity()
            if current is None or (broken is not None and current == broken):
                stamp = time.strftime("%Y%m%dT%H%M%S")
                suffixes = ("-wal", "-shm") if current is None else ("", "-wal", "-shm")
                for suffix in suffixes:
                    old = self.path.with_name(self.path.name + suffix)
                    if old.exists():
                        os.replace(old, old.with_name(f"{old.name}.broken-{stamp}"))
                log.error("database %s %s: rebuilding it from the seeds", self.path, reason)
            self.engine = make_engine(self.url)
            self._create_schema()

    # -- small writes -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as writer:
            writer.set_meta(key, value)

    def generation(self) -> str | None:
        """Changes whenever a scan changed a feed, and whenever the database was rebuilt:
        readers compare it with what they loaded to know when to reload. None until a scan
        has finished in this database (a rebuilt one is empty until then: keep serving)."""
        if self.last_scan() is None:
            return None
        with self.engine.connect() as conn:
            values = dict(
                conn.execute(
                    select(meta.c.key, meta.c.value).where(meta.c.key.in_(["epoch", "generation"]))
                ).all()
            )
        return f"{values.get('epoch', '')}:{values.get('generation', '0')}"

    def pinged_digests(self, urls: Sequence[str]) -> dict[str, str]:
        """The digest each feed URL had when the hubs were last told of it, where known."""
        with self.engine.connect() as conn:
            rows = _select_in(
                conn,
                select(pinged.c.url, pinged.c.digest),
                pinged.c.id,
                [url_id(url) for url in urls],
            )
        return {row.url: row.digest for row in rows}

    def record_pinged(self, digests: dict[str, str | None]) -> None:
        """Remember what the hubs are told now (None: the feed is gone)."""
        with self.transaction() as writer:
            _delete_in(writer.conn, pinged, pinged.c.id, [url_id(url) for url in digests])
            rows = [
                {"id": url_id(url), "url": url, "digest": digest}
                for url, digest in digests.items()
                if digest is not None
            ]
            if rows:
                writer.conn.execute(insert(pinged), rows)

    def record_websub(self, counts: dict[str, int]) -> None:
        self.set_meta("websub", json.dumps(counts, sort_keys=True))

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

    def page(self, scope: Scope, offset: int, limit: int) -> tuple[list[Entry], str | None]:
        """Entries of a scope, newest published first, then by id (a total, stable order),
        with the scope's fingerprint read in the same snapshot: the caller can tell whether
        the entries belong to the summary it holds."""
        sid = scope_id(scope.key)
        query = (
            select(entries.c.data)
            .join(entry_scopes, entry_scopes.c.entry_id == entries.c.id)
            .where(entry_scopes.c.scope_id == sid)
            .order_by(entry_scopes.c.published.desc(), entry_scopes.c.entry_id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self._snapshot() as conn:
            fingerprint = conn.execute(
                select(scopes.c.fingerprint).where(scopes.c.id == sid)
            ).scalar()
            found = [Entry.from_json(data) for data in conn.execute(query).scalars()]
        return found, fingerprint

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

    def websub_counts(self) -> dict[str, int]:
        value = self.get_meta("websub")
        return json.loads(value) if value else {"sent": 0, "failed": 0, "retries": 0, "pending": 0}

    def all_entries(self) -> Sequence[Entry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(entries.c.data).order_by(entries.c.id)).scalars()
            return [Entry.from_json(data) for data in rows]
