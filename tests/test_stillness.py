"""Feeds hold still when content holds still (SQLite and PostgreSQL, real files).

Rewrites that change file metadata but not content write nothing; `updated` moves only when
content does; dates do not jump; deletions wait out a grace period and mass disappearances
are held. Time is the scanner's clock, moved by the test instead of waited for."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from lxml import etree

from feedsvc.model import Entry, Format, Scope, ScopeKind, stable_uuid
from feedsvc.scan import Scanner
from feedsvc.store import Store
from tests.helpers import (
    REAL_CORPUS,
    SAMPLE_SEEDS,
    START,
    UNDATED,
    Clock,
    all_feed_bytes,
    from_before_revisions,
    move_mtimes,
    state,
)
from tests.server import wait_for, wait_for_scans

DATED = (
    "---\ntitle: {title}\ncategories: [新媒体, 快科技, 最新新闻]\nauthor: 快科技\n"
    "date: {date}\n---\n<p>{body}</p>\n"
)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def scanner(corpus_dir, db_url, make_settings, clock):
    store = Store(db_url)
    yield Scanner(store, make_settings(corpus_dir, db_url), clock=clock)
    store.close()


def rewrite_all(seeds: Path) -> None:
    """What the producing job does: delete every file, write the same bytes again."""
    for path in seeds.iterdir():
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)


def stored(scanner: Scanner, name: str, text: str) -> tuple[Path, str, Entry]:
    """A new seed file written and scanned: its path, its entry's id and the entry."""
    path = scanner.settings.seeds / name
    path.write_text(text)
    scanner.scan()
    entry_id = stable_uuid("path", name)
    entry = scanner.store.entry(entry_id)
    assert entry is not None
    return path, entry_id, entry


def test_touching_every_file_changes_nothing(scanner, clock):
    scanner.scan()
    before = state(scanner)
    clock.advance(3600)
    move_mtimes(scanner.settings.seeds)
    report = scanner.scan()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 50)
    assert report.errors == [] and report.changed_scopes == []
    assert state(scanner) == before
    # the new stat is recorded: the next scan reads nothing
    assert scanner.scan().unchanged == 50


def test_deleting_everything_and_writing_it_back_changes_nothing(scanner, clock):
    scanner.scan()
    before = state(scanner)
    saved = {path.name: path.read_bytes() for path in scanner.settings.seeds.iterdir()}
    for path in scanner.settings.seeds.iterdir():
        path.unlink()
    clock.advance(2)
    held = scanner.scan()  # the directory is empty: a fault, not news
    assert held.removed == 0 and held.missing == 48 and held.changed_scopes == []
    assert held.held is not None and "held as a fault" in held.held.reason
    assert held.held is not None and scanner.store.last_scan()["held"] == held.held.summary()
    assert state(scanner) == before
    clock.advance(2)
    for name, data in saved.items():
        (scanner.settings.seeds / name).write_bytes(data)
    move_mtimes(scanner.settings.seeds)
    back = scanner.scan()
    assert (back.added, back.updated, back.removed, back.missing) == (0, 0, 0, 0)
    assert back.held is None and back.changed_scopes == []
    assert state(scanner) == before


def test_a_copy_served_from_a_fresh_database_gives_the_same_feeds(
    scanner, tmp_path, make_settings, clock
):
    scanner.scan()
    _generation, etags, feeds = state(scanner)
    copy = tmp_path / "copy"
    shutil.copytree(scanner.settings.seeds, copy)  # new mtimes, as git clone or rsync give
    move_mtimes(copy, 86400)
    url = f"sqlite:///{tmp_path}/fresh/db.sqlite3"
    fresh = Store(url)
    try:
        other = Scanner(fresh, make_settings(copy, url), clock=clock)
        other.scan()
        _g, fresh_etags, fresh_feeds = state(other)
    finally:
        fresh.close()
    # the same first-stored time for the undated entries (same clock): the same feeds
    assert fresh_etags == etags and fresh_feeds == feeds


