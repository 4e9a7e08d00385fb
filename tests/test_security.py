"""Security, end to end against a real server serving the hostile corpus: sanitised output
wherever HTML is produced or embedded, odd URLs answered 404 or 400 (never 500, never a stack
trace), security headers on HTML, and nothing outside the seeds directory ever read."""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import quote

import feedparser
import pytest
from lxml import etree, html

from feedsvc.model import Format, Scope, ScopeKind, stable_uuid
from feedsvc.routes import feed_path
from tests.helpers import TESTS
from tests.server import exchange

SECRET = "TOP-SECRET-OUTSIDE-THE-SEEDS"
DANGEROUS = re.compile(
    r"<[^>]*(\son[a-z]+\s*=|=\s*[\"']?\s*(javascript|vbscript|data):)", re.IGNORECASE
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_module):
    workdir = tmp_path_factory.mktemp("security")
    seeds = workdir / "seeds"
    shutil.copytree(TESTS / "hostile", seeds)
    (seeds / "MANIFEST.tsv").unlink()
    (seeds / "make_corpus.py").unlink()
    secret = workdir / "secret.md"
    secret.write_text(f"---\ntitle: {SECRET}\n---\n<p>{SECRET}</p>\n")
    (seeds / "link-out.md").symlink_to(secret)
    (seeds / "etc-passwd.md").symlink_to("/etc/passwd")
    return serve_module(seeds, f"sqlite:///{workdir}/data/db.sqlite3")


def html_is_inert(document: bytes) -> None:
    """No script but the site's own file, no form but its search box, no frame or handler
    anywhere: every tag and attribute in the page is checked."""
    tree = html.fromstring(document)
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "script":  # only /static/site.js, never inline
            assert element.get("src", "").endswith("/static/site.js") and not element.text
            continue
        if element.tag == "form":  # only the site's own search box, asking this site
            assert element.get("role") == "search" and element.get("method") == "get"
            assert element.get("action", "").startswith("http://127.0.0.1:")
            continue
        assert element.tag not in (
            "iframe",
            "object",
            "embed",
            "form",
            "base",
            "svg",
            "math",
        ), element.tag
        for name, value in element.attrib.items():
            assert not str(name).lower().startswith("on"), (element.tag, name)
            assert (
                not str(value).strip().lower().startswith(("javascript:", "vbscript:", "data:"))
            ), (
                element.tag,
                value,
            )


def test_index_and_every_entry_page_are_inert(server):
    status, headers, body = exchange(server.port, "/")
    assert status == 200
    html_is_inert(body)
    assert b"&lt;img src=x onerror=alert(1)&gt;" in body  # the hostile author name, as text
    for name in (
        "value-title-html.md",
        "value-body-xss.md",
        "value-author-html.md",
        "value-names-slash-percent.md",
    ):
        status, headers, body = exchange(server.port, f"/entries/{stable_uuid('path', name)}")
        assert status == 200, name
        html_is_inert(body)
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    _status, _headers, body = exchange(
        server.port, f"/entries/{stable_uuid('path', 'value-title-html.md')}"
    )
    assert b"&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in body


def test_feed_content_and_titles_are_sanitised_and_escaped(server):
    for fmt in ("atom", "rss"):
        status, _headers, body = exchange(server.port, f"/feeds/all.{fmt}?limit=100")
        assert status == 200
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0
        titles = {entry.title for entry in parsed.entries}
        assert '<script>alert("t")</script><b>bold</b>' in titles  # a title is text, escaped in XML
        for entry in parsed.entries:
            for content in entry.get("content", []):
                lowered = content.value.lower()
                assert "<script" not in lowered and "<iframe" not in lowered
                assert not DANGEROUS.search(content.value), content.value[:300]
    _status, _headers, body = exchange(server.port, "/feeds/all.json?limit=100")
    for item in json.loads(body)["items"]:
        assert "<script" not in item["content_html"].lower()
        assert not DANGEROUS.search(item["content_html"])


