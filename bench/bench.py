"""`make bench`: feedsvc against its anchors, on generated corpora, in one table.

    python -m bench.bench            # from the repository; BENCH_SIZES=1000,10000,100000 BENCH_RUNS=3

Generates the corpora (bench/gen_corpus.py, deterministic) under BENCH_DIR, installs the peers
where it can (as root: `apt-get install nginx wrk hugo`; otherwise it says what it skipped),
measures each row BENCH_RUNS times and prints the median, min-max, and the ratio to the anchor
measured in the same run. Only public tools: wrk for HTTP load, the kernel's own accounting
(wait4, /proc) for time and memory. Every load is bounded in time and stays on 127.0.0.1.
Servers are started and stopped by the tests' harness (tests/server.py)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.gen_corpus import SECTIONS, SOURCES, TOPICS, generate
from tests.helpers import ROOT
from tests.server import ServerProcess, Servers, free_port, wait_for

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/feedsvc-bench"))
PYTHON = sys.executable
ROWS: list[tuple[str, str, str, str]] = []


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def peers() -> set[str]:
    wanted = {"nginx": "nginx", "wrk": "wrk", "hugo": "hugo"}
    missing = [pkg for tool, pkg in wanted.items() if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        note(f"installing {' '.join(missing)} with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing], check=False, capture_output=True
        )
    found = {tool for tool in wanted if shutil.which(tool)}
    for tool in sorted(set(wanted) - found):
        note(f"skipped: {tool} is not installed (not root, or apt-get failed): its rows are empty")
    return found


def corpus(size: int) -> Path:
    path = WORK / f"corpus-{size}"
    if not (path / ".complete").exists():
        shutil.rmtree(path, ignore_errors=True)
        note(f"generating {size} seed files in {path}")
        generate(path, size)
        (path / ".complete").write_text("")
    return path


def run(
    command: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, the largest single process) of one command; its
    stderr goes to ``log`` (else it is kept to say why it failed)."""
    started = time.monotonic()
    errors = log or WORK / "stderr.log"
    with errors.open("wb") as sink:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[:4]} failed: {errors.read_text()[-500:]}")
    return elapsed, usage.ru_maxrss / 1024


def logged_seconds(log: Path, field: str) -> float:
    """The duration_ms of the JSON log line holding ``field``, in seconds (0 if none)."""
    for line in log.read_text().splitlines():
        if line.startswith("{") and field in (event := json.loads(line)):
            return float(event["duration_ms"]) / 1000
    return 0.0


def stats(values: list[float], unit: str, digits: int = 2) -> str:
    if not values:
        return "-"
    fmt = f"{{:.{digits}f}}"
    med = fmt.format(statistics.median(values))
    return f"{med} {unit} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def ratio(ours: list[float], anchor: list[float], higher_is_better: bool) -> str:
    if not ours or not anchor:
        return "-"
    value = statistics.median(ours) / statistics.median(anchor)
    return f"{value:.2f}x" + (" of anchor" if higher_is_better else " anchor's time")


def row(work: str, ours: str, anchor: str, vs: str) -> None:
    ROWS.append((work, ours, anchor, vs))
    note(f"  {work}: {ours} | {anchor} | {vs}")


def settings_env(seeds: Path, db: Path, **extra: str) -> dict[str, str]:
    return {
        "FEEDSVC_SEEDS": str(seeds),
        "FEEDSVC_DB": f"sqlite:///{db}",
        "FEEDSVC_BASE_URL": "http://127.0.0.1:8080",
        "FEEDSVC_LOG_LEVEL": "WARNING",
        **extra,
    }


def feedsvc(*args: str) -> list[str]:
    return [PYTHON, "-m", "feedsvc", *args]


# -- build: scan, export, Hugo -----------------------------------------------------------


