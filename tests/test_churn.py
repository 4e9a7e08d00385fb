"""The producer's hourly churn is no news, on real-shaped files (SQLite and PostgreSQL).

Image URLs whose query changes on every run (random placeholders, cache-busting queries)
change nothing a reader sees; a headline edit, which renames the file (file names are
titles), keeps the entry's id instead of giving every reader a duplicate. Scans run on a
clock the tests move; the end-to-end tests run a real server, a real hub and a real reader
(feedparser, with ETag and Last-Modified as a reader keeps them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import feedparser
import pytest
import requests
from lxml import etree

from feedsvc.feeds import TOMBSTONES_NS
from feedsvc.locks import ScanLocks
from feedsvc.model import Entry, Scope, ScopeKind, stable_uuid
from feedsvc.revisions import same_to_readers
from feedsvc.scan import Scanner
from feedsvc.seeds import parse_seed
from feedsvc.store import Store
from tests.helpers import MAX_GROWTH, REAL_CORPUS, START, Clock, move_mtimes, state, work
from tests.server import ServerProcess, Servers, wait_for, wait_for_scans

UTC = ZoneInfo("UTC")

# The shape of the producer's 财联社 telegraph files (see tests/corpus/real): a blank line,
# quoted title, 1-space list indent, a placeholder headimg, the body in a <div>.
CLS = (
    "\n---\ntitle: '{title}'\ncategories: \n - 金融\n - 财联社\n - 电报\n"
    "headimg: '{image}'\nauthor: 财联社\ncomments: false\ndate: {date}\n"
    "thumbnail: '{image}'\n---\n\n<div>   \n{body}  \n</div>\n            "
)
DATE = "Wed, 06 Apr 2022 10:56:28 GMT"
BODY = (
    "财联社4月6日电，龙头股份午后再度涨停，四连板，成交额超5亿元。公司此前公告称，"
    "经自查不存在应披露而未披露的重大信息。"
)
OLD_TITLE = "龙头股份午后再度涨停，四连扳"
NEW_TITLE = "龙头股份午后再度涨停，四连板"
TELEGRAPH = Scope(ScopeKind.CATEGORY, ("金融", "财联社", "电报"))


def cls(title: str = OLD_TITLE, body: str = BODY, run: int = 1, **fields: Any) -> str:
    values = {
        "title": title,
        "image": f"https://picsum.photos/400/300?random={4400 + run}",
        "date": DATE,
        "body": body,
        **fields,
    }
    return CLS.format(**values)


def churned(run: int) -> dict[str, str]:
    """Real-shaped files whose image URLs carry a new query on every run: a random
    placeholder in a telegraph's body, and a host's cache-busting query on a lead image, a
    srcset and a video poster."""
    placeholder = f'<img src="https://picsum.photos/400/300?random={9000 + run}">'
    return {
        "盘中宝：储能板块持续走强.md": cls(
            "盘中宝：储能板块持续走强", "财联社4月6日电，储能板块持续走强。" + placeholder, run
        ),
        "Soho区惊魂夜.md": (
            "\n---\ntitle: 'Soho区惊魂夜'\ncategories: \n - 音视频\n - 低端影视\n - 首页\n"
            f"headimg: 'https://tvax4.sinaimg.cn/large/007Pu4zFly1gw.jpg?t={1733051234 + run}'\n"
            "author: 低端影视\ncomments: false\ndate: Fri, 26 Nov 2021 09:08:19 GMT\n---\n\n"
            f'<div>   \n<picture><source srcset="https://tvax4.sinaimg.cn/large/a.jpg?t={run}'
            f'&amp;w=1 1x, https://tvax4.sinaimg.cn/large/a@2x.jpg?t={run} 2x">'
            f'<img src="https://tvax4.sinaimg.cn/large/a.jpg?t={run}#top"></picture>'
            f'<video src="https://v.example.test/soho.mp4?sig={run}" '
            f'poster="https://v.example.test/soho.jpg?t={run}" controls></video>'
            '<p>剧情：<a href="https://ddys.tv/soho?ep=1">第一集</a></p>  \n</div>\n'
        ),
    }


def write_all(seeds: Path, files: dict[str, str]) -> None:
    """What the producing job does each hour: delete the files and write them again."""
    for name, text in files.items():
        path = seeds / name
        path.unlink(missing_ok=True)
        path.write_text(text)


@pytest.fixture
def scanner(corpus_dir, db_url, make_settings) -> Iterator[Scanner]:
    store = Store(db_url)
    yield Scanner(store, make_settings(corpus_dir, db_url), clock=Clock(START))
    store.close()


def later(scanner: Scanner, seconds: int = 3600) -> None:
    """An hour on, every file touched (as the hourly rewrite leaves them)."""
    assert isinstance(scanner.clock, Clock)
    scanner.clock.advance(seconds)
    move_mtimes(scanner.settings.seeds, seconds)


def now(scanner: Scanner):  # the scanner's clock, as an aware datetime
    assert isinstance(scanner.clock, Clock)
    return scanner.clock.now


def by_title(store: Store, title: str) -> list[Entry]:
    return [entry for entry in store.all_entries() if entry.title == title]


def tombstoned(store: Store) -> set[str]:
    """Every entry id with a tombstone in some feed."""
    return {
        entry_id
        for summary in store.scope_summaries()
        for entry_id, _when in store.tombstones(summary.scope, 1000)
    }


# -- image URLs whose query churns ---------------------------------------------------------


def parsed(text: str, rel: str = "a.md") -> Entry:
    entry = parse_seed(text.encode(), rel, "http://feeds.example.test", UTC).entry
    assert entry is not None
    return entry


def proxied(run: int) -> str:
    """A real Bangumi seed: its cover behind a proxy whose query is the picture's URL."""
    return (
        "\n---\ntitle: 'SPY×FAMILY｜SPY FAMILY｜间谍过家家'\ncategories: \n - 二次元\n"
        " - Bangumi\n - 放送列表\nheadimg: 'https://cors.zfour.workers.dev/"
        f"?http://lain.bgm.tv/pic/cover/l/de/4a/329906_hmtVD.jpg&r={run}'\n"
        "author: Bangumi\ncomments: false\ndate: Sat, 30 Apr 2022 14:00:00 GMT\n---\n\n"
        '<div>   \n<img src="https://cors.zfour.workers.dev/?http://lain.bgm.tv/pic/'
        f'cover/l/de/4a/329906_hmtVD.jpg&r={run}" referrerpolicy="no-referrer"><ul><li>'
        '<a href="https://bangumi.tv/subject/329906">番组计划</a></li></ul>  \n</div>\n'
    )


