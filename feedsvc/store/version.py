"""The schema's version: is a database current, and making it so. A database written by
another version is emptied, to be filled again from the seeds by the next scan (always
possible: ids derive from paths, not from rows), rather than migrated."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from feedsvc.store.errors import NewerSchema
from feedsvc.store.schema import SCHEMA_VERSION, SEARCH_TABLE, meta, metadata
from feedsvc.store.sql import get_meta, get_metas, set_meta

log = logging.getLogger(__name__)


def is_current(conn: Connection) -> bool:
    """Whether every table exists at this schema version: asked in a read, because a long
    scan holds the write lock and a worker starting meanwhile must not wait for it."""
    inspector = inspect(conn)
    if not all(inspector.has_table(table.name) for table in metadata.sorted_tables):
        return False
    found = get_metas(conn, ["epoch", "schema_version"])
    return "epoch" in found and found.get("schema_version") == SCHEMA_VERSION


def prepare(conn: Connection, where: str) -> None:
    """In a write transaction: empty a database of another version, create missing tables,
    and give a new database its epoch. Safe when several processes start at once."""
    if conn.dialect.name == "postgresql":
        key = "hashtextextended('feedsvc:schema:' || current_schema(), 0)"
        conn.execute(text(f"select pg_advisory_xact_lock({key})"))
    if inspect(conn).has_table(meta.name):
        found = get_meta(conn, "schema_version") or "1"
        check_not_newer(found, where)
        if found != SCHEMA_VERSION:
            log.warning(
                "database %s has schema version %s, this feedsvc writes %s: rebuilding it from the seeds",
                where,
                found,
                SCHEMA_VERSION,
            )
            metadata.drop_all(conn)
            _drop_unknown(conn)
    metadata.create_all(conn)
    if get_meta(conn, "epoch") is None:
        set_meta(conn, "epoch", uuid.uuid4().hex)
        set_meta(conn, "schema_version", SCHEMA_VERSION)


def check_not_newer(found: str | None, where: str) -> None:
    """Refuse a database a newer feedsvc has written (see NewerSchema)."""
    if found is not None and found.isdigit() and int(found) > int(SCHEMA_VERSION):
        raise NewerSchema(
            f"database {where} has schema version {found}, newer than this feedsvc's "
            f"{SCHEMA_VERSION}: a newer feedsvc owns it; run that version"
        )


def _drop_unknown(conn: Connection) -> None:
    """Tables of older versions that this one no longer has (renamed or retired)."""
    for name in ("file_errors", SEARCH_TABLE):
        if inspect(conn).has_table(name):
            conn.execute(text(f"drop table {name}"))
