"""Aggregator-grade HTTP, driven with raw requests (tests.server.exchange) against real
servers: validators per representation, a 304 that renders nothing, paging, WebSub pings to a
real local hub, the browser view, and byte-identical answers from two processes on one
database. (Conditional GET, encodings and 4xx answers themselves: test_http_rules.py.)"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser
import pytest
from lxml import etree

from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import HubProcess, ServerProcess, exchange, run, wait_for, wait_for_scans

CATEGORY_PATH = (
    "/feeds/categories/" + quote("新媒体", safe="") + "/" + quote("快科技（原驱动之家）", safe="")
)


def renders(server) -> float:
    _status, _headers, body = exchange(server.port, "/metrics")
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
        status, headers, _body = exchange(corpus_server.port, path)
        assert status == 200, path
        assert re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])
        etags.append(headers["etag"])
    assert len(set(etags)) == len(paths)


@pytest.mark.parametrize("query", ["", "?limit=3", "?limit=3&page=2", "?limit=7&page=7"])
def test_last_modified_is_the_newest_update_in_that_response(corpus_server, query):
    status, headers, body = exchange(corpus_server.port, "/feeds/all.atom" + query)
    assert status == 200
    newest = max(
        datetime(*e.updated_parsed[:6]).replace(tzinfo=UTC) for e in feedparser.parse(body).entries
    )
    assert parsedate_to_datetime(headers["last-modified"]) == newest


def test_a_304_never_renders_a_feed(corpus_server, serve):
    """A second process on the same database starts with nothing rendered; revalidating
    every feed there costs no rendering at all."""
    feeds = []
    for outline in etree.fromstring(exchange(corpus_server.port, "/opml")[2]).iter("outline"):
        if outline.get("xmlUrl"):
            feeds.append(urlsplit(str(outline.get("xmlUrl"))).path)
    validators = {path: exchange(corpus_server.port, path)[1]["etag"] for path in feeds}
    cold = serve(corpus_server.seeds, corpus_server.db, FEEDSVC_BASE_URL=corpus_server.url, **QUIET)
    for path, etag in validators.items():
        assert exchange(cold.port, path, **{"If-None-Match": etag})[0] == 304
    assert renders(cold) == 0
    assert exchange(cold.port, feeds[0])[0] == 200
    assert exchange(cold.port, feeds[0], Accept_Encoding="gzip")[0] == 200
    assert exchange(cold.port, feeds[0], Accept_Encoding="br")[0] == 200
    assert renders(cold) == 1  # rendered once, compressed forms kept with it


def test_cache_control_and_rss_ttl_follow_the_scan_interval(corpus_server):
    _s, headers, body = exchange(corpus_server.port, "/feeds/all.rss")
    assert headers["cache-control"] == "public, max-age=120"
    assert etree.fromstring(body).findtext("channel/ttl") == str(math.ceil(120 / 60))


def test_rfc5005_paging_in_every_format(corpus_server):
    url = corpus_server.url
    atom = feedparser.parse(exchange(corpus_server.port, "/feeds/all.atom?limit=10&page=2")[2])
    links = {link.rel: link.href for link in atom.feed.links}
    assert links["first"] == f"{url}/feeds/all.atom?limit=10"
    assert links["previous"] == f"{url}/feeds/all.atom?limit=10"
    assert links["next"] == f"{url}/feeds/all.atom?limit=10&page=3"
    assert links["last"] == f"{url}/feeds/all.atom?limit=10&page=5"
    rss = etree.fromstring(exchange(corpus_server.port, "/feeds/all.rss?limit=10&page=5")[2])
    atom_links = {
        el.get("rel"): el.get("href") for el in rss.iter("{http://www.w3.org/2005/Atom}link")
    }
    assert (
        atom_links["previous"] == f"{url}/feeds/all.rss?limit=10&page=4"
        and "next" not in atom_links
    )
    first_json = json.loads(exchange(corpus_server.port, "/feeds/all.json?limit=10")[2])
    assert first_json["next_url"] == f"{url}/feeds/all.json?limit=10&page=2"
    assert "next_url" not in json.loads(
        exchange(corpus_server.port, "/feeds/all.json?limit=10&page=5")[2]
    )
    assert exchange(corpus_server.port, "/feeds/all.json?limit=10&page=6")[0] == 404
    seen = []
    for page in range(1, 6):
        seen += [
            e.id
            for e in feedparser.parse(
                exchange(corpus_server.port, f"/feeds/all.atom?limit=10&page={page}")[2]
            ).entries
        ]
    assert len(seen) == len(set(seen)) == 48


def test_browser_view_stylesheet(corpus_server):
    _s, _h, body = exchange(corpus_server.port, CATEGORY_PATH + ".atom", Accept="text/html")
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet href=")
    assert feedparser.parse(body).bozo == 0
    status, headers, xsl = exchange(corpus_server.port, "/static/feed.xsl")
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


def add_news(server) -> set[str]:
    """Write a seed file that changes four feeds; their documents' URLs."""
    (server.seeds / "new.md").write_text(
        "---\ntitle: 新的\ncategories: [新媒体, 36kr]\nauthor: 36kr\ndate: 2022-01-01T00:00:00Z\n---\n<p>x</p>\n"
    )
    return feed_urls(
        server,
        "/feeds/all",
        "/feeds/categories/" + quote("新媒体"),
        "/feeds/categories/" + quote("新媒体") + "/" + quote("36kr"),
        "/feeds/authors/" + quote("36kr"),
    )


