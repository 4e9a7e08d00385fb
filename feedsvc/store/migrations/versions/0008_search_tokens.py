"""Search indexes tokens, not the whole text: several times smaller and cheaper to build.

A trigram index over every body's full text was twice the text (SQLite's FTS5 table of a
10k corpus: 99 MiB, 10.5 s to build; PostgreSQL's pg_trgm GIN, minutes). The index now holds
each entry's CJK characters and the trigrams of its other words, once each
(feedsvc.store.search.tokens): SQLite in a contentless FTS5 table without positions,
PostgreSQL in a ``tsvector`` column under a GIN index. Candidates are verified against the
text as before, so what is found does not change. Both indexes are derived: every row is
indexed again by the scanner after the upgrade (until then a search does not find it yet).

Revision 0008, after 0007."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TABLE IF EXISTS entry_search")
    else:
        op.execute("DROP INDEX IF EXISTS entry_text_trigram")  # (pg_trgm itself stays)
    with op.batch_alter_table("entry_text") as batch:
        batch.add_column(
            sa.Column("tokens", sa.Text().with_variant(TSVECTOR(), "postgresql"), nullable=True)
        )
    op.execute(sa.update(sa.table("entry_text", sa.column("indexed"))).values(indexed=False))
    if sqlite:
        op.execute(
            "CREATE VIRTUAL TABLE entry_search USING fts5(tokens, content='', detail=none, "
            "tokenize=\"unicode61 remove_diacritics 0 categories 'L* N*'\")"
        )
    else:
        op.execute("CREATE INDEX entry_text_tokens ON entry_text USING gin (tokens) WHERE indexed")
