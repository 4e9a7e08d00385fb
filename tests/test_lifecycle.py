"""Feeds over their lifetime, as readers see them: a scope that loses its last entry, a
deletion a document cannot show, and what every document does to an entry (RSS summaries,
OPML, RSSHub's format and hotlink templates). In-process with a clock the test moves, and
through a real server read by feedparser as a reader polls (ETag and Last-Modified)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import feedparser
import pytest
import requests
from lxml import etree
from werkzeug.test import Client, TestResponse

from feedsvc.app import build, create_app
from feedsvc.config import Settings
from feedsvc.model import Format, Scope, ScopeKind
from feedsvc.query import parse_query
from feedsvc.scan import Scanner
from feedsvc.store import Store
from tests.helpers import Clock
from tests.server import wait_for

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SEED = "---\ntitle: {title}\ndate: {date}\ncategories: [{category}]\nauthor: 记者\n{extra}---\n{body}\n"
ATOM = "{http://www.w3.org/2005/Atom}"
TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}deleted-entry"


def write(seeds: Path, name: str, category: str, day: int, body: str = "", extra: str = "") -> None:
    date = (START - timedelta(days=40 - day)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    text = SEED.format(
        title=f"第{day}条",
        date=date,
        category=category,
        extra=extra,
        body=body or f"<p>正文{day}</p>",
    )
    (seeds / name).write_text(text)


class Site:
    """A seed directory, a scanner with a clock, and the app reading the same store."""

    def __init__(self, tmp_path: Path, **values: object) -> None:
        self.seeds = tmp_path / "seeds"
        self.seeds.mkdir(parents=True)
        self.settings = Settings(
            seeds=self.seeds,
            db=f"sqlite:///{tmp_path}/db.sqlite3",
            base_url="http://feeds.example.test",
            delete_grace=0,
            **values,  # type: ignore[arg-type]
        )
        self.clock = Clock(START)
        self.store = Store(self.settings.db)
        self.scanner = Scanner(self.store, self.settings, clock=self.clock)
        self.app = create_app(build(self.settings, follow=False))
        self.client = Client(self.app)

    def scan(self, hours: float = 1) -> None:
        self.clock.advance(hours * 3600)
        self.scanner.scan()
        self.app.extensions["feedsvc"].service.refresh()

    def get(self, path: str, **headers: str) -> TestResponse:
        return self.client.get(path, headers=headers)

    def close(self) -> None:
        self.app.extensions["feedsvc"].service.store.close()
        self.store.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path, tombstone_days=1)
    yield made
    made.close()


def test_a_scope_that_loses_its_last_entry_is_empty_then_gone(site: Site) -> None:
    write(site.seeds, "a.md", "快讯", 1)
    write(site.seeds, "b.md", "快讯", 2)
    write(site.seeds, "c.md", "其他", 3)
    site.scan()
    feed, page = "/feeds/categories/" + quote("快讯"), "/categories/" + quote("快讯")
    assert len(feedparser.parse(site.get(feed + ".atom").get_data()).entries) == 2
    (site.seeds / "a.md").unlink()
    (site.seeds / "b.md").unlink()
    site.scan()
    # while it has tombstones: an empty feed that tells readers what left, never a 404
    atom = site.get(feed + ".atom")
    assert atom.status_code == 200
    root = etree.fromstring(atom.get_data())
    assert root.findall(f"{ATOM}entry") == [] and len(root.findall(TOMBSTONE)) == 2
    for ext in ("rss", "json"):
        response = site.get(f"{feed}.{ext}")
        assert response.status_code == 200
        assert feedparser.parse(response.get_data()).entries == [] or ext == "json"
    assert json.loads(site.get(feed + ".json").get_data())["items"] == []
    assert site.get(page).status_code == 200
    # listed nowhere: it has nothing to subscribe to
    assert quote("快讯") not in site.get("/opml").get_data(as_text=True)
    site.scan(hours=25)  # the tombstones expire
    for path in (feed + ".atom", feed + ".rss", feed + ".json", page):
        response = site.get(path)
        assert response.status_code == 410, path
        assert response.get_data(as_text=True).count("\n") == 1
    assert site.get("/feeds/categories/" + quote("从未有过") + ".atom").status_code == 404
    write(site.seeds, "d.md", "快讯", 4)  # a new entry brings it back
    site.scan()
    assert [e.title for e in feedparser.parse(site.get(feed + ".atom").get_data()).entries] == [
        "第4条"
    ]


def test_validators_move_exactly_when_the_bytes_move(tmp_path: Path) -> None:
    site = Site(tmp_path, feed_limit=3)
    try:
        for day in range(1, 6):
            write(site.seeds, f"{day}.md", "快讯", day)
        site.scan()
        paths = [
            f"/feeds/all.{ext}{query}"
            for ext in ("atom", "rss", "json")
            for query in ("", "?page=2")
        ]
        before = {path: site.get(path) for path in paths}
        (site.seeds / "1.md").unlink()  # the oldest: beyond the first page
        site.scan()
        after = {path: site.get(path) for path in paths}
        for path in paths:
            same_bytes = before[path].get_data() == after[path].get_data()
            same_etag = before[path].headers["ETag"] == after[path].headers["ETag"]
            assert same_bytes == same_etag, path
        # RSS and JSON cannot tell of the deletion, and page 1 does not show it: unmoved
        assert after["/feeds/all.rss"].headers["ETag"] == before["/feeds/all.rss"].headers["ETag"]
        assert after["/feeds/all.json"].headers["ETag"] == before["/feeds/all.json"].headers["ETag"]
        # Atom's first page carries the tombstone, and page 2 lost an entry: both moved
        assert after["/feeds/all.atom"].headers["ETag"] != before["/feeds/all.atom"].headers["ETag"]
        moved = after["/feeds/all.rss?page=2"].headers["ETag"]
        assert moved != before["/feeds/all.rss?page=2"].headers["ETag"]
        etag = after["/feeds/all.json"].headers["ETag"]
        assert site.get("/feeds/all.json", **{"If-None-Match": etag}).status_code == 304
        # a reader sending only If-Modified-Since misses nothing: an entry dated before the
        # newest is news all the same, and so is a deletion RSS cannot show
        modified = after["/feeds/all.rss"].headers["Last-Modified"]
        write(site.seeds, "late.md", "快讯", 3, body="<p>迟到</p>")  # dated before 4 and 5
        site.scan()
        assert site.get("/feeds/all.rss", **{"If-Modified-Since": modified}).status_code == 200
        modified = site.get("/feeds/all.rss").headers["Last-Modified"]
        (site.seeds / "4.md").unlink()
        site.scan()
        assert site.get("/feeds/all.rss", **{"If-Modified-Since": modified}).status_code == 200
    finally:
        site.close()


def test_rss_summary_is_text_and_opml_links_each_scope_page(site: Site) -> None:
    write(site.seeds, "a.md", "快讯", 1, body="use &lt;b&gt; for bold &amp; more")
    site.scan()
    rss = etree.fromstring(site.get("/feeds/all.rss").get_data())
    description = rss.find("channel/item/description")
    assert description is not None
    # HTML whose text is the summary: a reader shows "use <b> for bold & more"
    assert description.text == "use &lt;b&gt; for bold &amp; more"
    parsed = feedparser.parse(site.get("/feeds/all.rss").get_data())
    assert parsed.entries[0].summary == "use &lt;b&gt; for bold &amp; more"  # (HTML as given)
    opml = etree.fromstring(site.get("/opml").get_data())
    urls = {o.get("xmlUrl"): o.get("htmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")}
    category = "http://feeds.example.test/categories/" + quote("快讯")
    assert urls[category.replace("/categories/", "/feeds/categories/") + ".atom"] == category
    assert urls["http://feeds.example.test/feeds/all.atom"] == "http://feeds.example.test/"


def test_a_moving_time_window_renders_only_when_an_entry_leaves_it(site: Site) -> None:
    write(site.seeds, "old.md", "快讯", 1)  # dated 39 days before START
    write(site.seeds, "new.md", "快讯", 39)  # dated 1 day before START
    (site.seeds / "undated.md").write_text(
        "---\ntitle: 无日期\ncategories: [快讯]\n---\n<p>x</p>\n"
    )
    site.scan()
    service = site.app.extensions["feedsvc"].service
    scope = Scope(ScopeKind.CATEGORY, ("快讯",))
    day = 86400
    newest = START.timestamp() - day  # the dated entry that stays longest in a 2-day window

    def titles_at(now: float) -> list[str]:
        query = parse_query({"filter_time": [str(2 * day)]}, clock=lambda: now)
        return [
            e.title
            for e in feedparser.parse(service.feed(scope, Format.ATOM, 1, 20, query).body).entries
        ]

    before = service.renders
    assert titles_at(START.timestamp()) == ["无日期", "第39条"]
    for second in range(1, 50):  # the cut-off moves by the second: the same document
        assert titles_at(START.timestamp() + second) == ["无日期", "第39条"]
    assert service.renders == before + 1
    assert titles_at(newest + 2 * day + 1) == ["无日期"]  # the dated entry left: rendered again
    assert service.renders == before + 2


IMAGES = (
    '<p><img src="https://img.cls.cn/a.jpg?x=1"></p>'
    '<picture><source srcset="https://img.cls.cn/s.webp 1x, https://img.cls.cn/s2.webp 2x">'
    "</picture>"
    '<video poster="https://v.example/p.png" src="https://v.example/v.mp4"></video>'
    '<audio src="https://a.example/a.mp3"></audio>'
)


def test_hotlink_templates_follow_rsshub(tmp_path: Path) -> None:
    template = "https://proxy.example/?url=${href_ue}"
    site = Site(tmp_path / "user", allow_user_hotlink_template=True)
    forced = Site(tmp_path / "operator", hotlink_template="https://wsrv.example/${host}${pathname}")
    locked: Site | None = None
    try:
        for each in (site, forced):
            write(
                each.seeds,
                "a.md",
                "快讯",
                1,
                body=IMAGES,
                extra="headimg: https://img.cls.cn/h.jpg\n",
            )
            each.scan()
        asked = "/feeds/all.json?image_hotlink_template=" + quote(template)
        item = json.loads(site.get(asked).get_data())["items"][0]
        assert (
            'src="https://proxy.example/?url=https%3A%2F%2Fimg.cls.cn%2Fa.jpg%3Fx%3D1"'
            in (item["content_html"])
        )
        assert (
            'poster="https://proxy.example/?url=https%3A%2F%2Fv.example%2Fp.png"'
            in (item["content_html"])
        )
        assert 'src="https://v.example/v.mp4"' in item["content_html"]  # media: its own template
        proxy = "https://proxy.example/?url=https%3A%2F%2Fimg.cls.cn%2F"
        assert f'srcset="{proxy}s.webp 1x, {proxy}s2.webp 2x"' in item["content_html"]
        assert item["image"] == "https://proxy.example/?url=https%3A%2F%2Fimg.cls.cn%2Fh.jpg"
        both = asked + "&multimedia_hotlink_template=" + quote("https://m.example${pathname}")
        media = json.loads(site.get(both).get_data())["items"][0]["content_html"]
        assert 'src="https://m.example/v.mp4"' in media and 'src="https://m.example/a.mp3"' in media
        bad = site.get("/feeds/all.json?image_hotlink_template=" + quote("https://x/${nope}"))
        assert bad.status_code == 400 and "nope" in bad.get_data(as_text=True)
        control = site.get(
            "/feeds/all.atom?image_hotlink_template=" + quote("https://x/\x1f${href}")
        )
        assert control.status_code == 400  # (XML cannot carry it: never a 500)
        # the operator's template applies to every document and wins over a request's
        plain = json.loads(forced.get("/feeds/all.json").get_data())["items"][0]
        assert 'src="https://wsrv.example/img.cls.cn/a.jpg"' in plain["content_html"]
        assert 'src="https://wsrv.example/a.example/a.mp3"' in plain["content_html"]
        assert plain["image"] == "https://wsrv.example/img.cls.cn/h.jpg"
        assert forced.get(asked).get_data() == forced.get("/feeds/all.json").get_data()
        page = forced.get("/entries/" + plain["id"].removeprefix("urn:uuid:")).get_data(
            as_text=True
        )
        assert (
            "https://wsrv.example/img.cls.cn/a.jpg" in page and "img.cls.cn/a.jpg?x=1" not in page
        )
        # not allowed by the operator: a request's template is ignored
        locked = Site(tmp_path / "locked")
        write(locked.seeds, "a.md", "快讯", 1, body=IMAGES)
        locked.scan()
        assert locked.get(asked).get_data() == locked.get("/feeds/all.json").get_data()
    finally:
        for made in (site, forced, locked):
            if made is not None:
                made.close()


def test_a_reader_polling_an_emptied_scope_learns_of_the_deletions(tmp_path: Path, serve) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write(seeds, "a.md", "快讯", 1)
    write(seeds, "b.md", "其他", 2)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", FEEDSVC_DELETE_GRACE="0")
    url = server.url + "/feeds/categories/" + quote("快讯") + ".atom"
    first = feedparser.parse(url)
    assert first.status == 200 and len(first.entries) == 1
    again = feedparser.parse(url, etag=first.etag, modified=first.modified)
    assert again.status == 304
    (seeds / "a.md").unlink()
    # (until every worker has loaded the scan: each request reaches one at random, so
    # 16 in a row from the same one of two workers is a chance of one in 30,000)
    wait_for(lambda: all(b"deleted-entry" in server_bytes(url) for _ in range(16)), 60)
    emptied = feedparser.parse(url, etag=first.etag, modified=first.modified)
    assert emptied.status == 200 and emptied.entries == [] and emptied.etag != first.etag
    assert feedparser.parse(url, etag=emptied.etag, modified=emptied.modified).status == 304


def server_bytes(url: str) -> bytes:
    return requests.get(url, timeout=10).content
