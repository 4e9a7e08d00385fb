"""Scanning real files into a real database (SQLite and PostgreSQL): incremental re-reads,
last-good versions, deletions, drafts, and ids and bytes that survive a rebuild."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from feedsvc.check import check_seeds
from feedsvc.model import Format, Scope, ScopeKind, stable_uuid
from feedsvc.scan import POOL_MIN_FILES, ScanError, Scanner
from feedsvc.service import FeedService
from feedsvc.store import Store
from tests.helpers import REAL_CORPUS, UNDATED, all_feed_bytes

SAMPLE = (
    "---\ntitle: {title}\ncategories: [新媒体, 快科技, 最新新闻]\nauthor: 快科技\n"
    "date: Sat, 27 Nov 2021 15:42:03 GMT\n---\n<p>{body}</p>\n"
)


def touch_later(path: Path, seconds: int = 5) -> None:
    """Move a file's mtime forward so a rewrite within the same second is still noticed."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


@pytest.fixture
def scanner(corpus_dir, db_url, make_settings):
    store = Store(db_url)
    yield Scanner(store, make_settings(corpus_dir, db_url))
    store.close()


def test_first_scan_serves_48_and_reports_2(scanner):
    report = scanner.scan()
    assert (report.added, report.updated, report.removed) == (48, 0, 0)
    assert len(report.errors) == 2
    assert len(scanner.store.all_entries()) == 48
    errors = scanner.store.errors()
    assert [path for path, _ in errors] == sorted(
        p for p in os.listdir(scanner.settings.seeds) if p.startswith('"""')
    )
    assert all("invalid YAML front matter" in reason for _, reason in errors)
    summary = scanner.store.last_scan()
    assert summary["added"] == 48 and summary["errors"] == 2


def test_second_scan_reads_nothing_and_changes_nothing(scanner):
    scanner.scan()
    generation = scanner.store.generation()
    report = scanner.scan()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 50)
    assert report.changed_scopes == []
    assert scanner.store.generation() == generation


def test_a_rescan_after_an_unchanged_one_reads_no_file_states(scanner):
    """The scanner keeps the file states of its last full scan while the store's files
    serial says no scan has changed one since: the rescan stats and reads nothing."""
    scanner.scan()
    scanner.scan()  # (the first scan changed everything: states are read once more)
    selects: list[str] = []

    def statement(_conn, _cursor, sql, *_args) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "mtime_ns" in sql:
            selects.append(sql)

    event.listen(scanner.store.engine, "before_cursor_execute", statement)
    try:
        report = scanner.scan()
    finally:
        event.remove(scanner.store.engine, "before_cursor_execute", statement)
    assert report.unchanged == 50
    assert selects == []


def test_a_scan_by_another_process_is_seen_by_a_scanner_that_kept_its_states(scanner):
    scanner.scan()
    scanner.scan()  # now kept in memory
    (scanner.settings.seeds / "from-elsewhere.md").write_text(SAMPLE.format(title="x", body="y"))
    other = Store(scanner.store.url)  # a hand-run `feedsvc scan`, or another replica
    try:
        assert Scanner(other, scanner.settings).scan().added == 1
    finally:
        other.close()
    report = scanner.scan()
    assert (report.added, report.updated, report.unchanged) == (0, 0, 51)


def test_every_category_level_author_and_site_has_a_feed(scanner):
    scanner.scan()
    keys = {s.scope for s in scanner.store.scope_summaries()}
    assert Scope.all() in keys
    assert Scope(ScopeKind.CATEGORY, ("新媒体",)) in keys
    assert Scope(ScopeKind.CATEGORY, ("新媒体", "快科技（原驱动之家）")) in keys
    assert Scope(ScopeKind.CATEGORY, ("新媒体", "快科技（原驱动之家）", "最新新闻")) in keys
    assert Scope(ScopeKind.AUTHOR, ("快科技（原驱动之家）",)) in keys
    counts = {s.scope: s.count for s in scanner.store.scope_summaries()}
    top = counts[Scope(ScopeKind.CATEGORY, ("新媒体",))]
    children = [
        count
        for scope, count in counts.items()
        if scope.kind is ScopeKind.CATEGORY and len(scope.names) == 2 and scope.names[0] == "新媒体"
    ]
    assert top == sum(children)  # descendants included, each entry once
    assert counts[Scope.all()] == 48


