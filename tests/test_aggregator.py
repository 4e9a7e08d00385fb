"""Aggregator-grade HTTP, driven with raw http.client requests against real servers:
validators per representation, every 304 path, encodings, paging, WebSub pings to a real
local hub, the browser view, and byte-identical answers from two processes on one database."""

from __future__ import annotations

import gzip
import http.client
import json
import math
import re
import shutil
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote, urlsplit

import brotli
import feedparser
import pytest
from lxml import etree

from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import wait_for, wait_for_scans

CATEGORY_PATH = (
    "/feeds/categories/" + quote("新媒体", safe="") + "/" + quote("快科技（原驱动之家）", safe="")
)


def request(
    server, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One raw request: exactly these headers, no automatic compression or decoding."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def renders(server) -> float:
    _status, _headers, body = request(server, "/metrics")
    match = re.search(rb"^feedsvc_feed_renders_total ([0-9.e+]+)$", body, re.M)
    assert match, body[:2000]
    return float(match.group(1))


# One worker (a render is counted where it happened), no scan within the tests.
QUIET = {"FEEDSVC_WORKERS": "1", "FEEDSVC_SCAN_INTERVAL": "120"}


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory, serve_module):
    workdir = tmp_path_factory.mktemp("aggregator")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    return serve_module(seeds, f"sqlite:///{workdir}/data/feedsvc.sqlite3", **QUIET)


def test_each_representation_has_its_own_strong_etag(corpus_server):
    paths = [
        f"{CATEGORY_PATH}.{fmt}{query}"
        for fmt in ("atom", "rss", "json")
        for query in ("", "?limit=2", "?limit=2&page=2")
    ]
    etags = []
    for path in paths:
        status, headers, _body = request(corpus_server, path)
        assert status == 200, path
        assert re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])
        etags.append(headers["etag"])
    assert len(set(etags)) == len(paths)


@pytest.mark.parametrize("query", ["", "?limit=3", "?limit=3&page=2", "?limit=7&page=7"])
def test_last_modified_is_the_newest_update_in_that_response(corpus_server, query):
    status, headers, body = request(corpus_server, "/feeds/all.atom" + query)
    assert status == 200
    newest = max(
        datetime(*e.updated_parsed[:6]).replace(tzinfo=UTC) for e in feedparser.parse(body).entries
    )
    assert parsedate_to_datetime(headers["last-modified"]) == newest


def conditional_cases(etag: str, last_modified: str):
    later = format_datetime(parsedate_to_datetime(last_modified).replace(year=2099), usegmt=True)
    earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    return [
        ("GET", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": f'"a", {etag}, "b"'}, 304),
        ("GET", {"If-None-Match": "*"}, 304),
        ("GET", {"If-None-Match": "W/" + etag}, 304),
        ("HEAD", {"If-None-Match": etag}, 304),
        ("GET", {"If-Modified-Since": last_modified}, 304),
        ("GET", {"If-Modified-Since": later}, 304),
        ("HEAD", {"If-Modified-Since": last_modified}, 304),
        (
            "GET",
            {"If-None-Match": etag, "If-Modified-Since": earlier},
            304,
        ),  # If-None-Match decides
        ("GET", {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}, 200),
        ("GET", {"If-None-Match": '"stale"'}, 200),
        ("GET", {"If-Modified-Since": earlier}, 200),
        ("GET", {"If-Modified-Since": "not a date"}, 200),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/all.rss",
        CATEGORY_PATH + ".atom",
        CATEGORY_PATH + ".json?limit=2&page=2",
        "/",
        "/opml",
    ],
)
def test_every_conditional_path(corpus_server, path):
    status, first, body = request(corpus_server, path)
    assert status == 200
    for method, headers, expected in conditional_cases(first["etag"], first["last-modified"]):
        status, got, content = request(corpus_server, path, method, **headers)
        assert status == expected, (method, headers)
        assert got["etag"] == first["etag"] and got["last-modified"] == first["last-modified"]
        assert got["cache-control"] == first["cache-control"]
        if status == 304:
            assert content == b""
        elif method == "GET":
            assert content == body


