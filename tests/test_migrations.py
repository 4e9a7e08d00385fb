"""Upgrades keep history: a database written by a released feedsvc, upgraded by this one.

Each release that wrote a schema of its own is run from git history (``git archive`` of its
commit: the tests need a clone with history, as CI's is), on SQLite and PostgreSQL: it
scans, serves, announces to a WebSub hub, sees an entry edited and a file deleted; then this
feedsvc upgrades the database and must hold the same rows, serve the same bytes under the
same validators, and move nothing on its next scan. The revisions and the models are
checked against each other as `alembic check` would."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import threading
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, select, text

from feedsvc.store import Store, migrate
from feedsvc.store.migrate import BASELINE_SCHEMA, HEAD
from feedsvc.store.parts import json_of, text_of
from feedsvc.store.schema import metadata
from tests.helpers import (
    PG_URL,
    REAL_CORPUS,
    ROOT,
    copy_corpus,
    pg_database,
    pg_schema,
    require,
    run_sql,
    set_revision,
    sql_value,
)
from tests.server import (
    HubProcess,
    ServerProcess,
    Servers,
    free_port,
    run,
    server_status,
    wait_for,
)

# The last commit of each release that wrote a schema of its own, by schema: each one's
# databases must upgrade in place. Add a line when a release adds a revision.
RELEASES = {"5": "656e28ca340017df3a222cb8c99b73f0918da0f3"}

PUBLIC = "https://feeds.example.org"  # both versions serve under one public URL
DOCUMENTS = [
    "/feeds/all.atom",
    "/feeds/all.rss",
    "/feeds/all.json",
    "/feeds/all.atom?page=2",
    "/feeds/categories/History.atom",
    "/feeds/authors/Ann.json",
    "/feeds/tags/kept.rss",
]

SEEDS = {
    "dated.md": "---\ntitle: Dated\ndate: Mon, 02 Jan 2023 10:00:00 +0000\n"
    "categories: [History]\nauthor: Ann\ntags: [kept]\n---\n<p>dated</p>\n",
    "undated.md": "---\ntitle: Undated\ncategories: [History]\nauthor: Ann\n---\n<p>no date</p>\n",
    "invalid.md": "---\ntitle: Invalid\ndate: Invalid Date\ncategories: [History]\n"
    "tags: [kept]\n---\n<p>a date nobody can read</p>\n",
    "edited.md": "---\ntitle: Edited\ndate: Tue, 03 Jan 2023 10:00:00 +0000\n"
    "categories: [History]\nauthor: Ann\n---\n<p>first version</p>\n",
    "doomed.md": "---\ntitle: Doomed\ndate: Wed, 04 Jan 2023 10:00:00 +0000\n"
    "categories: [History]\nauthor: Ann\ntags: [kept]\n---\n<p>deleted later</p>\n",
}


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each release's package, unpacked from git history, by schema."""
    trees = {}
    for schema, commit in RELEASES.items():
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "feedsvc"], capture_output=True
        )
        require(archive.returncode == 0, f"git history holding {commit} (a full clone)")
        tree = tmp_path_factory.mktemp(f"release-{schema}")
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        trees[schema] = tree
    return trees


def released(tree: Path) -> dict[str, Any]:
    """The environment that runs that release's feedsvc with this interpreter."""
    return {"PYTHONPATH": str(tree)}