def test_image_queries_alone_are_no_difference_anything_else_is():
    files = churned(1)
    for name, text in files.items():
        first, second = parsed(text), parsed(churned(2)[name])
        assert first != second and same_to_readers(second, first), name
    soho = files["Soho区惊魂夜.md"]
    for edit in (
        soho.replace("a@2x.jpg", "b@2x.jpg"),  # an image's path
        soho.replace("soho?ep=1", "soho?ep=2"),  # a link's query
        soho.replace("第一集", "第二集"),  # text
        soho.replace("soho.jpg?t=1", "soho2.jpg?t=1"),  # a poster's path
    ):
        assert edit != soho
        assert not same_to_readers(parsed(edit), parsed(soho))
    # after anything but a picture file the query may name the picture: a change is news
    assert not same_to_readers(parsed(proxied(2)), parsed(proxied(1)))
    thumbnail = "https://mind42.com/api/ajax/mindmapThumbnail?size=gallery&mindmapId="
    mind = f'---\ntitle: 学习\nheadimg: "{thumbnail}1"\n---\n<p><img src="{thumbnail}1"></p>\n'
    assert not same_to_readers(parsed(mind.replace("Id=1", "Id=2")), parsed(mind))
    # a query-like run inside another attribute's value is that attribute's text
    titled = '---\ntitle: t\n---\n<p><img src="x.jpg" alt="see src=\'y.jpg?a\'"></p>\n'
    assert not same_to_readers(parsed(titled), parsed(titled.replace("?a", "?b")))


