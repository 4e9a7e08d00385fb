"""Every feed built from the real corpus, in every format, checked the way readers read it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import jsonschema
import pytest
from lxml import etree

from feedsvc.feeds import FeedPage, render
from feedsvc.model import Format, Scope, ScopeKind
from feedsvc.routes import page_path
from feedsvc.scan import Scanner
from feedsvc.service import FeedService
from feedsvc.store import Store
from tests.helpers import TESTS

SCHEMA = json.loads((TESTS / "jsonfeed-1.1.schema.json").read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The whole corpus scanned once into SQLite, with every feed rendered at limit 100."""
    from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus

    tmp = tmp_path_factory.mktemp("feeds")
    seeds = copy_corpus(tmp / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    from feedsvc.config import Settings

    settings = Settings(
        seeds=seeds, db=f"sqlite:///{tmp}/db.sqlite3", base_url="http://feeds.example.test"
    )
    store = Store(settings.db)
    Scanner(store, settings).scan()
    service = FeedService(store, settings)
    service.refresh()
    feeds = {}
    for summary in service.summaries():
        for fmt in Format:
            feeds[(summary.scope, fmt)] = service.feed(summary.scope, fmt, 1, 100).body
    yield settings, store, feeds
    store.close()


def stored(store: Store, scope: Scope):
    return store.page(scope, 0, 100)[0]


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_there_is_a_feed_for_every_scope_in_three_formats(served):
    _settings, store, feeds = served
    scopes = {s.scope for s in store.scope_summaries()}
    assert len(feeds) == 3 * len(scopes)
    kinds = {scope.kind for scope in scopes}
    assert kinds == {ScopeKind.ALL, ScopeKind.CATEGORY, ScopeKind.AUTHOR}


def test_xml_feeds_are_well_formed_and_parse_cleanly_with_the_stored_values(served):
    _settings, store, feeds = served
    checked = 0
    for (scope, fmt), body in feeds.items():
        if fmt is Format.JSON:
            continue
        etree.fromstring(body)  # well-formed XML, or this raises
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0, (scope, fmt, parsed.get("bozo_exception"))
        assert parsed.version == ("atom10" if fmt is Format.ATOM else "rss20")
        entries = stored(store, scope)
        assert [e.id for e in parsed.entries] == [e.urn for e in entries]
        assert [e.title for e in parsed.entries] == [e.title for e in entries]
        for got, want in zip(parsed.entries, entries, strict=True):
            assert datetime(*got.published_parsed[:6]).replace(tzinfo=UTC) == want.published
            if fmt is Format.ATOM:
                assert datetime(*got.updated_parsed[:6]).replace(tzinfo=UTC) == want.updated
                assert got.author == want.authors[0].name
            else:
                assert got.author == want.authors[0].name  # dc:creator
            if want.image:
                assert got.media_thumbnail[0]["url"] == want.image
                assert got.enclosures[0]["href"] == want.image
        checked += 1
    assert checked == 2 * len(feeds) // 3


def test_json_feeds_follow_json_feed_1_1(served):
    _settings, store, feeds = served
    for (scope, fmt), body in feeds.items():
        if fmt is not Format.JSON:
            continue
        document = json.loads(body)
        jsonschema.validate(document, SCHEMA)
        entries = stored(store, scope)
        assert [i["id"] for i in document["items"]] == [e.urn for e in entries]
        assert [i["title"] for i in document["items"]] == [e.title for e in entries]
        for item, entry in zip(document["items"], entries, strict=True):
            assert parse_date(item["date_published"]) == entry.published
            assert parse_date(item["date_modified"]) == entry.updated


def test_feed_metadata_names_its_scope_and_never_the_clock(served):
    settings, store, feeds = served
    scope = Scope(ScopeKind.CATEGORY, ("新媒体", "快科技（原驱动之家）"))
    atom = feedparser.parse(feeds[(scope, Format.ATOM)])
    assert atom.feed.title == "Category: 新媒体 › 快科技（原驱动之家） · feedsvc"
    assert atom.feed.id == scope.feed_id
    self_link = next(link.href for link in atom.feed.links if link.rel == "self")
    assert (
        self_link
        == settings.public_url
        + "/feeds/categories/%E6%96%B0%E5%AA%92%E4%BD%93/%E5%BF%AB%E7%A7%91%E6%8A%80%EF%BC%88%E5%8E%9F%E9%A9%B1%E5%8A%A8%E4%B9%8B%E5%AE%B6%EF%BC%89.atom?limit=100"
    )
    newest = max(e.updated for e in stored(store, scope))
    assert datetime(*atom.feed.updated_parsed[:6]).replace(tzinfo=UTC) == newest
    rss = feedparser.parse(feeds[(scope, Format.RSS)])
    assert rss.feed.link == settings.public_url + page_path(scope)  # the scope's HTML page
    ids = {scope.feed_id for scope in {s for s, _ in feeds}}
    assert len(ids) == len(feeds) // 3  # every feed has its own id


def test_entries_are_newest_first_then_by_id(served):
    _settings, store, _feeds = served
    entries = stored(store, Scope.all())
    keys = [(e.published, e.id) for e in entries]
    assert keys == sorted(keys, reverse=True)


def test_rendering_is_a_pure_function_of_its_input(served):
    settings, store, _feeds = served
    entries = stored(store, Scope.all())[:5]
    page = FeedPage(Scope.all(), entries, 1, 1, 5)
    for fmt in Format:
        assert render(settings, page, fmt) == render(settings, page, fmt)


def test_an_empty_site_still_has_valid_site_feeds(tmp_path):
    from feedsvc.config import Settings

    settings = Settings(seeds=tmp_path, db=f"sqlite:///{tmp_path}/db.sqlite3")
    store = Store(settings.db)
    service = FeedService(store, settings)
    service.refresh()
    for fmt in Format:
        body = service.feed(Scope.all(), fmt, 1, 20).body
        if fmt is Format.JSON:
            jsonschema.validate(json.loads(body), SCHEMA)
        else:
            assert feedparser.parse(body).bozo == 0
    store.close()


def test_the_browser_stylesheet_is_referenced_and_exists(served):
    settings, _store, feeds = served
    body = feeds[(Scope.all(), Format.ATOM)]
    assert (
        f'<?xml-stylesheet href="{settings.public_url}/static/feed.xsl" type="text/xsl"?>'.encode()
        in body
    )
    xsl = Path(__file__).parents[1] / "feedsvc" / "web" / "static" / "feed.xsl"
    transform = etree.XSLT(etree.parse(str(xsl)))
    html = str(transform(etree.fromstring(body)))
    assert "feed reader" in html and "<li>" in html