def test_a_304_never_renders_a_feed(corpus_server, serve):
    """A second process on the same database starts with nothing rendered; revalidating
    every feed there costs no rendering at all."""
    feeds = []
    for outline in etree.fromstring(request(corpus_server, "/opml")[2]).iter("outline"):
        if outline.get("xmlUrl"):
            feeds.append(urlsplit(str(outline.get("xmlUrl"))).path)
    validators = {path: request(corpus_server, path)[1]["etag"] for path in feeds}
    cold = serve(corpus_server.seeds, corpus_server.db, FEEDSVC_BASE_URL=corpus_server.url, **QUIET)
    for path, etag in validators.items():
        assert request(cold, path, **{"If-None-Match": etag})[0] == 304
    assert renders(cold) == 0
    assert request(cold, feeds[0])[0] == 200
    assert request(cold, feeds[0], Accept_Encoding="gzip")[0] == 200
    assert request(cold, feeds[0], Accept_Encoding="br")[0] == 200
    assert renders(cold) == 1  # rendered once, compressed forms kept with it


def test_encodings_are_negotiated_and_kept(corpus_server):
    _s, plain_headers, plain = request(corpus_server, "/feeds/all.atom", Accept_Encoding="identity")
    assert "content-encoding" not in plain_headers
    _s, gz_headers, gz = request(corpus_server, "/feeds/all.atom", Accept_Encoding="gzip")
    assert gz_headers["content-encoding"] == "gzip" and gzip.decompress(gz) == plain
    _s, br_headers, br = request(corpus_server, "/feeds/all.atom", Accept_Encoding="gzip, br")
    assert br_headers["content-encoding"] == "br" and brotli.decompress(br) == plain
    _s, _h, br_none = request(corpus_server, "/feeds/all.atom", Accept_Encoding="br;q=0, gzip")
    assert br_none == gz
    assert (
        request(corpus_server, "/feeds/all.atom", Accept_Encoding="gzip")[2] == gz
    )  # same bytes again
    for headers in (plain_headers, gz_headers, br_headers):
        assert headers["vary"] == "Accept-Encoding"
        assert headers["etag"] == plain_headers["etag"]
    assert int(gz_headers["content-length"]) == len(gz)
    status, head_headers, head_body = request(
        corpus_server, "/feeds/all.atom", "HEAD", Accept_Encoding="gzip"
    )
    assert (
        status == 200
        and head_body == b""
        and head_headers["content-length"] == gz_headers["content-length"]
    )


def test_cache_control_and_rss_ttl_follow_the_scan_interval(corpus_server):
    _s, headers, body = request(corpus_server, "/feeds/all.rss")
    assert headers["cache-control"] == "public, max-age=120"
    assert etree.fromstring(body).findtext("channel/ttl") == str(math.ceil(120 / 60))


def test_rfc5005_paging_in_every_format(corpus_server):
    url = corpus_server.url
    atom = feedparser.parse(request(corpus_server, "/feeds/all.atom?limit=10&page=2")[2])
    links = {link.rel: link.href for link in atom.feed.links}
    assert links["first"] == f"{url}/feeds/all.atom?limit=10"
    assert links["previous"] == f"{url}/feeds/all.atom?limit=10"
    assert links["next"] == f"{url}/feeds/all.atom?limit=10&page=3"
    assert links["last"] == f"{url}/feeds/all.atom?limit=10&page=5"
    rss = etree.fromstring(request(corpus_server, "/feeds/all.rss?limit=10&page=5")[2])
    atom_links = {
        el.get("rel"): el.get("href") for el in rss.iter("{http://www.w3.org/2005/Atom}link")
    }
    assert (
        atom_links["previous"] == f"{url}/feeds/all.rss?limit=10&page=4"
        and "next" not in atom_links
    )
    first_json = json.loads(request(corpus_server, "/feeds/all.json?limit=10")[2])
    assert first_json["next_url"] == f"{url}/feeds/all.json?limit=10&page=2"
    assert "next_url" not in json.loads(
        request(corpus_server, "/feeds/all.json?limit=10&page=5")[2]
    )
    assert request(corpus_server, "/feeds/all.json?limit=10&page=6")[0] == 404
    seen = []
    for page in range(1, 6):
        seen += [
            e.id
            for e in feedparser.parse(
                request(corpus_server, f"/feeds/all.atom?limit=10&page={page}")[2]
            ).entries
        ]
    assert len(seen) == len(set(seen)) == 48


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=-1", "page=0", "page=x1", "limit=%00", "page=1e3"]
)
def test_bad_values_are_400_with_one_line(corpus_server, query):
    status, headers, body = request(corpus_server, "/feeds/all.atom?" + query)
    assert status == 400 and headers["content-type"].startswith("text/plain")
    assert body.count(b"\n") == 1