@pytest.mark.parametrize(
    "unit",
    [
        '<img src="a.jpg?q=1">',
        "<img ",  # a tag never closed
        '<img src="',  # a quote never closed
        "<img src='x?",
        '<video poster="p?1"><source srcset="a?1 1x, b?2 2x">',
    ],
)
def test_comparing_image_urls_is_linear(unit):
    entry = parsed("---\ntitle: t\n---\n<p>x</p>\n")

    def compare(times: int) -> int:
        old = replace(entry, content=unit * times)
        new = replace(entry, content=(unit * times).replace("1", "2"))
        return work(lambda: same_to_readers(new, old))

    assert compare(4000) / compare(1000) <= MAX_GROWTH


def test_the_hourly_rewrite_with_new_image_queries_changes_nothing(scanner):
    seeds = scanner.settings.seeds
    write_all(seeds, churned(1))
    scanner.scan()
    before = state(scanner)
    served = {entry.id: entry for entry in scanner.store.all_entries()}
    for run in range(2, 5):
        later(scanner)
        write_all(seeds, churned(run))
        report = scanner.scan()
        assert (report.added, report.updated, report.removed) == (0, 0, 0)
        assert report.changed_scopes == []
        assert state(scanner) == before  # generation, every ETag, every byte
        assert {entry.id: entry for entry in scanner.store.all_entries()} == served
    # a change a reader sees takes the new version whole, queries and all
    later(scanner)
    files = churned(5)
    soho = files["Soho区惊魂夜.md"].replace("第一集", "第二集")
    (seeds / "Soho区惊魂夜.md").write_text(soho)
    report = scanner.scan()
    assert report.updated == 1
    entry = scanner.store.entry(stable_uuid("path", "Soho区惊魂夜.md"))
    assert entry.updated == now(scanner) and "第二集" in entry.content
    assert "a.jpg?t=5#top" in entry.content and entry.image.endswith(f"?t={1733051234 + 5}")


# -- a headline edit renames the file ------------------------------------------------------


def rename(seeds: Path, old: str = OLD_TITLE, new: str = NEW_TITLE, **fields: Any) -> None:
    (seeds / f"{old}.md").unlink()
    (seeds / f"{new}.md").write_text(cls(new, **fields))


def renamed(scanner: Scanner) -> str:
    """The old headline's file stored, then renamed to the new headline and scanned an
    hour later (as the hourly rewrite leaves files): the old file's path id."""
    seeds = scanner.settings.seeds
    (seeds / f"{OLD_TITLE}.md").write_text(cls())
    scanner.scan()
    later(scanner)
    rename(seeds)
    scanner.scan()
    return stable_uuid("path", f"{OLD_TITLE}.md")


def test_a_headline_edit_keeps_the_entry(corpus_dir, db_url, make_settings):
    store = Store(db_url)
    scanner = Scanner(store, make_settings(corpus_dir, db_url, delete_grace=0), clock=Clock(START))
    try:
        (corpus_dir / f"{OLD_TITLE}.md").write_text(cls())
        scanner.scan()
        old_id = stable_uuid("path", f"{OLD_TITLE}.md")
        first = store.entry(old_id)
        count = len(store.all_entries())
        later(scanner)
        rename(corpus_dir, run=2)  # deleted and written in the same scan
        report = scanner.scan()
        assert (report.added, report.updated, report.removed) == (0, 1, 0)
        entry = store.entry(old_id)
        assert entry.title == NEW_TITLE and entry.path == f"{NEW_TITLE}.md"
        assert entry.published == first.published and entry.updated == now(scanner)
        assert store.entry(stable_uuid("path", f"{NEW_TITLE}.md")) is None
        assert len(store.all_entries()) == count and by_title(store, OLD_TITLE) == []
        assert old_id not in tombstoned(store)
        assert [e.id for e in store.search(TELEGRAPH, "四连板", 10)] == [old_id]
        assert store.search(TELEGRAPH, "四连扳", 10) == []
        # the next hourly rewrite of the new file, same bytes or new image queries: nothing
        later(scanner)
        (corpus_dir / f"{NEW_TITLE}.md").write_text(cls(NEW_TITLE, run=3))
        report = scanner.scan()
        assert report.updated == 0 and report.changed_scopes == []
        # an edit of its body keeps the id it took over
        later(scanner)
        (corpus_dir / f"{NEW_TITLE}.md").write_text(cls(NEW_TITLE, BODY + "（更新）"))
        assert scanner.scan().updated == 1
        edited = store.entry(old_id)
        assert edited.path == f"{NEW_TITLE}.md" and "（更新）" in edited.content
    finally:
        store.close()


