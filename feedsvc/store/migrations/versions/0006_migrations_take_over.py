"""Alembic keeps the version; entries.published, written and never read, is dropped.

An entry's date is in its data, and feeds are ordered by entry_scopes.published. The
``meta`` row ``schema_version`` stays for the releases before migrations, which read it:
any number above theirs makes them refuse the database, and a running one step down,
instead of rebuilding it; this release and later ones read alembic_version alone.

Revision 0006, after 0005."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

_meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("published")
    op.execute(_meta.delete().where(_meta.c.key == "schema_version"))
    op.execute(_meta.insert().values(key="schema_version", value="6"))