def websub_status(server) -> dict[str, Any]:
    websub: dict[str, Any] = json.loads(exchange(server.port, "/status")[2])["websub"]
    return websub


def test_feeds_advertise_their_hubs(hubbed):
    server, flaky, refusing = hubbed
    status, headers, body = exchange(server.port, "/feeds/all.atom")
    assert status == 200
    assert (
        f'<{flaky.url}>; rel="hub"' in headers["link"]
        and f'<{server.url}/feeds/all.atom>; rel="self"' in headers["link"]
    )
    hubs = {link.href for link in feedparser.parse(body).feed.links if link.rel == "hub"}
    assert hubs == {flaky.url, refusing.url}
    rss = etree.fromstring(exchange(server.port, "/feeds/all.rss")[2])
    assert {
        el.get("href")
        for el in rss.iter("{http://www.w3.org/2005/Atom}link")
        if el.get("rel") == "hub"
    } == hubs
    assert {
        h["url"] for h in json.loads(exchange(server.port, "/feeds/all.json")[2])["hubs"]
    } == hubs


def test_the_first_scan_of_a_new_store_pings_nobody_and_an_edit_pings_what_changed(hubbed):
    server, flaky, refusing = hubbed
    wait_for_scans(server, timeout=30)
    # the baseline scan into an empty database announced nothing: nothing changed for anyone
    assert flaky.pings() == [] and refusing.pings() == []

    changed = add_news(server)
    # (each hub at its own pace: the flaky one's retries wait, the refusing one's do not)
    for hub in (flaky, refusing):
        wait_for(lambda hub=hub: {p["form"]["hub.url"][0] for p in hub.pings()} == changed)
    assert len(flaky.pings()) == len(changed) + 2 and len(refusing.pings()) == len(changed)
    assert all(p["form"]["hub.mode"] == ["publish"] for p in flaky.pings() + refusing.pings())
    assert all(p["ua"].startswith("feedsvc/") for p in flaky.pings())

    def counted():
        websub = websub_status(server)
        return (
            websub
            if websub["pending"] == 0 and websub["sent"] + websub["failed"] == 2 * len(changed)
            else None
        )

    websub = wait_for(counted)
    assert websub["sent"] == len(changed)
    assert websub["failed"] == len(changed)  # 400 is final: counted, not retried
    assert websub["retries"] == 2  # the flaky hub's two 503s were retried
    metrics = exchange(server.port, "/metrics")[2].decode()
    assert f'feedsvc_websub_pings_total{{outcome="failed"}} {float(websub["failed"])}' in metrics


def test_an_unchanged_scan_pings_nobody(hubbed):
    server, flaky, _refusing = hubbed
    (server.seeds / "new.md").write_text("---\ntitle: 新的\ndate: 2022-01-01T00:00:00Z\n---\nx\n")
    wait_for(lambda: websub_status(server)["sent"] >= 3)
    count = len(flaky.pings())
    (server.seeds / "ignored.md~").write_text("not a seed")  # an editor leftover: no change
    wait_for_scans(server, timeout=30)
    assert len(flaky.pings()) == count


