"""Running feedsvc the way operators do, tested without a container engine: the image's
command line (environment-only configuration, an unprivileged user, read-only seeds, only the
data directory writable), the Dockerfile and compose file checked for what they promise (and
linted by hadolint), nginx with the repository's config in front of two real replicas, JSON
logs, upgrades and a database that goes away and comes back."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
import yaml
from dockerfile_parse import DockerfileParser

from feedsvc import supervise
from feedsvc.server import WORKERS_KILL_SECONDS
from feedsvc.store.parts import entry_of
from tests.helpers import (
    REAL_CORPUS,
    ROOT,
    SAMPLE_SEEDS,
    copy_corpus,
    from_before_revisions,
    run_sql,
    set_revision,
    sql_rows,
)
from tests.server import ServerProcess, TcpProxy, free_port, server_status, wait_for

NOBODY = 65534
PATHS = [
    "/",
    "/feeds/all.atom",
    "/feeds/all.rss",
    "/feeds/all.json?limit=5&page=2",
    "/feeds/categories/%E6%96%B0%E5%AA%92%E4%BD%93.atom",
    "/feeds/categories/%E6%96%B0%E5%AA%92%E4%BD%93.rss?filter=%E5%B0%8F%E7%B1%B3",
    "/feeds/search.json?q=%E9%87%8F%E4%BA%A7",
    "/categories/%E6%96%B0%E5%AA%92%E4%BD%93",
    "/opml",
    "/feeds/nope.atom",
    "/feeds/all.atom?limit=abc",
    "/static/site.css",
]


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedsvc", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- logs ---------------------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_fields(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    env = {
        "FEEDSVC_SEEDS": str(seeds),
        "FEEDSVC_DB": f"sqlite:///{tmp_path}/db.sqlite3",
        "FEEDSVC_LOG_FORMAT": "json",
    }
    result = run("scan", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    scan = next(line for line in lines if line["message"].startswith("scan:"))
    assert scan["added"] == 46 and scan["full"] is True and scan["duration_ms"] > 0
    broken = [line for line in lines if line.get("path") and line["level"] == "WARNING"]
    assert broken and all(line["reason"] for line in broken)

    server = serve(seeds, env["FEEDSVC_DB"], FEEDSVC_LOG_FORMAT="json", FEEDSVC_WORKERS="1")
    assert requests.get(server.url + "/feeds/all.atom?limit=3", timeout=10).status_code == 200
    assert server.stop() == 0
    served = [json.loads(line) for line in server.log.read_text().splitlines()]
    access = [line for line in served if line["logger"] == "granian.access"]
    feed = next(line for line in access if line["path"] == "/feeds/all.atom")
    assert feed["status"] == 200 and feed["method"] == "GET" and feed["query_string"] == "limit=3"


def test_sigusr1_makes_every_process_write_its_stacks_and_go_on(tmp_path, serve):
    """How an operator (and the test harness, for a server that will not stop) asks a
    stuck process where it is; nothing is interrupted."""
    server = serve(copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS), f"sqlite:///{tmp_path}/db")
    leader, workers = server.leader(), server.workers()
    assert leader is not None and len(workers) == 2
    # A process's main thread comes last, and every one began in `python -m feedsvc`: one at
    # a time, so that no two processes' lines are mixed.
    ends = lambda: server.log.read_text().count(" in _run_module_as_main\n")  # noqa: E731
    for pid in (server.process.pid, leader, *workers):
        before = ends()
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda before=before: ends() > before)
    log = server.log.read_text()
    assert log.count("(most recent call first):") > 4  # (several threads in each)
    assert re.search(r'File ".*feedsvc/server\.py", line \d+ in serve', log)
    assert re.search(r'File ".*feedsvc/leader\.py", line \d+ in _wait', log)  # the leader
    assert re.search(r'File ".*feedsvc/follower\.py", line \d+ in _run', log)  # a worker
    assert requests.get(server.url + "/feeds/all.atom", timeout=10).status_code == 200
    assert server.leader() == leader and server.workers() == workers
    # many, while the leader scans (faulthandler's C handler, reading frames as threads ran
    # them, crashed it within a few)
    (server.seeds / "more").mkdir()
    for n in range(400):
        text = f"---\ntitle: more {n}\ncategories: [c{n}]\n---\n<p>{'words ' * 500}</p>\n"
        (server.seeds / "more" / f"{n}.md").write_text(text)

    def signalled_until_scanned() -> bool:
        os.kill(leader, signal.SIGUSR1)
        return bool(server_status(server)["entries"] == 402 and server.search_pending() == 0)

    wait_for(signalled_until_scanned, timeout=120, interval=0.05)
    assert server.leader() == leader and "exited with" not in server.log.read_text()
    assert server.stop() == 0


# -- the image ------------------------------------------------------------------------------


def test_the_images_command_runs_unprivileged_with_read_only_seeds(serve):
    # pytest's own temporary directories are private to root: this one the user can reach
    tmp_path = Path(tempfile.mkdtemp(prefix="feedsvc-image-"))
    tmp_path.chmod(0o755)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)
    for path in [seeds, *seeds.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(data)}
    server = serve(
        seeds,
        f"sqlite:///{data}/feedsvc.sqlite3",
        workdir=tmp_path,
        command_prefix=["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"],
        FEEDSVC_HOST="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(data / "metrics"),
        TMPDIR=str(data / "tmp"),
        HOME=str(data),
        PYTHONDONTWRITEBYTECODE="1",
    )
    uid = re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{server.process.pid}/status").read_text(), re.M)
    assert uid and int(uid.group(1)) == NOBODY
    feed = requests.get(server.url + "/feeds/all.atom", timeout=10)
    assert feed.status_code == 200 and b"<entry>" in feed.content
    assert server.stop() == 0
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(data)}
    assert after - before == {server.log}  # the test's own log: nothing else outside data/
    assert (data / "feedsvc.sqlite3").exists()
    for path in [seeds, *seeds.rglob("*")]:
        path.chmod(0o755)
    shutil.rmtree(tmp_path)


def test_the_dockerfile_keeps_its_promises():
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = parser.structure
    froms = [i for i in instructions if i["instruction"] == "FROM"]
    assert len(froms) == 2  # build stage, final stage
    assert "ARG BASE_IMAGE=python:3.11-slim" in parser.content
    final = instructions[instructions.index(froms[-1]) :]
    kinds = [i["instruction"] for i in final]
    assert "RUN" not in kinds[kinds.index("USER") :]  # nothing runs as root after USER
    user = next(i["value"] for i in final if i["instruction"] == "USER")
    assert not user.startswith(("0", "root"))
    assert any("/healthz" in i["value"] for i in final if i["instruction"] == "HEALTHCHECK")
    assert next(i["value"] for i in final if i["instruction"] == "STOPSIGNAL") == "SIGTERM"
    labels = parser.labels
    for name in ("title", "description", "version", "source", "licenses"):
        assert f"org.opencontainers.image.{name}" in labels
    volume = next(i["value"] for i in final if i["instruction"] == "VOLUME")
    assert "/data" in volume and "/seeds" in volume
    copies = [i["value"] for i in instructions if i["instruction"] == "COPY"]
    assert not any("seeds" in value or "config" in value for value in copies)
    assert not any(i["instruction"] == "RUN" and "pip install" in i["value"] for i in final)
    assert "*" in (ROOT / ".dockerignore").read_text().splitlines()
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("hadolint")), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_compose_file_runs_two_replicas_on_postgres_behind_nginx():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    postgres = services["postgres"]
    assert "healthcheck" in postgres
    assert any(v.split(":")[0] in compose["volumes"] for v in postgres["volumes"])
    replicas = [s for name, s in services.items() if name.startswith("feedsvc")]
    assert len(replicas) == 2
    databases = {s["environment"]["FEEDSVC_DB"] for s in replicas}
    assert len(databases) == 1 and databases.pop().startswith("postgresql+psycopg://")
    for replica in replicas:
        assert "./seeds:/seeds:ro" in replica["volumes"]
        assert replica["read_only"] is True
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        grace = int(replica["stop_grace_period"].removesuffix("s"))
        assert grace >= WORKERS_KILL_SECONDS + supervise.STOP_SECONDS
    nginx = services["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    upstream = (ROOT / "deploy" / "nginx.conf").read_text()
    for name in services:
        if name.startswith("feedsvc"):
            assert f"server {name}:8080" in upstream


# -- nginx in front of two replicas ---------------------------------------------------------


def test_nginx_in_front_of_two_replicas_answers_like_one_process(tmp_path, capsys, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    replicas = [
        serve(seeds, db, wait=False, FEEDSVC_BASE_URL=base, FEEDSVC_WORKERS="1") for _ in range(2)
    ]
    serve.nginx([r.port for r in replicas], port=port)
    for replica in replicas:
        replica.wait_ready()
    wait_for(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200)
    asked = errors = identical = 0
    for path in PATHS:
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            direct = requests.get(replicas[0].url + path, headers=headers, timeout=10)
            etag = direct.headers.get("ETag")
            for _round in range(3):  # round robin: both replicas answer
                through = requests.get(base + path, headers=headers, timeout=10)
                asked += 1
                errors += through.status_code >= 500
                same = (
                    through.status_code == direct.status_code
                    and through.content == direct.content
                    and through.headers.get("ETag") == etag
                    and through.headers.get("Content-Type") == direct.headers.get("Content-Type")
                )
                identical += same
                assert same, (path, headers)
            if etag:
                revalidated = requests.get(base + path, headers={**headers, "If-None-Match": etag})
                asked += 1
                identical += revalidated.status_code == 304
                assert revalidated.status_code == 304, path
    with capsys.disabled():
        print(
            f"\nnginx in front of two replicas: {asked} requests, {errors} errors, {identical} identical to one process"
        )
    assert errors == 0 and identical == asked


# -- upgrades -------------------------------------------------------------------------------


def test_an_older_database_is_rebuilt_without_a_404_or_an_empty_feed(tmp_path, db_url, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    db = db_url
    env = {"FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": db}
    assert run("scan", env=env, cwd=tmp_path).returncode == 0
    from_before_revisions(db, "4")
    server = serve(seeds, db, wait=False)
    seen: list[int] = []

    def served() -> bool:
        try:
            response = requests.get(server.url + "/feeds/all.json", timeout=5)
        except requests.ConnectionError:
            return False
        seen.append(response.status_code)
        if response.status_code == 200:
            assert response.json()["items"], "an empty feed was served"
            return True
        return False

    wait_for(served, timeout=60, interval=0.05)
    assert server.stop() == 0
    assert set(seen) <= {200, 503} and seen[-1] == 200
    assert "rebuilding it from the seeds" in server.log.read_text()


def test_an_older_feedsvc_refuses_a_newer_database_and_a_running_one_steps_down(
    tmp_path, db_url, serve
):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    db = db_url
    server = serve(seeds, db, FEEDSVC_WORKERS="1")
    before = requests.get(server.url + "/feeds/all.atom", timeout=10).content
    set_revision(db, "0999")  # a newer feedsvc has taken the database over
    (seeds / "new.md").write_text("---\ntitle: after the takeover\n---\nx\n")

    def stepped_down() -> bool:
        return "newer" in (server_status(server)["scan_error"] or "")

    wait_for(stepped_down, timeout=30)
    assert requests.get(server.url + "/feeds/all.atom", timeout=10).content == before
    assert server.stop() == 0
    refused = run("scan", env={"FEEDSVC_SEEDS": str(seeds), "FEEDSVC_DB": db}, cwd=tmp_path)
    assert refused.returncode == 1 and "newer than this feedsvc" in refused.stderr
    titles = [entry_of(row.data).title for row in sql_rows(db, "select data from entries")]
    assert not any("after the takeover" in title for title in titles)  # nothing was written


# -- a database that goes away --------------------------------------------------------------


def test_readyz_follows_the_database_and_feeds_keep_being_served(tmp_path, pg_url, serve):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    try:
        server = serve(seeds, through, FEEDSVC_WORKERS="1")
        feed = requests.get(server.url + "/feeds/all.atom", timeout=10)
        assert feed.status_code == 200
        proxy.stop()
        wait_for(lambda: requests.get(server.url + "/readyz", timeout=15).status_code == 503)
        still = requests.get(server.url + "/feeds/all.atom", timeout=15)
        assert still.status_code == 200 and still.content == feed.content
        proxy.start()
        wait_for(lambda: requests.get(server.url + "/readyz", timeout=15).status_code == 200)
    finally:
        proxy.stop()  # (before the server stops, which its fixture does, asserting exit 0)


def test_a_schema_dropped_under_the_replicas_is_an_outage_then_rebuilt(tmp_path, pg_url, serve):
    """Dropped: every process says so (readyz 503, /status why, 503s for what is not in
    memory, no traceback) and keeps the leader lock. Created again: the leader makes its
    tables and scans, and the feeds come back as they were."""
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    server = serve(seeds, pg_url, FEEDSVC_WORKERS="1")
    feed = requests.get(server.url + "/feeds/all.atom", timeout=10)
    assert feed.status_code == 200

    def identities(server: ServerProcess) -> list[tuple[str, str]]:
        items = requests.get(server.url + "/feeds/all.json?limit=100", timeout=10).json()
        return sorted((item["id"], item["title"]) for item in items["items"])

    before = identities(server)
    run_sql(pg_url, f"drop schema {schema} cascade")
    wait_for(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 503)
    status = server_status(server)
    assert status["database"]["reachable"] is False
    assert "the one its search_path names does not exist" in status["database"]["error"]
    still = requests.get(server.url + "/feeds/all.atom", timeout=10)
    assert still.status_code == 200 and still.content == feed.content  # (from memory)
    uncached = requests.get(server.url + "/feeds/all.rss?limit=3", timeout=10)
    assert uncached.status_code == 503 and "Retry-After" in uncached.headers
    # made again with someone else's table: refused, and still an outage
    run_sql(pg_url.split("?")[0], f"create schema {schema}", f"create table {schema}.meta (x int)")
    wait_for(lambda: "not feedsvc's (meta)" in server.log.read_text())
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 503
    assert requests.get(server.url + "/status", timeout=10).status_code == 200
    run_sql(pg_url.split("?")[0], f"drop table {schema}.meta")
    wait_for(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 200)
    wait_for(lambda: server_status(server)["leader"] and server.search_pending() == 0)
    # the same entries, by id (an undated one's first-seen time went with the schema)
    assert identities(server) == before
    assert requests.get(server.url + "/feeds/all.rss?limit=3", timeout=10).status_code == 200
    assert server.stop() == 0
    log = server.log.read_text()
    assert "Traceback" not in log and log.count("rebuilding it from the seeds") == 1
    assert log.count("not feedsvc's (meta)") == 1  # (said once, not at every tick)