def test_edit_changes_updated_not_id_and_delete_removes_everywhere(scanner):
    seeds = scanner.settings.seeds
    path = seeds / "edited.md"
    path.write_text(SAMPLE.format(title="first", body="one"))
    scanner.scan()
    entry_id = stable_uuid("path", "edited.md")
    before = scanner.store.entry(entry_id)
    assert before.title == "first"

    path.write_text(SAMPLE.format(title="second", body="two"))
    touch_later(path)
    report = scanner.scan()
    after = scanner.store.entry(entry_id)
    assert report.updated == 1
    assert after.id == before.id and after.title == "second"
    assert after.updated > before.updated
    assert after.published == before.published

    path.unlink()
    report = scanner.scan(prune_now=True)
    assert report.removed == 1
    assert scanner.store.entry(entry_id) is None
    for summary in scanner.store.scope_summaries():
        assert entry_id not in {e.id for e in scanner.store.page(summary.scope, 0, 1000)[0]}
    # the emptied scope keeps an empty summary (its feed tells of the deletion), unlisted
    emptied = [s for s in scanner.store.scope_summaries() if s.scope.names == ("快科技",)]
    assert [(s.count, s.listed) for s in emptied] == [(0, False)]


def test_a_file_that_breaks_keeps_its_last_good_version(scanner):
    path = scanner.settings.seeds / "fragile.md"
    path.write_text(SAMPLE.format(title="good", body="ok"))
    scanner.scan()
    path.write_text("---\ntitle: [unclosed\n---\nbroken\n")
    touch_later(path)
    report = scanner.scan()
    assert report.errors and report.errors[0][0] == "fragile.md"
    assert scanner.store.entry(stable_uuid("path", "fragile.md")).title == "good"
    assert ("fragile.md", report.errors[0][1]) in scanner.store.errors()
    # unchanged broken file: not read again, still reported, still served
    again = scanner.scan()
    assert again.errors == [] and again.unchanged == 51
    assert "fragile.md" in dict(scanner.store.errors())
    path.write_text(SAMPLE.format(title="fixed", body="ok"))
    touch_later(path, 10)
    scanner.scan()
    assert scanner.store.entry(stable_uuid("path", "fragile.md")).title == "fixed"
    assert "fragile.md" not in dict(scanner.store.errors())


def test_a_file_turned_draft_leaves_the_feeds(scanner):
    path = scanner.settings.seeds / "soon.md"
    path.write_text(SAMPLE.format(title="t", body="b"))
    scanner.scan()
    path.write_text(
        SAMPLE.format(title="t", body="b").replace("---\ntitle", "---\ndraft: true\ntitle")
    )
    touch_later(path)
    report = scanner.scan()
    assert report.removed == 1
    assert scanner.store.entry(stable_uuid("path", "soon.md")) is None
    assert scanner.scan().unchanged == 51


def test_duplicate_explicit_ids_keep_the_first_and_report_the_second(scanner):
    seeds = scanner.settings.seeds
    (seeds / "a-one.md").write_text("---\ntitle: one\nid: same\n---\nx\n")
    (seeds / "b-two.md").write_text("---\ntitle: two\nid: same\n---\nx\n")
    report = scanner.scan()
    assert scanner.store.entry(stable_uuid("id", "same")).title == "one"
    assert (
        "b-two.md",
        f"id {stable_uuid('id', 'same')} is already used by a-one.md",
    ) in report.errors
    assert report.added == 48 + 1


def test_check_blames_the_same_file_as_the_scan_for_a_shared_id(scanner):
    """The served file keeps its id; a newcomer giving the same id is at fault, even when
    it comes first in path order. Check used to blame the served file."""
    seeds = scanner.settings.seeds
    (seeds / "b-served.md").write_text("---\ntitle: served\nid: shared\n---\nx\n")
    scanner.scan()
    (seeds / "a-newcomer.md").write_text("---\ntitle: newcomer\nid: shared\n---\nx\n")
    report = scanner.scan()
    scan_blames = {path for path, reason in report.errors if "already used" in reason}
    assert scan_blames == {"a-newcomer.md"}
    assert scanner.store.entry(stable_uuid("id", "shared")).title == "served"
    checked = check_seeds(scanner.settings, scanner.store.id_owners)
    assert {path for path, reason in checked.errors if "already used" in reason} == scan_blames
    # without a database, the first file in path order keeps it, as in a first scan
    fresh = check_seeds(scanner.settings)
    assert {path for path, reason in fresh.errors if "already used" in reason} == {"b-served.md"}


