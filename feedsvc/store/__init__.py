"""feedsvc's database, on SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL for several
replicas. The scan writes, in one transaction (feedsvc.store.transaction); everything else
reads through ``Store``. Only the store's own errors (feedsvc.store.errors) leave it.

The package, one job per module: ``schema`` (tables and ids), ``migrate`` (the schema's
revision and upgrades, with Alembic's revisions in ``migrations``), ``engine`` (engines per backend), ``errors``, ``sql`` (bounded IN lists, the meta
table), ``sqlitefile`` (the SQLite file's health and repair), ``records`` (what the store
and the scan exchange), ``transaction`` (the scan's writes) and this module: opening the
store under the repair policy, and the read side."""

from __future__ import annotations

import json
import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, text, tuple_
from sqlalchemy.engine import Connection, Row

from feedsvc.model import Entry, Scope
from feedsvc.store import migrate, parts, search
from feedsvc.store.engine import (
    WRITE_OPTION,
    database_exists,
    failure_message,
    make_engine,
    masked_url,
    sqlite_path,
)
from feedsvc.store.errors import (
    CorruptStorage,
    NewerSchema,
    OldSchema,
    ReadOnlyStorage,
    SchemaRefused,
    StorageError,
)
from feedsvc.store.parts import entry_of
from feedsvc.store.problems import StoreProblem
from feedsvc.store.records import (
    Changes,
    EntryPart,
    FileStat,
    FileState,
    Note,
    NoteKind,
    ScopeMembers,
    ScopeSummary,
    StoredEntry,
)
from feedsvc.store.schema import (
    entries,
    entry_scopes,
    entry_text,
    fragments,
    pinged,
    scope_id,
    scopes,
    tombstones,
    unpublished,
    url_id,
)
from feedsvc.store.sql import (
    chunks,
    delete_in,
    get_meta,
    get_metas,
    scope_fingerprints,
    scope_members,
    select_in,
    set_meta,
)
from feedsvc.store.sqlitefile import SqliteFile
from feedsvc.store.transaction import ScanTransaction

__all__ = [
    "Changes",
    "CorruptStorage",
    "EntryPart",
    "FileStat",
    "FileState",
    "NewerSchema",
    "Note",
    "OldSchema",
    "ReadOnlyStorage",
    "ScanTransaction",
    "SchemaRefused",
    "ScopeMembers",
    "ScopeSummary",
    "StorageError",
    "Store",
    "StoreProblem",
    "StoredEntry",
    "database_exists",
    "schema_state",
]

log = logging.getLogger(__name__)

# PostgreSQL: the schema the session's search_path gives (None: it names none that exists),
# and whether feedsvc's tables are in it (its meta table and Alembic's version table: someone
# else's tables in a schema made again are not feedsvc's, and the leader refuses them).
_SCHEMA_PROBE = text(
    "select current_schema(), to_regclass(quote_ident(current_schema()) || '.meta') is not null"
    " and to_regclass(quote_ident(current_schema()) || '.alembic_version') is not null"
)


def schema_state(url: str) -> migrate.SchemaState:
    """Where the database at ``url`` stands, read without changing it (a SQLite file that
    cannot be written is opened read-only)."""
    path = sqlite_path(url)
    engine = make_engine(url, read_only=path is not None and not SqliteFile(path).writable())
    try:
        with engine.connect() as conn:
            return migrate.read_state(conn)
    finally:
        engine.dispose()


class _Backoff:
    """When to try a database server again: 1 s after the first failure, doubling to 30 s;
    a SQLite file (``local``: looking costs a stat) every second."""

    FIRST, LAST = 1.0, 30.0

    def __init__(self, local: bool = False) -> None:
        self.last = self.FIRST if local else self.LAST
        self.lock = threading.RLock()
        self.trying = False
        self.refused: str | None = None  # the schema this process may not serve, if so
        self.delay = self.FIRST
        self.next = time.monotonic() + self.delay

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def failed(self) -> None:
        self.delay = min(self.delay * 2, self.last)
        self.next = time.monotonic() + self.delay

    def wait(self) -> str:
        return f"trying again in {max(0.0, self.next - time.monotonic()):.0f} s"