def test_an_edit_moves_updated_and_only_the_feeds_that_hold_the_entry(scanner, clock):
    path, entry_id, before = stored(
        scanner,
        "edited.md",
        DATED.format(title="t", date="Sat, 27 Nov 2021 15:42:03 GMT", body="one"),
    )
    assert before.published == before.updated == datetime(2021, 11, 27, 15, 42, 3, tzinfo=UTC)
    _g, etags, _feeds = state(scanner)

    clock.advance(600)
    path.write_text(DATED.format(title="t", date="Sat, 27 Nov 2021 15:42:03 GMT", body="two"))
    move_mtimes(scanner.settings.seeds, 10)
    report = scanner.scan()
    after = scanner.store.entry(entry_id)
    assert report.updated == 1 and report.unchanged == 50
    assert after.id == before.id and after.published == before.published
    assert after.updated == clock.now
    holding = {scope.key for scope in after.scopes()}
    assert {scope.key for scope in report.changed_scopes} == holding
    _g, etags_after, _feeds = state(scanner)
    moved = {key for key in etags if etags[key] != etags_after.get(key)}
    assert moved == {(key, fmt.value) for key in holding for fmt in Format}


def test_undated_entries_keep_the_time_they_were_first_stored(scanner, clock):
    path, entry_id, first = stored(
        scanner, "undated.md", "---\ntitle: no date\ndate: Invalid Date\n---\n<p>one</p>\n"
    )
    assert first.published == first.updated == START
    for hour in range(1, 4):  # rewritten every hour, sometimes without the date at all
        clock.advance(3600)
        text = "---\ntitle: no date\n" + ("date: Invalid Date\n" if hour % 2 else "")
        path.write_text(text + "---\n<p>one</p>\n")
        move_mtimes(scanner.settings.seeds, 60)
        assert scanner.scan().changed_scopes == []
        assert scanner.store.entry(entry_id) == first
    clock.advance(3600)
    path.write_text("---\ntitle: no date\ndate: Invalid Date\n---\n<p>edited</p>\n")
    move_mtimes(scanner.settings.seeds, 60)
    scanner.scan()
    edited = scanner.store.entry(entry_id)
    assert edited.published == START and edited.updated == clock.now


def test_a_new_crawl_time_date_alone_keeps_the_published_date(scanner, clock):
    path, entry_id, first = stored(
        scanner, "crawled.md", DATED.format(title="t", date="2022-04-23 05:09:06", body="same")
    )
    assert first.published == datetime(2022, 4, 23, 5, 9, 6, tzinfo=UTC)
    generation = scanner.store.generation()
    clock.advance(3600)
    path.write_text(DATED.format(title="t", date="2022-04-23 06:09:06", body="same"))
    move_mtimes(scanner.settings.seeds, 60)
    report = scanner.scan()
    assert report.updated == 0 and report.changed_scopes == []
    assert scanner.store.entry(entry_id) == first
    assert scanner.store.generation() == generation
    # a new date together with new content is a revision: both are taken
    clock.advance(3600)
    path.write_text(DATED.format(title="t", date="2022-04-23 07:09:06", body="new"))
    move_mtimes(scanner.settings.seeds, 60)
    scanner.scan()
    revised = scanner.store.entry(entry_id)
    assert revised.published == datetime(2022, 4, 23, 7, 9, 6, tzinfo=UTC)
    assert revised.updated == clock.now


def test_an_explicit_updated_is_the_updated_date(scanner, clock):
    path = scanner.settings.seeds / "stated.md"
    text = "---\ntitle: t\ndate: 2021-01-01T00:00:00Z\nupdated: {u}\n---\n<p>{body}</p>\n"
    path.write_text(text.format(u="2021-02-01T00:00:00Z", body="one"))
    scanner.scan()
    entry_id = stable_uuid("path", "stated.md")
    assert scanner.store.entry(entry_id).updated == datetime(2021, 2, 1, tzinfo=UTC)
    clock.advance(60)
    path.write_text(text.format(u="2021-03-01T00:00:00Z", body="two"))
    move_mtimes(scanner.settings.seeds, 60)
    scanner.scan()
    entry = scanner.store.entry(entry_id)
    assert entry.updated == datetime(2021, 3, 1, tzinfo=UTC)
    assert entry.published == datetime(2021, 1, 1, tzinfo=UTC)


