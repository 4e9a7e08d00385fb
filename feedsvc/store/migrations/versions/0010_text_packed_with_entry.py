"""Each entry's searchable text is packed with its JSON, compressed, in entries.data.

The JSON (which holds the body's HTML) and the searchable text (the body's words again) were
kept apart and uncompressed: on a 10k corpus 56 and 45 MiB for 52 MB of seeds, most of the
database. Packed together in one zstd frame (feedsvc.store.parts) they are a third of that.
A search verifies its candidates against
the packed text (feedsvc.store.search), so what is found does not change; entry_text keeps
only each entry's place in the index. Rows an older release wrote unfolded are folded here.

The index is given each token spelled in hex now (feedsvc.store.search): given as they were,
FTS5's tokenizer and PostgreSQL's parser cut tokens at characters their older Unicode tables
hold no letter ("・" in a Japanese name), and a search for such a term found nothing. The index
is derived: emptied here, and every entry indexed again by the scanner after the upgrade.

Revision 0010, after 0009."""

import sqlalchemy as sa
from alembic import op

from feedsvc.store.parts import pack_entry

revision = "0010"
down_revision = "0009"

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("packed", sa.LargeBinary, nullable=True))
    entries = sa.table(
        "entries", sa.column("id"), sa.column("data"), sa.column("packed", sa.LargeBinary)
    )
    entry_text = sa.table("entry_text", sa.column("entry_id"), sa.column("text"))
    after = ""
    while True:  # (in batches by id: a 100k database is never held in memory at once)
        rows = bind.execute(
            sa.select(entries.c.id, entries.c.data, entry_text.c.text)
            .select_from(entries.outerjoin(entry_text, entry_text.c.entry_id == entries.c.id))
            .where(entries.c.id > after)
            .order_by(entries.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            sa.update(entries)
            .where(entries.c.id == sa.bindparam("row"))
            .values(packed=sa.bindparam("value")),
            [
                {"row": row.id, "value": pack_entry(row.data, (row.text or "").casefold())}
                for row in rows
            ],
        )
        after = rows[-1].id
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("data")
        batch.alter_column("packed", new_column_name="data", nullable=False)
    with op.batch_alter_table("entry_text") as batch:
        batch.drop_column("text")
    if bind.dialect.name == "sqlite":
        op.execute("INSERT INTO entry_search(entry_search) VALUES ('delete-all')")
    op.execute(
        sa.update(sa.table("entry_text", sa.column("indexed"), sa.column("tokens"))).values(
            indexed=False, tokens=None
        )
    )
