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
    """An extension belongs to the database and lives in one schema: in public where this
    role may create it, since one created in a deployment's own schema would go, with every
    other schema's trigram index, when that schema is dropped (cascade). When another
    schema's upgrade creates it at the same moment, this one waits on the catalogue and then
    fails its unique index, though the extension is there (committed by the other) and all
    this one needs."""
    for where in (" SCHEMA public", ""):
        try:
            with bind.begin_nested():
                bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS pg_trgm{where}"))
            return
        except sa.exc.IntegrityError:
            log.info("pg_trgm was created by another session at the same time: using it")
            return
        except StorageError as exc:  # (no public schema, or no right to create in it)
            if not where:
                raise
            log.info("pg_trgm cannot be created in public (%s): creating it here", exc)