def test_a_name_that_is_not_utf8_is_reported_once_not_read_at_every_scan(scanner):
    seeds = scanner.settings.seeds
    with open(os.path.join(os.fsencode(seeds), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"---\ntitle: t\n---\nbody\n")
    shown = "caf\\xe9.md"
    first = scanner.scan()
    assert (shown, "file name is not valid UTF-8") in first.errors
    assert shown in dict(scanner.store.errors())
    # unchanged since: not read again, not a new error (it used to be, at every scan)
    again = scanner.scan()
    assert again.errors == [] and again.unchanged == first.unchanged + first.added + len(
        first.errors
    )
    named = scanner.scan(paths={os.fsdecode(b"caf\xe9.md")})  # as a filesystem event names it
    assert named.errors == []
    assert shown in dict(scanner.store.errors())


def test_missing_seeds_directory_stops_the_scan_and_keeps_everything(
    scanner, tmp_path, make_settings
):
    scanner.scan()
    gone = Scanner(scanner.store, make_settings(tmp_path / "nowhere", scanner.store.url))
    with pytest.raises(ScanError):
        gone.scan()
    assert len(scanner.store.all_entries()) == 48


def test_ids_and_bytes_survive_a_rescan_into_a_fresh_database(scanner, tmp_path, make_settings):
    scanner.scan()
    first = all_feed_bytes(scanner.store, scanner.settings)
    ids = {e.id for e in scanner.store.all_entries()}
    undated = {e.id: e.published for e in scanner.store.all_entries() if e.path in UNDATED}
    assert len(undated) == len(UNDATED)
    fresh_url = f"sqlite:///{tmp_path}/fresh/other.sqlite3"
    fresh = Store(fresh_url)
    try:
        # a day later: only the undated entries depend on when they were first stored
        later = datetime.now(UTC) + timedelta(days=1)
        Scanner(fresh, make_settings(scanner.settings.seeds, fresh_url), clock=lambda: later).scan()
        assert {e.id for e in fresh.all_entries()} == ids
        again = all_feed_bytes(fresh, scanner.settings)
        holding_undated = {
            (summary.scope.key, fmt.value)
            for summary in fresh.scope_summaries()
            for fmt in Format
            if undated.keys() & {e.id for e in fresh.page(summary.scope, 0, 1000)[0]}
        }
        assert holding_undated and len(holding_undated) < len(first)
        assert {k: v for k, v in again.items() if k not in holding_undated} == {
            k: v for k, v in first.items() if k not in holding_undated
        }
        assert {e.id: e.published for e in fresh.all_entries() if e.id in undated} == {
            entry_id: later.replace(microsecond=0) for entry_id in undated
        }
    finally:
        fresh.close()
    # after the parse settings change every file is read again into the same database, and
    # undated entries keep the time they were first stored: nothing served moves
    scanner.store.set_meta("parse_settings", "an older parser")
    report = scanner.scan()
    assert report.unchanged == 48 and report.changed_scopes == []
    assert all_feed_bytes(scanner.store, scanner.settings) == first


def test_changing_the_base_url_rebuilds_every_entry(scanner, make_settings):
    # no real file holds a URL relative to the site any more (a relative headimg is none)
    relative = SAMPLE.format(title="relative", body='<a href="/about">about</a>')
    (scanner.settings.seeds / "relative.md").write_text(relative)
    scanner.scan()
    moved = Scanner(
        scanner.store,
        replace(
            make_settings(scanner.settings.seeds, scanner.store.url),
            base_url="https://new.example",
        ),
    )
    report = moved.scan()
    # every file is read again; the entry holding a link relative to the site moves
    assert (report.added, report.updated, report.unchanged) == (0, 1, 48)
    entry = scanner.store.entry(stable_uuid("path", "relative.md"))
    assert 'href="https://new.example/about"' in entry.content


def test_concurrent_scans_do_not_overlap(scanner):
    import threading

    results = []

    def run():
        results.append(scanner.scan())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.added for r in results) == [0, 0, 48]
    assert len(scanner.store.all_entries()) == 48


def test_tags_get_feeds_of_their_own(scanner):
    (scanner.settings.seeds / "tagged.md").write_text(
        "---\ntitle: tagged\ntags: [Rust, 开源]\ndate: 2022-01-01T00:00:00Z\n---\n<p>x</p>\n"
    )
    report = scanner.scan()
    assert Scope(ScopeKind.TAG, ("开源",)) in report.changed_scopes
    page, _summary, _stored = scanner.store.page(Scope(ScopeKind.TAG, ("Rust",)), 0, 10)
    assert [entry.title for entry in page] == ["tagged"]


