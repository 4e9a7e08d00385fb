"""End to end: a real `feedsvc serve` (granian, two workers, the watcher) on a free port,
driven over real HTTP with the real corpus on disk: types, URL forms, paging, the pages, and
changes on disk reaching the feeds. (The HTTP rules over every way in: test_http_rules.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import quote
from xml.etree import ElementTree as ET

import feedparser
import pytest
import requests

from feedsvc.model import stable_uuid
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import wait_for

CATEGORY = ("新媒体", "快科技（原驱动之家）")
CATEGORY_PATH = "/feeds/categories/" + "/".join(quote(p, safe="") for p in CATEGORY)


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_module):
    workdir = tmp_path_factory.mktemp("http")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    return serve_module(seeds, f"sqlite:///{workdir}/data/feedsvc.sqlite3")


def get(server, path, **headers):
    return requests.get(server.url + path, headers=headers, timeout=10)


def raw_request(server, target: bytes) -> tuple[int, bytes]:
    """Send a request line exactly as given (e.g. raw UTF-8), as some clients do."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_category_feed_answers_with_validators(server):
    response = get(server, CATEGORY_PATH + ".atom")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["ETag"].startswith('"') and not response.headers["ETag"].startswith(
        "W/"
    )
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["Cache-Control"] == "public, max-age=1"
    assert response.headers["Vary"] == "Accept-Encoding"
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0
    assert parsed.feed.title == "Category: 新媒体 › 快科技（原驱动之家） · feedsvc"
    assert len(parsed.entries) == 4
    assert all("快科技（原驱动之家）" in [t.term for t in e.tags] for e in parsed.entries)


def test_readable_and_percent_encoded_paths_name_the_same_feed(server):
    encoded = get(server, CATEGORY_PATH + ".rss")
    # A browser or feed reader given the readable URL percent-encodes it (so does requests).
    readable = requests.get(
        server.url + "/feeds/categories/" + "/".join(CATEGORY) + ".rss", timeout=10
    )
    assert readable.status_code == 200
    assert readable.content == encoded.content
    assert readable.headers["ETag"] == encoded.headers["ETag"]
    # HTTP allows only ASCII in a request line, but some clients send raw UTF-8: the server
    # takes it as the percent-encoded form such a client should have sent.
    status, body = raw_request(
        server, ("/feeds/categories/" + "/".join(CATEGORY) + ".rss").encode()
    )
    assert status == 200
    assert body == encoded.content


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_every_format_has_its_own_etag_and_type(server, fmt):
    response = get(server, "/feeds/all." + fmt)
    assert response.status_code == 200
    types = {
        "atom": "application/atom+xml",
        "rss": "application/rss+xml",
        "json": "application/feed+json",
    }
    assert response.headers["Content-Type"] == types[fmt] + "; charset=utf-8"
    others = {get(server, "/feeds/all." + other).headers["ETag"] for other in types if other != fmt}
    assert response.headers["ETag"] not in others


def test_limit_and_paging(server):
    first = feedparser.parse(get(server, "/feeds/all.atom?limit=5").content)
    assert len(first.entries) == 5
    links = {link.rel: link.href for link in first.feed.links}
    assert links["next"] == server.url + "/feeds/all.atom?limit=5&page=2"
    assert links["last"] == server.url + "/feeds/all.atom?limit=5&page=10"
    second = feedparser.parse(get(server, "/feeds/all.atom?limit=5&page=2").content)
    assert {e.id for e in first.entries}.isdisjoint({e.id for e in second.entries})
    assert get(server, "/feeds/all.atom?limit=5&page=11").status_code == 404