def hugo_site(seeds: Path) -> Path:
    """The same posts as a Hugo site: categories as a taxonomy, a page layout, RSS on."""
    site = WORK / f"hugo-{seeds.name}"
    if (site / ".complete").exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    (site / "layouts" / "_default").mkdir(parents=True)
    (site / "config.toml").write_text(
        'baseURL = "http://127.0.0.1/"\ntitle = "bench"\n'
        '[taxonomies]\ncategory = "categories"\nauthor = "authors"\n'
    )
    layouts = site / "layouts" / "_default"
    (layouts / "single.html").write_text("<h1>{{ .Title }}</h1>{{ .Content }}")
    (layouts / "list.html").write_text(
        "{{ range .Pages }}<a href='{{ .Permalink }}'>{{ .Title }}</a>{{ end }}"
    )
    content = site / "content" / "posts"
    content.mkdir(parents=True)
    date = re.compile(r"^date: (.*)$", re.MULTILINE)
    for path in seeds.rglob("*.md"):
        text = path.read_text().lstrip()
        text = date.sub(lambda m: "date: " + _iso(m.group(1)), text, count=1)
        text = text.replace("\nauthor: ", "\nauthors:\n - ", 1)
        (content / path.name).write_text(text)
    (site / ".complete").write_text("")
    return site


def _iso(rfc2822: str) -> str:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(rfc2822).isoformat()


def build_rows(size: int, tools: set[str]) -> None:
    seeds = corpus(size)
    scans, exports, feeds_only, hugo_all, hugo_feeds, peaks = [], [], [], [], [], []
    indexing, rendering, sizes = [], [], []
    for attempt in range(RUNS):
        db = WORK / f"build-{size}-{attempt}.sqlite3"
        out = WORK / f"export-{size}"
        db.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        env = settings_env(seeds, db)
        log = WORK / "scan.log"
        verbose = {"FEEDSVC_LOG_LEVEL": "INFO", "FEEDSVC_LOG_FORMAT": "json"}
        seconds, peak = run(feedsvc("scan"), {**env, **verbose}, log=log)
        scans.append(seconds)
        peaks.append(peak)
        indexing.append(logged_seconds(log, "indexed"))
        rendering.append(logged_seconds(log, "rendered"))
        sizes.append(db.stat().st_size / 2**20)
        seconds, _peak = run(feedsvc("export", "--no-scan", str(out)), env)
        exports.append(seconds)
        seconds, _peak = run(feedsvc("export", "--no-scan", "--feeds-only", str(out)), env)
        feeds_only.append(seconds)
        if "hugo" in tools and size <= 10_000:
            site = hugo_site(seeds)
            hugo_all.append(
                run(["hugo", "--quiet", "-s", str(site), "-d", str(WORK / "hugo-out")])[0]
            )
            hugo_feeds.append(
                run(
                    [
                        "hugo",
                        "--quiet",
                        "-s",
                        str(site),
                        "-d",
                        str(WORK / "hugo-out"),
                        "--disableKinds",
                        "page",
                    ]
                )[0]
            )
        db.unlink(missing_ok=True)
    both = [a + b for a, b in zip(scans, exports, strict=True)]
    feeds = [a + b for a, b in zip(scans, feeds_only, strict=True)]
    row(
        f"cold scan + export, {size}",
        stats(both, "s"),
        stats(hugo_all, "s"),
        ratio(both, hugo_all, False),
    )
    row(
        f"cold scan + feeds only, {size}",
        stats(feeds, "s"),
        stats(hugo_feeds, "s"),
        ratio(feeds, hugo_feeds, False),
    )
    row(
        f"cold `feedsvc scan`, {size}",
        stats(scans, "s") + f", peak {stats(peaks, 'MiB', 0)}",
        "-",
        "target <= 2 s at 10k, <= 15 s and 200 MiB at 100k",
    )
    live = [
        total - index - parts
        for total, index, parts in zip(scans, indexing, rendering, strict=True)
    ]
    row(
        f"cold scan: feeds live, then parts rendered, then the search index, {size}",
        f"{stats(live, 's')} + {stats(rendering, 's')} + {stats(indexing, 's')}",
        "-",
        "parts and index after the feeds",
    )
    seeds_mib = sum(p.stat().st_size for p in seeds.rglob("*.md")) / 2**20
    row(
        f"database size, {size}",
        stats(sizes, "MiB", 0) + f" for {seeds_mib:.0f} MiB of seeds",
        "-",
        "target <= 3x the seeds",
    )