def test_the_browser_view_of_a_feed_is_inert(server):
    _status, _headers, xsl = exchange(server.port, "/static/feed.xsl")
    transform = etree.XSLT(etree.fromstring(xsl))
    for fmt in ("atom", "rss"):
        _status, _headers, body = exchange(server.port, f"/feeds/all.{fmt}?limit=100")
        page = str(transform(etree.fromstring(body))).encode()
        html_is_inert(page)
        assert b"&lt;script&gt;" in page


def test_nothing_outside_the_seeds_directory_is_read(server):
    for path in ("/", "/feeds/all.atom?limit=100", "/feeds/all.json?limit=100", "/opml", "/status"):
        _status, _headers, body = exchange(server.port, path)
        assert SECRET.encode() not in body and b"root:x:0:0" not in body
    status = json.loads(exchange(server.port, "/status")[2])
    assert all(
        not error["path"].startswith("/") and ".." not in error["path"]
        for error in status["errors"]
    )


ODD_TARGETS = [
    "/feeds/../../etc/passwd",
    "/feeds/%2e%2e/%2e%2e/etc/passwd.atom",
    "/feeds/categories/%2e%2e.atom",
    "/feeds/categories/..%2F..%2Fetc%2Fpasswd.atom",
    "/feeds/categories/%2F.atom",
    "/feeds/categories/%c0%ae%c0%ae/x.atom",
    "/feeds/categories/%e0%80%ae.atom",
    "/feeds/categories/%00.atom",
    "/feeds/categories/a%00b.atom",
    "/feeds/authors/%ff.rss",
    "/feeds/authors/" + "a" * 5000 + ".atom",
    "/feeds/categories/" + "/".join(["x"] * 500) + ".atom",
    "/feeds/all.atom?page=99999999999999999999999",
    "/feeds/all.atom?limit=-1",
    "/feeds/all.atom?limit=1e9",
    "/feeds/all.atom?page=%00",
    "/feeds/all.atom?page=%EF%BC%91",  # a full-width digit one
    "/feeds/all.atom?limit=" + "%EF%BC%99" * 10,  # full-width digit nines
    "/entries/..%2F..%2Fetc%2Fpasswd",
    "/entries/%00",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2F..%2Fsecret.md",
    "/opml/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "/feeds/all.atom/",
    "/feeds/",
    "/feeds",
    "/nonexistent",
]


@pytest.mark.parametrize("target", ODD_TARGETS)
def test_odd_urls_are_refused_cleanly(server, target):
    status, _headers, body = exchange(server.port, target)
    assert status in (400, 404, 414), (status, body[:200])
    assert b"Traceback" not in body and b'File "' not in body
    assert b"root:x:0:0" not in body and SECRET.encode() not in body


def test_names_with_slashes_and_percents_have_working_feeds(server):
    for scope in (  # the list [a/b, 100%, '%2F'] is one hierarchy of three levels
        Scope(ScopeKind.CATEGORY, ("a/b",)),
        Scope(ScopeKind.CATEGORY, ("a/b", "100%")),
        Scope(ScopeKind.CATEGORY, ("a/b", "100%", "%2F")),
        Scope(ScopeKind.TAG, ("c/d",)),
    ):
        status, _headers, body = exchange(server.port, feed_path(scope, Format.ATOM))
        assert status == 200, scope
        assert feedparser.parse(body).bozo == 0
    assert (
        exchange(server.port, "/feeds/categories/a/b.atom")[0] == 404
    )  # a/b is one name, not two levels
    assert (
        exchange(server.port, "/feeds/categories/a%2Fb/" + quote("100%", safe="") + "/%252F.rss")[0]
        == 200
    )


def test_no_debug_pages_and_no_stack_traces(server):
    status, _headers, body = exchange(
        server.port, "/feeds/all.atom?__debugger__=yes&cmd=resource&f=style.css"
    )
    assert status == 200 and b"Werkzeug" not in body
    status, _headers, body = exchange(server.port, "/console")
    assert status == 404 and b"Werkzeug" not in body
    assert "Traceback" not in server.log.read_text()