def test_a_deletion_takes_effect_only_after_the_grace(scanner, clock):
    assert scanner.settings.delete_grace == 60
    scanner.scan()
    before = state(scanner)
    doomed = scanner.settings.seeds / "1936.md"
    entry_id = stable_uuid("path", "1936.md")
    doomed.unlink()
    clock.advance(1)
    report = scanner.scan()
    assert (report.removed, report.missing, report.held) == (0, 1, None)
    assert scanner.store.last_scan()["missing"] == 1
    assert state(scanner) == before
    clock.advance(59)  # 59 s after the scan that found it gone
    assert scanner.scan().removed == 0
    assert scanner.store.entry(entry_id) is not None
    clock.advance(1)
    report = scanner.scan()
    assert (report.removed, report.missing) == (1, 0)
    assert scanner.store.entry(entry_id) is None
    assert (
        Scope(ScopeKind.CATEGORY, ("新媒体", "国际数学联合会 - 菲尔兹奖")) in report.changed_scopes
    )


def test_a_file_back_within_the_grace_changes_nothing(scanner, clock):
    scanner.scan()
    before = state(scanner)
    path = scanner.settings.seeds / "1936.md"
    data = path.read_bytes()
    path.unlink()
    clock.advance(10)
    assert scanner.scan().missing == 1
    path.write_bytes(data)  # a rename done as delete + create, or a regeneration
    clock.advance(100)  # past the grace: it is back, so nothing is removed
    report = scanner.scan()
    assert (report.removed, report.missing, report.changed_scopes) == (0, 0, [])
    assert state(scanner) == before
    path.unlink()
    clock.advance(10)
    assert scanner.scan().missing == 1  # missing again: a new grace period starts


def test_a_mass_disappearance_is_held_until_it_lasts_the_grace(scanner, clock):
    scanner.scan()
    before = state(scanner)
    kept = sorted(scanner.settings.seeds.iterdir())[:10]
    for path in scanner.settings.seeds.iterdir():
        if path not in kept:
            path.unlink()
    clock.advance(5)
    report = scanner.scan()
    assert report.removed == 0 and report.held is not None
    assert report.held.files == 10 and report.held.known == 50
    assert state(scanner) == before
    clock.advance(59)
    assert scanner.scan().held is not None
    assert state(scanner) == before
    clock.advance(1)  # the same state, seen for delete_grace: it is what the owner meant
    report = scanner.scan()
    assert report.held is None and report.removed > 0
    assert scanner.store.last_scan()["held"] is None
    remaining = {e.path for e in scanner.store.all_entries()}
    assert remaining <= {path.name for path in kept}


def test_prune_now_skips_the_grace_and_the_hold(scanner):
    scanner.scan()
    for path in sorted(scanner.settings.seeds.iterdir())[5:]:
        path.unlink()
    report = scanner.scan(prune_now=True)
    assert report.held is None and report.missing == 0
    left = set(os.listdir(scanner.settings.seeds))
    assert {e.path for e in scanner.store.all_entries()} == {
        name for name in left if not name.startswith('"""')
    }
    assert report.removed == 48 - len(scanner.store.all_entries())


def test_no_grace_removes_at_once(corpus_dir, db_url, make_settings):
    store = Store(db_url)
    try:
        scanner = Scanner(store, make_settings(corpus_dir, db_url, delete_grace=0))
        scanner.scan()
        for path in corpus_dir.iterdir():
            path.unlink()
        report = scanner.scan()
        assert report.removed == 48 and report.held is None
        assert len(store.all_entries()) == 0
    finally:
        store.close()


def test_a_control_character_in_a_title_is_removed_and_the_entry_served(scanner):
    path = scanner.settings.seeds / "control.md"
    path.write_bytes(
        "---\ntitle: 标题\x0b带\x1b控制\x1f字符\nauthor: a\x07b\ndate: 2022-01-01T00:00:00Z\n---\n<p>x</p>\n".encode()
    )
    report = scanner.scan()
    assert ("control.md" not in dict(report.errors)) and report.added == 49
    entry = scanner.store.entry(stable_uuid("path", "control.md"))
    assert entry.title == "标题带控制字符" and entry.authors[0].name == "ab"


def test_undated_real_files_are_dated_by_their_first_scan(scanner):
    scanner.scan()
    for entry in scanner.store.all_entries():
        if entry.path in UNDATED:
            assert entry.published == entry.updated == START