def helper_processes() -> list[str]:
    """This process's children that multiprocessing started, by command line."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                command = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"multiprocessing" in command:
                    found.append(command.replace(b"\0", b" ").decode())
    return found


def test_a_scan_on_a_pool_of_processes_stores_what_one_process_stores(tmp_path, make_settings):
    """Enough files to read that the scan parses them on worker processes: the store comes
    out exactly as a scan in one process leaves it, errors and drafts included."""
    seeds = tmp_path / "many"
    seeds.mkdir()
    templates = sorted(REAL_CORPUS.iterdir())
    for index in range(POOL_MIN_FILES + 44):
        source = templates[index % len(templates)]
        (seeds / f"{index:04d}-{source.name}").write_bytes(source.read_bytes())
    (seeds / "draft.md").write_text("---\ntitle: d\ndraft: true\n---\nx\n")
    results = []
    at = datetime(2026, 1, 1, tzinfo=UTC)  # undated entries: the same first-stored time
    for workers in (1, 2):
        url = f"sqlite:///{tmp_path}/db-{workers}.sqlite3"
        store = Store(url)
        try:
            settings = make_settings(seeds, url)
            during: list[list[str]] = []
            look = functools.partial(
                lambda seen, _done, _total: seen.append(helper_processes()), during
            )
            report = Scanner(store, settings, clock=lambda: at, workers=workers).scan(look)
            # multiprocessing's helpers (forkserver, resource tracker) live only while it runs
            assert any(during) == (workers > 1) and helper_processes() == []
            results.append(
                (
                    report.added,
                    sorted(report.errors),
                    sorted(e.to_json() for e in store.all_entries()),
                    [(s.scope.key, s.count, s.fingerprint) for s in store.scope_summaries()],
                )
            )
        finally:
            store.close()
    assert results[0][0] > POOL_MIN_FILES and results[0][1]
    assert results[0] == results[1]


def test_the_document_cache_is_bounded_by_bytes(scanner):
    scanner.scan()
    budget = 200_000
    service = FeedService(scanner.store, replace(scanner.settings, cache_bytes=budget))
    service.refresh()
    bodies = {}
    for summary in service.summaries():
        for fmt in Format:
            rendered = service.feed(summary.scope, fmt, 1, 20)
            for encoding in ("gzip", "br"):  # every form counts
                rendered.encoded(encoding)
            bodies[(summary.scope.key, fmt)] = rendered.body
            assert 0 < service.cached_bytes <= budget
    assert service.renders == len(bodies) > 100
    # what was dropped is rendered again when asked for, byte for byte
    again = {key: service.feed(Scope.from_key(key[0]), key[1], 1, 20).body for key in bodies}
    assert again == bodies and service.renders > len(bodies)
    assert service.cached_bytes <= budget


def test_a_document_bigger_than_the_whole_cache_is_served_not_held(scanner):
    scanner.scan()
    budget = 4096
    service = FeedService(scanner.store, replace(scanner.settings, cache_bytes=budget))
    service.refresh()
    site = Scope(ScopeKind.ALL)
    first = service.feed(site, Format.ATOM, 1, 20)
    assert len(first.body) > budget
    for encoding in ("gzip", "br"):
        first.encoded(encoding)
    assert service.cached_bytes <= budget
    again = service.feed(site, Format.ATOM, 1, 20)
    assert again.body == first.body and service.renders == 2  # rendered again: not held
    assert service.cached_bytes <= budget


def test_opening_the_store_does_not_wait_for_a_scan_in_progress(db_url):
    """A worker starting while a long scan holds the write lock opens the store at once
    (it used to wait behind the lock, and a SIGTERM then found it stuck in start-up)."""
    Store(db_url).close()
    holder = Store(db_url)
    try:
        with holder.transaction() as writer:  # holds the write lock, as a scan does
            writer.set_meta("probe", "a scan in progress")
            opened, errors = threading.Event(), []

            def open_store() -> None:
                try:
                    Store(db_url).close()
                except Exception as exc:
                    errors.append(exc)
                finally:
                    opened.set()

            threading.Thread(target=open_store, daemon=True).start()
            assert opened.wait(20), "opening the store waited for the write lock"
            assert errors == []
    finally:
        holder.close()