def rescan_row(size: int) -> None:
    """A full scan that finds nothing changed, in process (what the watcher runs)."""
    from feedsvc.config import Settings
    from feedsvc.scan import Scanner
    from feedsvc.store import Store

    seeds = corpus(size)
    db = WORK / f"rescan-{size}.sqlite3"
    db.unlink(missing_ok=True)
    settings = Settings(seeds=seeds, db=f"sqlite:///{db}")
    store = Store(settings.db)
    scanner = Scanner(store, settings)
    scanner.scan()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        scanner.scan()
        times.append(time.perf_counter() - started)
    store.close()
    row(f"full rescan, nothing changed, {size}", stats(times, "s"), "-", "target 100k <= 0.5 s")


# The last release before schema revisions (schema 5): its databases are upgraded in place.
RELEASE_5 = "656e28ca340017df3a222cb8c99b73f0918da0f3"


def upgrade_row(size: int) -> None:
    """`feedsvc db upgrade` of a SQLite database that release wrote: how long an upgrade holds
    the write lock (revision 0006 copies the entries table: SQLite's batch mode)."""
    seeds = corpus(size)
    release = WORK / "release-5"
    if not (release / "feedsvc").is_dir():
        release.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", RELEASE_5, "feedsvc"], capture_output=True
        )
        if archive.returncode != 0:
            note(f"skipped: git history holding {RELEASE_5} is needed for the upgrade row")
            return
        subprocess.run(["tar", "-x", "-C", str(release)], input=archive.stdout, check=True)
    written = WORK / f"schema5-{size}.sqlite3"
    if not written.exists():
        env = {**settings_env(seeds, written), "PYTHONPATH": str(release)}
        run(feedsvc("scan"), env, cwd=WORK)  # (not in the repository, whose feedsvc would win)
    times = []
    for _ in range(RUNS):
        db = WORK / f"upgrade-{size}.sqlite3"
        shutil.copyfile(written, db)
        times.append(run(feedsvc("db", "upgrade"), settings_env(seeds, db), cwd=WORK)[0])
        db.unlink()
    row(f"upgrade a schema 5 database in place, {size}", stats(times, "s"), "-", "-")


# -- serving -----------------------------------------------------------------------------


@contextlib.contextmanager
def serving(seeds: Path, db: Path, **extra: Any) -> Iterator[ServerProcess]:
    """`feedsvc serve` on the bench's settings (the repository's config file, which the bench's
    commands read from the repository, and feedsvc's own workers and scan interval), once its
    leader has rendered every entry's parts; stopped afterwards."""
    settings: dict[str, Any] = {
        "FEEDSVC_CONFIG": str(ROOT / "config" / "feedsvc.toml"),
        "FEEDSVC_LOG_LEVEL": "WARNING",
        "FEEDSVC_WORKERS": None,
        "FEEDSVC_SCAN_INTERVAL": None,
    }
    with Servers(WORK, stop_timeout=60) as serve:
        server = serve(
            seeds, f"sqlite:///{db}", timeout=900, indexed=False, **{**settings, **extra}
        )
        wait_for(lambda: parts_rendered(db, server.environ), timeout=900, interval=0.5)
        yield server


def parts_rendered(db: Path, env: dict[str, str]) -> bool:
    """Whether the leader has rendered every entry's parts for this server's settings
    (after a scan under other settings it renders them all again: not idle yet)."""
    from feedsvc.config import load_settings
    from feedsvc.feeds import render_key

    key = render_key(load_settings({}, environ=env))
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        kept = conn.execute("SELECT value FROM meta WHERE key = 'parts_key'").fetchone()
        missing = conn.execute(
            "SELECT count(*) FROM entries LEFT JOIN fragments ON fragments.entry_id = "
            "entries.id AND fragments.fingerprint = entries.fingerprint "
            "WHERE fragments.entry_id IS NULL"
        ).fetchone()[0]
    return kept is not None and kept[0] == key and missing == 0