def test_a_chinese_json_feed_is_utf8_text(scanner):
    scanner.scan()
    body = all_feed_bytes(scanner.store, scanner.settings)[("all", "json")]
    assert "雷军押上一切打造".encode() in body and b"\\u" not in body


def test_a_schema_from_before_the_baseline_is_rebuilt_from_the_seeds(scanner, clock):
    scanner.scan()
    before = state(scanner)[1:]
    from_before_revisions(scanner.store.url, "1")
    reopened = Store(scanner.store.url)
    try:
        assert reopened.last_scan() is None and len(reopened.all_entries()) == 0
        again = Scanner(reopened, scanner.settings, clock=clock)
        again.scan()
        assert state(again)[1:] == before
    finally:
        reopened.close()


# -- end to end: a real server, a real hub ---------------------------------------------


def feed_documents(server) -> list[str]:
    """Every feed document's path (each scope in each format), from the OPML list."""
    paths = []
    for outline in etree.fromstring(requests.get(server.url + "/opml", timeout=10).content).iter(
        "outline"
    ):
        if outline.get("xmlUrl"):
            base = urlsplit(str(outline.get("xmlUrl"))).path[: -len(".atom")]
            paths += [base + ".atom", base + ".rss", base + ".json"]
    return sorted(paths)


def snapshot(server) -> dict[str, tuple[str, str, bytes]]:
    """What an aggregator sees of every feed document: ETag, Last-Modified and bytes."""
    seen = {}
    for path in [*feed_documents(server), "/", "/opml"]:
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 200, path
        seen[path] = (
            response.headers["ETag"],
            response.headers["Last-Modified"],
            response.content,
        )
    return seen


