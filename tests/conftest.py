"""Shared fixtures: the real corpus, settings on a temporary directory, and databases.

Every database test runs on SQLite and on PostgreSQL. PostgreSQL is reached at
FEEDSVC_TEST_PG (CI sets it; there those tests must run): each test gets a schema of its own."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedsvc.config import Settings

TESTS = Path(__file__).parent
ROOT = TESTS.parent
REAL_CORPUS = TESTS / "corpus" / "real"
SAMPLE_SEEDS = ROOT / "seeds"
PG_URL = os.environ.get("FEEDSVC_TEST_PG")


class Clock:
    """The scanner's idea of now; tests move it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def copy_corpus(dest: Path, *sources: Path) -> Path:
    """A writable copy of seed directories (the originals stay untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for item in source.iterdir():
            shutil.copy2(item, dest / item.name)
    for item in dest.iterdir():
        item.chmod(0o644)
    return dest


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    return copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)


def require(available: bool, what: str) -> None:
    """Skip a test whose facility is missing on a developer's machine, but fail it in CI,
    where every facility the suite uses must be there (PostgreSQL tests run, not skip)."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available here")


def pg_schema_url() -> Iterator[str]:
    require(bool(PG_URL), "PostgreSQL (FEEDSVC_TEST_PG)")
    assert PG_URL
    schema = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/feedsvc.sqlite3"
        return
    yield from pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (for tests that only make sense on a shared server)."""
    yield from pg_schema_url()


@pytest.fixture
def make_settings(tmp_path: Path):
    def make(seeds: Path, db: str | None = None, **values: object) -> Settings:
        return Settings(
            seeds=seeds,
            db=db or f"sqlite:///{tmp_path}/db/feedsvc.sqlite3",
            base_url="http://feeds.example.test",
            **values,
        )

    return make


def run_sql(db: str, *statements: str) -> None:
    """Statements run on the database directly, in one transaction."""
    engine = create_engine(db)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def sql_value(db: str, query: str) -> object:
    """The first value a query on the database gives (None: no row)."""
    engine = create_engine(db)
    with engine.connect() as conn:
        value = conn.execute(text(query)).scalar()
    engine.dispose()
    return value


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