class Store:
    """All reads of feedsvc's database, its write transactions, and what happens when the
    SQLite file under it cannot be written, is damaged, deleted or replaced."""

    def __init__(
        self, url: str, *, wait: bool = False, upgrade: bool = True, reader: bool = False
    ) -> None:
        """``wait``: a database server that cannot be reached now is tried again, with
        backoff, at each use (each fails with StorageError until it answers), instead of
        failing here: a server starts and says it is not ready, as a container expects.
        ``upgrade``: bring an older schema to this feedsvc's revision (else OldSchema).
        ``reader``: a serving worker's store, which the database keeps from writing
        anything (it never upgrades either)."""
        self.url = url
        self.reader = reader
        self.upgrade = upgrade and not reader
        self.upgraded: migrate.SchemaState | None = None  # where an upgrade took it from
        self.path = sqlite_path(url)
        self.file = SqliteFile(self.path) if self.path is not None else None
        existed = self.file is None or self.file.path.exists()
        if not existed and not self.upgrade and not (reader and wait):
            raise OldSchema(f"no database at {self.path}: run `feedsvc db upgrade` to create it")
        self.read_only_reason: str | None = None  # why it is opened read-only, if it is
        self._unreached: _Backoff | None = None
        self._lost: StoreProblem | None = None  # PostgreSQL: its schema or tables are gone
        if self.file is not None and existed and not self.file.writable():
            self._open_read_only("the file or its directory is read-only")
            return
        self.engine = make_engine(url, reader=reader)
        if reader and wait:
            # A serving worker is never stopped by what keeps it from the schema now (a
            # file the leader is recreating, an upgrade under way, a server not reached):
            # it tries again at each use and answers 503 meanwhile.
            try:
                self._create_schema()
            except StorageError as exc:  # (SchemaRefused included)
                self._unreached = _Backoff(local=self.file is not None)
                self._log_unreached(exc)
            return
        try:
            self._create_schema()
            if not existed:
                log.info("created database %s: the first scan fills it from the seeds", self.path)
        except ReadOnlyStorage as exc:
            if self.file is None or not existed:
                raise
            self.engine.dispose()
            self._open_read_only(str(exc))
        except CorruptStorage as exc:
            if self.file is None:
                raise
            if not self.file.written_by_feedsvc():
                raise StorageError(f"is not a SQLite database ({exc}): not replacing it") from exc
            if self.reader:
                raise
            self._repair(f"is unreadable ({exc})", self.file.identity())
        except SchemaRefused:
            raise
        except StorageError as exc:
            if not wait or self.file is not None:
                raise
            self._unreached = _Backoff()
            self._log_unreached(exc)

    def _connect(self) -> Connection:
        """A connection, once the schema is known to be there (see ``wait``, and problem():
        a schema found gone is an outage, not a statement that cannot run)."""
        if self._unreached is not None:
            self._reach()
        lost = self._lost
        if lost is not None:
            raise StorageError(f"{self.where} {lost.value}")
        return self.engine.connect()

    def _reach(self) -> None:
        """Make the schema of a database not reached so far, if its next try is due. Other
        threads wait for a try under way; the try's own statements pass straight through."""
        backoff = self._unreached
        if backoff is None:
            return
        with backoff.lock:
            if self._unreached is None or backoff.trying:
                return
            if not backoff.due():
                reason = backoff.refused or "the database cannot be reached yet"
                raise StorageError(f"{reason} ({backoff.wait()})")
            backoff.trying = True
            try:
                self._create_schema()
            except SchemaRefused as exc:
                backoff.refused = str(exc)
                backoff.failed()
                raise
            except StorageError as exc:
                backoff.failed()
                self._log_unreached(exc)
                raise
            finally:
                backoff.trying = False
            self._unreached = None
        log.info("database reached: its schema is ready")

    def _log_unreached(self, exc: StorageError) -> None:
        assert self._unreached is not None
        log.warning("%s; %s", failure_message(self.url, exc, opening=True), self._unreached.wait())

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def _open_read_only(self, reason: str) -> None:
        """Serve what an unwritable database holds; every scan fails (and says why) until
        the file can be written again and the process restarts."""
        log.error(
            "database %s cannot be written (%s): serving what it holds; scans fail until it can be written",
            self.path,
            reason,
        )
        self.engine = make_engine(self.url, read_only=True)
        self.read_only_reason = reason
        with self.engine.connect() as conn:
            state = migrate.read_state(conn)
        why = "it cannot be written here, so it cannot be upgraded (`feedsvc db upgrade`)"
        migrate.refuse_old(state, self.where, why)
        self._remember_file()

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its first statement)."""
        with self._connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[ScanTransaction]:
        """One write transaction: everything done through it commits together."""
        with self._write() as conn:
            yield ScanTransaction(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see one committed state."""
        with self._connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _create_schema(self) -> None:
        """Bring the database to this schema revision, or refuse it (feedsvc.store.migrate)."""
        if self.reader and self.file is not None and not self.file.path.exists():
            # (connecting would create an empty file: the leader creates it, with its schema)
            raise StorageError(f"no database at {self.path} yet: the leader creates it")
        with self.engine.connect() as conn:
            state = migrate.read_state(conn)
        if not state.current:
            if not self.upgrade:
                why = "run `feedsvc db upgrade`, or serve without --no-upgrade"
                migrate.refuse_old(state, self.where, why)
            with self._write() as conn:
                self.upgraded = migrate.upgrade(conn, self.where)
        self._remember_file()

    @property
    def where(self) -> str:
        """The database, as messages name it (no password)."""
        return str(self.path) if self.path is not None else masked_url(self.url)

    def schema_state(self) -> migrate.SchemaState:
        with self._connect() as conn:
            return migrate.read_state(conn)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
        if self.file is not None:
            self.file.release()

    # -- the SQLite file's health ----------------------------------------------------------

    def _remember_file(self) -> None:
        if self.file is not None:
            self.file.remember()

    def problem(self) -> StoreProblem | None:
        """What is wrong with the SQLite file or the PostgreSQL schema under this process, if
        anything (nothing to repair where nothing can be written). Every process asks every
        second or so; until the schema is back, every use is a StorageError."""
        if self.read_only:
            return None
        if self.file is None:
            return self._schema_problem() if self.dialect == "postgresql" else None
        found = self.file.problem()
        if found is StoreProblem.UNREADABLE:
            log.warning("database %s cannot be read", self.path)
        return found

    def _schema_problem(self) -> StoreProblem | None:
        """Whether the schema named by the search_path still exists and holds feedsvc's
        tables (one round trip; a server not answering is another matter: None)."""
        try:
            with self.engine.connect() as conn:
                schema, tables = conn.execute(_SCHEMA_PROBE).one()
        except StorageError:
            return self._lost
        found = None
        if schema is None:
            found = StoreProblem.SCHEMA_DROPPED
        elif not tables:
            found = StoreProblem.EMPTIED
        if found != self._lost:
            if found is not None:
                log.error("database %s %s: serving what was loaded", self.where, found.value)
            else:
                log.warning("database %s: its schema is back", self.where)
            self._lost = found
        return found

    def reopen(self) -> None:
        """Drop every connection and open the database file that is there now."""
        self.engine.dispose()
        self.engine = make_engine(self.url, reader=self.reader)
        self._create_schema()

    def rebuild(self, reason: str) -> None:
        """Move a damaged or vanished database aside and start an empty one (in PostgreSQL:
        create the tables of a schema emptied under it); the next scan fills it from the
        seeds with the same ids (ids derive from paths, not from rows)."""
        if self.file is not None:
            self._repair(reason, self.file.identity())
            return
        lost, self._lost = self._lost, None  # (for the tables to be created)
        try:
            self._create_schema()
        except BaseException:  # (refused, e.g. someone else's tables: the caller says why)
            self._lost = lost
            raise
        log.error("database %s %s: rebuilding it from the seeds", self.where, reason)

    def _repair(self, reason: str, broken: tuple[int, int] | None) -> None:
        """Under a lock shared by every process: move the broken file (if it is still the one
        that failed) aside, then open a fresh database."""
        assert self.file is not None
        self.engine.dispose()
        with self.file.repair_lock():
            if self.file.move_aside(broken):
                log.error("database %s %s: rebuilding it from the seeds", self.path, reason)
            self.engine = make_engine(self.url)
            self._create_schema()

    def reachable(self) -> bool:
        """Whether the database answers now (one round trip; never raises)."""
        try:
            with self._connect() as conn:
                conn.execute(select(1))
            return True
        except StorageError:
            return False

    # -- small writes -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._connect() as conn:
            return get_meta(conn, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            set_meta(conn, key, value)

    def generation(self) -> str | None:
        """Changes whenever a scan changed a feed, and whenever the database was rebuilt:
        readers compare it with what they loaded to know when to reload. None until a scan
        has finished in this database (a rebuilt one is empty until then: keep serving)."""
        return self.versions()[0]

    def versions(self) -> tuple[str | None, str]:
        """The generation, and the search version (it moves with every batch indexed: see
        feedsvc.store.search), in one read."""
        with self._connect() as conn:
            values = get_metas(conn, ["epoch", "generation", "last_scan", search.VERSION_KEY])
        searched = values.get(search.VERSION_KEY, "0")
        if "last_scan" not in values:
            return None, searched
        return f"{values.get('epoch', '')}:{values.get('generation', '0')}", searched

    def pinged_digests(self, urls: Sequence[str]) -> dict[str, str]:
        """The digest each feed URL had when the hubs were last told of it, where known."""
        with self._connect() as conn:
            rows = select_in(
                conn,
                select(pinged.c.url, pinged.c.digest),
                pinged.c.id,
                [url_id(url) for url in urls],
            )
        return {row.url: row.digest for row in rows}

    def pinged_any(self) -> bool:
        """Whether the hubs were ever told of any feed URL in this database."""
        with self._connect() as conn:
            return conn.execute(select(pinged.c.id).limit(1)).first() is not None

    def record_pinged(self, digests: dict[str, str | None]) -> None:
        """Remember what the hubs are told now (None: the feed is gone)."""
        with self._write() as conn:
            delete_in(conn, pinged, pinged.c.id, [url_id(url) for url in digests])
            rows = [
                {"id": url_id(url), "url": url, "digest": digest}
                for url, digest in digests.items()
                if digest is not None
            ]
            if rows:
                conn.execute(insert(pinged), rows)

    def record_websub(self, counts: dict[str, int]) -> None:
        self.set_meta("websub", json.dumps(counts, sort_keys=True))

    # -- read side ------------------------------------------------------------------------

    def scope_summaries(self) -> list[ScopeSummary]:
        with self._connect() as conn:
            rows = conn.execute(select(scopes)).all()
        return sorted((_summary(row) for row in rows), key=lambda s: s.scope)

    def members(self, keys: Sequence[str], graves: int) -> dict[str, ScopeMembers]:
        """What the validators of these scopes' documents are made of (see ScopeMembers),
        with at most ``graves`` tombstones each, read in one snapshot; a scope without a
        summary is left out."""
        ids = {scope_id(key): key for key in keys}
        found: dict[str, ScopeMembers] = {}
        with self._snapshot() as conn:
            for chunk in chunks(sorted(ids), 200):
                fingerprints = scope_fingerprints(conn, chunk)
                rows = conn.execute(
                    scope_members(
                        chunk, entries.c.fingerprint, entries.c.updated, entries.c.first_seen
                    ).order_by(
                        entry_scopes.c.scope_id,
                        entry_scopes.c.published.desc(),
                        entry_scopes.c.entry_id.desc(),
                    )
                )
                shown: dict[str, list[Any]] = {sid: [] for sid in fingerprints}
                for row in rows:
                    shown[row.scope_id].append(row)
                buried: dict[str, list[tuple[str, datetime]]] = {sid: [] for sid in fingerprints}
                for grave in conn.execute(
                    select(tombstones.c.scope_id, tombstones.c.entry_id, tombstones.c.removed)
                    .where(tombstones.c.scope_id.in_(chunk))
                    .order_by(
                        tombstones.c.scope_id, tombstones.c.removed.desc(), tombstones.c.entry_id
                    )
                ):
                    kept = buried[grave.scope_id]
                    if len(kept) < graves:
                        kept.append((grave.entry_id, datetime.fromtimestamp(grave.removed, UTC)))
                for sid, fingerprint in fingerprints.items():
                    members = shown[sid]
                    found[ids[sid]] = ScopeMembers(
                        fingerprint,
                        b"".join(bytes.fromhex(row.fingerprint) for row in members),
                        array("q", (row.updated for row in members)),
                        array("q", (row.first_seen for row in members)),
                        tuple(buried[sid]),
                    )
        return found

    def neighbours(self, scope: Scope, entry_id: str) -> tuple[Entry | None, Entry | None]:
        """The entries just newer and just older than this one in a scope's order (newest
        published first, then by id): the next and previous entry a reader pages to."""
        sid = scope_id(scope.key)
        order = (entry_scopes.c.published, entry_scopes.c.entry_id)
        with self._snapshot() as conn:
            here = conn.execute(
                select(entry_scopes.c.published).where(
                    entry_scopes.c.scope_id == sid, entry_scopes.c.entry_id == entry_id
                )
            ).scalar()
            if here is None:
                return None, None
            found = []
            for newer in (True, False):
                position = (
                    tuple_(*order) > (here, entry_id)
                    if newer
                    else tuple_(*order) < (here, entry_id)
                )
                query = (
                    select(entries.c.data)
                    .join(entry_scopes, entry_scopes.c.entry_id == entries.c.id)
                    .where(entry_scopes.c.scope_id == sid, position)
                    .order_by(*(c.asc() if newer else c.desc() for c in order))
                    .limit(1)
                )
                data = conn.execute(query).scalar()
                found.append(entry_of(data) if data else None)
        return found[0], found[1]

    def tombstones(self, scope: Scope, limit: int) -> list[tuple[str, datetime]]:
        """The newest ``limit`` entries that left this feed because their file was deleted:
        (id, when), newest first (see tombstone_days)."""
        query = (
            select(tombstones.c.entry_id, tombstones.c.removed)
            .where(tombstones.c.scope_id == scope_id(scope.key))
            .order_by(tombstones.c.removed.desc(), tombstones.c.entry_id)
            .limit(limit)
        )
        with self._connect() as conn:
            rows = conn.execute(query).all()
        return [(row.entry_id, datetime.fromtimestamp(row.removed, UTC)) for row in rows]

    def search(self, scope: Scope, words: str, limit: int) -> list[Entry]:
        """The newest ``limit`` entries of a scope whose title or text holds every word
        (a substring, any case), newest first; entries not indexed yet are not found yet
        (feedsvc.store.search)."""
        if not words.split() or limit < 1:
            return []
        query = (
            select(entries.c.data)
            .join(entry_scopes, entry_scopes.c.entry_id == entries.c.id)
            .join(entry_text, entry_text.c.entry_id == entries.c.id)
            .where(entry_scopes.c.scope_id == scope_id(scope.key))
        )
        wanted = search.terms(words)
        encoded = [term.encode() for term in wanted]
        query = search.candidates(query, wanted, self.dialect).order_by(
            entry_scopes.c.published.desc(), entry_scopes.c.entry_id.desc()
        )
        found: list[Entry] = []
        with self._connect() as conn:
            for data in conn.execute(query.execution_options(yield_per=100)).scalars():
                if search.holds(data, encoded):
                    found.append(entry_of(data))
                    if len(found) == limit:
                        break
        return found

    def index_search(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Index every entry a scan stored since the last call, a batch per transaction
        (the scanner calls it once the feeds are live), until ``stop`` says so between
        batches; how many it indexed."""
        done = 0
        while not stop() and self.search_pending():  # (a read: no write lock when idle)
            with self._write() as conn:
                done += search.index_pending(conn)
        return done

    def search_pending(self) -> int:
        """How many entries a search cannot find yet (not indexed)."""
        with self._connect() as conn:
            return search.pending(conn)

    def page(
        self, scope: Scope, offset: int, limit: int
    ) -> tuple[list[Entry], ScopeSummary | None, datetime]:
        """Entries of a scope, newest published first, then by id (a total, stable order),
        with the scope's summary read in the same snapshot (the caller can tell whether
        the entries belong to the summary it holds) and when the newest of them was first
        stored (an entry dated before the others is news all the same: Last-Modified; those
        the store's first scan stored count as stored at 0, so a fresh database of the same
        seeds sends the same Last-Modified)."""
        rows, summary, stored, _current = self._page_rows(
            scope, offset, limit, [entries.c.data, entries.c.first_seen]
        )
        return [entry_of(row.data) for row in rows], summary, stored

    def page_parts(
        self, scope: Scope, offset: int, limit: int, index: int, key: str
    ) -> tuple[list[EntryPart] | None, ScopeSummary | None, datetime]:
        """As ``page``, each entry as its part ``index`` rendered under the render settings
        ``key``; None for the parts if any of them is not rendered yet (or was rendered for
        an older revision of its entry, or under other settings): render the entries then."""
        columns = [
            entries.c.fingerprint,
            entries.c.updated,
            entries.c.first_seen,
            fragments.c.fingerprint.label("rendered"),
            fragments.c.parts,
        ]
        rows, held, stored, current = self._page_rows(scope, offset, limit, columns, key)
        if not current or any(row.rendered != row.fingerprint for row in rows):
            return None, held, stored
        found = [
            EntryPart(
                bytes.fromhex(row.fingerprint),
                datetime.fromtimestamp(row.updated, UTC),
                parts.unpack(row.parts, index),
            )
            for row in rows
        ]
        return found, held, stored

    def _page_rows(
        self,
        scope: Scope,
        offset: int,
        limit: int,
        columns: Sequence[Any],
        parts_key: str | None = None,
    ) -> tuple[list[Row[Any]], ScopeSummary | None, datetime, bool]:
        """A page of a scope's entries as ``columns`` (with ``parts_key``, their kept parts
        joined; no rows if the parts kept are another key's), the scope's summary and when
        the newest was first stored, all in one snapshot; and whether the key matched."""
        sid = scope_id(scope.key)
        query = select(*columns).select_from(entry_scopes)
        query = query.join(entries, entry_scopes.c.entry_id == entries.c.id)
        if parts_key is not None:
            query = query.outerjoin(fragments, fragments.c.entry_id == entries.c.id)
        query = (
            query.where(entry_scopes.c.scope_id == sid)
            .order_by(entry_scopes.c.published.desc(), entry_scopes.c.entry_id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self._snapshot() as conn:
            summary = conn.execute(select(scopes).where(scopes.c.id == sid)).first()
            current = parts_key is None or get_meta(conn, PARTS_KEY) == parts_key
            rows = list(conn.execute(query).all()) if current else []
        held = None if summary is None else _summary(summary)
        stored = datetime.fromtimestamp(max((row.first_seen for row in rows), default=0), UTC)
        return rows, held, stored, current

    def unrendered(self, key: str, after: str, batch: int) -> list[tuple[str, Entry]]:
        """Up to ``batch`` entries, by id past ``after``, whose parts are not kept for the
        render settings ``key`` (every entry, if the parts kept are another key's), each with
        its fingerprint."""
        query = select(entries.c.fingerprint, entries.c.data).where(entries.c.id > after)
        with self._snapshot() as conn:
            if get_meta(conn, PARTS_KEY) == key:
                kept = and_(
                    fragments.c.entry_id == entries.c.id,
                    fragments.c.fingerprint == entries.c.fingerprint,
                )
                query = query.outerjoin(fragments, kept).where(fragments.c.entry_id.is_(None))
            rows = conn.execute(query.order_by(entries.c.id).limit(batch)).all()
        return [(row.fingerprint, entry_of(row.data)) for row in rows]

    def keep_parts(self, key: str, rendered: Sequence[tuple[str, str, Sequence[bytes]]]) -> None:
        """Keep each (entry id, fingerprint, parts) rendered under the settings ``key``; parts
        kept under another key are dropped first (they no longer match what is served)."""
        with self._write() as conn:
            if get_meta(conn, PARTS_KEY) != key:
                conn.execute(delete(fragments))
                set_meta(conn, PARTS_KEY, key)
            delete_in(conn, fragments, fragments.c.entry_id, [row[0] for row in rendered])
            if rendered:
                conn.execute(
                    insert(fragments),
                    [
                        {"entry_id": entry_id, "fingerprint": fp, "parts": parts.pack(shown)}
                        for entry_id, fp, shown in rendered
                    ],
                )

    def id_owners(self, ids: Sequence[str]) -> dict[str, str]:
        """The seed file (relative path) serving each of these entry ids, where one does."""
        with self._connect() as conn:
            rows = select_in(conn, select(entries.c.id, entries.c.path), entries.c.id, ids)
        return {row.id: row.path for row in rows}

    def entry(self, entry_id: str) -> Entry | None:
        with self._connect() as conn:
            data = conn.execute(select(entries.c.data).where(entries.c.id == entry_id)).scalar()
        return entry_of(data) if data else None

    def errors(self) -> list[tuple[str, str]]:
        with self._connect() as conn:
            rows = conn.execute(
                select(unpublished.c.path, unpublished.c.error).where(
                    unpublished.c.kind == NoteKind.ERROR
                )
            ).all()
        return sorted((row.path, row.error) for row in rows)

    def record_scan_error(self, error: str | None) -> None:
        """What the leader last failed with (None: its last scan succeeded)."""
        self.set_meta("scan_error", json.dumps(error))

    def scan_error(self) -> str | None:
        """The scanner's last failure, as every process reads it; a database that cannot
        be written cannot carry one, but every process knows that of it."""
        if self.read_only:
            return f"database: cannot be written ({self.read_only_reason})"
        value = self.get_meta("scan_error")
        return json.loads(value) if value else None

    def last_scan(self) -> dict[str, Any] | None:
        value = self.get_meta("last_scan")
        return json.loads(value) if value else None

    def websub_counts(self) -> dict[str, int]:
        value = self.get_meta("websub")
        return json.loads(value) if value else {"sent": 0, "failed": 0, "retries": 0, "pending": 0}

    def all_entries(self) -> Sequence[Entry]:
        with self._connect() as conn:
            rows = conn.execute(select(entries.c.data).order_by(entries.c.id)).scalars()
            return [entry_of(data) for data in rows]


PARTS_KEY = "parts_key"  # the render settings the kept parts were rendered under


def _summary(row: Row[Any]) -> ScopeSummary:
    return ScopeSummary(
        Scope.from_key(row.key),
        row.entry_count,
        datetime.fromtimestamp(row.newest_updated, UTC),
        row.fingerprint,
    )