def moved(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {path for path in before if before[path] != after.get(path)}


@pytest.mark.slow
def test_real_corpus_holds_still_through_touches_rewrites_and_copies(
    corpus_dir, tmp_path, db_url, serve
):
    hub = serve.hub(path="/publish/")  # kept exactly, trailing slash and all
    env = {"FEEDSVC_BASE_URL": "http://feeds.example.test", "FEEDSVC_WEBSUB_HUBS": hub.url}
    server = serve(corpus_dir, db_url, **env)
    figures = {}
    wait_for_scans(server)
    before = snapshot(server)
    documents = len(before) - 2
    assert documents == len(feed_documents(server)) >= 300
    assert hub.pings() == []  # the first scan of a new database is no news

    move_mtimes(corpus_dir)  # touch every file
    wait_for_scans(server)
    figures["touch"] = (len(moved(before, snapshot(server))), len(hub.pings()))

    saved = {path.name: path.read_bytes() for path in corpus_dir.iterdir()}
    for path in corpus_dir.iterdir():
        path.unlink()
    held = wait_for_scans(server)
    assert held["held"] is not None and held["removed"] == 0
    assert snapshot(server) == before  # nothing shrinks while the directory is empty
    for name, data in saved.items():
        (corpus_dir / name).write_bytes(data)
    back = wait_for_scans(server)
    assert back["held"] is None and back["missing"] == 0
    figures["delete+rewrite"] = (len(moved(before, snapshot(server))), len(hub.pings()))

    # the same seeds copied elsewhere (new mtimes) and served from a fresh database
    copy = tmp_path / "copy"
    shutil.copytree(corpus_dir, copy)
    pings = len(hub.pings())
    copy_server = serve(copy, f"sqlite:///{tmp_path}/fresh/db.sqlite3", **env)
    wait_for_scans(copy_server)
    fresh = snapshot(copy_server)
    differ = {p for p in moved(before, fresh) if p.startswith("/feeds/")}
    undated = {
        "/feeds/all",
        "/feeds/categories/" + quote("社交媒体"),
        "/feeds/categories/" + quote("社交媒体") + "/" + quote("简书"),
        "/feeds/categories/" + quote("社交媒体") + "/" + quote("简书") + "/" + quote("首页"),
        "/feeds/authors/" + quote("简书"),
    }
    # only feeds holding undated entries may differ: those are dated by their first scan
    assert differ <= {f"{scope}.{fmt.value}" for scope in undated for fmt in Format}
    assert len(hub.pings()) == pings
    figures["copy, fresh database"] = (len(differ), len(hub.pings()) - pings)
    assert copy_server.stop() == 0

    edited = corpus_dir / "1936.md"
    edited.write_text(edited.read_text().replace("Lars Valerian Ahlfors", "Lars V. Ahlfors"))
    wait_for(lambda: hub.pings(), timeout=60)
    wait_for_scans(server)
    after_edit = snapshot(server)
    changed_bytes = {
        p for p in before if p.startswith("/feeds/") and before[p][2] != after_edit[p][2]
    }
    pinged = {urlsplit(p["form"]["hub.url"][0]).path for p in hub.pings()}
    assert pinged == changed_bytes and len(hub.pings()) == len(changed_bytes)
    assert {p["path"] for p in hub.pings()} == {"/publish/"}
    moved_feeds = {p for p in moved(before, after_edit) if p.startswith("/feeds/")}
    # (the all-entries feed holds the entry beyond its first page: its bytes stay, and
    # so do its validators, which move exactly when the bytes do)
    assert moved_feeds == changed_bytes
    holding = {
        "/feeds/categories/" + quote("新媒体"),
        "/feeds/categories/" + quote("新媒体") + "/" + quote("国际数学联合会 - 菲尔兹奖"),
        "/feeds/authors/" + quote("国际数学联合会 - 菲尔兹奖"),
    }
    assert moved_feeds == {f"{scope}.{fmt.value}" for scope in holding for fmt in Format}
    figures["one-file edit"] = (len(moved_feeds), len(hub.pings()))
    backend = db_url.split(":")[0].split("+")[0]
    print(f"\n{backend}: {documents} feed documents; (validators moved, pings):", figures)
    assert figures["touch"] == (0, 0) and figures["delete+rewrite"] == (0, 0)


# -- partial scans: what filesystem events name ------------------------------------------


def test_a_partial_scan_reads_only_the_files_it_is_given(scanner, clock):
    scanner.scan()
    seeds = scanner.settings.seeds
    (seeds / "named.md").write_text(DATED.format(title="named", date="2022-01-01", body="x"))
    (seeds / "unnamed.md").write_text(DATED.format(title="unnamed", date="2022-01-01", body="x"))
    report = scanner.scan(paths={"named.md", "not-a-seed.tmp", ".hidden.md"})
    assert (report.added, report.removed, report.unchanged) == (1, 0, 0)
    assert scanner.store.entry(stable_uuid("path", "named.md")) is not None
    assert scanner.store.entry(stable_uuid("path", "unnamed.md")) is None
    assert scanner.scan().added == 1  # a full scan finds the other


def test_partial_scans_keep_the_grace_and_retire_missing_files(scanner, clock):
    scanner.scan()
    (scanner.settings.seeds / "1936.md").unlink()
    clock.advance(1)
    report = scanner.scan(paths={"1936.md"})
    assert (report.removed, report.missing) == (0, 1)
    clock.advance(30)
    assert scanner.scan(paths=set()).missing == 1  # still within the grace
    clock.advance(30)
    report = scanner.scan(paths=set())  # nothing named: the files already missing are looked at
    assert (report.removed, report.missing) == (1, 0)
    assert scanner.store.entry(stable_uuid("path", "1936.md")) is None


def test_a_partial_scan_during_a_hold_scans_everything(scanner, clock):
    scanner.scan()
    names = sorted(path.name for path in scanner.settings.seeds.iterdir())
    for name in names[5:]:
        (scanner.settings.seeds / name).unlink()
    clock.advance(1)
    assert scanner.scan().held is not None
    clock.advance(30)
    report = scanner.scan(paths={names[6]})  # one event: the hold still stands
    assert report.removed == 0 and report.held is not None and report.missing > 20
    for name in names[5:]:  # all back: the hold ends at once
        shutil.copy(
            REAL_CORPUS / name if (REAL_CORPUS / name).exists() else SAMPLE_SEEDS / name,
            scanner.settings.seeds / name,
        )
    clock.advance(1)
    report = scanner.scan(paths={names[6]})
    assert (report.removed, report.missing, report.held) == (0, 0, None)
    assert scanner.store.last_scan()["held"] is None
