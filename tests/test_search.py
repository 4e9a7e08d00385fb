"""Search is built after the scan: the index catches up, in its own transactions, once the
feeds are live; until then an entry is not found yet, and never wrongly found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, select, text

from feedsvc.model import Format, Scope
from feedsvc.query import FeedQuery
from feedsvc.scan import Scanner
from feedsvc.service import FeedService
from feedsvc.store import Store, search
from feedsvc.store.schema import entry_text

POST = "---\ntitle: {title}\ndate: Mon, 02 Jan 2023 10:00:00 +0000\n---\n<p>{body}</p>\n"


@pytest.fixture
def scanner(tmp_path: Path, db_url: str, make_settings) -> Iterator[Scanner]:
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


@pytest.mark.parametrize(
    "term",
    ["トム・クルーズ", "ム・ク", "・", "゛゜", "゠", "ᦀᦰᦁ", "ᦰᦰᦰ", "\u1cf2\u1cf2\u1cf2"],
)
def test_a_character_the_index_sees_no_letter_in_is_found_all_the_same(
    scanner: Scanner, term: str
) -> None:
    """Characters this Python counts as letters or CJK, and FTS5's and PostgreSQL's older
    Unicode tables do not (the middle dot of Japanese names, kana sound marks, New Tai Lue
    vowel signs): a search holding one finds what holds it, and never fails."""
    write(scanner, "a.md", "トム・クルーズの映画 ゛゜゠ ᦀᦰᦁ ᦰᦰᦰ \u1cf2\u1cf2\u1cf2", "x")
    write(scanner, "b.md", "トム クルーズ", "x")
    scanner.scan()
    assert titles(scanner, term) == ["トム・クルーズの映画 ゛゜゠ ᦀᦰᦁ ᦰᦰᦰ \u1cf2\u1cf2\u1cf2"]


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


def test_wildcards_in_terms_are_literal_and_never_reach_the_index(scanner: Scanner) -> None:
    """GLOB's * ? [ ] are plain characters in a term. SQLite's trigram GLOB misreads a
    wildcard among multibyte characters, and can crash the process on one: none is sent."""
    write(scanner, "a.md", "本?abcd", "a?b abc, ??? linux, c++? rust, xxéb*yy, ?*?*?*10 x10")
    write(scanner, "b.md", "other", "本 abcd, ab linux")
    scanner.scan()
    for words in ("本?abcd", "a?b abc", "??? linux", "c++? rust", "éb*", "?*?*?*10 x10"):
        assert titles(scanner, words) == ["本?abcd"], words
    assert titles(scanner, "本*abcd") == titles(scanner, "[a]b") == []


def test_a_search_cached_while_entries_waited_is_not_served_once_they_are_found(
    scanner: Scanner,
) -> None:
    write(scanner, "a.md", "小米汽车", "量产")
    scanner.scan(index=False)
    service = FeedService(scanner.store, scanner.settings)
    service.refresh()
    query = FeedQuery(search="小米汽车")
    pending = service.feed(Scope.all(), Format.JSON, 1, 20, query)
    assert "小米汽车".encode() not in pending.body
    scanner.index_search()
    service.catch_up()
    found = service.feed(Scope.all(), Format.JSON, 1, 20, query)
    assert "小米汽车".encode() in found.body and found.etag != pending.etag


def test_the_partial_indexes_are_the_ones_asked(scanner: Scanner) -> None:
    """The statements the code sends are ones the planner matches to the partial indexes
    (a bare boolean, as each dialect writes it): counting what waits reads
    entry_text_pending, and a PostgreSQL search's text the trigram index."""
    write(scanner, "a.md", "title", "words")
    scanner.scan()
    store = scanner.store
    sent: list[tuple[str, Any]] = []

    def record(_conn, _cursor, sql, parameters, *_args) -> None:
        sent.append((sql, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.search_pending()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    counted = next(item for item in sent if "count(" in item[0])
    with store.engine.connect() as conn:
        cursor = conn.connection.cursor()
        explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
        if store.dialect == "postgresql":
            cursor.execute("SET enable_seqscan = off")
        cursor.execute(explain + counted[0], counted[1])
        assert "entry_text_pending" in " ".join(str(row[-1]) for row in cursor.fetchall())
        if store.dialect == "postgresql":
            texts = search.candidates(select(entry_text.c.id), ["words"], store.dialect)
            compiled = texts.compile(conn, compile_kwargs={"literal_binds": True})
            cursor.execute("EXPLAIN " + str(compiled))
            assert "entry_text_tokens" in " ".join(row[0] for row in cursor.fetchall())


@given(
    st.text(alphabet=st.sampled_from("ab1_ -小米汽车量产ぁアン한ßẞΣσς\u0301"), max_size=40),
    st.data(),
)
def test_a_substring_holds_no_token_its_text_does_not(text_: str, data) -> None:
    """What makes the index's candidates complete: every token of a word found in a text
    (any substring, case-folded like the text) is a token of that text."""
    folded = text_.casefold()
    start = data.draw(st.integers(0, len(folded)))
    end = data.draw(st.integers(start, len(folded)))
    assert set(search.tokens(folded[start:end])) <= set(search.tokens(folded))


def test_a_single_cjk_character_is_found_through_the_index(scanner: Scanner) -> None:
    write(scanner, "a.md", "量", "x")
    write(scanner, "b.md", "产", "y")
    scanner.scan()
    assert search.tokens("量") == ["量"]
    assert titles(scanner, "量") == ["量"]


def test_sqlite_looks_each_row_up_in_the_candidates(tmp_path: Path, make_settings) -> None:
    """A search scans the scope in feed order and looks each entry up in the index's
    candidates; SQLite otherwise probed its entry_text index with every candidate for every
    row of the scope (10 s for a two-character word over 10k entries, 70 ms now)."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.md").write_text(POST.format(title="中国", body="words"))
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    store = Store(url)
    sent: list[tuple[str, Any]] = []

    def record(_conn, _cursor, sql, parameters, *_args) -> None:
        sent.append((sql, parameters))

    try:
        Scanner(store, make_settings(seeds, url)).scan()
        event.listen(store.engine, "before_cursor_execute", record)
        assert [e.title for e in store.search(Scope.all(), "中国", 10)] == ["中国"]
        event.remove(store.engine, "before_cursor_execute", record)
        sql, parameters = next(item for item in sent if "MATCH" in item[0])
        with store.engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute("EXPLAIN QUERY PLAN " + sql, parameters)
            plan = [str(row[-1]) for row in cursor.fetchall()]
        assert any("entry_search" in step for step in plan)  # the index is asked
        assert not [step for step in plan if "entry_text" in step and "rowid=?" in step], plan
    finally:
        store.close()
