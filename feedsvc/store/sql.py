"""Small statements used on both sides of the store: bounded IN lists, the scopes' members,
and the key-value meta table (epoch, generation, last scan, parse settings, scanner, WebSub
counters)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, Table, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from feedsvc.store.schema import entries, entry_scopes, meta, scopes


def chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def select_in(conn: Connection, query: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``values``, asked in bounded chunks."""
    rows: list[Any] = []
    for chunk in chunks(values):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows


def delete_in(conn: Connection, table: Table, column: Any, values: Sequence[Any]) -> None:
    for chunk in chunks(values):
        conn.execute(delete(table).where(column.in_(chunk)))


def scope_fingerprints(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """The summary fingerprint of each of these scopes that has a summary."""
    query = select(scopes.c.id, scopes.c.fingerprint).where(scopes.c.id.in_(ids))
    return {row.id: row.fingerprint for row in conn.execute(query)}


def scope_members(ids: Sequence[str], *columns: ColumnElement[Any]) -> Select[Any]:
    """The entries of these scopes: each row is a scope id followed by ``columns``."""
    return (
        select(entry_scopes.c.scope_id, *columns)
        .join(entries, entry_scopes.c.entry_id == entries.c.id)
        .where(entry_scopes.c.scope_id.in_(ids))
    )


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def get_metas(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """Several meta values in one statement (absent keys are left out)."""
    return dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(keys))).all())


def set_meta(conn: Connection, key: str, value: str) -> None:
    changed = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
    if changed.rowcount == 0:
        conn.execute(insert(meta).values(key=key, value=value))
