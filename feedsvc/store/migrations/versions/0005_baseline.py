"""Schema 5, the last schema rebuilt from the seeds rather than migrated: the baseline.

A database that release wrote is stamped with this revision as it is (its ``meta`` row
``schema_version`` says 5); a new database is created by running it. Frozen: the tables as
that release created them, whatever the models say today."""

from typing import Any

import sqlalchemy as sa
from alembic import op

from feedsvc.store.migrations.search import postgres_trigram_index

revision = "0005"
down_revision = None


def _key(name: str = "id") -> sa.Column[str]:
    """A primary key holding a derived id (a name-based UUID)."""
    return sa.Column(name, sa.String(36), primary_key=True)


def _stat() -> list[sa.Column[Any]]:
    """Where a seed file is, and its stat."""
    return [
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "entries",
        _key(),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("path_id", sa.String(36), nullable=False, index=True),
        sa.Column("published", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("missing_since", sa.BigInteger, nullable=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    if sqlite:
        op.create_index(
            "entries_file_state",
            "entries",
            ["path", "mtime_ns", "size", "content_hash", "id", "missing_since"],
        )
    op.create_table(
        "entry_scopes",
        _key("scope_id"),
        _key("entry_id"),
        sa.Column("published", sa.BigInteger, nullable=False),
        sa.Index("entry_scopes_order", "scope_id", "published", "entry_id"),
        sa.Index("entry_scopes_entry", "entry_id"),
    )
    op.create_table(
        "scopes",
        _key(),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("entry_count", sa.Integer, nullable=False),
        sa.Column("newest_updated", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_table("dirty_scopes", _key(), sa.Column("key", sa.Text, nullable=False))
    op.create_table(
        "unpublished",
        _key(),
        *_stat(),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "pinged",
        _key(),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "tombstones",
        _key("scope_id"),
        _key("entry_id"),
        sa.Column("removed", sa.BigInteger, nullable=False),
        sa.Index("tombstones_removed", "removed"),
    )
    op.create_table(
        "entry_text",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(36), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    if sqlite:
        _sqlite_search()
    else:
        postgres_trigram_index()
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def _sqlite_search() -> None:
    """FTS5 over entry_text with the trigram tokenizer, kept in step by triggers."""
    op.execute(
        "CREATE VIRTUAL TABLE entry_search USING fts5("
        "text, content='entry_text', content_rowid='id', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER entry_text_added AFTER INSERT ON entry_text BEGIN "
        "INSERT INTO entry_search(rowid, text) VALUES (new.id, new.text); END"
    )
    op.execute(
        "CREATE TRIGGER entry_text_removed AFTER DELETE ON entry_text BEGIN "
        "INSERT INTO entry_search(entry_search, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