def get(server: ServerProcess, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One request's status, headers and body (0, {}, b"" when it could not be made)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except OSError:
        return 0, {}, b""


def tree(server: ServerProcess) -> list[int]:
    """The server's processes, its first one and every one below."""
    return [server.process.pid, *server.descendants()]


def memory_mib(server: ServerProcess, field: str) -> float:
    """The process tree's total "Rss" (shared pages counted in each process) or "Pss"
    (shared pages split between their processes), from /proc/PID/smaps_rollup."""
    total = 0
    for pid in tree(server):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(server: ServerProcess) -> float:
    ticks = 0
    for pid in tree(server):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, connections: int, seconds: int, *args: str) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency (ms)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *args, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out
    rate = float(found.group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return rate, float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")


def nginx(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = WORK / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2; daemon off; pid {WORK}/nginx.pid; error_log {WORK}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; gzip_static on; etag on; keepalive_requests 100000;
  types {{ application/atom+xml atom; }}
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-e", str(WORK / "nginx.err")])
    time.sleep(1)
    return proc, port


def author_feed(server: ServerProcess) -> str:
    """An author's feed at the default limit (20 entries: about 110 KB)."""
    opml = get(server, "/opml")[2].decode()
    urls: list[str] = re.findall(r'xmlUrl="([^"]+/feeds/authors/[^"]+\.atom)"', opml)
    return urls[0].removeprefix(server.url)


def serving_rows(size: int, tools: set[str]) -> None:
    seeds = corpus(size)
    db = WORK / f"serve-{size}.sqlite3"
    db.unlink(missing_ok=True)
    with serving(seeds, db) as server:
        path = author_feed(server)
        get(server, path)
        _status, headers, body = get(server, path, **{"Accept-Encoding": "gzip"})
        etag = headers["etag"]
        rss, pss = memory_mib(server, "Rss"), memory_mib(server, "Pss")
        if "wrk" in tools:
            ours_304 = [
                wrk(server.url + path, 32, 5, "-H", f"If-None-Match: {etag}")[0]
                for _ in range(RUNS)
            ]
            ours_gzip = [
                wrk(server.url + path, 32, 5, "-H", "Accept-Encoding: gzip")[0] for _ in range(RUNS)
            ]
            anchor_304: list[float] = []
            anchor_gzip: list[float] = []
            if "nginx" in tools:
                plain = get(server, path)[2]
                static = WORK / "static"
                shutil.rmtree(static, ignore_errors=True)
                static.mkdir()
                (static / "feed.atom").write_bytes(plain)
                (static / "feed.atom.gz").write_bytes(body)
                proc, port = nginx(static)
                try:
                    url = f"http://127.0.0.1:{port}/feed.atom"
                    conn = http.client.HTTPConnection("127.0.0.1", port)
                    conn.request("GET", "/feed.atom")
                    nginx_etag = conn.getresponse().getheader("ETag")
                    anchor_304 = [
                        wrk(url, 32, 5, "-H", f"If-None-Match: {nginx_etag}")[0]
                        for _ in range(RUNS)
                    ]
                    anchor_gzip = [
                        wrk(url, 32, 5, "-H", "Accept-Encoding: gzip")[0] for _ in range(RUNS)
                    ]
                finally:
                    proc.send_signal(signal.SIGQUIT)
                    proc.wait(timeout=30)
            label = f"{len(get(server, path)[2]) // 1024} KB author feed, 32 connections, {size}"
            row(
                f"304, {label}",
                stats(ours_304, "req/s", 0),
                stats(anchor_304, "req/s", 0),
                ratio(ours_304, anchor_304, True),
            )
            row(
                f"gzip 200, {label}",
                stats(ours_gzip, "req/s", 0),
                stats(anchor_gzip, "req/s", 0),
                ratio(ours_gzip, anchor_gzip, True),
            )
        row(
            f"serving process tree RSS (PSS), {size}, idle",
            f"{rss:.0f} MiB ({pss:.0f} MiB) in {len(tree(server))} processes",
            "-",
            "target <= 150 MiB, flat in N",
        )
        opml = get(server, "/opml")[2].decode()
        feeds = [u.removeprefix(server.url) for u in re.findall(r'xmlUrl="([^"]+)"', opml)]
        for feed in feeds:  # every feed (Atom), each worker alike: whoever answers
            get(server, feed, **{"Accept-Encoding": "gzip"})
        row(
            f"serving process tree RSS (PSS), {size}, after every feed fetched",
            f"{memory_mib(server, 'Rss'):.0f} MiB ({memory_mib(server, 'Pss'):.0f} MiB), "
            f"{len(feeds)} feeds",
            "-",
            "target <= 150 MiB",
        )


def search_rows(size: int) -> None:
    """?q= on the store: the index's size and a query's time, on SQLite and (when
    FEEDSVC_TEST_PG names a server) PostgreSQL, whose cold scan is measured too."""
    from feedsvc.model import Scope
    from feedsvc.store import Store

    seeds = corpus(size)
    db = WORK / f"search-{size}.sqlite3"
    db.unlink(missing_ok=True)
    run(feedsvc("scan"), settings_env(seeds, db))
    urls = {"sqlite": f"sqlite:///{db}"}
    pg = os.environ.get("FEEDSVC_TEST_PG")
    if pg:
        schema = f"bench_{size}"
        psql(pg, f"drop schema if exists {schema} cascade; create schema {schema}")
        urls["postgresql"] = f"{pg}?options=-csearch_path%3D{schema}"
        times, sizes = [], []
        for _ in range(RUNS):
            psql(pg, f"drop schema if exists {schema} cascade; create schema {schema}")
            env = {**settings_env(seeds, db), "FEEDSVC_DB": urls["postgresql"]}
            times.append(run(feedsvc("scan"), env)[0])
            sizes.append(float(psql(pg, _PG_SIZE.format(schema=schema))) / 2**20)
        seeds_mib = sum(p.stat().st_size for p in seeds.rglob("*.md")) / 2**20
        row(
            f"cold `feedsvc scan` into PostgreSQL, search indexed, {size}",
            f"{stats(times, 's')}, {stats(sizes, 'MiB', 0)} for {seeds_mib:.0f} MiB of seeds",
            "-",
            "target <= 10 s, <= 3x the seeds",
        )
    words = ["的", "中国", "数据显示", "xyz不存在"]
    for backend, url in urls.items():
        store = Store(url)
        try:
            index_mib = _index_mib(store)
            times = []
            for _ in range(RUNS):
                for word in words:
                    started = time.perf_counter()
                    store.search(Scope.all(), word, 1000)
                    times.append((time.perf_counter() - started) * 1000)
        finally:
            store.close()
        row(
            f"search: index size, one ?q= over all entries ({', '.join(words)}), {backend}, {size}",
            f"{index_mib:.1f} MiB; {stats(times, 'ms')}",
            "-",
            "several times smaller than a trigram index of the text",
        )
    if pg:
        psql(pg, f"drop schema if exists bench_{size} cascade")


_PG_SIZE = (
    "select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace n"
    " on n.oid = c.relnamespace where nspname = '{schema}' and relkind = 'r'"
)


def _index_mib(store: Any) -> float:
    """The search index's size: SQLite's FTS5 tables, PostgreSQL's GIN index."""
    from sqlalchemy import text

    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            query = "select sum(pgsize) from dbstat where name like 'entry_search%'"
        else:
            query = "select pg_relation_size('entry_text_tokens')"
        return float(conn.execute(text(query)).scalar() or 0) / 2**20


def psql(url: str, sql: str) -> str:
    """One statement through psql (the bench's own schema only), its output."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    command = ["psql", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    command += ["-U", parsed.username or "postgres", "-Atqc", sql, parsed.database or ""]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def watcher_rows(size: int) -> None:
    seeds = corpus(size)
    db = WORK / f"watch-{size}.sqlite3"
    db.unlink(missing_ok=True)
    with serving(seeds, db, FEEDSVC_SCAN_INTERVAL="10") as server:
        while json.loads(get(server, "/status")[2] or b"{}").get("search", {}).get("pending"):
            time.sleep(1)  # the first scan and its index are done: what follows is idle
        time.sleep(15)  # past the first scan's aftermath
        before, started = cpu_seconds(server), time.monotonic()
        time.sleep(30)
        share = (cpu_seconds(server) - before) / (time.monotonic() - started) * 100
        row(
            f"idle watcher, {size} files, scan_interval 10 s",
            f"{share:.1f}% of a core",
            "-",
            "target < 2%",
        )
        latencies = []
        for attempt in range(RUNS):
            folder = seeds / TOPICS[0] / SOURCES[0] / SECTIONS[0]
            title = f"新文件{attempt}{time.time_ns()}"
            new = folder / f"zz-{title}.md"
            written = time.monotonic()
            new.write_text(
                f"---\ntitle: '{title}'\nauthor: 新作者{attempt}\ndate: 2030-01-01T00:00:00Z\n---\n<p>x</p>\n"
            )
            feed = "/feeds/authors/" + quote(f"新作者{attempt}") + ".atom"
            while get(server, feed)[0] != 200 and time.monotonic() - written < 120:
                time.sleep(0.05)
            latencies.append(time.monotonic() - written)
            new.unlink()
        row(f"a new file live in its feeds, {size}", stats(latencies, "s"), "-", "target <= 1 s")


def render_row(size: int) -> None:
    """A 50-entry Atom feed rendered on a cache miss: assembled from its entries' kept parts
    (what a server does once its leader has rendered them), and rendered whole (before)."""
    from feedsvc.config import Settings
    from feedsvc.model import Format
    from feedsvc.prerender import prerender
    from feedsvc.scan import Scanner
    from feedsvc.service import FeedService
    from feedsvc.store import Store

    seeds = corpus(size)
    db = WORK / f"render-{size}.sqlite3"
    db.unlink(missing_ok=True)
    settings = Settings(seeds=seeds, db=f"sqlite:///{db}", max_limit=100)
    store = Store(settings.db)
    Scanner(store, settings).scan()
    for how in ("whole", "from parts"):
        if how == "from parts":
            prerender(store, settings)
        times = []
        for _ in range(RUNS):
            service = FeedService(store, settings)
            service.refresh()
            for summary in service.summaries()[:50]:
                started = time.perf_counter()
                service.feed(summary.scope, Format.ATOM, 1, 50)
                times.append((time.perf_counter() - started) * 1000)
        row(
            f"render a 50-entry feed on a cache miss, {how}, {size}",
            stats(times, "ms"),
            "-",
            "target <= 2 ms",
        )
    store.close()


def busy_row(size: int) -> None:
    seeds = WORK / f"busy-{size}"
    shutil.rmtree(seeds, ignore_errors=True)
    shutil.copytree(corpus(size), seeds)
    db = WORK / f"busy-{size}.sqlite3"
    db.unlink(missing_ok=True)
    try:
        with serving(seeds, db) as server:
            opml = get(server, "/opml")[2].decode()
            urls = [u.removeprefix(server.url) for u in re.findall(r'xmlUrl="([^"]+)"', opml)][:200]
            script = WORK / "urls.lua"
            script.write_text(
                "local urls = {" + ",".join(f'"{u}"' for u in urls) + "}\nlocal i = 0\n"
                "request = function() i = i % #urls + 1; return wrk.format('GET', urls[i]) end\n"
            )
            for path in seeds.rglob("*.md"):  # 10k changed files: the next scan reads them all
                path.write_text(path.read_text().replace("</div>", "<p>changed</p></div>", 1))
            _rate, p99 = wrk(server.url + "/", 64, 15, "-s", str(script))
            row(
                f"p99, 64 connections over {len(urls)} feeds during a scan of {size} changed files",
                f"{p99:.1f} ms",
                "-",
                "target <= 50 ms",
            )
    finally:
        shutil.rmtree(seeds, ignore_errors=True)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    tools = peers()
    steps: list[Callable[[], None]] = []
    for size in SIZES:
        steps += [partial(build_rows, size, tools), partial(rescan_row, size)]
        steps += [partial(serving_rows, size, tools)]
        if size >= 10_000:
            steps.append(partial(watcher_rows, size))
        if size == 10_000:
            steps += [partial(render_row, size), partial(upgrade_row, size)]
            steps.append(partial(search_rows, size))
            if "wrk" in tools:
                steps.append(partial(busy_row, size))
    for step in steps:
        step()
    width = max(len(r[0]) for r in ROWS)
    print(f"\n{'work':<{width}} | feedsvc, median (min-max) | anchor, same run | ratio / target")
    print("-" * (width + 60))
    for work, ours, anchor, vs in ROWS:
        print(f"{work:<{width}} | {ours} | {anchor} | {vs}")


if __name__ == "__main__":
    main()
