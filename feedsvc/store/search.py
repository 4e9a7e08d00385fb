"""Search (?q=): what is searched, the index, and the query.

The scan packs each entry's searchable text, case-folded, with its JSON (feedsvc.store.parts)
and writes its entry_text row with ``indexed`` false; the
scanner indexes those rows once the feeds are live, in small transactions of their own
(``index_pending``); until then a search does not find them yet. The index holds *tokens*,
not the text: each CJK character the text holds (Han, kana, Hangul: scripts written without
spaces) and each trigram of its other words, once per entry. A substring of the text holds
only tokens the text holds, so the index gives candidates and each is verified against
its text (``holds``, on the candidates in the order they are listed, until enough are
found); a term that gives no token (a word under three characters) is matched on
the candidates of the others, or on every indexed row. SQLite keeps them in a contentless
FTS5 table without positions, PostgreSQL in a ``tsvector`` under a GIN index: a few percent of
the text's size, where a trigram index over the whole text was twice it. A term is a
substring, any case (both sides are case-folded). Each batch indexed moves the search
version, which the read side keeps in the keys of search documents: a result cached while
entries were pending is not served once they are found."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from feedsvc.model import Entry
from feedsvc.sanitize import html_to_text
from feedsvc.store.parts import text_bytes, text_of
from feedsvc.store.schema import SEARCH_TABLE, entries, entry_text
from feedsvc.store.sql import chunks, get_meta, set_meta

INDEX_BATCH = 1000  # rows per indexing transaction: the write lock is never held long
VERSION_KEY = "search_version"  # meta: moves with every batch indexed

_FTS_DELETE = text(
    f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, tokens) VALUES ('delete', :row, :tokens)"
)
_FTS_ADD = text(f"INSERT INTO {SEARCH_TABLE}(rowid, tokens) VALUES (:row, :tokens)")
# Scripts written without spaces between words: each character is a token. The same class
# is left out of the words, so that every character belongs to exactly one kind of token.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_CHARACTER = re.compile(f"[{_CJK}]")
# Letters and digits (FTS5's unicode61 "L* N*"), so that FTS5 sees each token whole.
_WORD = re.compile(f"[^\\W_{_CJK}]+")
TRIGRAM = 3
# PostgreSQL: the tokens as they are (no stemming, no stop words).
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")


def searchable_text(entry: Entry) -> str:
    """What a search looks in: the title and the body's plain text, case-folded."""
    return (entry.title + "\n" + html_to_text(entry.content)).casefold()


def tokens(folded: str) -> list[str]:
    """The index's tokens of a case-folded text (or term), each once, sorted: its CJK
    characters and the trigrams of its other words (a shorter word gives none)."""
    found = set(_CHARACTER.findall(folded))
    for word in _WORD.findall(folded):
        found.update(word[i : i + TRIGRAM] for i in range(len(word) - TRIGRAM + 1))
    return sorted(found)


def _spelled(found: Sequence[str]) -> list[str]:
    """Tokens as the index is given them: "x" and the hex of their UTF-8 bytes, which FTS5's
    tokenizer and PostgreSQL's parser keep whole. Given as they are, each would cut them
    where its own (older) Unicode tables see no letter: "・" in a Japanese name was dropped,
    and a term whose tokens held one found nothing, or failed as a phrase FTS5 refuses."""
    return ["x" + token.encode().hex() for token in found]


def _indexed_terms(folded: str) -> str:
    """What the index is given for a case-folded text: its tokens, spelled for the index."""
    return " ".join(_spelled(tokens(folded)))


def forget(conn: Connection, entry_ids: Sequence[str]) -> None:
    """Remove these entries from the index, before their rows go (a contentless FTS5 table
    is told the tokens it indexed, from the text they came from)."""
    for chunk in chunks(list(entry_ids)):
        if conn.dialect.name == "sqlite":
            indexed = conn.execute(
                select(entry_text.c.id, entries.c.data)
                .join(entries, entries.c.id == entry_text.c.entry_id)
                .where(entry_text.c.indexed, entry_text.c.entry_id.in_(chunk))
            ).all()
            if indexed:
                conn.execute(
                    _FTS_DELETE,
                    [
                        {"row": row.id, "tokens": _indexed_terms(text_of(row.data))}
                        for row in indexed
                    ],
                )
        conn.execute(entry_text.delete().where(entry_text.c.entry_id.in_(chunk)))


def index_pending(conn: Connection, batch: int = INDEX_BATCH) -> int:
    """Index up to ``batch`` rows not indexed yet, in the caller's write transaction; how
    many it indexed."""
    rows = conn.execute(
        select(entry_text.c.id, entries.c.data)
        .join(entries, entries.c.id == entry_text.c.entry_id)
        .where(~entry_text.c.indexed)
        .order_by(entry_text.c.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0
    indexed = [{"row": row.id, "tokens": _indexed_terms(text_of(row.data))} for row in rows]
    if conn.dialect.name == "sqlite":
        conn.execute(_FTS_ADD, indexed)
        conn.execute(
            update(entry_text)
            .values(indexed=True)
            .where(entry_text.c.id.in_([row.id for row in rows]))
        )
    else:
        conn.execute(
            update(entry_text)
            .where(entry_text.c.id == bindparam("row"))
            .values(
                indexed=True, tokens=func.strip(func.to_tsvector(_SIMPLE, bindparam("tokens")))
            ),
            indexed,
        )
    searched = get_meta(conn, VERSION_KEY)
    set_meta(conn, VERSION_KEY, str(int(searched or 0) + 1))  # (cached results go stale)
    return len(rows)


def pending(conn: Connection) -> int:
    """Rows a search cannot find yet."""
    query = select(func.count()).select_from(entry_text).where(~entry_text.c.indexed)
    return int(conn.execute(query).scalar() or 0)


def terms(words: str) -> list[str]:
    """What a search looks for: each word, case-folded, once."""
    return sorted(set(words.casefold().split()))


def candidates(query: Any, wanted: Sequence[str], dialect: str) -> Any:
    """``query`` (joined to entry_text) narrowed to indexed rows whose tokens hold every
    term's: a superset of the rows that hold the terms (``holds`` tells them apart)."""
    query = query.where(entry_text.c.indexed)
    needed = _spelled(sorted({token for term in wanted for token in tokens(term)}))
    if not needed:  # (terms too short to give a token: every indexed row is a candidate)
        return query
    if dialect == "sqlite":  # (hex: never FTS5's query syntax)
        match = " AND ".join(needed)
        found = select(text("rowid")).select_from(text(SEARCH_TABLE))
        found = found.where(text(f"{SEARCH_TABLE} MATCH :match").bindparams(match=match))
        # (as an expression: SQLite then looks each row up in the candidates, instead of
        # probing its index with every candidate for every row of the scope)
        return query.where((entry_text.c.id + 0).in_(found))
    lexemes = func.plainto_tsquery(_SIMPLE, " ".join(needed))
    return query.where(entry_text.c.tokens.bool_op("@@")(lexemes))


def holds(packed: bytes, wanted: Sequence[bytes]) -> bool:
    """Whether the text packed in entries.data holds every term, UTF-8 encoded (a substring
    of the bytes is one of the text: UTF-8 never starts a character inside another)."""
    folded = text_bytes(packed)
    return all(term in folded for term in wanted)