def test_index_lists_the_tree_with_counts_and_autodiscovery(server):
    response = get(server, "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.text
    assert '<link rel="alternate" type="application/atom+xml"' in html
    # every category links to its page, with its count
    assert f'<a href="{server.url}{CATEGORY_PATH.removeprefix("/feeds")}" class="name">' in html
    assert "快科技（原驱动之家）" in html
    assert '<span class="count">4</span>' in html


def test_entry_page_shows_the_sanitised_article(server):
    entry_id = stable_uuid("path", "001_33e289dd104536e3.txt")
    response = get(server, f"/entries/{entry_id}")
    assert response.status_code == 200
    assert "雷军押上一切打造" in response.text
    assert "S226f1259-321d-48f5-ac22-d12c7b983521.jpg" in response.text
    assert "Content-Security-Policy" in response.headers


def test_opml_mirrors_the_category_tree(server):
    response = get(server, "/opml")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "opml" and root.get("version") == "2.0"
    categories = next(o for o in root.find("body") if o.get("text") == "Categories")
    top = next(o for o in categories if o.get("text") == "新媒体")
    child = next(o for o in top if o.get("text") == "快科技（原驱动之家）")
    assert child.get("xmlUrl") == server.url + CATEGORY_PATH + ".atom"
    assert any(o.get("text") == "Authors" for o in root.find("body"))


def test_health_readiness_status_and_metrics(server):
    assert get(server, "/healthz").status_code == 200
    assert get(server, "/readyz").status_code == 200
    status = get(server, "/status").json()
    assert status["entries"] == 48
    assert status["feeds"] > 50
    assert set(status["last_scan"]) >= {"started", "finished", "added", "updated", "removed"}
    assert sorted(e["path"] for e in status["errors"]) == sorted(
        p.name for p in REAL_CORPUS.iterdir() if p.name.startswith('"""')
    )
    assert all(not e["path"].startswith("/") for e in status["errors"])
    # one of the two workers holds the scan lock: the replica scans, whichever worker answers
    assert {get(server, "/status").json()["scanner"] for _ in range(20)} == {True}
    metrics = get(server, "/metrics")
    assert "feedsvc_entries 48.0" in metrics.text
    assert "feedsvc_http_requests_total" in metrics.text


def test_new_edited_and_deleted_files_reach_the_feeds(server):
    path = server.seeds / "zz-live.md"
    path.write_text(
        "---\ntitle: live one\ncategories: [直播]\ndate: 2030-01-01T00:00:00Z\n---\n<p>x</p>\n"
    )
    feed = "/feeds/categories/" + quote("直播") + ".json"
    wait_for(lambda: get(server, feed).status_code == 200)
    # both workers must have picked it up
    wait_for(lambda: all(get(server, feed).status_code == 200 for _ in range(10)))
    first = get(server, feed)
    assert json.loads(first.content)["items"][0]["title"] == "live one"
    path.write_text(path.read_text().replace("live one", "live two"))
    wait_for(
        lambda: all(
            json.loads(get(server, feed).content)["items"][0]["title"] == "live two"
            for _ in range(10)
        )
    )
    path.unlink()
    # a missing file stays served for delete_grace; `feedsvc scan --prune-now` skips the wait
    wait_for(lambda: get(server, "/status").json()["last_scan"]["missing"] == 1)
    assert get(server, feed).status_code == 200
    pruned = subprocess.run(
        [sys.executable, "-m", "feedsvc", "scan", "--prune-now"],
        cwd=server.workdir,
        env={
            "PATH": "/usr/bin:/bin",
            "FEEDSVC_SEEDS": str(server.seeds),
            "FEEDSVC_DB": server.db,
            "FEEDSVC_BASE_URL": server.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1," in pruned.stdout
    # an emptied feed: 200 and empty while the Atom form tells of the deletion (then 410)
    wait_for(lambda: all(get(server, feed).json()["items"] == [] for _ in range(10)))
    assert get(server, feed).status_code == 200
    assert get(server, "/status").json()["entries"] == 48


def test_restart_serves_identical_bytes_and_etags(server, serve):
    paths = [
        "/feeds/all.atom",
        CATEGORY_PATH + ".rss",
        "/feeds/authors/" + quote("Mind42") + ".json",
        "/opml",
        "/",
    ]
    before = {p: get(server, p) for p in paths}
    second = serve(server.seeds, server.db, FEEDSVC_BASE_URL=server.url)
    for path in paths:
        after = requests.get(second.url + path, timeout=10)
        assert after.content == before[path].content, path
        assert after.headers["ETag"] == before[path].headers["ETag"], path