def test_a_file_missing_within_the_grace_is_taken_over_later(scanner):
    seeds = scanner.settings.seeds
    (seeds / f"{OLD_TITLE}.md").write_text(cls())
    scanner.scan()
    old_id = stable_uuid("path", f"{OLD_TITLE}.md")
    first = scanner.store.entry(old_id)
    scanner.clock.advance(10)
    (seeds / f"{OLD_TITLE}.md").unlink()
    assert scanner.scan().missing == 1
    scanner.clock.advance(30)  # still within the 60 s grace
    (seeds / f"{NEW_TITLE}.md").write_text(cls(NEW_TITLE, run=2))
    report = scanner.scan()
    assert (report.added, report.updated, report.missing) == (0, 1, 0)
    assert scanner.store.entry(old_id).title == NEW_TITLE
    scanner.clock.advance(3600)  # the grace passes: nothing is left to remove
    report = scanner.scan()
    assert (report.removed, report.missing) == (0, 0)
    entry = scanner.store.entry(old_id)
    assert entry.title == NEW_TITLE and entry.published == first.published
    assert old_id not in tombstoned(scanner.store)


def test_a_headline_edit_undone_gives_the_id_back_to_its_path(scanner):
    seeds = scanner.settings.seeds
    old_id = renamed(scanner)
    later(scanner)
    rename(seeds, NEW_TITLE, OLD_TITLE)  # renamed back within the grace
    report = scanner.scan()
    assert (report.added, report.updated, report.removed) == (0, 1, 0)
    entry = scanner.store.entry(old_id)
    assert entry.title == OLD_TITLE and entry.path == f"{OLD_TITLE}.md"
    assert by_title(scanner.store, NEW_TITLE) == []


def test_an_edited_file_back_at_its_old_path_gets_its_id_from_a_missing_one(scanner):
    seeds = scanner.settings.seeds
    old_id = renamed(scanner)
    later(scanner)
    # the renamed file goes, and the old name comes back with another body: no takeover
    (seeds / f"{NEW_TITLE}.md").unlink()
    (seeds / f"{OLD_TITLE}.md").write_text(cls(body=BODY + "（更正）"))
    report = scanner.scan()
    assert report.errors == []
    entry = scanner.store.entry(old_id)
    assert entry.path == f"{OLD_TITLE}.md" and "（更正）" in entry.content
    assert [e for e in scanner.store.all_entries() if "四连" in e.title] == [entry]
    later(scanner)  # past the grace: nothing of the missing file is left to remove
    assert scanner.scan().removed == 0 and old_id not in tombstoned(scanner.store)


def test_an_old_headline_back_beside_the_new_one_gets_its_own_id_back(
    scanner, tmp_path, make_settings
):
    """Two files of one item: the ids a fresh database gives them, not a clash."""
    seeds = scanner.settings.seeds
    renamed(scanner)
    later(scanner)
    (seeds / f"{OLD_TITLE}.md").write_text(cls())
    report = scanner.scan()
    assert report.errors == []
    served = {e.path: e.id for e in scanner.store.all_entries() if "四连" in e.title}
    ids = {rel: stable_uuid("path", rel) for rel in (f"{OLD_TITLE}.md", f"{NEW_TITLE}.md")}
    assert served == ids
    assert set(ids.values()).isdisjoint(tombstoned(scanner.store))