def test_browser_view_stylesheet(corpus_server):
    _s, _h, body = request(corpus_server, CATEGORY_PATH + ".atom", Accept="text/html")
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet href=")
    assert feedparser.parse(body).bozo == 0
    status, headers, xsl = request(corpus_server, "/static/feed.xsl")
    assert status == 200
    assert headers["content-type"].split(";")[0] in (
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
    )
    html = str(etree.XSLT(etree.fromstring(xsl))(etree.fromstring(body)))
    assert "Copy its address into your feed reader" in html
    assert "雷军押上一切打造" in html


# -- WebSub -----------------------------------------------------------------------------


@pytest.fixture
def hubbed(tmp_path, serve):
    """A server on the two sample seeds with two real hubs: one that fails its first two
    pings (503) then accepts, one that refuses every ping (400)."""
    flaky = serve.hub("--fail-first", "2")
    refusing = serve.hub("--status", "400")
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(
        seeds,
        f"sqlite:///{tmp_path}/data/db.sqlite3",
        FEEDSVC_WEBSUB_HUBS=f"{flaky.url},{refusing.url}",
        FEEDSVC_WORKERS="2",
    )
    return server, flaky, refusing


def feed_urls(server, *paths: str) -> set[str]:
    return {f"{server.url}{path}.{fmt}" for path in paths for fmt in ("atom", "rss", "json")}


def test_feeds_advertise_their_hubs(hubbed):
    server, flaky, refusing = hubbed
    status, headers, body = request(server, "/feeds/all.atom")
    assert status == 200
    assert (
        f'<{flaky.url}>; rel="hub"' in headers["link"]
        and f'<{server.url}/feeds/all.atom>; rel="self"' in headers["link"]
    )
    hubs = {link.href for link in feedparser.parse(body).feed.links if link.rel == "hub"}
    assert hubs == {flaky.url, refusing.url}
    rss = etree.fromstring(request(server, "/feeds/all.rss")[2])
    assert {
        el.get("href")
        for el in rss.iter("{http://www.w3.org/2005/Atom}link")
        if el.get("rel") == "hub"
    } == hubs
    assert {h["url"] for h in json.loads(request(server, "/feeds/all.json")[2])["hubs"]} == hubs


def test_the_first_scan_of_a_new_store_pings_nobody_and_an_edit_pings_what_changed(hubbed):
    server, flaky, refusing = hubbed
    wait_for_scans(server, timeout=30)
    # the baseline scan into an empty database announced nothing: nothing changed for anyone
    assert flaky.pings() == [] and refusing.pings() == []

    (server.seeds / "new.md").write_text(
        "---\ntitle: 新的\ncategories: [新媒体, 36kr]\nauthor: 36kr\ndate: 2022-01-01T00:00:00Z\n---\n<p>x</p>\n"
    )
    changed = feed_urls(
        server,
        "/feeds/all",
        "/feeds/categories/" + quote("新媒体"),
        "/feeds/categories/" + quote("新媒体") + "/" + quote("36kr"),
        "/feeds/authors/" + quote("36kr"),
    )
    wait_for(lambda: len(flaky.pings()) >= len(changed))
    wait_for(lambda: len(refusing.pings()) >= len(changed))
    assert {p["form"]["hub.url"][0] for p in flaky.pings()} == changed
    assert {p["form"]["hub.url"][0] for p in refusing.pings()} == changed
    assert all(p["form"]["hub.mode"] == ["publish"] for p in flaky.pings() + refusing.pings())
    assert all(p["ua"].startswith("feedsvc/") for p in flaky.pings())

    def counted():
        websub = json.loads(request(server, "/status")[2])["websub"]
        return (
            websub
            if websub["pending"] == 0 and websub["sent"] + websub["failed"] == 2 * len(changed)
            else None
        )

    websub = wait_for(counted)
    assert websub["sent"] == len(changed)
    assert websub["failed"] == len(changed)  # 400 is final: counted, not retried
    assert websub["retries"] == 2  # the flaky hub's two 503s were retried
    metrics = request(server, "/metrics")[2].decode()
    assert f'feedsvc_websub_pings_total{{outcome="failed"}} {float(websub["failed"])}' in metrics


