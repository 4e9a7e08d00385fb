"""What the tests share besides processes (those are in tests/server.py): where the corpus is,
the rule for a missing facility, databases (a PostgreSQL schema of one's own, SQL on the side,
older states), a clock the tests move, what a client can see of a store, and counted work.

Test modules import from here and from tests/server.py, never from each other or from
conftest (which holds the fixtures)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from feedsvc.model import Format
from feedsvc.scan import Scanner
from feedsvc.service import FeedService
from feedsvc.store import Store

TESTS = Path(__file__).parent
ROOT = TESTS.parent
REAL_CORPUS = TESTS / "corpus" / "real"
# What a `python -m feedsvc` child needs to run this checkout's feedsvc rather than the one
# the interpreter has installed (a git worktree may share another checkout's virtualenv).
CHECKOUT_ENV = {"PYTHONPATH": str(ROOT)}
SAMPLE_SEEDS = ROOT / "seeds"
PG_URL = os.environ.get("FEEDSVC_TEST_PG")

# Real files whose `date` cannot be used: dated by when they were first stored.
UNDATED = {".md", "2022-07-09.md"}
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # where a scanner's Clock starts


# -- facilities --------------------------------------------------------------------------


def require(available: bool, what: str) -> None:
    """Skip a test whose facility is missing on a developer's machine, but fail it in CI,
    where every facility the suite uses must be there (PostgreSQL tests run, not skip)."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available here")


# -- seeds -------------------------------------------------------------------------------


def copy_corpus(dest: Path, *sources: Path) -> Path:
    """A writable copy of seed directories (the originals stay untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for item in source.iterdir():
            shutil.copy2(item, dest / item.name)
    for item in dest.iterdir():
        item.chmod(0o644)
    return dest


def move_mtimes(seeds: Path, seconds: int = 3600) -> None:
    """Every file's modification time moved on, its bytes untouched (a producer's rewrite)."""
    for path in seeds.iterdir():
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


# -- databases ---------------------------------------------------------------------------


@contextlib.contextmanager
def pg_schema(base: str | None = None) -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema in the database at ``base`` (FEEDSVC_TEST_PG's by
    default), dropped afterwards."""
    require(bool(PG_URL), "PostgreSQL (FEEDSVC_TEST_PG)")
    base = base or PG_URL
    assert base
    schema = "t_" + uuid.uuid4().hex[:12]
    run_sql(base, f"create schema {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        run_sql(base, f"drop schema if exists {schema} cascade")


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A URL of a new PostgreSQL database on FEEDSVC_TEST_PG's server (for what belongs to a
    whole database, such as its extensions), dropped afterwards."""
    require(bool(PG_URL), "PostgreSQL (FEEDSVC_TEST_PG)")
    name = "feedsvc_t_" + uuid.uuid4().hex[:12]
    admin = create_engine(str(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"create database {name}"))
        try:
            yield make_url(str(PG_URL)).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"drop database {name} with (force)"))
    finally:
        admin.dispose()


@contextlib.contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A URL of a fresh, empty database: a SQLite file in ``directory`` ("sqlite"), or a
    PostgreSQL schema ("postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{directory}/feedsvc.sqlite3"
        return
    with pg_schema() as url:
        yield url


def run_sql(db: str, *statements: str) -> None:
    """Statements run on the database directly, in one transaction."""
    engine = create_engine(db)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def sql_rows(db: str, query: str) -> list[Any]:
    """The rows a query on the database gives, the query passed to the driver as it is."""
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(query).all())
    finally:
        engine.dispose()


def sql_value(db: str, query: str) -> object:
    """The first value a query on the database gives (None: no row)."""
    rows = sql_rows(db, query)
    return rows[0][0] if rows else None


def from_before_revisions(db: str, version: str) -> None:
    """Leave the database as a release from before schema revisions would have: no
    alembic_version table, and ``version`` in the meta row those releases read."""
    run_sql(
        db,
        "drop table alembic_version",
        f"update meta set value = '{version}' where key = 'schema_version'",
    )


def set_revision(db: str, revision: str) -> None:
    """Put the database at ``revision`` as far as its version table says (e.g. one only a
    newer feedsvc knows)."""
    run_sql(db, f"update alembic_version set version_num = '{revision}'")


# -- what a client sees of a store -------------------------------------------------------


class Clock:
    """The scanner's idea of now; tests move it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def all_feed_bytes(store: Store, settings: Any) -> dict[tuple[str, str], bytes]:
    """Every feed's first page in every format, by (scope key, format)."""
    service = FeedService(store, settings)
    service.refresh()
    return {
        (summary.scope.key, fmt.value): service.feed(
            summary.scope, fmt, 1, settings.feed_limit
        ).body
        for summary in service.summaries()
        for fmt in Format
    }


def state(scanner: Scanner) -> tuple[str | None, dict[Any, Any], dict[Any, Any]]:
    """Everything a client can see: the generation, each feed's ETag, each feed's bytes."""
    service = FeedService(scanner.store, scanner.settings)
    service.refresh()
    limit = scanner.settings.feed_limit
    etags = {
        (s.scope.key, fmt.value): service.feed(s.scope, fmt, 1, limit).etag
        for s in service.summaries()
        for fmt in Format
    }
    return scanner.store.generation(), etags, all_feed_bytes(scanner.store, scanner.settings)


# -- work, counted -----------------------------------------------------------------------

MAX_GROWTH = 6  # work for 4 times the input; linear is about 4, quadratic 16


def work(call: Callable[[], object]) -> int:
    """The Python and C function calls ``call`` makes."""
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        call()
    finally:
        sys.setprofile(None)
    return calls
