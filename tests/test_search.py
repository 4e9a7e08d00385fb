"""Search is built after the scan: the index catches up, in its own transactions, once the
feeds are live; until then an entry is not found yet, and never wrongly found."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from feedsvc.model import Scope
from feedsvc.scan import Scanner
from feedsvc.store import Store

POST = "---\ntitle: {title}\ndate: Mon, 02 Jan 2023 10:00:00 +0000\n---\n<p>{body}</p>\n"


@pytest.fixture
def scanner(tmp_path: Path, db_url: str, make_settings) -> Scanner:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    store = Store(db_url)
    yield Scanner(store, make_settings(seeds, db_url))
    store.close()


def titles(scanner: Scanner, words: str) -> list[str]:
    return sorted(entry.title for entry in scanner.store.search(Scope.all(), words, 50))


def write(scanner: Scanner, name: str, title: str, body: str) -> None:
    (scanner.settings.seeds / name).write_text(POST.format(title=title, body=body))


def test_an_entry_is_found_once_the_index_catches_up(scanner: Scanner) -> None:
    write(scanner, "a.md", "小米汽车", "量产版本 Ärger über *Sterne* [1]")
    write(scanner, "b.md", "华为", "abcd bcdy")
    scanner.scan(index=False)  # the feeds are live, the index not yet
    assert scanner.store.search_pending() == 2
    assert titles(scanner, "小米汽车") == []
    scanner.index_search()
    assert scanner.store.search_pending() == 0
    assert titles(scanner, "小米汽车") == ["小米汽车"]
    assert titles(scanner, "量产") == ["小米汽车"]  # two characters: matched on the text
    assert titles(scanner, "ärger ÜBER") == ["小米汽车"]  # any case, not only ASCII's
    assert titles(scanner, "*sterne*") == titles(scanner, "[1]") == ["小米汽车"]  # literally
    assert titles(scanner, "s*e") == titles(scanner, "?rger") == []
    assert titles(scanner, "abcdy") == []  # every trigram is there, the substring is not
    assert titles(scanner, "bcdy") == ["华为"]


def test_edited_and_deleted_entries_leave_the_index(scanner: Scanner) -> None:
    write(scanner, "a.md", "first", "old words here")
    write(scanner, "b.md", "second", "staying words")
    scanner.scan()
    write(scanner, "a.md", "first", "new phrasing")
    scanner.scan()
    assert titles(scanner, "old words") == [] and titles(scanner, "new phrasing") == ["first"]
    (scanner.settings.seeds / "a.md").unlink()
    scanner.scan(prune_now=True)
    assert titles(scanner, "new phrasing") == [] and titles(scanner, "words") == ["second"]
    if scanner.store.dialect == "sqlite":  # the FTS5 index holds exactly the rows there
        with scanner.store.engine.begin() as conn:
            conn.execute(text("INSERT INTO entry_search(entry_search) VALUES ('integrity-check')"))
