"""Engines for SQLite and PostgreSQL URLs, set up as the store needs them: WAL and a busy
timeout on SQLite, BEGIN IMMEDIATE for writers, and every driver error raised as the store's
own (feedsvc.store.errors)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

from feedsvc.store.errors import storage_error

WRITE_OPTION = "feedsvc_write"


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


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return Path(database).resolve()


def database_exists(url: str) -> bool:
    """Whether opening ``url`` would find a database rather than create one (a server
    database is taken to exist)."""
    path = sqlite_path(url)
    return make_url(url).get_backend_name() != "sqlite" or (path is not None and path.exists())


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for a SQLite or PostgreSQL URL; SQLite's directory is created if missing.
    ``read_only`` opens an existing SQLite file that cannot be written (nothing is locked
    or changed, so it works on a read-only file system)."""
    engine = _make_engine(url, read_only)
    event.listen(engine, "handle_error", storage_error)
    return engine


def _make_engine(url: str, read_only: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # a server that cannot be reached is noticed in seconds, not at the kernel's timeout
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    if read_only:
        database = Path(parsed.database or "").resolve()
        uri = f"sqlite:///file:{quote(str(database))}?mode=ro&immutable=1&uri=true"
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
