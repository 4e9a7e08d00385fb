"""Faults: kill -9 mid-scan, a database deleted or corrupted (between runs and while running),
and a data directory that fills up or turns read-only. feedsvc keeps serving, loses nothing
it served, and rebuilds with the same ids and ETags.

A rebuilt database dates undated entries by its own first scan (docs/seeds.md), so the
tests that compare a rebuild with what was served before use the corpus's dated files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine

from feedsvc.config import Settings
from feedsvc.model import EPOCH, Format, Scope
from feedsvc.routes import feed_path
from feedsvc.service import FeedService
from feedsvc.store import StorageError, Store
from feedsvc.store.engine import sqlite_path
from feedsvc.store.parts import entry_of
from feedsvc.store.schema import entries, entry_scopes
from tests.helpers import (
    REAL_CORPUS,
    SAMPLE_SEEDS,
    UNDATED,
    copy_corpus,
    from_before_revisions,
    require,
    sql_rows,
    sql_value,
)
from tests.server import ServerProcess, server_status, wait_for

TEMPLATES = sorted(p for p in REAL_CORPUS.iterdir() if not p.name.startswith('"""'))


def copy_dated_corpus(dest: Path) -> Path:
    """The real corpus and the samples without the files that give no usable date."""
    copy_corpus(dest, REAL_CORPUS, SAMPLE_SEEDS)
    for name in UNDATED:
        (dest / name).unlink()
    return dest


def grow_corpus(seeds: Path, count: int, rng: random.Random) -> None:
    """Real seed files under many names and categories: enough for a scan to take a while."""
    for index in range(count):
        text = rng.choice(TEMPLATES).read_text()
        text = text.replace("categories: \n", f"categories: \n - 分组{index % 7}\n", 1)
        (seeds / f"item-{index:05d}.md").write_text(text)


def mutate(seeds: Path, rng: random.Random, round_: int) -> None:
    files = sorted(seeds.glob("item-*.md"))
    for path in rng.sample(files, 10):
        path.unlink()
    for path in rng.sample([f for f in files if f.exists()], 10):
        path.write_text(path.read_text().replace("</div>", f"<p>edit {round_}</p></div>", 1))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    for index in range(20):
        (seeds / f"new-{round_:02d}-{index:02d}.md").write_text(rng.choice(TEMPLATES).read_text())


def snapshot(db_url: str) -> dict[str, Any]:
    """What a store holds from its seeds: entries (all but their dates, which depend on the
    store's history: when an undated entry was first stored, when an edit was first seen),
    memberships, feeds and their sizes, errors."""
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                entries.select().with_only_columns(entries.c.id, entries.c.path, entries.c.data)
            ).all()
            members = conn.execute(entry_scopes.select()).all()
        undated = [replace(entry_of(row.data), published=EPOCH, updated=EPOCH) for row in rows]
        return {
            "entries": sorted((row.id, row.path) for row in rows),
            "content": sorted(entry.to_json() for entry in undated),
            "ids_unique": len({row.id for row in rows}) == len(rows),
            "paths_unique": len({row.path for row in rows}) == len(rows),
            "members": sorted((row.scope_id, row.entry_id) for row in members),
            # (a scope emptied on the way keeps an unlisted summary a fresh scan never had)
            "scopes": [(s.scope.key, s.count) for s in store.scope_summaries() if s.listed],
            "errors": store.errors(),
        }
    finally:
        store.close()


def scan_command(seeds: Path, db_url: str) -> list[str]:
    return [sys.executable, "-m", "feedsvc", "scan", "--seeds", str(seeds), "--db", db_url]


# Deleted files leave at once: a fresh scan must hold exactly what the seeds hold.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "FEEDSVC_LOG_LEVEL": "INFO", "FEEDSVC_DELETE_GRACE": "0"}


def scanning(proc: subprocess.Popen[bytes], db_url: str) -> bool:
    """Whether the process holds the scan lock (its scan has begun), or has exited."""
    return proc.poll() is not None or holds_scan_lock(proc.pid, db_url)