def test_a_fresh_database_gives_the_new_path_its_own_id(scanner, tmp_path, make_settings):
    seeds = scanner.settings.seeds
    renamed(scanner)
    url = f"sqlite:///{tmp_path}/fresh/db.sqlite3"
    fresh = Store(url)
    try:
        Scanner(fresh, make_settings(seeds, url), clock=Clock(START)).scan()
        assert [e.id for e in by_title(fresh, NEW_TITLE)] == [
            stable_uuid("path", f"{NEW_TITLE}.md")
        ]
        assert [e.id for e in by_title(scanner.store, NEW_TITLE)] == [
            stable_uuid("path", f"{OLD_TITLE}.md")
        ]
    finally:
        fresh.close()


@pytest.mark.parametrize(
    "case",
    [
        "two files leave",
        "two files appear",
        "a present twin",
        "other categories",
        "another author",
        "an empty body",
        "the old file states an id",
        "the new file states an id",
    ],
)
def test_no_takeover_unless_one_file_is_plainly_the_other_renamed(
    case, corpus_dir, db_url, make_settings
):
    store = Store(db_url)
    scanner = Scanner(store, make_settings(corpus_dir, db_url, delete_grace=0), clock=Clock(START))
    body = "" if case == "an empty body" else BODY
    old_fields: dict[str, Any] = {"body": body}
    if case == "the old file states an id":
        old_fields["date"] = DATE + "\nid: cls-telegraph-1"
    try:
        (corpus_dir / f"{OLD_TITLE}.md").write_text(cls(OLD_TITLE, **old_fields))
        if case in ("two files leave", "a present twin"):
            (corpus_dir / "同一条电报.md").write_text(cls("同一条电报", body))
        scanner.scan()
        old = by_title(store, OLD_TITLE)[0]
        later(scanner)
        new_fields: dict[str, str] = {"body": body}
        if case == "other categories":
            (corpus_dir / f"{OLD_TITLE}.md").unlink()
            text = cls(NEW_TITLE, body).replace(" - 电报\n", " - 看盘\n")
            (corpus_dir / f"{NEW_TITLE}.md").write_text(text)
        elif case == "another author":
            (corpus_dir / f"{OLD_TITLE}.md").unlink()
            text = cls(NEW_TITLE, body).replace("author: 财联社", "author: 财联社·电报")
            (corpus_dir / f"{NEW_TITLE}.md").write_text(text)
        else:
            if case == "the new file states an id":
                new_fields["date"] = DATE + "\nid: cls-telegraph-2"
            rename(corpus_dir, **new_fields)
        if case == "two files leave":
            (corpus_dir / "同一条电报.md").unlink()
        if case == "two files appear":
            (corpus_dir / "又一条电报.md").write_text(cls("又一条电报", body))
        report = scanner.scan()
        new = by_title(store, NEW_TITLE)
        assert len(new) == 1 and new[0].id != old.id, case
        assert store.entry(old.id) is None and old.id in tombstoned(store)
        assert report.added >= 1 and report.removed >= 1
    finally:
        store.close()


def test_a_file_that_stops_stating_its_id_keeps_it(scanner):
    seeds = scanner.settings.seeds
    (seeds / f"{OLD_TITLE}.md").write_text(cls(date=DATE + "\nid: cls-telegraph-1"))
    scanner.scan()
    later(scanner)
    (seeds / f"{OLD_TITLE}.md").write_text(cls())
    scanner.scan()
    assert [e.id for e in by_title(scanner.store, OLD_TITLE)] == [
        stable_uuid("id", "cls-telegraph-1")
    ]


# -- end to end: a real server, a real hub, a real reader ----------------------------------


@contextlib.contextmanager
def between_scans(db: str) -> Iterator[None]:
    """Hold the scan lock: no scan sees the directory half rewritten."""
    store = Store(db)
    try:
        with ScanLocks(store.engine, store.path).scanning():
            yield
    finally:
        store.close()


def reader(url: str, seen: feedparser.FeedParserDict | None = None):
    """One poll of a feed as a reader makes it, with what it kept from the last one."""
    if seen is None:
        return feedparser.parse(url)
    return feedparser.parse(url, etag=seen.get("etag"), modified=seen.get("modified"))


