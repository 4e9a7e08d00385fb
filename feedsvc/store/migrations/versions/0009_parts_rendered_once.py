"""Each entry's bytes in every feed format are kept, rendered once per revision.

A document on a cache miss was rendered whole with feedgen by every serving process that
missed it; now the leader renders each entry once per revision after the feeds are live
(feedsvc.prerender) and a document is its head and these parts joined (feedsvc.feeds
.assemble), byte for byte what a whole render gives. The table is derived: created empty
here, filled by the leader after the upgrade (until then documents are rendered whole).

Revision 0009, after 0008."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "fragments",
        sa.Column("entry_id", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("parts", sa.LargeBinary, nullable=False),
    )
