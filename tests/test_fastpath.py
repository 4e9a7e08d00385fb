"""The ASGI layer `feedsvc serve` runs answers feed URLs exactly as Flask's view does: the
same status, headers and bytes for every URL form, query, method and conditional or encoding
header; 304s and cached documents never reach Flask or a render. In-process (the ASGI
callable driven directly, Flask through Werkzeug's test client) on a store a real scan filled."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import quote, unquote

import pytest
from sqlalchemy import event
from werkzeug.http import http_date
from werkzeug.test import Client

from feedsvc.app import build, create_app
from feedsvc.config import Settings
from feedsvc.model import Format, Html
from feedsvc.routes import feed_path, page_path
from feedsvc.scan import Scanner
from feedsvc.store import Store
from feedsvc.web.asgi import ASGIApp, FastPath, Finish, FlaskBridge, compose
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus

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
    app = create_app(build(settings, follow=False))
    yield app
    app.extensions["feedsvc"].service.store.close()


def asgi_answer(app: ASGIApp, method: str, target: str, headers: dict[str, str]):
    """The ASGI application's answer, in the same form, from one HTTP scope as a server
    would build it (the raw path kept percent-encoded)."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "scheme": "http",
        "http_version": "1.1",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "server": ("localhost", 80),
        "headers": [
            (b"host", b"localhost"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def answer() -> None:
        await app(scope, receive, send)

    asyncio.run(answer())
    start = sent[0]
    named = sorted((k.decode().lower(), v.decode("latin-1")) for k, v in start["headers"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], named, body


def application(app) -> ASGIApp:
    return compose(app)


def flask_only(app) -> ASGIApp:
    """The same layers with no fast path: every request answered by Flask."""
    return Finish(FlaskBridge(app, threads=2))


def feed_paths(app) -> list[str]:
    service = app.extensions["feedsvc"].service
    return [feed_path(s.scope, fmt) for s in service.summaries() for fmt in Format]


def test_every_feed_url_form_gets_the_same_answer_from_both_paths(app):
    fast, slow = application(app), flask_only(app)
    paths = feed_paths(app)
    assert len(paths) >= 300
    compared = 0
    for path in [*paths, *ODD_PATHS]:
        thorough = path in paths[:6]
        for query in QUERIES if thorough else QUERIES[:2] if path in ODD_PATHS else [""]:
            target = path + query
            plain = asgi_answer(slow, "GET", target, {})
            etag = dict(plain[1]).get("etag", '"none"')
            modified = dict(plain[1]).get("last-modified", "Sat, 01 Jan 2000 00:00:00 GMT")
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
                    expected = asgi_answer(slow, method, target, headers)
                    assert asgi_answer(fast, method, target, headers) == expected, (
                        target,
                        headers,
                    )
                    compared += 1
    assert compared > 4000


def test_304s_and_cached_documents_never_reach_flask_or_a_render(app):
    state = app.extensions["feedsvc"]
    paths = feed_paths(app)[:30]
    before = state.service.renders
    etags = {}
    for path in paths:
        etags[path] = dict(asgi_answer(application(app), "GET", path, {})[1])["etag"]
    rendered = state.service.renders - before
    assert rendered <= len(paths)  # at most once each (the first test may have cached some)

    async def no_flask(_scope, _receive, _send):
        raise AssertionError("the request reached Flask")

    fast = Finish(FastPath(state, no_flask))
    for path in paths:
        assert asgi_answer(fast, "GET", path, {"If-None-Match": etags[path]})[0] == 304
        for encoding in ("identity", "gzip", "br"):
            status, _headers, body = asgi_answer(fast, "GET", path, {"Accept-Encoding": encoding})
            assert status == 200 and body
    assert state.service.renders - before == rendered


def test_before_the_first_scan_both_paths_say_retry(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    settings = Settings(seeds=seeds, db=f"sqlite:///{tmp_path}/db.sqlite3")
    app = create_app(build(settings, follow=False))
    try:
        fast, slow = application(app), flask_only(app)
        for target in ("/feeds/all.atom", "/feeds/nope.rss?limit=x"):
            expected = asgi_answer(slow, "GET", target, {})
            assert expected[0] == 503
            assert asgi_answer(fast, "GET", target, {}) == expected
    finally:
        app.extensions["feedsvc"].service.store.close()


def test_the_event_loop_never_reads_the_store(tmp_path):
    """Every statement a request costs runs in the thread pool the ASGI layer hands Flask,
    never on the event loop's thread: validators not known yet are learnt there."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS)
    settings = Settings(seeds=seeds, db=f"sqlite:///{tmp_path}/db.sqlite3")
    store = Store(settings.db)
    Scanner(store, settings).scan()
    store.close()
    app = create_app(build(settings, follow=False))
    state = app.extensions["feedsvc"]
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def statement(_conn, _cursor, sql, *_args) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(sql)

    event.listen(state.service.store.engine, "before_cursor_execute", statement)
    fast = application(app)
    try:
        for path in feed_paths(app)[:40]:
            for page in ("", "?page=2", "?limit=3"):
                for headers in ({"If-None-Match": '"stale"'}, {}):
                    status = asgi_answer(fast, "GET", path + page, headers)[0]
                    assert status in (200, 304, 404)  # (404: a page past the last)
    finally:
        event.remove(state.service.store.engine, "before_cursor_execute", statement)
        state.service.store.close()
    assert on_loop == []


def two_replicas(tmp_path):
    """Two apps (as two replicas would be) over one store a real scan filled, and a way to
    scan an edit into it; the second renders, the first is counted."""
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    settings = Settings(seeds=seeds, db=f"sqlite:///{tmp_path}/db.sqlite3", feed_limit=3)
    store = Store(settings.db)
    scanner = Scanner(store, settings)
    scanner.scan()
    counted, rendering = (create_app(build(settings, follow=False)) for _ in range(2))
    return settings, store, scanner, counted, rendering


def documents(app, scopes, limits=(None, 1, 7)):
    """Every plain document of these scopes: each format, every page of each limit."""
    service = app.extensions["feedsvc"].service
    for summary in service.summaries():
        if summary.scope not in scopes:
            continue
        for limit in limits:
            per_page = limit or service.settings.feed_limit
            for page in range(1, max(1, -(-summary.count // per_page)) + 1):
                query = "&".join(
                    part
                    for part in (
                        f"page={page}" if page > 1 else "",
                        f"limit={limit}" if limit else "",
                    )
                    if part
                )
                for fmt in Format:
                    yield feed_path(summary.scope, fmt) + ("?" + query if query else "")
                yield page_path(summary.scope) + ("?" + query if query else "")


def test_validators_known_from_memory_are_the_rendered_documents(tmp_path):
    """For every scope, format, page and limit, the ETag and Last-Modified a process knows
    without reading equal those of the document rendered from the store (a property over
    the whole corpus: the two are computed from the same digests and times)."""
    settings, store, _scanner, counted, rendering = two_replicas(tmp_path)
    try:
        memory = counted.extensions["feedsvc"].service
        every = {s.scope for s in memory.summaries()}
        checked = 0
        for target in documents(rendering, every):
            path, _, query = target.partition("?")
            args = dict(part.split("=") for part in query.split("&") if part)
            page, limit = int(args.get("page", 1)), int(args.get("limit", settings.feed_limit))
            scope, variant = _document(memory, path)
            known = memory.validators(scope, variant, page, limit, read=False)
            assert known is not None, target
            rendered = Client(rendering).get(target)
            assert rendered.status_code == 200, target
            assert known[0] == rendered.headers["ETag"], target
            assert http_date(known[1]) == rendered.headers["Last-Modified"], target
            checked += 1
        assert checked > 1000
    finally:
        for app in (counted, rendering):
            app.extensions["feedsvc"].service.store.close()
        store.close()


def _document(service, path):
    """The scope and variant a path names (a feed's or a scope's page)."""
    found = service.feed_at(path)
    if found is not None:
        return found
    return service.page_at(path), Html.PAGE


def test_a_304_for_every_document_of_a_freshly_changed_scope_reads_nothing(tmp_path):
    settings, store, scanner, counted, rendering = two_replicas(tmp_path)
    statements: list[str] = []

    def count(_conn, _cursor, sql, *_args) -> None:
        statements.append(sql)

    engine = counted.extensions["feedsvc"].service.store.engine
    try:
        edited = next(settings.seeds.rglob("*.md"))
        edited.write_text(edited.read_text().replace("</", "<p>an edit</p></", 1))
        report = scanner.scan()
        assert report.changed_scopes
        for app in (counted, rendering):  # the catch-up each process makes (it reads)
            assert app.extensions["feedsvc"].service.refresh()
        fast = application(counted)
        targets = [t for t in documents(rendering, set(report.changed_scopes)) if "/feeds/" in t]
        etags = {t: Client(rendering).get(t).headers["ETag"] for t in targets}
        event.listen(engine, "before_cursor_execute", count)
        for target in targets:
            status, headers, _body = asgi_answer(
                fast, "GET", target, {"If-None-Match": etags[target]}
            )
            assert status == 304, target
            assert dict(headers)["etag"] == etags[target]
        event.remove(engine, "before_cursor_execute", count)
        assert len(targets) > 50
        assert statements == []  # not one read: every validator came from memory
    finally:
        for app in (counted, rendering):
            app.extensions["feedsvc"].service.store.close()
        store.close()
