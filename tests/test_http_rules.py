"""The HTTP rules, each asserted once and over every way a request comes in: the serving ASGI
layers in this process (``asgi``), a real `feedsvc serve` (``server``) and nginx with the
shipped config in front of it (``nginx``), all on one store a real scan filled. Conditional
GET and HEAD, encodings, one-line 4xx answers with their reasons, security headers. Each way
is sent exactly the headers a case names: no automatic compression or decoding."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import partial
from typing import Protocol
from urllib.parse import quote

import brotli
import pytest

from feedsvc.app import build, create_app
from feedsvc.config import Settings
from feedsvc.model import stable_uuid
from feedsvc.scan import Scanner
from feedsvc.store import Store
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import Answer, ServerProcess, Servers, asgi_client, exchange

CATEGORY_PATH = (
    "/feeds/categories/" + quote("新媒体", safe="") + "/" + quote("快科技（原驱动之家）", safe="")
)


class Way(Protocol):
    def __call__(self, target: str, method: str = "GET", **headers: str) -> Answer: ...


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The seeds and the database every way serves, filled by one scan."""
    workdir = tmp_path_factory.mktemp("rules")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    settings = Settings(seeds=seeds, db=f"sqlite:///{workdir}/db.sqlite3")
    store = Store(settings.db)
    Scanner(store, settings).scan()
    store.close()
    return settings


@pytest.fixture(scope="module")
def served(stocked: Settings, serve_module: Servers) -> ServerProcess:
    """One real server on the shared store (its own scans find nothing new)."""
    return serve_module(stocked.seeds, stocked.db, FEEDSVC_SCAN_INTERVAL="3600")


WAYS = [
    "asgi",
    pytest.param("server", marks=pytest.mark.e2e),
    pytest.param("nginx", marks=pytest.mark.e2e),
]


@pytest.fixture(scope="module", params=WAYS)
def way(request: pytest.FixtureRequest, stocked: Settings) -> Iterator[Way]:
    if request.param == "asgi":
        app = create_app(build(stocked, follow=False))
        client = asgi_client(app)

        def send(target: str, method: str = "GET", **headers: str) -> Answer:
            response = client.open(
                target, method=method, headers={k.replace("_", "-"): v for k, v in headers.items()}
            )
            return Answer(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.get_data(),
            )

        yield send
        app.extensions["feedsvc"].service.store.close()
        return
    server: ServerProcess = request.getfixturevalue("served")
    if request.param == "server":
        yield partial(exchange, server.port)
        return
    serve: Servers = request.getfixturevalue("serve_module")
    yield partial(exchange, serve.nginx([server.port, server.port]).port)


# -- conditional GET and HEAD ----------------------------------------------------------------