def holds_scan_lock(pid: int | None, db_url: str) -> bool:
    """Whether process ``pid`` (SQLite), or anyone (PostgreSQL), holds the scan lock."""
    if pid is None:
        return False
    if db_url.startswith("sqlite"):
        try:
            return any(
                os.readlink(fd).endswith(".scan.lock") for fd in Path(f"/proc/{pid}/fd").iterdir()
            )
        except OSError:
            return False
    return bool(sql_value(db_url, "select count(*) " + advisory_locks("scan")))


def advisory_locks(name: str) -> str:
    """From where and which rows of pg_locks are feedsvc's lock ``name`` (leader, scan) held
    in the schema of the URL's search_path."""
    return (
        "from pg_locks where locktype = 'advisory' and granted and objsubid = 1 and"
        " ((classid::bigint << 32) | objid::bigint) ="
        f" hashtextextended('feedsvc:{name}:' || current_schema(), 0)"
    )


def processes_mentioning(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (a scan's workers carry its cwd)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(path).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_kill_9_at_random_points_of_ten_scans(tmp_path, db_url, capsys):
    rng = random.Random(20261121)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    grow_corpus(seeds, 600, rng)
    outcomes = []
    for round_ in range(10):
        mutate(seeds, rng, round_)
        proc = subprocess.Popen(
            scan_command(seeds, db_url),
            env=CLEAN_ENV,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda proc=proc: scanning(proc, db_url), timeout=30, interval=0.01)
        # Every other round at once, as soon as the scan is seen to have begun; the others
        # after a random pause, which may fall anywhere in the scan or after its end.
        if round_ % 2:
            time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        outcomes.append(proc.wait())
    # a killed scan's worker processes leave with it: nothing it started lives on
    wait_for(lambda: not processes_mentioning(tmp_path), timeout=30)
    # restart: one scan that runs to its end
    done = subprocess.run(
        scan_command(seeds, db_url), env=CLEAN_ENV, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    fresh_url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    fresh = subprocess.run(
        scan_command(seeds, fresh_url), env=CLEAN_ENV, cwd=tmp_path, capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr
    after, expected = snapshot(db_url), snapshot(fresh_url)
    assert after["ids_unique"] and after["paths_unique"]
    assert after == expected  # the store matches the seeds exactly: same ids, no duplicates
    killed = outcomes.count(-signal.SIGKILL)
    with capsys.disabled():
        print(
            f"\nkill -9 rounds: {len(outcomes)}, killed mid-scan: {killed}, finished first: {len(outcomes) - killed}; "
            f"entries after restart: {len(after['entries'])}, identical to a fresh scan: True"
        )
    assert killed >= 1  # decided by what happened, not by how fast this machine scans


def feed_validators(
    store_url: str, seeds: Path, **overrides: Any
) -> dict[tuple[str, str], tuple[str, bytes]]:
    settings = Settings(
        seeds=seeds, db=store_url, base_url="http://feeds.example.test", **overrides
    )
    store = Store(store_url)
    service = FeedService(store, settings)
    service.refresh()
    result = {}
    for summary in service.summaries():
        for fmt in Format:
            rendered = service.feed(summary.scope, fmt, 1, 20)
            result[(summary.scope.key, fmt.value)] = (rendered.etag, rendered.body)
    store.close()
    return result


def run_scan(seeds: Path, db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**CLEAN_ENV, "FEEDSVC_BASE_URL": "http://feeds.example.test"}
    return subprocess.run(
        scan_command(seeds, db_url), env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("damage", ["delete", "garbage", "trash-pages"])
def test_a_database_damaged_between_runs_is_rebuilt_with_the_same_ids_and_etags(tmp_path, damage):
    seeds = copy_dated_corpus(tmp_path / "seeds")
    db_file = tmp_path / "data" / "feedsvc.sqlite3"
    db_url = f"sqlite:///{db_file}"
    assert run_scan(seeds, db_url, tmp_path).returncode == 0
    before = feed_validators(db_url, seeds)
    ids_before = snapshot(db_url)["entries"]
    if damage == "delete":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    elif damage == "garbage":
        db_file.write_bytes(os.urandom(db_file.stat().st_size))
    else:
        with sqlite_checkpoint(db_url):
            pass
        with db_file.open("r+b") as handle:  # keep the header, trash every page after the first
            handle.seek(4096)
            handle.write(os.urandom(db_file.stat().st_size - 4096))
    result = run_scan(seeds, db_url, tmp_path)
    assert result.returncode == 0, result.stderr
    if damage == "delete":
        assert "created database" in result.stderr
    else:
        assert "rebuilding it from the seeds" in result.stderr
        assert list(db_file.parent.glob("feedsvc.sqlite3.broken-*"))
    assert snapshot(db_url)["entries"] == ids_before
    assert feed_validators(db_url, seeds) == before


class sqlite_checkpoint:
    """Fold the WAL into the main file so damage to the file is damage to the data."""

    def __init__(self, url: str) -> None:
        self.store = Store(url)

    def __enter__(self) -> None:
        with self.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def __exit__(self, *_exc: object) -> None:
        self.store.close()


def fetch_all(server: ServerProcess, paths: list[str]) -> dict[str, tuple[int, str | None, bytes]]:
    result = {}
    for path in paths:
        response = requests.get(
            server.url + path, timeout=10, headers={"Accept-Encoding": "identity"}
        )
        result[path] = (response.status_code, response.headers.get("ETag"), response.content)
    return result


def feed_paths(server: ServerProcess) -> list[str]:
    opml = etree.fromstring(requests.get(server.url + "/opml", timeout=10).content)
    return [urlsplit(str(o.get("xmlUrl"))).path for o in opml.iter("outline") if o.get("xmlUrl")]


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_database_damaged_while_running_is_rebuilt_and_serving_never_stops(
    tmp_path, damage, serve
):
    seeds = copy_dated_corpus(tmp_path / "seeds")
    db_file = tmp_path / "data" / "feedsvc.sqlite3"
    server = serve(seeds, f"sqlite:///{db_file}", FEEDSVC_WORKERS="2")
    paths = feed_paths(server)
    before = fetch_all(server, paths)
    epoch = requests.get(server.url + "/status", timeout=10).json()["generation"].split(":")[0]
    if damage == "delete":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    else:
        with db_file.open("r+b") as handle:
            handle.write(b"this is no longer a database file")
    statuses = set()

    def rebuilt() -> bool:
        for path in paths[:5]:
            statuses.add(requests.get(server.url + path, timeout=10).status_code)
        status = requests.get(server.url + "/status", timeout=10)
        return status.status_code == 200 and status.json()["generation"].split(":")[0] != epoch

    wait_for(rebuilt, timeout=30)
    assert statuses <= {200, 503}  # served throughout (or told to retry), never a 500
    wait_for(lambda: fetch_all(server, paths) == before, timeout=20)  # every worker caught up
    log = server.log.read_text()
    reason = "was deleted" if damage == "delete" else "is corrupt"
    assert f"{db_file} {reason}: rebuilding it from the seeds" in log
    assert "Traceback" not in log


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


@pytest.fixture
def confined_server(tmp_path, serve):
    """A server whose data directory is a small tmpfs in a mount namespace of its own."""
    require(can_mount_tmpfs(), "a private mount namespace with tmpfs (unshare -m)")
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    data = tmp_path / "data"
    data.mkdir()
    wrapper = [
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount -t tmpfs -o size=4m tmpfs "{data}" && exec "$@"',
        "sh",
    ]
    return serve(
        seeds, f"sqlite:///{data}/feedsvc.sqlite3", FEEDSVC_WORKERS="2", command_prefix=wrapper
    )


def add_seed(seeds: Path, name: str) -> None:
    (seeds / name).write_text(
        f"---\ntitle: {name}\ncategories: [新媒体]\ndate: 2030-01-01T00:00:00Z\n---\n<p>x</p>\n"
    )


def scan_error(server: ServerProcess) -> str | None:
    error: str | None = server_status(server)["scan_error"]
    return error


def test_a_full_data_directory_keeps_serving_and_reports(confined_server):
    server = confined_server
    paths = feed_paths(server)
    before = fetch_all(server, paths)
    data = sqlite_path(server.db)
    assert data is not None
    filler = Path(f"/proc/{server.process.pid}/root{data.parent}/filler")
    # unbuffered: a buffered file would raise again on close, for the bytes it still holds
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    add_seed(server.seeds, "during-full.md")
    error = wait_for(lambda: scan_error(server), timeout=20)
    assert "full" in error
    assert fetch_all(server, paths) == before  # what was there is still served, unchanged
    filler.unlink()
    wait_for(lambda: scan_error(server) is None, timeout=20)
    wait_for(lambda: server_status(server)["entries"] == 3)


def entry_rows(db_url: str) -> int:
    count = sql_value(db_url, "select count(*) from entries")
    assert isinstance(count, int)
    return count


def test_an_older_schema_in_a_read_only_data_directory_is_refused_not_served(tmp_path):
    """An older schema that cannot be written cannot be upgraded: every command that would
    serve or write it refuses in one line, while `db current` still reads where it stands."""
    require(can_mount_tmpfs(), "a private mount namespace (unshare -m)")
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    data = tmp_path / "data"
    db_url = f"sqlite:///{data}/feedsvc.sqlite3"
    assert run_scan(seeds, db_url, tmp_path).returncode == 0
    from_before_revisions(db_url, "4")
    held = entry_rows(db_url)
    assert held > 0
    read_only = f'mount --bind "{data}" "{data}" && mount -o remount,ro,bind "{data}" && exec "$@"'
    env = {**CLEAN_ENV, "FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": db_url}

    def confined(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["unshare", "-m", "sh", "-c", read_only, "sh", sys.executable, "-m", "feedsvc"]
        return subprocess.run(
            [*command, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    for args in (["db", "upgrade"], ["serve", "--no-upgrade"], ["scan"]):
        refused = confined(*args)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert refused.stderr.splitlines()[-1].startswith("feedsvc: error: database ")
        assert "cannot be written here" in refused.stderr
    current = confined("db", "current")
    assert current.stdout.startswith("schema version 4, before revisions"), current.stderr
    assert entry_rows(db_url) == held  # nothing was emptied


def test_a_read_only_data_directory_keeps_serving_and_reports(tmp_path, serve):
    """The data directory cannot be written when feedsvc starts (a tmpfs cannot turn read-only
    under open files, so this is the read-only case that can be made here): the database it
    holds is served as it is, and every scan reports why it cannot write."""
    require(can_mount_tmpfs(), "a private mount namespace (unshare -m)")
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    data = tmp_path / "data"
    db_url = f"sqlite:///{data}/feedsvc.sqlite3"
    assert run_scan(seeds, db_url, tmp_path).returncode == 0
    read_only = f'mount --bind "{data}" "{data}" && mount -o remount,ro,bind "{data}" && exec "$@"'
    server = serve(
        seeds,
        db_url,
        command_prefix=["unshare", "-m", "sh", "-c", read_only, "sh"],
        FEEDSVC_BASE_URL="http://feeds.example.test",
    )
    add_seed(seeds, "while-read-only.md")
    error = wait_for(lambda: scan_error(server), timeout=20)
    assert "cannot be written" in error
    served = {}
    expected = feed_validators(db_url, seeds, scan_interval=1)  # the server's settings
    for key, fmt in expected:
        scope = Scope.from_key(key)
        response = requests.get(
            server.url + feed_path(scope, Format(fmt)),
            timeout=10,
            headers={"Accept-Encoding": "identity"},
        )
        assert response.status_code == 200, (scope, response.status_code, response.text[:300])
        served[(key, fmt)] = (response.headers["ETag"], response.content)
    assert served == expected  # exactly what the database held
    assert server_status(server)["entries"] == 48
    assert "cannot be written" in server.log.read_text()


# -- the leader process: one per server, supervised; the workers only read ------------------


def touch_all(seeds: Path, round_: int) -> None:
    """Edit every grown file: a scan long enough (a pool's worth) to be caught under way."""
    for path in sorted(seeds.glob("item-*.md")):
        path.write_text(path.read_text().replace("</div>", f"<p>pass {round_}</p></div>", 1))


def move_in(seeds: Path, count: int, rng: random.Random, scratch: Path) -> None:
    """``count`` new files in one rename of their directory: one scan sees them all."""
    batch = scratch / "batch"
    batch.mkdir()
    grow_corpus(batch, count, rng)
    batch.rename(seeds / "batch")


@contextlib.contextmanager
def scan_lock_held(db_url: str):
    """Hold the scan lock as another scan would (a hand-run one): the leader's next scan
    waits for it, so what the test does meanwhile happens while that scan is under way."""
    path = sqlite_path(db_url)
    if path is not None:
        fd = os.open(f"{path}.scan.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            key = "hashtextextended('feedsvc:scan:' || current_schema(), 0)"
            conn.exec_driver_sql(f"select pg_advisory_lock({key})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"select pg_advisory_unlock({key})")
    finally:
        engine.dispose()


def logged(server: ServerProcess, text: str) -> None:
    """Until the server's log holds ``text``."""
    wait_for(lambda: text in server.log.read_text(), timeout=60)


WAITING = "another scan holds the scan lock: waiting for it to end"
# Every tick a full scan, which walks the directory once it holds the scan lock: the scan
# seen waiting is the one that finds what the test moved in (an events-mode tick between
# full scans only looks at files already missing).
FULL_SCANS = {"FEEDSVC_DELETE_GRACE": "0", "FEEDSVC_WATCH": "polling"}
STOPPING = "leader: Terminated: stopping once the scan in progress commits"


def wait_for_scan(server: ServerProcess, db_url: str) -> bool:
    """Until the server's leader holds the scan lock; False if it was not seen to (the scan
    may have ended between two looks)."""
    try:
        wait_for(lambda: holds_scan_lock(server.leader(), db_url), timeout=30, interval=0.005)
    except TimeoutError:
        return False
    return True


@pytest.mark.slow
def test_a_leader_killed_mid_scan_is_started_again_and_the_store_equals_a_fresh_scan(
    tmp_path, db_url, capsys, serve
):
    rng = random.Random(20261201)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    grow_corpus(seeds, 600, rng)
    server = serve(seeds, db_url, timeout=120, FEEDSVC_DELETE_GRACE="0")
    workers = server.workers()
    killed = 0
    for round_ in range(3):
        leader = server.leader()
        assert leader is not None
        mutate(seeds, rng, round_)
        touch_all(seeds, round_)
        killed += wait_for_scan(server, db_url)
        os.kill(leader, signal.SIGKILL)
        wait_for(lambda leader=leader: server.leader() not in (None, leader), timeout=30)
        # the workers were not touched, and kept serving
        assert server.workers() == workers
        assert requests.get(server.url + "/feeds/all.atom", timeout=10).status_code == 200
    fresh_url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    fresh = subprocess.run(
        scan_command(seeds, fresh_url), env=CLEAN_ENV, cwd=tmp_path, capture_output=True
    )
    assert fresh.returncode == 0, fresh.stderr
    expected = snapshot(fresh_url)
    # the restarted leader scans what the killed one did not commit
    wait_for(lambda: snapshot(db_url) == expected, timeout=90, interval=0.5)
    log = server.log.read_text()
    assert log.count("the leader process (pid") == 3
    assert "exited with signal SIGKILL: starting it again" in log
    assert server.stop() == 0
    with capsys.disabled():  # (how many kills fell inside a scan depends on the machine)
        print(f"\nleader kill -9 rounds: 3, caught mid-scan: {killed}; store equals a fresh scan")


def test_sigterm_during_a_scan_stops_the_server_after_the_scans_commit(tmp_path, db_url, serve):
    rng = random.Random(7)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, db_url, **FULL_SCANS)
    with scan_lock_held(db_url):  # the scan begins and waits: SIGTERM comes meanwhile
        move_in(seeds, 1500, rng, tmp_path)
        logged(server, WAITING)
        server.process.send_signal(signal.SIGTERM)
        logged(server, STOPPING)
    code = server.process.wait(timeout=120)
    server.stop()
    assert code == 0
    log = server.log.read_text()
    stopping = log.index(STOPPING)
    committed = log.index("scan: 1500 added")  # (its summary follows its commit)
    assert stopping < committed < log.index("leader: stopped")
    assert "did not stop" not in log and "starting it again" not in log
    fresh_url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    fresh = subprocess.run(
        scan_command(seeds, fresh_url), env=CLEAN_ENV, cwd=tmp_path, capture_output=True
    )
    assert fresh.returncode == 0, fresh.stderr
    assert snapshot(db_url)["entries"] == snapshot(fresh_url)["entries"]


def writing_sessions(db_url: str) -> dict[str, int]:
    """PostgreSQL sessions of feedsvc by name, and how many of each hold a transaction id
    (have written in their open transaction)."""
    rows = sql_rows(
        db_url,
        "select application_name, backend_xid is not null from pg_stat_activity "
        "where left(application_name, 7) = 'feedsvc'",
    )
    counts: dict[str, int] = {}
    for name, writing in rows:
        counts[name] = counts.get(name, 0)
        counts[f"{name} writing"] = counts.get(f"{name} writing", 0) + int(writing)
    return counts


def open_files(pid: int) -> list[str]:
    """What the process's descriptors point at (those closed while looking are skipped)."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            links.append(os.readlink(fd))
    return links


def test_serving_workers_hold_no_pool_and_never_write(tmp_path, db_url, serve):
    rng = random.Random(11)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, db_url)
    move_in(seeds, 1000, rng, tmp_path)
    logged(server, "reading 1000 seed files")
    seen: dict[str, int] = {}
    scanning = True
    while scanning:  # (at least once; then for as long as the scan runs)
        scanning = holds_scan_lock(server.leader(), db_url)
        requests.get(server.url + "/feeds/all.atom", timeout=10)  # the workers read
        for worker in server.workers():
            # no pool, no forkserver, no resource tracker, no lock file
            assert not any(
                (task / "children").read_text().split()
                for task in Path(f"/proc/{worker}/task").iterdir()
            )
            assert not [link for link in open_files(worker) if link.endswith(".lock")]
        if db_url.startswith("postgresql"):
            for name, count in writing_sessions(db_url).items():
                seen[name] = seen.get(name, 0) + count
    wait_for(lambda: server.search_pending() == 0, timeout=60)
    if db_url.startswith("postgresql"):
        assert "feedsvc reader" in seen and "feedsvc" in seen  # both were looked at
        assert seen["feedsvc reader writing"] == 0
    wait_for(lambda: server_status(server)["entries"] > 1000)
    server.stop()


def test_a_readers_store_refuses_to_write(tmp_path, db_url):
    Store(db_url).close()  # (created as the server creates it before its workers start)
    reader = Store(db_url, reader=True)
    try:
        with pytest.raises(StorageError):
            reader.set_meta("probe", "written")
        assert reader.get_meta("probe") is None
    finally:
        reader.close()


def test_ctrl_c_to_the_servers_group_mid_scan_stops_after_the_scans_commit(tmp_path, db_url, serve):
    """SIGINT reaches every process of the group (a terminal's Ctrl-C): the pool's workers and
    the leader ignore it, the server stops its workers and then the leader, once the scan in
    progress has committed; nothing is started again."""
    rng = random.Random(5)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, db_url, **FULL_SCANS)
    with scan_lock_held(db_url):  # the scan begins and waits: Ctrl-C comes meanwhile
        move_in(seeds, 1500, rng, tmp_path)
        logged(server, WAITING)
        os.killpg(server.process.pid, signal.SIGINT)
        logged(server, STOPPING)
    logged(server, "reading 1500 seed files")
    leader = server.leader()  # (the processes it started: its pool, multiprocessing's)
    for pid in server.descendants(leader) if leader else []:  # Ctrl-C again, to the pool
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    assert server.process.wait(timeout=120) == 0
    server.stop()
    log = server.log.read_text()
    stopping = log.index(STOPPING)
    assert stopping < log.index("scan: 1500 added") < log.index("leader: stopped")
    assert "starting it again" not in log and "Traceback" not in log
    assert len(snapshot(db_url)["entries"]) > 1500


def test_a_missing_database_and_a_restarted_worker_do_not_stop_the_server(tmp_path, serve):
    """A worker started while the SQLite file is gone (granian restarts a worker that died)
    waits for the leader to recreate it, answering 503, instead of failing to start, which
    would make granian give the whole server up as a crash loop."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    db = tmp_path / "db.sqlite3"
    server = serve(seeds, f"sqlite:///{db}", FEEDSVC_SCAN_INTERVAL="10")
    workers = server.workers()
    db.unlink()
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not set(server.workers()) & set(workers) and len(server.workers()) == 2)
    assert server.process.poll() is None

    def served_by_all() -> bool:  # (the leader rebuilds the file at its next tick)
        feeds = [requests.get(server.url + "/feeds/all.atom", timeout=10) for _ in range(8)]
        return {feed.status_code for feed in feeds} == {200}

    wait_for(served_by_all, timeout=60)
    assert db.exists()
    assert server.stop() == 0
    assert "crash loop" not in server.log.read_text()


def test_a_server_killed_with_kill_9_leaves_no_process_behind(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3")
    tree = [pid for pid, _name in server.children()]
    assert len(tree) == 3  # two workers and the leader
    server.kill()

    def gone() -> bool:
        return not [pid for pid in tree if Path(f"/proc/{pid}").exists() and not zombie(pid)]

    wait_for(gone, timeout=30)


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_leader_stopped_alone_is_not_started_again_and_status_says_so(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3")
    leader = server.leader()
    assert leader is not None
    os.kill(leader, signal.SIGTERM)
    wait_for(lambda: not server_status(server)["leader"])
    answers = [server_status(server) for _ in range(8)]  # every worker alike
    assert {a["leader"] for a in answers} == {False}
    assert {a["scan_error"] for a in answers} == {"the leader process was stopped (SIGTERM)"}
    assert server.leader() is None


def test_a_lost_postgresql_leader_session_leaves_one_leader(tmp_path, pg_url, serve):
    """The leader lock is a session's: when the leading replica's session ends under it, that
    replica stops leading at its next tick, and exactly one replica leads."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    a = serve(seeds, pg_url)
    b = serve(seeds, pg_url)
    ended = sql_rows(pg_url, "select pg_terminate_backend(pid) " + advisory_locks("leader"))
    assert len(ended) == 1
    wait_for(lambda: "the leader lock was lost" in a.log.read_text(), timeout=30)

    def leaders() -> list[bool]:
        return [server_status(server)["leader"] for server in (a, b)]

    wait_for(lambda: sum(leaders()) == 1, timeout=30)
    leading = (a, b)[leaders().index(True)]
    ticks: set[str] = set()

    def ticked() -> bool:  # every tick writes last_scan: three ticks seen
        ticks.add(server_status(leading)["last_scan"]["finished"])
        return len(ticks) >= 3

    wait_for(ticked, timeout=30)
    assert all(sum(leaders()) == 1 for _ in range(10))
    b.stop()
    a.stop()
