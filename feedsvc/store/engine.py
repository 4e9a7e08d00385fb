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
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url

from feedsvc.store.errors import StorageError, storage_error

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


def _sqlite_reader(dbapi_connection: Any, _record: Any) -> None:
    """A serving worker's connection: SQLite itself refuses any change through it."""
    dbapi_connection.execute("PRAGMA query_only=1")


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


def make_engine(url: str, read_only: bool = False, *, reader: bool = False) -> Engine:
    """An engine for a SQLite or PostgreSQL URL; SQLite's directory is created if missing.
    ``read_only`` opens an existing SQLite file that cannot be written (nothing is locked
    or changed, so it works on a read-only file system). ``reader``: a serving worker's,
    whose sessions the database itself keeps from writing (and PostgreSQL names
    "feedsvc reader" in pg_stat_activity; the others are "feedsvc")."""
    engine = _make_engine(url, read_only, reader)
    event.listen(engine, "handle_error", _masked_storage_error)
    return engine


def _masked_storage_error(context: ExceptionContext) -> None:
    """``storage_error``, with the URL's password masked in the message it raises: the
    message reaches logs, /status and the terminal, and a driver may quote its DSN."""
    try:
        storage_error(context)
    except StorageError as exc:
        if context.engine is not None:
            exc.args = (hide_password(str(exc), context.engine.url),)
        raise


# Connection parameters a URL's query may carry that are as secret as its password.
_SECRET_PARAMETERS = ("password", "passfile", "sslpassword")


def _secrets(parsed: URL) -> list[str]:
    """The password, whether in the URL's userinfo or in its query (libpq takes both)."""
    found = [str(parsed.password)] if parsed.password else []
    for name in _SECRET_PARAMETERS:
        value = parsed.query.get(name)
        found += [value] if isinstance(value, str) else list(value or ())
    return [secret for secret in found if secret]


def masked_url(url: str | URL) -> str:
    """The URL as a message may show it: the password (and its like in the query) as ***."""
    parsed = make_url(url)
    hidden = {name: "***" for name in _SECRET_PARAMETERS if name in parsed.query}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


def hide_password(text: str, url: str | URL) -> str:
    """``text`` with the URL, and the password wherever it appears on its own, masked. (A
    password short enough to occur in the text by chance garbles the text: better than
    showing it.)"""
    parsed = make_url(url)
    secrets = _secrets(parsed)
    if not secrets:
        return text
    for shown in (str(url), parsed.render_as_string(hide_password=False)):
        text = text.replace(shown, masked_url(parsed))
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def failure_message(url: str, exc: BaseException, opening: bool = False) -> str:
    """One line saying why the database at ``url`` failed, password masked, the driver's
    lines joined: 'cannot reach the database at <url>: <cause>' (for SQLite 'cannot open')
    when it failed while being opened (``opening``: connected to and brought to this
    schema, as the commands and the server's start-up do first), else 'database <url>:
    <cause>'."""
    cause = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    cause = cause or type(exc).__name__
    if not opening:
        return hide_password(f"database {masked_url(url)}: {cause}", url)
    verb = "open" if make_url(url).get_backend_name() == "sqlite" else "reach"
    return hide_password(f"cannot {verb} the database at {masked_url(url)}: {cause}", url)


def _make_engine(url: str, read_only: bool, reader: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # a server that cannot be reached is noticed in seconds, not at the kernel's timeout
        connect: dict[str, Any] = {"connect_timeout": 5, "application_name": "feedsvc"}
        if reader:
            connect["application_name"] = "feedsvc reader"
            given = parsed.query.get("options", "")  # (e.g. a search_path: kept)
            given = given if isinstance(given, str) else " ".join(given)
            connect["options"] = f"{given} -c default_transaction_read_only=on".strip()
        return create_engine(url, pool_pre_ping=True, connect_args=connect)
    if read_only:
        database = Path(parsed.database or "").resolve()
        uri = f"sqlite:///file:{quote(str(database))}?mode=ro&immutable=1&uri=true"
        engine = create_engine(uri)
        event.listen(engine, "connect", _sqlite_connect_read_only)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.database and parsed.database != ":memory:":
        directory = Path(parsed.database).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory {directory}: {exc.strerror}") from exc
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_connect)
    if reader:
        event.listen(engine, "connect", _sqlite_reader)
    event.listen(engine, "begin", _sqlite_begin)
    return engine
