"""The schema's revision, and upgrading a database to this feedsvc's: Alembic's revisions
(feedsvc/store/migrations) change a database in place, so what it holds and the seeds cannot
give back (the first-stored date of undated entries, edit times, tombstones, WebSub digests,
the deletion hold) survives every upgrade. Only a database from before revisions existed
(schema version 1 to 4) is emptied and filled again from the seeds.

Serving processes only compare alembic_version with ``HEAD`` (one read, no Alembic import);
Alembic is loaded only to upgrade or to say what an unknown revision is."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import Connection

from feedsvc.store.errors import NewerSchema, OldSchema, StorageError, UnknownSchema
from feedsvc.store.schema import meta, metadata
from feedsvc.store.sql import get_meta, set_meta

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

# The revision this code reads and writes: Alembic's head (tests/test_migrations.py keeps
# the two equal).
HEAD = "0010"
# The schema that release wrote, the first with a revision; older ones are rebuilt.
BASELINE, BASELINE_SCHEMA = "0005", "5"
# The version row releases before revisions read (see migrations/versions/0006).
LEGACY_KEY = "schema_version"

_version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))


# The version rows releases before revisions left: 5 is taken over, 1 to 4 are rebuilt.
_REBUILT = ("1", "2", "3", "4")
_ODD = ", which no feedsvc leaves"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision, or the version row of a release from before
    revisions, or nothing (no tables at all), or a ``problem``: a state no feedsvc leaves."""

    revision: str | None = None
    legacy: str | None = None
    has_epoch: bool = False
    problem: str | None = None

    @property
    def current(self) -> bool:
        return self.revision == HEAD and self.has_epoch and self.problem is None

    @property
    def rebuilt(self) -> bool:
        """Whether an upgrade empties it (a release before the baseline wrote it)."""
        return self.legacy in _REBUILT

    @property
    def newer(self) -> bool:
        return self.revision is not None and not known(self.revision)

    @property
    def label(self) -> str:
        if self.revision is not None:
            return self.revision
        return f"schema version {self.legacy}" if self.legacy is not None else "an empty database"

    def describe(self) -> str:
        """What `feedsvc db current` says about it."""
        if self.problem is not None:
            return f"unknown: the database {self.problem}"
        if self.revision == HEAD:
            return f"{HEAD} (head)"
        if self.newer:
            return f"{self.revision} (newer than this feedsvc's {HEAD}: a newer feedsvc wrote it)"
        if self.revision is not None:
            return f"{self.revision} (`feedsvc db upgrade` takes it to {HEAD})"
        if self.legacy == BASELINE_SCHEMA:
            return f"schema version {self.legacy}, before revisions (upgraded in place to {HEAD})"
        if self.legacy is not None:
            return (
                f"schema version {self.legacy}, before revisions (rebuilt from the seeds at {HEAD})"
            )
        return f"no schema yet (created at {HEAD})"


def read_state(conn: Connection) -> SchemaState:
    """The database's state, in a read (a long scan holds the write lock, and a worker
    starting meanwhile must not wait for it). Only tables of the schema feedsvc writes to
    count: on PostgreSQL, those of current_schema(), whatever else the search_path shows."""
    tables = _tables(conn)
    if not tables:
        return SchemaState()
    if meta.name not in tables or not _is_feedsvcs_meta(conn):
        return SchemaState(
            problem=f"holds tables that are not feedsvc's ({', '.join(sorted(tables)[:3])}): "
            "feedsvc needs a database (or a PostgreSQL schema) of its own"
        )
    epoch = get_meta(conn, "epoch") is not None
    if _version.name in tables:
        found = conn.execute(select(_version.c.version_num).limit(2)).scalars().all()
        if len(found) != 1 or not found[0]:
            return SchemaState(problem=f"has an alembic_version table without one revision{_ODD}")
        return SchemaState(revision=found[0], has_epoch=epoch)
    # Schema 1 had no version row (but an epoch, as every release's database has).
    legacy = get_meta(conn, LEGACY_KEY) or ("1" if epoch else None)
    if legacy not in (*_REBUILT, BASELINE_SCHEMA):
        shown = "no version row and no epoch" if legacy is None else f"the version row {legacy!r}"
        return SchemaState(problem=f"has {shown} and no alembic_version table{_ODD}")
    return SchemaState(legacy=legacy, has_epoch=epoch)


def check_writable(conn: Connection, where: str) -> None:
    """Before a scan writes: the database must still be at this revision (a newer feedsvc
    may have upgraded it meanwhile: then this one steps down, see NewerSchema)."""
    found = conn.execute(select(_version.c.version_num)).scalar()
    if found != HEAD:
        raise NewerSchema(
            f"database {where} is at schema revision {found}, not this feedsvc's {HEAD}: "
            "a newer feedsvc owns it; not writing to it"
        )


