"""Documents served from kept parts (each entry rendered once per revision) are the documents
rendered whole, byte for byte and validator for validator, on both backends: every scope,
format, page and limit of the real corpus, and after the edits and settings changes that
make kept parts stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from feedsvc import prerender as prerender_module
from feedsvc.config import Settings
from feedsvc.feeds import page_count
from feedsvc.model import Format, Scope
from feedsvc.prerender import prerender
from feedsvc.scan import Scanner
from feedsvc.service import FeedService
from feedsvc.store import Store
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus, sql_value

LIMITS = (1, 7, 50)


def documents(service: FeedService) -> dict[tuple[str, str, int, int], tuple[bytes, str, object]]:
    """Every plain feed document of every scope (first, second and last page per limit)."""
    found: dict[tuple[str, str, int, int], tuple[bytes, str, object]] = {}
    summaries = {s.scope: s for s in [service.catalog().everything, *service.summaries()]}
    for scope, summary in summaries.items():
        for limit in LIMITS:
            last = page_count(summary.count, limit)
            for page in sorted({1, min(2, last), last}):
                for fmt in Format:
                    doc = service.feed(scope, fmt, page, limit)
                    found[scope.key, fmt.value, page, limit] = (
                        doc.body,
                        doc.etag,
                        doc.last_modified,
                    )
    return found


def data_reads(store: Store, run) -> list[str]:
    """The statements ``run`` made that read entries' stored data (what a whole render reads)."""
    seen: list[str] = []

    def statement(_conn, _cursor, sql, *_args) -> None:
        if "entries.data" in sql:
            seen.append(sql)

    event.listen(store.engine, "before_cursor_execute", statement)
    try:
        run()
    finally:
        event.remove(store.engine, "before_cursor_execute", statement)
    return seen


def fresh(store: Store, settings: Settings) -> FeedService:
    service = FeedService(store, settings)
    service.refresh()
    return service


@pytest.mark.parametrize(
    "options",
    [{}, {"language": "zh-CN", "hotlink_template": "https://proxy.example/?u=${href}"}],
    ids=["plain", "language-and-hotlink"],
)
def test_documents_from_parts_are_the_whole_renders(db_url: str, tmp_path: Path, options):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    settings = Settings(seeds=seeds, db=db_url, base_url="http://feeds.example.test", **options)
    store = Store(db_url)
    try:
        scanner = Scanner(store, settings)
        scanner.scan()
        gone = sorted(seeds.glob("*.md"))[3]
        gone.unlink()  # (a tombstone in every feed it left: Atom's first pages show it)
        scanner.scan(prune_now=True)
        whole = documents(fresh(store, settings))
        entries = fresh(store, settings).catalog().everything.count
        assert prerender(store, settings) == entries
        assert prerender(store, settings) == 0  # (each revision once)
        parted: dict[Any, Any] = {}
        reads = data_reads(store, lambda: parted.update(documents(fresh(store, settings))))
        assert reads == []  # every document came from parts
        assert parted.keys() == whole.keys()
        for key, expected in whole.items():
            assert parted[key] == expected, key
    finally:
        store.close()


def test_parts_go_stale_with_their_entry_and_with_the_settings(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(prerender_module, "RENDER_BYTES", 1)  # (every entry rendered alone)
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    edited = seeds / "edited.md"
    seed = "---\ntitle: {}\ndate: 2030-01-01T00:00:00Z\n---\n<p>body</p>\n"
    edited.write_text(seed.format("first title"))
    settings = Settings(seeds=seeds, db=f"sqlite:///{tmp_path}/db.sqlite3")
    store = Store(settings.db)
    try:
        scanner = Scanner(store, settings)
        scanner.scan()
        prerender(store, settings)
        edited.write_text(seed.format("edited title"))
        scanner.scan()
        service = fresh(store, settings)
        body = service.feed(Scope.all(), Format.ATOM, 1, 50).body
        assert b"edited title" in body  # (the stale part is not served: a whole render)
        assert prerender(store, settings) == 1  # only the edited entry is rendered again
        again = fresh(store, settings)
        reads = data_reads(store, lambda: again.feed(Scope.all(), Format.ATOM, 1, 50))
        assert reads == [] and again.feed(Scope.all(), Format.ATOM, 1, 50).body == body

        moved = Settings(seeds=seeds, db=settings.db, base_url="http://elsewhere.example")
        elsewhere = fresh(store, moved)
        body = elsewhere.feed(Scope.all(), Format.RSS, 1, 50).body
        assert b"http://elsewhere.example" in body  # (parts of other settings are not used)
        count = elsewhere.catalog().everything.count
        assert prerender(store, moved) == count  # every entry again, for the new settings
        assert fresh(store, moved).feed(Scope.all(), Format.RSS, 1, 50).body == body
    finally:
        store.close()


def test_the_leader_renders_the_parts_before_it_indexes(tmp_path: Path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    server = serve(seeds, db)  # ready: the search index has caught up, after the parts
    kept = sql_value(db, "SELECT count(*) FROM fragments")
    assert kept == sql_value(db, "SELECT count(*) FROM entries") and kept
    assert f"rendered {kept} entries in every format" in server.log.read_text()