def polling_server(serve: Servers, seeds: Path, db: str, **env: Any) -> ServerProcess:
    """A server that scans on its interval (no events), once it has scanned twice."""
    server = serve(seeds, db, FEEDSVC_WATCH="polling", **env)
    wait_for_scans(server)
    return server


def test_a_reader_gets_304_and_no_hub_is_pinged_through_image_churn(corpus_dir, db_url, serve):
    write_all(corpus_dir, churned(1))
    hub = serve.hub()
    server = polling_server(serve, corpus_dir, db_url, FEEDSVC_WEBSUB_HUBS=hub.url)
    feeds = [
        server.url + path
        for path in (
            "/feeds/all.atom",
            "/feeds/all.rss",
            "/feeds/categories/" + quote("金融") + ".atom",
            "/feeds/categories/" + quote("音视频") + "/" + quote("低端影视") + ".json",
        )
    ]
    seen = {url: reader(url) for url in feeds}
    assert all(first.status == 200 for first in seen.values())
    for run in range(2, 4):
        with between_scans(db_url):
            write_all(corpus_dir, churned(run))
        wait_for_scans(server)
        for url in feeds:
            assert reader(url, seen[url]).status == 304, url
        assert hub.pings() == []
    # a change a reader sees does reach readers and hubs
    with between_scans(db_url):
        files = churned(4)
        name = "盘中宝：储能板块持续走强.md"
        write_all(corpus_dir, {name: files[name].replace("持续走强。", "持续走强，多股涨停。")})
    finance = feeds[2]  # a feed of the edited entry
    wait_for(lambda: finance in {p["form"]["hub.url"][0] for p in hub.pings()}, timeout=60)

    def changed() -> feedparser.FeedParserDict | None:
        polled = reader(finance, seen[finance])  # 304 from a worker not yet refreshed
        return polled if polled.status == 200 else None

    assert any("多股涨停" in entry.summary for entry in wait_for(changed).entries)


def test_a_reader_sees_a_headline_edit_as_the_same_entry(corpus_dir, db_url, serve):
    (corpus_dir / f"{OLD_TITLE}.md").write_text(cls())
    # no grace: a file gone without a takeover would leave a tombstone at once
    server = polling_server(serve, corpus_dir, db_url, FEEDSVC_DELETE_GRACE="0")
    atom = server.url + "/feeds/categories/" + quote("金融") + "/" + quote("财联社") + ".atom"
    before = reader(atom)
    (first,) = [e for e in before.entries if "四连" in e.title]
    assert first.title == OLD_TITLE
    with between_scans(db_url):
        rename(corpus_dir, run=2)
    wait_for_scans(server)
    # the feed moved (a worker that has not loaded the scan yet answers 304)
    after = wait_for(lambda: (polled := reader(atom, before)).status == 200 and polled)
    entries = [e for e in after.entries if "四连" in e.title]
    assert [(e.id, e.title) for e in entries] == [(first.id, NEW_TITLE)]
    assert entries[0].published_parsed == first.published_parsed
    assert entries[0].updated_parsed > first.updated_parsed
    assert len(after.entries) == len(before.entries)
    assert first.id == "urn:uuid:" + stable_uuid("path", f"{OLD_TITLE}.md")
    # the same document's bytes, from whichever worker answers
    body = wait_for(
        lambda: (
            (got := requests.get(atom, timeout=10)).headers["ETag"] == after.etag and got.content
        )
    )
    graves = etree.fromstring(body).iter(f"{{{TOMBSTONES_NS}}}deleted-entry")
    assert first.id not in [node.get("ref") for node in graves]
    assert feedparser.parse(body).bozo == 0


def test_the_telegraph_template_is_the_real_files_shape():
    """CLS writes what the producer wrote for 财联社: a real file reads the same way."""
    name = "1000元可以代办通行证？麦德龙发生哄抢？假的.md"
    real = parsed((REAL_CORPUS / name).read_text(), name)
    made = parsed(cls(name.removesuffix(".md")), name)
    assert (made.title, made.categories, made.authors, made.published, made.id) == (
        real.title,
        real.categories,
        real.authors,
        real.published,
        real.id,
    )