def conditional_cases(etag: str, last_modified: str) -> list[tuple[str, dict[str, str], int]]:
    later = format_datetime(parsedate_to_datetime(last_modified).replace(year=2099), usegmt=True)
    earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    return [
        ("GET", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": f'"a", {etag}, "b"'}, 304),
        ("GET", {"If-None-Match": "*"}, 304),
        ("GET", {"If-None-Match": "W/" + etag}, 304),
        ("GET", {"If-None-Match": f'"nope", W/{etag}'}, 304),  # weak comparison, in a list
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
        ("HEAD", {}, 200),
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
def test_every_conditional_path_keeps_the_validators(way: Way, path: str) -> None:
    first = way(path)
    assert first.status == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for method, headers, expected in conditional_cases(etag, modified):
        got = way(path, method, **headers)
        assert got.status == expected, (method, headers)
        assert got.headers["etag"] == etag and got.headers["last-modified"] == modified
        assert got.headers["cache-control"] == first.headers["cache-control"]
        if got.status == 304 or method == "HEAD":
            assert got.body == b""
        else:
            assert got.body == first.body


# -- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/feeds/all.atom", "/feeds/all.rss", "/", "/opml"])
def test_encodings_are_negotiated_and_kept(way: Way, path: str) -> None:
    plain = way(path, Accept_Encoding="identity")
    assert "content-encoding" not in plain.headers
    zipped = way(path, Accept_Encoding="gzip")
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert int(zipped.headers["content-length"]) == len(zipped.body)
    for asked in ("gzip, br", "br, gzip"):
        squeezed = way(path, Accept_Encoding=asked)
        assert squeezed.headers["content-encoding"] == "br"
        assert brotli.decompress(squeezed.body) == plain.body
    assert way(path, Accept_Encoding="br;q=0, gzip").body == zipped.body
    assert way(path, Accept_Encoding="gzip").body == zipped.body  # the same bytes again
    for answer in (plain, zipped, squeezed):
        assert answer.headers["vary"] == "Accept-Encoding"
        assert answer.headers["etag"] == plain.headers["etag"]
    head = way(path, "HEAD", Accept_Encoding="gzip")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == zipped.headers["content-length"]
    assert head.headers["etag"] == plain.headers["etag"]


# -- bad requests: a status and one line saying why ------------------------------------------


@pytest.mark.parametrize(
    ("target", "status", "reason"),
    [
        ("/feeds/all.atom?limit=abc", 400, "limit must be a whole number, got 'abc'"),
        ("/feeds/all.atom?limit=-1", 400, "limit must be a whole number, got '-1'"),
        ("/feeds/all.atom?limit=ten", 400, "limit must be a whole number"),
        ("/feeds/all.atom?limit=%00", 400, ""),
        ("/feeds/all.atom?limit=1&limit=2", 400, "limit is given more than once"),
        ("/feeds/all.atom?page=-1", 400, "page must be a whole number"),
        ("/feeds/all.atom?page=x1", 400, "page must be a whole number"),
        ("/feeds/all.atom?page=1e3", 400, "page must be a whole number"),
        ("/feeds/all.atom?page=1&page=2", 400, "page is given more than once"),
        ("/feeds/all.atom?page=99999999999999999999", 400, "page must be a whole number"),
        ("/feeds/all.atom?filter=(unclosed", 400, ""),
        ("/feeds/all.atom?filter_title=(?=lookahead)", 400, ""),
        ("/feeds/all.atom?filterout=a**", 400, ""),
        ("/feeds/all.atom?page=0", 400, "page must be a whole number from 1 to 1000000"),
        ("/feeds/all.atom?brief=50", 400, "brief must be a whole number from 100 to 100000"),
        ("/feeds/all.atom?brief=0", 400, "brief must be a whole number from 100 to 100000"),
        ("/feeds/all.atom?brief=1e3", 400, "brief must be a whole number from 100 to 100000"),
        ("/feeds/all.atom?brief=100001", 400, "brief must be a whole number from 100 to 100000"),
        ("/feeds/all.atom?opencc=zh2klingon", 400, ""),
        ("/feeds/all.atom?filter_time=yesterday", 400, ""),
        ("/feeds/all.atom?format=xml", 400, ""),
        ("/feeds/all.atom?page=999999", 404, ""),
        ("/feeds/nope.atom", 404, ""),
        ("/feeds/categories/%E6%97%A0.atom", 404, ""),
        ("/feeds/authors/nobody.rss", 404, ""),
        ("/feeds/tags/none.json", 404, ""),
        ("/feeds/all.xml", 404, ""),
        ("/feeds/categories/.atom", 404, ""),
        ("/feeds/authors/a/b.atom", 404, ""),
        ("/feeds/categories/%FF%FE.atom", 404, ""),
        ("/feeds/all.atom/extra", 404, ""),
        ("/entries/not-an-id", 404, ""),
        (f"/entries/{stable_uuid('path', 'missing.md')}", 404, ""),
        ("/nowhere", 404, ""),
    ],
)
def test_bad_requests_get_a_status_and_one_line(
    way: Way, target: str, status: int, reason: str
) -> None:
    answer = way(target)
    assert answer.status == status
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    text = answer.body.decode()
    assert text.startswith(reason) and text.endswith("\n") and text.count("\n") == 1


# -- headers every answer of a kind carries --------------------------------------------------


def test_pages_carry_their_security_headers_and_status_is_never_cached(way: Way) -> None:
    index = way("/")
    assert "default-src 'none'" in index.headers["content-security-policy"]
    assert index.headers["x-content-type-options"] == "nosniff"
    status = way("/status")
    assert status.headers["cache-control"] == "no-store"
    assert json.loads(status.body)["entries"] == 48
