"""The fast WSGI layer in front of Flask answers feed URLs exactly as Flask's view does:
the same status, headers and bytes for every URL form, query, method and conditional or
encoding header; 304s and cached documents never reach Flask or a render. In-process, with
Werkzeug's test client, on a store a real scan filled."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from werkzeug.test import Client

from feedsvc.config import Settings
from feedsvc.model import Format
from feedsvc.scan import Scanner
from feedsvc.store import Store
from feedsvc.web import create_app
from tests.conftest import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus

QUERIES = [
    "",
    "?limit=5",
    "?limit=1&page=2",
    "?page=999999",
    "?limit=abc",
    "?limit=1&limit=2",
    "?page=0",
    "?limit=100000",
    "?utm_source=x&limit=3",
    "?limit=%FF",
]
ODD_PATHS = [
    "/feeds/nope.atom",
    "/feeds/all.xml",
    "/feeds/all",
    "/feeds/categories/%2F.atom",
    "/feeds/authors/a/b.atom",
    "/feeds/categories/%E6%96%B0%E5%AA%92%E4%BD%93.json",
    "/feeds/categories/" + quote("新媒体") + "/" + quote("快科技（原驱动之家）") + ".rss",
    "/feeds/categories/%C0%AF.atom",
    "/feeds/tags/%00.atom",
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fast")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    settings = Settings(
        seeds=seeds,
        db=f"sqlite:///{workdir}/db.sqlite3",
        base_url="http://feeds.example.test",
        websub_hubs=("https://hub.example/publish/",),
    )
    store = Store(settings.db)
    Scanner(store, settings).scan()
    store.close()
    app = create_app(settings, watch=False)
    yield app
    app.extensions["feedsvc"].store.close()


def answer(client: Client, method: str, path: str, headers: dict[str, str]):
    response = client.open(path, method=method, headers=headers)
    return response.status, sorted(response.headers.items()), response.get_data()


def feed_paths(app) -> list[str]:
    service = app.extensions["feedsvc"].service
    return [s.scope.url_path(fmt) for s in service.summaries() for fmt in Format]


def test_every_feed_url_form_gets_the_same_answer_from_both_paths(app):
    fast, flask_only = Client(app), Client(app.wsgi_app.wsgi_app)
    paths = feed_paths(app)
    assert len(paths) >= 300
    compared = 0
    for path in [*paths, *ODD_PATHS]:
        thorough = path in paths[:6]
        for query in QUERIES if thorough else QUERIES[:2] if path in ODD_PATHS else [""]:
            target = path + query
            plain = answer(flask_only, "GET", target, {})
            etag = dict(plain[1]).get("ETag", '"none"')
            modified = dict(plain[1]).get("Last-Modified", "Sat, 01 Jan 2000 00:00:00 GMT")
            header_sets = [
                {},
                {"Accept-Encoding": "gzip"},
                {"Accept-Encoding": "br, gzip"},
                {"Accept-Encoding": "gzip;q=0, identity"},
                {"If-None-Match": etag},
                {"If-None-Match": f'"other", W/{etag}'},
                {"If-None-Match": "*"},
                {"If-None-Match": '"other"', "If-Modified-Since": modified},
                {"If-Modified-Since": modified},
                {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
            ]
            for headers in header_sets if thorough or path in ODD_PATHS else header_sets[:5]:
                for method in ("GET", "HEAD"):
                    expected = answer(flask_only, method, target, headers)
                    assert answer(fast, method, target, headers) == expected, (target, headers)
                    compared += 1
    assert compared > 4000


def test_304s_and_cached_documents_never_reach_flask_or_a_render(app):
    state = app.extensions["feedsvc"]
    client = Client(app)
    paths = feed_paths(app)[:30]
    before = state.service.renders
    etags = {}
    for path in paths:
        etags[path] = dict(answer(client, "GET", path, {})[1])["ETag"]
    rendered = state.service.renders - before
    assert rendered <= len(paths)  # at most once each (the first test may have cached some)

    def no_flask(_environ, _start_response):
        raise AssertionError("the request reached Flask")

    only_fast = Client(type(app.wsgi_app)(state, no_flask))
    for path in paths:
        assert (
            answer(only_fast, "GET", path, {"If-None-Match": etags[path]})[0] == "304 NOT MODIFIED"
        )
        for encoding in ("identity", "gzip", "br"):
            status, _headers, body = answer(only_fast, "GET", path, {"Accept-Encoding": encoding})
            assert status == "200 OK" and body
    assert state.service.renders - before == rendered


def test_before_the_first_scan_both_paths_say_retry(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    settings = Settings(seeds=seeds, db=f"sqlite:///{tmp_path}/db.sqlite3")
    app = create_app(settings, watch=False)
    try:
        fast, flask_only = Client(app), Client(app.wsgi_app.wsgi_app)
        for target in ("/feeds/all.atom", "/feeds/nope.rss?limit=x"):
            expected = answer(flask_only, "GET", target, {})
            assert expected[0] == "503 SERVICE UNAVAILABLE"
            assert answer(fast, "GET", target, {}) == expected
    finally:
        app.extensions["feedsvc"].store.close()