def test_an_unchanged_scan_pings_nobody(hubbed):
    server, flaky, _refusing = hubbed
    (server.seeds / "new.md").write_text("---\ntitle: 新的\ndate: 2022-01-01T00:00:00Z\n---\nx\n")
    wait_for(lambda: json.loads(request(server, "/status")[2])["websub"]["sent"] >= 3)
    count = len(flaky.pings())
    (server.seeds / "ignored.md~").write_text("not a seed")  # an editor leftover: no change
    wait_for_scans(server, timeout=30)
    assert len(flaky.pings()) == count


# -- replicas ---------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_on_one_postgresql_database_answer_identically(pg_url, tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    first, second = [  # started together: both try to lead
        serve(seeds, pg_url, wait=False, FEEDSVC_BASE_URL="https://feeds.example.org")
        for _ in range(2)
    ]
    first.wait_ready()
    second.wait_ready()
    paths = ["/", "/opml"]
    for outline in etree.fromstring(request(first, "/opml")[2]).iter("outline"):
        if outline.get("xmlUrl"):
            base = urlsplit(str(outline.get("xmlUrl"))).path[: -len(".atom")]
            paths += [
                base + ".atom",
                base + ".rss",
                base + ".json?limit=5",
                base + ".atom?limit=1&page=2",
            ]
    compared = 0
    for path in paths:
        for encoding in ("identity", "gzip", "br"):
            a = request(first, path, Accept_Encoding=encoding)
            b = request(second, path, Accept_Encoding=encoding)
            assert a[0] == b[0], path
            assert a[2] == b[2], (path, encoding)
            for header in (
                "etag",
                "last-modified",
                "content-type",
                "cache-control",
                "content-encoding",
            ):
                assert a[1].get(header) == b[1].get(header), (path, header)
            compared += 1
    assert compared > 400

    # exactly one replica scans, and every worker of each replica says the same
    answers = [
        {json.loads(request(server, "/status")[2])["scanner"] for _ in range(12)}
        for server in (first, second)
    ]
    assert sorted(answers, key=sorted) == [{False}, {True}]
    assert first.stop() == 0
    assert second.stop() == 0
    shutil.rmtree(seeds)


def test_a_scan_invalidates_only_the_feeds_it_changed(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", FEEDSVC_WORKERS="1")
    untouched = "/feeds/categories/" + quote("新媒体") + "/" + quote("高科技行业门户") + ".atom"
    touched = "/feeds/categories/" + quote("新媒体") + "/" + quote("快科技（原驱动之家）") + ".atom"
    before = {path: request(server, path) for path in (untouched, touched)}
    assert renders(server) == 2
    path = seeds / "001_33e289dd104536e3.txt"
    path.write_text(path.read_text().replace("雷军押上一切打造", "雷军押上一切打造（更新）"))
    wait_for(lambda: request(server, touched)[1]["etag"] != before[touched][1]["etag"])
    assert renders(server) == 3  # the changed feed, once
    again = request(server, untouched)
    assert again[2] == before[untouched][2] and again[1]["etag"] == before[untouched][1]["etag"]
    assert renders(server) == 3  # the unchanged feed came from the cache
