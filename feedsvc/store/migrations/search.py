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
            _create_trigram_extension(bind)
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


def _create_trigram_extension(bind: sa.Connection) -> None:
    """An extension belongs to the database, not to a schema: when another schema's upgrade
    creates it at the same moment, this one waits on the catalogue and then fails its unique
    index, though the extension is there (committed by the other) and all this one needs."""
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.IntegrityError:
        log.info("pg_trgm was created by another session at the same time: using it")
