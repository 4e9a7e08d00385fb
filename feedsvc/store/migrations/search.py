"""DDL the revisions share: PostgreSQL's trigram index for search."""

import logging

import sqlalchemy as sa
from alembic import op

from feedsvc.store.errors import StorageError

log = logging.getLogger(__name__)


def postgres_trigram_index(where: str = "") -> None:
    """pg_trgm's GIN index on entry_text (over the rows ``where`` selects), which makes
    LIKE '%words%' an index search. Without the extension (a role that may not create it)
    search still works, by reading every text."""
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            schema = bind.execute(
                sa.text(
                    "select extnamespace::regnamespace::text from pg_extension"
                    " where extname = 'pg_trgm'"
                )
            ).scalar()
            bind.execute(
                sa.text(
                    "CREATE INDEX entry_text_trigram ON entry_text"
                    f" USING gin (text {schema}.gin_trgm_ops) {where}"
                )
            )
    except StorageError as exc:  # the engine raises the store's own errors
        log.warning("no trigram index for search (%s): searches read every entry", exc)