def test_a_hub_that_hangs_delays_no_other_and_a_new_leader_sends_what_was_left(tmp_path, serve):
    """Each hub has its own queue; a digest is told once every hub has had its ping, so what
    a leader killed with -9 had not sent is sent by the next one, counts carried on."""
    hanging, answering = serve.hub("--hang"), serve.hub()
    server = serve(
        copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS),
        f"sqlite:///{tmp_path}/db.sqlite3",
        FEEDSVC_WEBSUB_HUBS=f"{hanging.url},{answering.url}",
        FEEDSVC_WORKERS="1",
    )
    wait_for_scans(server, timeout=30)
    changed = add_news(server)
    wait_for(lambda: websub_status(server)["sent"] == len(changed))
    assert {p["form"]["hub.url"][0] for p in answering.pings()} == changed
    assert len(hanging.pings()) == 1  # (still waiting for its answer)
    assert websub_status(server)["pending"] >= len(changed) - 1  # the hanging hub's
    leader = server.leader()
    assert leader is not None
    os.kill(leader, signal.SIGKILL)
    # (the hanging hub's first ping takes about 43 s to be given up, and everything then
    # queued for it with it: only what it still held when the leader died is sent again)
    left = set() if f"{hanging.url} is not answering" in server.log.read_text() else changed
    wait_for(lambda: len(answering.pings()) == len(changed) + len(left), timeout=60)
    assert {p["form"]["hub.url"][0] for p in answering.pings()[len(changed) :]} == left
    wait_for(lambda: websub_status(server)["sent"] == len(changed) + len(left))


@pytest.fixture
def one_hub(tmp_path, serve):
    """Start a hub answering as its arguments say, and a server on the two sample seeds
    pinging it, once its baseline scan is done."""

    def start(*args: str) -> tuple[ServerProcess, HubProcess]:
        hub = serve.hub(*args)
        seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
        db = f"sqlite:///{tmp_path}/db.sqlite3"
        server = serve(seeds, db, FEEDSVC_WEBSUB_HUBS=hub.url, FEEDSVC_WORKERS="1")
        wait_for_scans(server, timeout=30)
        return server, hub

    return start


def test_a_hub_that_never_answers_one_ping_is_given_up_for_what_is_queued(one_hub):
    server, down = one_hub("--status", "503")
    changed = add_news(server)
    websub = wait_for(lambda: (w := websub_status(server))["failed"] == len(changed) and w)
    assert websub["retries"] == 3 and websub["pending"] == 0  # (one ping's: 4 tries in all)
    assert len(down.pings()) == 4
    log = server.log.read_text()
    assert f"{down.url} is not answering: giving up the {len(changed) - 1} more pings" in log


@pytest.mark.slow  # (4 tries of 10 s each)
def test_a_hub_trickling_its_answer_is_given_up_like_one_that_hangs(one_hub):
    """The read timeout restarts with every byte: each try has a deadline of its own."""
    server, drip = one_hub("--drip")
    changed = add_news(server)
    websub = wait_for(lambda: (w := websub_status(server))["failed"] == len(changed) and w, 120)
    assert websub["pending"] == 0 and websub["retries"] == 3 and len(drip.pings()) == 4
    assert f"{drip.url} is not answering" in server.log.read_text()


def test_changes_no_leader_announced_are_announced_by_the_next(one_hub, serve, tmp_path):
    """A hand-run scan pings nobody, as a leader that died before pinging did not; new
    feeds are news too, once the hubs were told of anything."""
    server, hub = one_hub()
    assert server.stop() == 0
    changed = add_news(server)
    environ = {"FEEDSVC_SEEDS": str(server.seeds), "FEEDSVC_DB": server.db}
    assert run("scan", cwd=tmp_path, env=environ).returncode == 0
    assert hub.pings() == []
    again = serve(
        server.seeds, server.db, port=server.port, FEEDSVC_WEBSUB_HUBS=hub.url, FEEDSVC_WORKERS="1"
    )
    wait_for(lambda: websub_status(again)["sent"] == len(changed))
    assert sorted(p["form"]["hub.url"][0] for p in hub.pings()) == sorted(changed)


def test_a_hub_answering_an_endless_body_is_told_and_never_read(one_hub):
    server, endless = one_hub("--endless")
    changed = add_news(server)
    wait_for(lambda: websub_status(server)["sent"] == len(changed))
    assert {p["form"]["hub.url"][0] for p in endless.pings()} == changed


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
    for outline in etree.fromstring(exchange(first.port, "/opml")[2]).iter("outline"):
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
            a = exchange(first.port, path, Accept_Encoding=encoding)
            b = exchange(second.port, path, Accept_Encoding=encoding)
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
        {json.loads(exchange(server.port, "/status")[2])["scanner"] for _ in range(12)}
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
    before = {path: exchange(server.port, path) for path in (untouched, touched)}
    assert renders(server) == 2
    path = seeds / "001_33e289dd104536e3.txt"
    path.write_text(path.read_text().replace("雷军押上一切打造", "雷军押上一切打造（更新）"))
    wait_for(lambda: exchange(server.port, touched)[1]["etag"] != before[touched][1]["etag"])
    assert renders(server) == 3  # the changed feed, once
    again = exchange(server.port, untouched)
    assert again[2] == before[untouched][2] and again[1]["etag"] == before[untouched][1]["etag"]
    assert renders(server) == 3  # the unchanged feed came from the cache
