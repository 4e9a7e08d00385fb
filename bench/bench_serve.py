"""Benchmark: scan throughput and request cost, on generated seeds and a real server.

    python bench/bench_serve.py [--files 3000] [--requests 2000]

Prints: initial scan and no-change rescan times; then, against `feedsvc serve` (one worker)
over one keep-alive connection on loopback: the latency of a first (rendering) request, a
cached 200 (plain and gzip) and a 304. Requests are bounded in number and stop by themselves.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feedsvc.config import Settings  # noqa: E402
from feedsvc.scan import Scanner  # noqa: E402
from feedsvc.store import Store  # noqa: E402

TOP = ["新媒体", "游戏", "编程", "社交媒体", "金融", "二次元", "图片", "博客"]
BODY = (ROOT / "seeds" / "001_33e289dd104536e3.txt").read_text().split("---", 2)[2]


def generate(root: Path, count: int) -> None:
    rng = random.Random(42)
    for index in range(count):
        top = rng.choice(TOP)
        source = f"来源{rng.randrange(40)}"
        sub = f"栏目{rng.randrange(3)}"
        day = 1 + index % 28
        text = (
            f"\n---\ntitle: '第{index}条 新闻标题'\ncategories:\n - {top}\n - {source}\n - {sub}\n"
            f"author: {source}\ndate: Sat, {day:02d} Nov 2021 15:{index % 60:02d}:03 GMT\n"
            f"headimg: 'https://img.example.com/{index}.jpg'\n---\n{BODY}"
        )
        folder = root / top / source
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:06d}.md").write_text(text)


def timed(label: str, func) -> float:
    started = time.perf_counter()
    func()
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {elapsed * 1000:10.1f} ms")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def latencies(
    conn: http.client.HTTPConnection, path: str, count: int, **headers: str
) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        if response.status not in (200, 304):
            raise RuntimeError(f"{path}: HTTP {response.status}")
    return samples


def report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    rate = len(samples) / sum(samples)
    print(f"{label:<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rate:8.0f} req/s (one connection)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedsvc-bench-"))
    try:
        seeds = work / "seeds"
        generate(seeds, args.files)
        db = f"sqlite:///{work}/bench.sqlite3"
        base_url = "http://bench.example"  # the server below uses the same, so it re-reads nothing
        settings = Settings(seeds=seeds, db=db, base_url=base_url)
        store = Store(db)
        scanner = Scanner(store, settings)
        print(
            f"{args.files} seed files, {sum(f.stat().st_size for f in seeds.rglob('*.md')) / 1e6:.1f} MB"
        )
        elapsed = timed("initial scan", scanner.scan)
        print(f"{'':<44} {args.files / elapsed:10.0f} files/s")
        timed("rescan, nothing changed", scanner.scan)
        scopes = len(store.scope_summaries())
        store.close()
        print(f"{scopes} feeds")

        port = free_port()
        env = {
            **os.environ,
            "FEEDSVC_SEEDS": str(seeds),
            "FEEDSVC_DB": db,
            "FEEDSVC_PORT": str(port),
            "FEEDSVC_WORKERS": "1",
            "FEEDSVC_THREADS": "4",
            "FEEDSVC_LOG_LEVEL": "WARNING",
            "FEEDSVC_SCAN_INTERVAL": "600",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "serve"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not start")
                time.sleep(0.2)
            time.sleep(3)  # let the start-up scan (nothing to change) finish: measure steady state
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            feeds = [f"/feeds/categories/{quote(top)}.atom" for top in TOP]
            first = []
            for path in feeds:
                first += latencies(conn, path, 1)
            report("first request of a feed (renders 20 entries)", first)
            path = "/feeds/all.atom"
            latencies(conn, path, 5)
            report("cached 200, identity", latencies(conn, path, args.requests))
            report(
                "cached 200, gzip",
                latencies(conn, path, args.requests, **{"Accept-Encoding": "gzip"}),
            )
            conn.request("GET", path)
            response = conn.getresponse()
            etag = response.getheader("ETag")
            response.read()
            report(
                "304 (If-None-Match)",
                latencies(conn, path, args.requests, **{"If-None-Match": etag}),
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
