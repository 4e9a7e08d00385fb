"""The search index is built after the scan, not by it: entry_text.indexed says which rows.

A scan writes each entry's searchable text (case-folded) with ``indexed`` false; the scanner
indexes those rows once the feeds are live, in transactions of their own (Store.index_search).
SQLite's FTS5 trigram index drops its triggers and its positions (detail=none: a substring is
looked up with GLOB, which verifies each candidate); PostgreSQL's trigram index covers the
indexed rows only. Both indexes are derived: rebuilt here empty, and every row is indexed
again by the scanner after the upgrade (until then a search does not find it yet).

Revision 0007, after 0006."""

import sqlalchemy as sa
from alembic import op

from feedsvc.store.migrations.search import postgres_trigram_index

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        for trigger in ("entry_text_added", "entry_text_removed"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS entry_search")
    else:
        op.execute("DROP INDEX IF EXISTS entry_text_trigram")
    with op.batch_alter_table("entry_text") as batch:
        batch.add_column(
            sa.Column("indexed", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index(
        "entry_text_pending",
        "entry_text",
        ["id"],
        sqlite_where=sa.text("indexed = 0"),  # (as SQLAlchemy writes ~indexed there)
        postgresql_where=sa.text("NOT indexed"),
    )
    if sqlite:
        op.execute(
            "CREATE VIRTUAL TABLE entry_search USING fts5(text, content='entry_text', "
            "content_rowid='id', tokenize='trigram', detail=none)"
        )
    else:
        postgres_trigram_index("WHERE indexed")
