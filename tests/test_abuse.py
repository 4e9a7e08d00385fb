"""Nobody takes the service down with requests: hostile request targets, queries and headers
against real servers on SQLite and PostgreSQL, nginx with the shipped config in front of two
replicas receiving them, memory under a loop of distinct requests (read from /proc of the
worker), and the start-up and status rules an operator relies on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from feedsvc.model import Format, Scope, ScopeKind
from feedsvc.scan import Scanner
from feedsvc.service import MAX_TOMBSTONES, FeedService
from feedsvc.store import StorageError, Store
from feedsvc.store.schema import SEARCH_TABLE
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus, run_sql
from tests.server import ServerProcess, TcpProxy, free_port, run, server_status, wait_for

MAX_TARGET = 4096  # the limit on a request target (docs/operations.md)
MAX_HEADERS = 16384  # on a request's header bytes (docs/operations.md)
MIB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_db_url, serve_module):
    seeds = copy_corpus(tmp_path_factory.mktemp("abuse") / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    yield serve_module(seeds, module_db_url)
    serve_module.stop_all()  # (before the next database's server starts)


def raw_get(port: int, target: bytes, headers: bytes = b"") -> bytes:
    """One request exactly as written (requests would re-encode the target)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers)
        sock.sendall(b"Connection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(url: str) -> int | None:
    """The status a URL answers with, None while nothing listens."""
    try:
        return requests.get(url, timeout=10).status_code
    except requests.ConnectionError:
        return None


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def server_errors(server: ServerProcess) -> float:
    """Requests answered 500 so far, from /metrics."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("feedsvc_http_requests_total") and 'status="500"' in line
    )


# -- bad input is a 4xx, never a 5xx -------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/feeds/all.atom?q=ab%00cd",
        "/feeds/search.json?q=%00",
        "/feeds/all.atom?filter=a%00b",
        "/feeds/all.rss?filterout_title=%00",
        "/categories/%E6%96%B0%E5%AA%92%E4%BD%93?q=x%00",
    ],
)
def test_a_nul_in_a_query_is_a_400_not_an_outage(server, target):
    response = requests.get(server.url + target, timeout=10)
    assert response.status_code == 400, response.text
    assert "NUL" in response.text and response.text.count("\n") == 1
    assert "Retry-After" not in response.headers
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200


def test_a_pattern_too_costly_to_run_is_a_400(server):
    """RE2 is linear in the text, but '.{1000}x' costs 50 microseconds a character."""
    response = requests.get(server.url + "/feeds/all.atom?filter=(?s).{1000}x", timeout=10)
    assert response.status_code == 400
    assert "too complex" in response.text and "at most 1000" in response.text


@pytest.mark.parametrize("entry_id", ["ab%00cd", "%00" * 36, "x" * 36, "../../etc/passwd"])
def test_an_entry_id_that_is_no_id_is_a_404(server, entry_id):
    response = requests.get(f"{server.url}/entries/{entry_id}", timeout=10)
    assert response.status_code == 404, response.text


def test_raw_utf8_in_a_query_is_read_as_its_percent_encoding(server):
    before = server_errors(server)
    raw = raw_get(server.port, "/feeds/all.atom?q=量产".encode())
    encoded = requests.get(server.url + "/feeds/all.atom?q=%E9%87%8F%E4%BA%A7", timeout=10)
    assert status_of(raw) == 200 == encoded.status_code
    assert raw.split(b"\r\n\r\n", 1)[1] == encoded.content
    page = raw_get(server.port, "/?q=量产".encode())
    assert status_of(page) == 200
    assert server_errors(server) == before


@pytest.mark.parametrize(
    "target",
    [
        "/feeds/authors/" + "a" * MAX_TARGET + ".atom",
        "/feeds/all.atom?filter=" + "a" * MAX_TARGET,
        "/" + "x" * MAX_TARGET,
    ],
)
def test_a_request_target_over_the_limit_is_a_414(server, target):
    response = requests.get(server.url + target, timeout=10)
    assert response.status_code == 414, response.status_code
    assert response.text == f"the request target is over {MAX_TARGET} bytes\n"


@pytest.mark.parametrize(
    "headers",
    [
        [("Accept-Encoding", "gzip, " * 2800)],
        [("If-None-Match", '"x", ' * 3300)],
        [("X-Anything", "x" * 17000)],
        [("Accept-Encoding", "x" * 8000)] * 3,  # repeated fields count together
    ],
    ids=["accept-encoding", "if-none-match", "any", "repeated"],
)
def test_request_headers_over_the_limit_are_a_431(server, headers):
    lines = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)
    answer = raw_get(server.port, b"/feeds/all.atom", lines)
    assert status_of(answer) == 431, answer[:200]
    assert answer.endswith(f"the request headers are over {MAX_HEADERS} bytes\n".encode())
    under = {"X-Anything": "x" * (MAX_HEADERS - 1000)}
    assert requests.get(server.url + "/feeds/all.atom", headers=under, timeout=10).ok


def test_a_name_too_long_to_be_a_name_is_a_404(server):
    response = requests.get(server.url + "/feeds/tags/" + "a" * 201 + ".atom", timeout=10)
    assert response.status_code == 404


def test_the_host_header_is_never_written_into_a_redirect(server):
    answer = raw_get(server.port, b"//feeds/all.atom", b"X-Forwarded-Host: evil.example\r\n")
    answer += raw_get(server.port, b"//evil.example/%2e%2e")
    assert b"evil.example" not in answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"GET //feeds/all.atom HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        reply = sock.recv(65536)
    assert status_of(reply) == 404
    assert b"location" not in reply.lower() and b"evil.example" not in reply


def test_a_method_not_allowed_says_which_are(server):
    for path in ("/feeds/all.atom", "/status", "/"):
        response = requests.post(server.url + path, timeout=10)
        assert response.status_code == 405
        assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}


# -- memory has a budget -------------------------------------------------------------------


def resident(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def distinct_requests(kind: str, count: int) -> Iterator[str]:
    """``count`` distinct requests of one kind, each as costly as the limits allow."""
    for i in range(count):
        if kind == "paths":  # feeds that do not exist, as long as a target may be
            yield f"/feeds/authors/{i}-" + "%E9%87%8F" * 440 + ".atom"
        elif kind == "patterns":  # a pattern near its length limit, compiled and matched
            alternatives = "|".join(f"{i}量产{j}[a-z]+x" for j in range(60))
            yield "/feeds/all.atom?filter=" + quote(alternatives)
        elif kind == "searches":
            yield f"/feeds/search.json?q=%E7%9A%84&brief={100 + i}"
        elif kind == "conversions":
            yield f"/feeds/all.rss?opencc=s2t&brief={100 + i}&filter=.{{0,{i % 100}}}"


@pytest.mark.slow
def test_resident_memory_stays_within_its_budget_under_distinct_requests(tmp_path, serve):
    """cache_bytes plus the fixed overhead docs/operations.md states, whatever is asked for: the worker's
    resident memory after a loop of distinct costly requests of every kind grows by less
    than the document cache's budget and a bounded margin."""
    cache_bytes = 4 * MIB
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(
        seeds,
        f"sqlite:///{tmp_path}/db.sqlite3",
        FEEDSVC_WORKERS="1",
        FEEDSVC_CACHE_BYTES=str(cache_bytes),
        FEEDSVC_LOG_LEVEL="WARNING",
    )
    (worker,) = server.workers()
    session = requests.Session()
    kinds = ("paths", "patterns", "searches", "conversions")
    for kind in kinds:  # warm up: every code path has run once
        for target in distinct_requests(kind, 20):
            session.get(server.url + target, timeout=30)
    before = resident(worker)
    for kind in kinds:
        counts: dict[int, int] = {}
        for target in distinct_requests(kind, 600 if kind == "paths" else 300):
            status = session.get(server.url + target, timeout=30).status_code
            counts[status] = counts.get(status, 0) + 1
        assert set(counts) <= {200, 404}, (kind, counts)
    grown = resident(worker) - before
    metrics = session.get(server.url + "/metrics", timeout=10).text
    gauges = dict(
        line.split(" ", 1) for line in metrics.splitlines() if line.startswith("feedsvc_")
    )
    assert float(gauges["feedsvc_cache_bytes"]) <= cache_bytes
    assert float(gauges["feedsvc_process_resident_bytes"]) > 0
    assert grown < cache_bytes + 24 * MIB, f"grew {grown / MIB:.1f} MiB"


# -- tombstones are bounded ----------------------------------------------------------------


def test_an_atom_page_tells_of_at_most_the_newest_deletions(tmp_path, make_settings):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    count = MAX_TOMBSTONES + 30
    for i in range(count):
        (seeds / f"{i:04d}.md").write_text(
            f"---\ntitle: t{i}\ncategories: [c]\ndate: 2030-01-01T00:00:00Z\n---\nx\n"
        )
    (seeds / "kept.md").write_text("---\ntitle: kept\ncategories: [c]\n---\nx\n")
    settings = make_settings(seeds)
    store = Store(settings.db)
    try:
        Scanner(store, settings).scan()
        for i in range(count):
            (seeds / f"{i:04d}.md").unlink()
        Scanner(store, settings).scan(prune_now=True)
        service = FeedService(store, settings)
        service.refresh()
        body = service.feed(Scope(ScopeKind.CATEGORY, ("c",)), Format.ATOM, 1, 1).body
        assert body.count(b"<at:deleted-entry") == MAX_TOMBSTONES
    finally:
        store.close()


# -- start-up, ports, status ---------------------------------------------------------------


def test_a_second_server_on_a_busy_port_exits_with_one_line(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    first = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3")
    second = subprocess.run(
        [sys.executable, "-m", "feedsvc", "serve"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FEEDSVC_SEEDS": str(seeds),
            "FEEDSVC_DB": f"sqlite:///{tmp_path}/other.sqlite3",
            "FEEDSVC_PORT": str(first.port),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"feedsvc: error: cannot listen on 127.0.0.1:{first.port}: address already in use"
    ]
    assert requests.get(first.url + "/readyz", timeout=10).status_code == 200


def test_status_answers_before_any_scan_and_says_why_the_same_from_every_worker(tmp_path, serve):
    seeds = tmp_path / "not-there"
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", wait=False)
    wait_for(lambda: answers(server.url + "/healthz") == 200)
    wait_for(lambda: requests.get(server.url + "/status", timeout=5).json()["scan_error"])
    replies = [requests.get(server.url + "/status", timeout=5) for _ in range(12)]
    assert {r.status_code for r in replies} == {200}
    errors = {r.json()["scan_error"] for r in replies}
    assert len(errors) == 1, errors  # every worker says the same
    (error,) = errors
    assert error == "the seeds directory does not exist or is not a directory"
    assert all(str(tmp_path) not in r.text for r in replies)  # no absolute paths
    assert all(not r.json()["ready"] for r in replies)
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 503


def test_an_unreachable_database_at_start_is_retried_while_readyz_says_503(tmp_path, pg_url, serve):
    url = make_url(pg_url)
    port = free_port()
    through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(seeds, through, wait=False)
    wait_for(lambda: answers(server.url + "/healthz") == 200)
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 503
    status = requests.get(server.url + "/status", timeout=10)
    assert status.status_code == 200 and status.json()["database"]["reachable"] is False
    feed = requests.get(server.url + "/feeds/all.atom", timeout=10)
    assert feed.status_code == 503 and "Retry-After" in feed.headers
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432), port=port)
    try:
        server.wait_ready(timeout=90)
        assert requests.get(server.url + "/feeds/all.atom", timeout=10).status_code == 200
        assert server.stop() == 0
    finally:
        proxy.stop()
    log = server.log.read_text()
    assert "Traceback" not in log
    assert "cannot reach the database at" in log


def test_serve_leaves_nothing_in_its_temporary_directory(tmp_path, serve):
    """Nor does a server killed with -9, once the next server starts on that host: it
    removes the directories of servers that are gone, never one a running server uses."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)

    def started() -> ServerProcess:
        server: ServerProcess = serve(
            seeds, f"sqlite:///{tmp_path}/db.sqlite3", TMPDIR=str(scratch)
        )
        return server

    server = started()
    assert server.stop() == 0
    assert list(scratch.iterdir()) == []
    killed = started()
    tree = [pid for pid, _name in killed.children()]
    killed.kill()
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in tree), timeout=30)
    (left,) = scratch.iterdir()
    running = started()
    assert not left.exists()  # (the killed server's: nothing of it runs any more)
    (kept,) = scratch.iterdir()
    again = started()
    assert kept.exists()  # (a running server's)
    assert again.stop() == 0 and running.stop() == 0
    assert list(scratch.iterdir()) == []


# -- nginx in front: bad requests eject no replica -----------------------------------------


def test_bad_requests_through_nginx_never_cost_a_reader_an_answer(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    replicas = [
        serve(seeds, db, wait=False, FEEDSVC_WORKERS="1", FEEDSVC_LOG_LEVEL="WARNING")
        for _ in range(2)
    ]
    base = serve.nginx([r.port for r in replicas]).url
    bad = [
        "/feeds/all.atom?q=ab%00cd",
        "/entries/ab%00cd",
        "/feeds/all.atom?filter=(",
        "/feeds/all.atom?limit=0x10",
        "/feeds/authors/" + "a" * MAX_TARGET + ".atom",
        "//feeds/all.atom",
    ]
    reader_statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                reader_statuses.append(
                    session.get(base + "/feeds/all.atom", timeout=10).status_code
                )

    for replica in replicas:
        replica.wait_ready()
    wait_for(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        attacker_statuses = {
            requests.get(base + target, timeout=10).status_code
            for _round in range(30)
            for target in bad
        }
    finally:
        stop.set()
        reader.join(30)
    assert attacker_statuses <= {400, 404, 414}, attacker_statuses
    assert reader_statuses and set(reader_statuses) == {200}


# -- only unavailability is a StorageError (and a 503) -------------------------------------


def test_only_an_unavailable_database_is_a_storage_error(db_url):
    store = Store(db_url)
    try:
        with pytest.raises(SQLAlchemyError) as caught, store.engine.connect() as conn:
            conn.execute(text("selec 1 frm nowhere"))  # a statement no database runs
        assert not isinstance(caught.value, StorageError)
        if store.dialect == "sqlite":  # FTS5 reports its syntax errors as OperationalError
            with pytest.raises(SQLAlchemyError) as caught, store.engine.connect() as conn:
                conn.execute(
                    text(f"select rowid from {SEARCH_TABLE} where {SEARCH_TABLE} match :q"),
                    {"q": '"ab'},
                )
        else:  # PostgreSQL refuses NUL in text
            with pytest.raises(SQLAlchemyError) as caught, store.engine.connect() as conn:
                conn.execute(text("select :v::text"), {"v": "a\x00b"})
        assert not isinstance(caught.value, StorageError)
    finally:
        store.close()
    unreachable = "postgresql+psycopg://feedsvc@127.0.0.1:1/feedsvc"
    with pytest.raises(StorageError):
        Store(unreachable)
    waiting = Store(unreachable, wait=True)  # serve's way: not reached yet, tried again later
    with pytest.raises(StorageError, match="cannot be reached yet"):
        waiting.get_meta("epoch")


def test_a_programming_error_is_a_counted_500_with_a_traceback(tmp_path, pg_url, serve):
    """A table missing from PostgreSQL is a statement that cannot run, not an outage. (On
    SQLite the same words mean a file deleted or replaced under the process: a 503.)"""
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(seeds, pg_url, FEEDSVC_WORKERS="1")
    entry = requests.get(server.url + "/feeds/all.json", timeout=10).json()["items"][0]
    entry_id = entry["id"].removeprefix("urn:uuid:")
    run_sql(pg_url, "drop table entries cascade")  # damage no health check looks for
    before = server_errors(server)
    response = requests.get(f"{server.url}/entries/{entry_id}", timeout=10)
    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert server_errors(server) == before + 1
    assert server.stop() == 0
    log = server.log.read_text()
    assert "Traceback" in log and 'relation "entries" does not exist' in log


def test_a_date_no_clock_can_hold_is_no_date_at_all(server):
    for since in ("Sat, 01 Jan 2147483648 00:00:00 GMT", "Mon, 01 Jan 2000 99999999999:00:00 GMT"):
        response = requests.get(
            server.url + "/feeds/all.atom", headers={"If-Modified-Since": since}, timeout=10
        )
        assert response.status_code in (200, 304), response.text


def test_a_target_that_is_no_path_is_a_400_and_reflects_nothing(server):
    for target in (b"x:y", b"evil.example", b"mailto:x@y"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: evil-host.example\r\n\r\n")
            reply = sock.recv(65536)
        assert status_of(reply) == 400, reply[:200]
        assert b"evil-host" not in reply and b"location" not in reply.lower()


def test_a_time_window_longer_than_time_keeps_working_links(server):
    body = requests.get(server.url + "/feeds/all.atom?filter_time=9999999999&limit=1", timeout=10)
    assert body.status_code == 200 and "filter_since=-" not in body.text
    assert "filter_time=9999999999" in body.text  # links carry the window as asked


def test_a_rewritten_seed_is_never_answered_as_an_outage(tmp_path, serve):
    """The producer rewrites files all the time: a request that meets a scan committed since
    its process last looked catches up, and never answers 503 for a healthy database."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", FEEDSVC_LOG_LEVEL="WARNING")
    statuses: dict[int, int] = {}
    stop = threading.Event()

    def read(path: str) -> None:
        with requests.Session() as session:
            for i in range(100_000):
                if stop.is_set():
                    return
                status = session.get(f"{server.url}{path}?brief={100 + i % 50}", timeout=10)
                statuses[status.status_code] = statuses.get(status.status_code, 0) + 1

    paths = ["/feeds/categories/%E6%96%B0%E5%AA%92%E4%BD%93.atom", "/feeds/all.json", "/"]
    readers = [threading.Thread(target=read, args=(path,)) for path in paths * 2]
    for reader in readers:
        reader.start()
    try:
        for i in range(200):  # rewritten as the producer does: a new file moved in place
            fresh = seeds / f".churn-{i}.tmp"
            fresh.write_text(
                f"---\ntitle: churn {i % 5}\ncategories: [新媒体]\n"
                f"date: 2030-01-0{1 + i % 5}T00:00:00Z\n---\n<p>{i}</p>\n"
            )
            os.replace(fresh, seeds / f"churn-{i % 5}.md")
            stop.wait(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join(30)
    assert statuses.get(200, 0) > 0 and set(statuses) == {200}, statuses


def test_a_database_url_naming_someone_elses_file_never_replaces_it(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = run("scan", "--seeds", str(SAMPLE_SEEDS), "--db", f"sqlite:///{notes}", cwd=tmp_path)
    assert result.returncode == 1 and "not replacing it" in result.stderr
    assert notes.read_text() == "my notes\n" and sorted(tmp_path.iterdir()) == [notes]


def test_a_password_in_the_query_of_a_database_url_is_masked(tmp_path):
    url = "postgresql+psycopg://127.0.0.1:1/test?password=qpw-9d1e7&user=bob"
    result = run("scan", "--seeds", str(SAMPLE_SEEDS), "--db", url, cwd=tmp_path)
    assert result.returncode == 1 and "qpw-9d1e7" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_worker_says_the_same_of_how_changes_are_noticed(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3")
    wait_for(lambda: server_status(server)["watch"] == "events")
    modes = {server_status(server)["watch"] for _ in range(12)}
    assert modes == {"events"}, modes