def snapshot(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table feedsvc keeps, sorted, by table (SQLite's search index
    internals aside: entry_text, which feeds it, is compared)."""
    engine = create_engine(db)
    tables = MetaData()
    tables.reflect(engine)
    found = {}
    with engine.connect() as conn:
        for name, table in tables.tables.items():
            if name.startswith("entry_search"):
                continue
            columns = sorted(table.columns, key=lambda column: column.name)
            rows = conn.execute(select(*columns)).all()
            found[name] = sorted(
                (tuple(zip([c.name for c in columns], row, strict=True)) for row in rows),
                key=repr,
            )
    engine.dispose()
    return found


def without(rows: list[tuple[Any, ...]], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(pair for pair in row if pair[0] not in columns) for row in rows]


def unpacked(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An entries row with its packed data as the JSON and the text it holds."""
    data = dict(row)["data"]
    json_pair = ("data", json_of(data))
    rest = tuple(pair if pair[0] != "data" else json_pair for pair in row)
    return (*rest, ("text", text_of(data)))


def documents(base: str) -> dict[str, tuple[bytes, str | None, str | None]]:
    found = {}
    for target in DOCUMENTS:
        response = requests.get(base + target, timeout=10)
        assert response.status_code == 200, (target, response.status_code)
        found[target] = (
            response.content,
            response.headers.get("ETag"),
            response.headers.get("Last-Modified"),
        )
    return found


def announced(hub: HubProcess) -> list[str]:
    return [url for ping in hub.pings() for url in ping["form"].get("hub.url", [])]


def status_of(base: str) -> dict[str, Any]:
    status: dict[str, Any] = requests.get(base + "/status", timeout=10).json()
    return status


def scanned_since(server: ServerProcess, moment: datetime) -> bool:
    last = server_status(server)["last_scan"]
    return bool(last and last["finished"] and datetime.fromisoformat(last["started"]) > moment)


def write_history(
    serve: Servers, seeds: Path, db: str, tree: Path, hub: HubProcess
) -> dict[str, tuple[bytes, str | None, str | None]]:
    """The release serves the seeds with a hub: a first scan, then an edit, a deletion and
    a new undated file. Returns the documents the release served last."""
    for name, body in SEEDS.items():
        (seeds / name).write_text(body)
    server = serve(
        seeds,
        db,
        FEEDSVC_WORKERS="1",
        FEEDSVC_WEBSUB_HUBS=hub.url,
        FEEDSVC_DELETE_GRACE="0",
        FEEDSVC_BASE_URL=PUBLIC,
        **released(tree),
    )
    wait_for(lambda: server_status(server)["generation"].endswith(":1"))
    (seeds / "edited.md").write_text(SEEDS["edited.md"].replace("first", "second"))
    (seeds / "doomed.md").unlink()
    (seeds / "later.md").write_text(
        "---\ntitle: Later\ncategories: [History]\nauthor: Ann\n---\n<p>news</p>\n"
    )
    wait_for(lambda: any(url.endswith("/feeds/all.atom") for url in announced(hub)))
    served = documents(server.url)
    assert server.stop() == 0
    return served


@pytest.mark.slow
@pytest.mark.parametrize("schema", sorted(RELEASES))
def test_a_released_database_upgrades_in_place_and_serves_the_same_bytes(
    schema: str, releases: dict[str, Path], tmp_path: Path, db_url: str, serve: Servers
) -> None:
    tree = releases[schema]
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    hub = serve.hub()
    served = write_history(serve, seeds, db_url, tree, hub)
    before = snapshot(db_url)
    env = {"FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": db_url}

    # What the release left is worth keeping: dates no seed states, an edit time, a
    # tombstone and digests announced to the hub.
    stored = [json.loads(dict(row)["data"]) for row in before["entries"]]
    undated = [data for data in stored if data.get("undated")]
    assert {data["title"] for data in undated} >= {"Undated", "Invalid", "Later"}
    edited = next(data for data in stored if data["title"] == "Edited")
    assert edited["updated"] != edited["published"]
    assert before["tombstones"] and before["pinged"]

    current = run("db", "current", env=env, cwd=tmp_path)
    assert current.stdout.startswith(f"schema version {schema}, before revisions")
    refused = run("serve", "--no-upgrade", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "run `feedsvc db upgrade`" in refused.stderr
    run("check", env=env, cwd=tmp_path)  # (it writes nothing, and upgrades nothing either)
    assert snapshot(db_url) == before

    upgraded = run("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from schema version {schema} to {HEAD}" in upgraded.stdout
    assert run("db", "current", env=env, cwd=tmp_path).stdout == f"{HEAD} (head)\n"
    after = snapshot(db_url)
    # Each entry's searchable text is packed with its JSON now, the same text, case-folded.
    texts = {dict(row)["entry_id"]: dict(row)["text"].casefold() for row in before["entry_text"]}
    kept = [
        (*row, ("text", texts[dict(row)["id"]])) for row in without(before["entries"], "published")
    ]
    assert sorted(kept, key=repr) == sorted(map(unpacked, after["entries"]), key=repr)
    for table in ("entry_scopes", "scopes", "tombstones", "pinged", "unpublished"):
        assert before[table] == after[table], table
    # The search index is derived: rebuilt empty, every text to be indexed again.
    assert without(before["entry_text"], "text") == without(
        after["entry_text"], "indexed", "tokens"
    )
    assert {(dict(row)["indexed"], dict(row)["tokens"]) for row in after["entry_text"]} == {
        (False, None)
    }
    kept_meta = [row for row in before["meta"] if row[0][1] != migrate.LEGACY_KEY]
    assert [row for row in after["meta"] if row[0][1] != migrate.LEGACY_KEY] == kept_meta
    assert agreement(db_url) == []

    # The release, started again, refuses the upgraded database and writes nothing.
    old_scan = run("scan", env={**env, **released(tree)}, cwd=tmp_path)
    assert old_scan.returncode == 1 and "newer than this feedsvc" in old_scan.stderr
    assert snapshot(db_url) == after

    # This feedsvc rescans seeds rewritten as the producer rewrites them (new mtimes, the
    # same bytes): nothing moves, nobody is pinged, and every document is the same.
    for path in seeds.iterdir():
        os.utime(path)
    started = datetime.now().astimezone()
    pings = len(hub.pings())
    server = serve(seeds, db_url, FEEDSVC_WEBSUB_HUBS=hub.url, FEEDSVC_BASE_URL=PUBLIC)
    wait_for(lambda: scanned_since(server, started))
    assert server_status(server)["generation"] == _generation(before)
    assert documents(server.url) == served
    for target, (_body, etag, _modified) in served.items():
        again = requests.get(server.url + target, headers={"If-None-Match": etag}, timeout=10)
        assert again.status_code == 304, target
    # The search index, rebuilt by the scanner after the upgrade, finds what it held.
    found = requests.get(server.url + "/feeds/search.json?q=nobody", timeout=10).json()
    assert [item["title"] for item in found["items"]] == ["Invalid"]
    for row in after["pinged"]:
        url, digest = dict(row)["url"], dict(row)["digest"]
        body = requests.get(url.replace(PUBLIC, server.url), timeout=10).content
        assert hashlib.sha256(body).hexdigest() == digest, url
    assert server.stop() == 0
    assert len(hub.pings()) == pings


def _generation(rows: dict[str, list[tuple[Any, ...]]]) -> str:
    values = {dict(row)["key"]: dict(row)["value"] for row in rows["meta"]}
    return f"{values['epoch']}:{values['generation']}"


def agreement(db: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the models (`alembic
    check`): nothing, when the revisions build what the code queries. The search index
    (FTS5's tables, the tokens' GIN index) is made by the revisions alone, and autogenerate
    does not know that entries_file_state is SQLite's only."""
    engine = create_engine(db)
    sqlite = engine.dialect.name == "sqlite"

    def ours(obj: Any, name: str | None, kind: str, reflected: bool, _compare: Any) -> bool:
        return not (
            (kind == "table" and name is not None and name.startswith("entry_search"))
            or (kind == "index" and name in ("entry_text_trigram", "entry_text_tokens"))
            or (kind == "index" and name == "entries_file_state" and not sqlite)
        )

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": ours, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_the_revisions_build_what_the_models_describe(db_url: str) -> None:
    Store(db_url).close()
    assert agreement(db_url) == []


def test_schemas_upgraded_at_once_in_one_database_share_its_extension() -> None:
    """pg_trgm belongs to the database: while another schema's upgrade has created it and
    not yet committed, an upgrade waits for it, then uses it (it once failed on the
    catalogue's unique index, replicas in two schemas of one database starting together)."""
    with pg_database() as base, pg_schema(base) as url:
        other = create_engine(base)
        opened: dict[str, Any] = {}

        def upgrade() -> None:
            try:
                opened["store"] = Store(url)
            except Exception as error:  # (judged below, in the test's thread)
                opened["error"] = error

        try:
            with other.connect() as creating:
                creating.execute(text("create extension pg_trgm"))
                thread = threading.Thread(target=upgrade)
                thread.start()
                wait_for(lambda: waiting_on_a_lock(base) or "error" in opened)
                creating.commit()
            thread.join(timeout=60)
        finally:
            other.dispose()
        assert "error" not in opened, opened.get("error")
        opened["store"].close()
        assert agreement(url) == []  # upgraded to the head, all of it


def test_dropping_the_first_deployments_schema_leaves_the_extension() -> None:
    """pg_trgm is created in public, not in the first schema upgraded: dropping that schema
    (cascade) took it, and the trigram index of a schema being upgraded past it, with it."""
    with pg_database() as base, pg_schema(base) as first, pg_schema(base) as second:
        Store(first).close()
        assert sql_value(base, EXTENSION_SCHEMA) == "public"
        run_sql(base, f"drop schema {first.rsplit('%3D', 1)[1]} cascade")
        Store(second).close()
        assert sql_value(base, EXTENSION_SCHEMA) == "public"
        assert agreement(second) == []


EXTENSION_SCHEMA = (
    "select extnamespace::regnamespace::text from pg_extension where extname = 'pg_trgm'"
)


def waiting_on_a_lock(db: str) -> bool:
    query = (
        "select count(*) from pg_stat_activity"
        " where datname = current_database() and wait_event_type = 'Lock'"
    )
    return bool(sql_value(db, query))


def test_head_is_the_revision_the_code_expects() -> None:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "feedsvc.store:migrations")
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]
    assert [row[0] for row in migrate.history()][-1] == migrate.BASELINE


def test_a_search_path_naming_no_schema_is_said_in_one_line(tmp_path: Path) -> None:
    require(bool(PG_URL), "PostgreSQL (FEEDSVC_TEST_PG)")
    absent = f"{PG_URL}{'&' if '?' in str(PG_URL) else '?'}options=-csearch_path%3Dfeedsvc_no_such_schema"
    for command in (("db", "upgrade"), ("db", "current"), ("scan",)):
        failed = run(*command, env={"FEEDSVC_DB": absent}, cwd=tmp_path)
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
        assert "no schema of its search_path (feedsvc_no_such_schema) exists" in failed.stderr


def test_db_commands(tmp_path: Path, db_url: str) -> None:
    env = {"FEEDSVC_DB": db_url}
    history = run("db", "history", env=env, cwd=tmp_path)
    assert " -> " + HEAD + " (head), " in history.stdout.splitlines()[0]
    assert history.stdout.splitlines()[-1].startswith(f"<base> -> {migrate.BASELINE}, ")
    if db_url.startswith("sqlite"):
        missing = run("db", "current", env=env, cwd=tmp_path)
        assert missing.returncode == 1 and "no database at" in missing.stderr
    refused = run("serve", "--no-upgrade", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    created = run("db", "upgrade", env=env, cwd=tmp_path)
    assert f"upgraded from an empty database to {HEAD}" in created.stdout
    assert run("db", "upgrade", env=env, cwd=tmp_path).stdout.endswith("nothing to do\n")
    assert run("db", "current", env=env, cwd=tmp_path).stdout == f"{HEAD} (head)\n"
    set_revision(db_url, "0999")
    newer = run("db", "current", env=env, cwd=tmp_path).stdout
    assert newer.startswith("0999 (newer than this feedsvc's")
    refused = run("db", "upgrade", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "a newer feedsvc owns it" in refused.stderr


@pytest.mark.slow
def test_replicas_behind_nginx_while_one_is_upgraded(
    releases: dict[str, Path], tmp_path: Path, pg_url: str, serve: Servers
) -> None:
    """A rolling upgrade: two replicas of the newest release behind nginx, restarted one by
    one as this feedsvc. The first one restarted upgrades the database as it starts; the
    other steps down from scanning and keeps serving what it holds until its own turn.
    Readers never see anything but a 200."""
    tree = releases[max(RELEASES, key=int)]
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    ports = [free_port(), free_port()]
    common: dict[str, Any] = {
        "FEEDSVC_WORKERS": "1",
        "FEEDSVC_BASE_URL": PUBLIC,
        "FEEDSVC_LOG_LEVEL": "WARNING",
    }
    replicas = [
        serve(seeds, pg_url, wait=False, port=port, **common, **released(tree)) for port in ports
    ]
    for replica in replicas:
        replica.wait_ready()
    base = serve.nginx(ports, one_worker=True).url
    statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                for target in DOCUMENTS[:3]:
                    statuses.append(session.get(base + target, timeout=10).status_code)

    def restart(index: int) -> ServerProcess:
        assert replicas[index].stop() == 0
        # (the older one leads until its turn: nobody indexes the upgraded search index yet)
        replicas[index] = serve(seeds, pg_url, indexed=False, port=ports[index], **common)
        return replicas[index]

    reader = threading.Thread(target=read)
    try:
        wait_for(lambda: ready(base))
        reader.start()
        older = replicas[0]
        restart(1)
        assert schema_of(pg_url) == HEAD
        wait_for(lambda: "newer than this feedsvc" in (server_status(older)["scan_error"] or ""))
        # nginx takes the restarted replica back once its fail_timeout has passed: then
        # some answers come from it (the older one's /status names the newer schema).
        wait_for(lambda: status_of(base)["scan_error"] is None, timeout=30)
        restart(0)
        (seeds / "after.md").write_text("---\ntitle: After the upgrade\n---\n<p>news</p>\n")
        for replica in replicas:
            wait_for(
                lambda replica=replica: (
                    b"After the upgrade"
                    in requests.get(replica.url + "/feeds/all.atom", timeout=10).content
                )
            )
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(30)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))


def test_a_replica_that_steps_down_hands_the_lead_over(
    tmp_path: Path, pg_url: str, serve: Servers
) -> None:
    """Stepping down frees the leader lock (a PostgreSQL advisory lock outlives a pooled
    connection's close), so the other replica leads next and finds the same newer schema."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    replicas = [
        serve(seeds, pg_url, wait=False, FEEDSVC_WORKERS="1", FEEDSVC_LOG_LEVEL="WARNING")
        for _ in range(2)
    ]
    for replica in replicas:
        replica.wait_ready()
    set_revision(pg_url, "0999")
    for replica in replicas:
        wait_for(lambda replica=replica: status_line(replica, "stops scanning"))


def ready(base: str) -> bool:
    try:
        return requests.get(base + "/readyz", timeout=5).status_code == 200
    except requests.ConnectionError:  # nginx not listening yet
        return False


def schema_of(db: str) -> object:
    return sql_value(db, "select version_num from alembic_version")


def status_line(server: ServerProcess, words: str) -> bool:
    return words in server.log.read_text()


ODD_STATES = {
    "empty version table": (["delete from alembic_version"], "without one revision"),
    "empty revision": (["update alembic_version set version_num = ''"], "without one revision"),
    "symbolic revision": (["update alembic_version set version_num = 'head'"], "newer than"),
    "revision unlike the tables": (
        ["update alembic_version set version_num = '0005'"],
        f"upgrading it from 0005 to {HEAD} failed",
    ),
    "odd version row": (
        ["drop table alembic_version", "update meta set value = '05' where key = 'schema_version'"],
        "the version row '05'",
    ),
    "no version row, no epoch": (
        ["drop table alembic_version", "delete from meta"],
        "no version row and no epoch",
    ),
    "someone else's meta table": (
        [
            *(f"drop table {table.name}" for table in reversed(metadata.sorted_tables)),
            "drop table if exists entry_search",
            "drop table alembic_version",
            "create table meta (x integer)",
        ],
        "not feedsvc's (meta)",
    ),
    "someone else's tables": (
        [
            *(f"drop table {table.name}" for table in reversed(metadata.sorted_tables)),
            "drop table if exists entry_search",
            "drop table alembic_version",
            "create table users (id integer)",
        ],
        "not feedsvc's (users)",
    ),
}


@pytest.mark.parametrize("case", sorted(ODD_STATES))
def test_a_state_no_feedsvc_leaves_is_refused_in_one_line_and_left_alone(
    case: str, tmp_path: Path, db_url: str
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, body in SEEDS.items():
        (seeds / name).write_text(body)
    env = {"FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": db_url}
    assert run("scan", env=env, cwd=tmp_path).returncode == 0
    statements, message = ODD_STATES[case]
    run_sql(db_url, *statements)
    before = snapshot(db_url)
    current = run("db", "current", env=env, cwd=tmp_path)
    assert current.returncode == 0 and current.stdout.count("\n") == 1
    for args in (("db", "upgrade"), ("scan",)):
        refused = run(*args, env=env, cwd=tmp_path)
        assert refused.returncode == 1, (args, refused.stdout)
        assert refused.stderr.count("\n") == 1 and message in refused.stderr, refused.stderr
    assert snapshot(db_url) == before


@pytest.mark.slow
def test_on_postgresql_only_feedsvcs_own_schema_counts(
    releases: dict[str, Path], tmp_path: Path, pg_url: str
) -> None:
    """A database of the release before revisions in one schema, and a current one later on
    the search_path: the first is upgraded in place, the other left as it was."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    own = pg_url
    env = {"FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": own}
    written = run("scan", env={**env, **released(releases[BASELINE_SCHEMA])}, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    other = "t_other_" + os.urandom(4).hex()
    run_sql(own, f"create schema {other}")
    try:
        elsewhere = own.rsplit("%3D", 1)[0] + f"%3D{other}"
        Store(elsewhere).close()  # a current database, later on the search_path
        both = {**env, "FEEDSVC_DB": own + f"%2C{other}"}
        assert run("db", "current", env=both, cwd=tmp_path).stdout == (
            f"schema version {BASELINE_SCHEMA}, before revisions (upgraded in place to {HEAD})\n"
        )
        upgraded = run("db", "upgrade", env=both, cwd=tmp_path)
        assert f"upgraded from schema version {BASELINE_SCHEMA}" in upgraded.stdout
        assert run("scan", env=both, cwd=tmp_path).returncode == 0
        assert schema_of(own) == schema_of(elsewhere) == HEAD
        assert agreement(own) == []
    finally:
        run_sql(own, f"drop schema {other} cascade")
