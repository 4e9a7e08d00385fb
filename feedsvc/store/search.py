"""Search (?q=): what is searched, the index, and the query.

The scan only writes each entry's searchable text, case-folded, with ``indexed`` false: an
index over full text costs more than the rest of a scan. The scanner indexes those rows once
the feeds are live, in small transactions of their own (``index_pending``); until then a
search does not find them yet. SQLite indexes them in an FTS5 trigram table without
positions (GLOB finds the candidates there and verifies each against its text); PostgreSQL
flips ``indexed``, which puts the row under its pg_trgm index. A term is a substring, any
case (both sides are case-folded); terms under three characters are matched on the
candidates of the others, or on every indexed row. Each batch indexed moves the
search version, which the read side keeps in the keys of search documents: a result
cached while entries were pending is not served once they are found."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.engine import Connection

from feedsvc.model import Entry
from feedsvc.sanitize import html_to_text
from feedsvc.store.schema import SEARCH_TABLE, entry_text
from feedsvc.store.sql import chunks, get_meta, set_meta

INDEX_BATCH = 1000  # rows per indexing transaction: the write lock is never held long
VERSION_KEY = "search_version"  # meta: moves with every batch indexed

_FTS_DELETE = text(
    f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, text) "
    "SELECT 'delete', id, text FROM entry_text WHERE indexed AND entry_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_FTS_ADD = text(f"INSERT INTO {SEARCH_TABLE}(rowid, text) VALUES (:row, :folded)")
_WILDCARDS = re.compile(r"[*?\[\]]+")


def searchable_text(entry: Entry) -> str:
    """What a search looks in: the title and the body's plain text, case-folded."""
    return (entry.title + "\n" + html_to_text(entry.content)).casefold()


def forget(conn: Connection, entry_ids: Sequence[str]) -> None:
    """Remove these entries' text, and on SQLite their postings (an FTS5 table with
    external content is told the text it indexed)."""
    for chunk in chunks(list(entry_ids)):
        if conn.dialect.name == "sqlite":
            conn.execute(_FTS_DELETE, {"ids": list(chunk)})
        conn.execute(entry_text.delete().where(entry_text.c.entry_id.in_(chunk)))


def index_pending(conn: Connection, batch: int = INDEX_BATCH) -> int:
    """Index up to ``batch`` rows not indexed yet (folding rows an older release wrote),
    in the caller's write transaction; how many it indexed."""
    rows = conn.execute(
        select(entry_text.c.id, entry_text.c.text)
        .where(~entry_text.c.indexed)
        .order_by(entry_text.c.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0
    folded = [{"row": row.id, "folded": row.text.casefold()} for row in rows]
    refolded = [item for item, row in zip(folded, rows, strict=True) if item["folded"] != row.text]
    if refolded:  # (rows a scan wrote are folded already: only the flag changes)
        conn.execute(
            update(entry_text)
            .where(entry_text.c.id == bindparam("row"))
            .values(text=bindparam("folded")),
            refolded,
        )
    flip = update(entry_text).values(indexed=True)
    conn.execute(flip.where(entry_text.c.id.in_([row.id for row in rows])))
    if conn.dialect.name == "sqlite":
        conn.execute(_FTS_ADD, folded)
    searched = get_meta(conn, VERSION_KEY)
    set_meta(conn, VERSION_KEY, str(int(searched or 0) + 1))  # (cached results go stale)
    return len(rows)


def pending(conn: Connection) -> int:
    """Rows a search cannot find yet."""
    query = select(func.count()).select_from(entry_text).where(~entry_text.c.indexed)
    return int(conn.execute(query).scalar() or 0)


def matching(query: Any, words: str, dialect: str) -> Any:
    """``query`` (joined to entry_text) narrowed to indexed rows holding every word."""
    terms = sorted(set(words.casefold().split()))
    query = query.where(entry_text.c.indexed)
    if dialect == "sqlite":
        # FTS5 is asked only for runs of three or more characters with no GLOB wildcard in
        # them (SQLite's trigram GLOB misreads, and can crash on, a wildcard or a class
        # among multibyte characters); instr() then checks every term exactly.
        runs = sorted({run for term in terms for run in _WILDCARDS.split(term) if len(run) >= 3})
        if runs:
            found = select(text("rowid")).select_from(text(SEARCH_TABLE))
            for number, run in enumerate(runs):
                name = f"run{number}"
                found = found.where(text(f"text GLOB :{name}").bindparams(**{name: f"*{run}*"}))
            query = query.where(entry_text.c.id.in_(found))
        for term in terms:
            query = query.where(func.instr(entry_text.c.text, term) > 0)
        return query
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(entry_text.c.text.like(pattern, escape="\\"))
    return query
