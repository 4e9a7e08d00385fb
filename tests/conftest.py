"""The fixtures: the real corpus, settings on a temporary directory, databases, and servers.
(What the tests share besides fixtures is in tests/helpers.py and tests/server.py.)

Databases: every database test runs on SQLite and on PostgreSQL (``db_url``; ``pg_url`` for
PostgreSQL alone; ``module_db_url`` for a server a module shares). PostgreSQL is reached at
FEEDSVC_TEST_PG (CI sets it; there those tests must run): each test gets a schema of its own.

Servers: ``serve`` is the one way a test starts `feedsvc serve` (and the WebSub hubs and nginx
around it): a tests.server.Servers made on the test's temporary directory.

    server = serve(seeds, db, FEEDSVC_WORKERS="1")     # started, and ready
    other = serve(seeds, db, wait=False, port=port)    # started; the test waits if it will
    hub, nginx = serve.hub(), serve.nginx([server.port, other.port])

Keywords in capitals are settings (environment variables) over ServerProcess's defaults; the
others are ``wait``, ``timeout`` and ``indexed`` (for wait_ready), ``workdir``, ``port`` and
``command_prefix`` (a wrapper such as unshare or setpriv). At teardown, also when the test
failed, everything still running is stopped, and a server left running must exit 0; a test
that stops or kills a server itself (``server.stop()``, ``server.kill()``) checks what it
needs. The databases a test names are set up before ``serve``, so that they are dropped after
its servers have stopped.

``serve_module`` is the same factory for servers a module shares (a module-scoped fixture of
the module starts them): made by the same generator, stopped at the end of the module. A
module fixture parametrized over databases calls ``serve_module.stop_all()`` at its teardown,
so that one database's server is gone before the next one's starts.

Every test that uses either fixture is marked ``e2e`` (so are the rules of test_http_rules.py
sent through a server or nginx, by their parameters); the slowest are marked ``slow`` by hand;
``make test-fast`` runs the others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedsvc.config import Settings
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus, database, pg_schema
from tests.server import Servers

SERVER_FIXTURES = {"serve", "serve_module"}
DATABASE_FIXTURES = ("db_url", "pg_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    return copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    with database(request.param, tmp_path / "db") as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (for tests that only make sense on a shared server)."""
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database of each kind for a module's shared server."""
    with database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def make_settings(tmp_path: Path):
    def make(seeds: Path, db: str | None = None, **values: Any) -> Settings:
        return Settings(
            seeds=seeds,
            db=db or f"sqlite:///{tmp_path}/db/feedsvc.sqlite3",
            base_url="http://feeds.example.test",
            **values,
        )

    return make


def servers(workdir: Path) -> Iterator[Servers]:
    """Behind both ``serve`` fixtures: a factory whose processes all stop at its end."""
    with Servers(workdir) as started:
        yield started


@pytest.fixture
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Servers]:
    for name in DATABASE_FIXTURES:  # set up first: torn down after the servers stop
        if name in request.fixturenames:
            request.getfixturevalue(name)
    yield from servers(tmp_path)


@pytest.fixture(scope="module")
def serve_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from servers(tmp_path_factory.mktemp("servers"))