def refuse(state: SchemaState, where: str) -> None:
    """UnknownSchema for a state no feedsvc leaves; NewerSchema for a database a newer
    feedsvc has written (a revision this code does not know)."""
    if state.problem is not None:
        raise UnknownSchema(f"database {where} {state.problem}: not changing it")
    if state.newer:
        raise NewerSchema(
            f"database {where} has schema {state.revision}, newer than this feedsvc's {HEAD}: "
            "a newer feedsvc owns it; run that version"
        )


def refuse_old(state: SchemaState, where: str, why: str) -> None:
    """Refuse any database not at this revision, since this process may not upgrade it
    (``why``: what to do about it)."""
    refuse(state, where)
    if state.current:
        return
    found = (
        f"has schema revision {state.revision}"
        if state.revision
        else f"has schema version {state.legacy}"
        if state.legacy
        else "has no schema yet"
    )
    raise OldSchema(f"database {where} {found}, this feedsvc needs {HEAD}: {why}")


def upgrade(conn: Connection, where: str) -> SchemaState | None:
    """In a write transaction: bring the database to ``HEAD``; where it stood before (None
    when it was there already).
    Every starting process may call it at once: PostgreSQL serialises them with an
    advisory lock, SQLite with its write lock, and each looks again once it holds it. A
    revision that fails (tables unlike their recorded revision) changes nothing."""
    schema = schema_of(conn)
    if schema is not None:
        lock = text("select pg_advisory_xact_lock(hashtextextended(:key, 0))")
        conn.execute(lock, {"key": f"feedsvc:schema:{schema}"})
    before = read_state(conn)
    refuse(before, where)
    if before.current:
        return None
    from alembic import command

    config = _config(conn)
    try:
        if before.rebuilt:
            log.warning(
                "database %s has schema version %s, from before revisions: rebuilding it from the seeds",
                where,
                before.legacy,
            )
            _drop_everything(conn)
        elif before.legacy is not None:
            command.stamp(config, BASELINE)
        if before.revision != HEAD:
            command.upgrade(config, HEAD)
    except StorageError:
        raise
    except Exception as exc:  # the tables are not what their revision says: nothing done
        raise UnknownSchema(
            f"database {where}: upgrading it from {before.label} to {HEAD} failed "
            f"({type(exc).__name__}: {exc}); nothing was changed"
        ) from exc
    log.info("database %s upgraded from %s to schema revision %s", where, before.label, HEAD)
    if get_meta(conn, "epoch") is None:
        set_meta(conn, "epoch", uuid.uuid4().hex)
    return before


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, newest first: (revision, the one before it, what it does)."""
    return [
        (str(script.revision), _before(script.down_revision), _summary(script.doc))
        for script in _scripts().walk_revisions()
    ]


def known(revision: str) -> bool:
    """Whether ``revision`` is one of this feedsvc's (by id: no symbolic names)."""
    return revision in {script.revision for script in _scripts().walk_revisions()}


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None))


def _config(conn: Connection | None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "feedsvc.store:migrations")
    config.attributes["connection"] = conn
    config.attributes["version_table_schema"] = schema_of(conn) if conn is not None else None
    return config


def _before(down: str | Sequence[str] | None) -> str | None:
    return down if isinstance(down, str) or down is None else ", ".join(down)


def _summary(doc: str) -> str:
    return doc.strip().splitlines()[0] if doc.strip() else ""


def schema_of(conn: Connection) -> str | None:
    """The PostgreSQL schema feedsvc's tables live in (None: SQLite's only one)."""
    if conn.dialect.name != "postgresql":
        return None
    schema = conn.execute(text("select current_schema()")).scalar()
    if schema is None:  # (PostgreSQL would create tables nowhere, and say schema "None")
        path = conn.execute(text("show search_path")).scalar()
        raise StorageError(f"no schema of its search_path ({path}) exists: create one first")
    return str(schema)


def _is_feedsvcs_meta(conn: Connection) -> bool:
    """Whether the table named meta has the columns feedsvc reads (someone else's may not)."""
    columns = inspect(conn).get_columns(meta.name, schema=schema_of(conn))
    return {column.name for column in meta.columns} <= {column["name"] for column in columns}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names(schema=schema_of(conn)))


def _drop_everything(conn: Connection) -> None:
    """Empty a database of a release from before revisions: this release's tables, and
    those older ones had that this one no longer has (renamed or retired); only its own
    schema's, whatever else the search_path shows."""
    tables = _tables(conn)
    for table in reversed(metadata.sorted_tables):
        if table.name in tables:
            table.drop(conn)
    for name in ("file_errors", "entry_search"):
        if name in tables:
            conn.execute(text(f"drop table {name}"))
