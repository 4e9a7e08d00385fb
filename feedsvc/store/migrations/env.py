"""Run by Alembic for every command: the revisions run on the connection feedsvc passes in
``config.attributes`` (feedsvc.store.migrate), in its open transaction, with the version
table in feedsvc's own PostgreSQL schema. SQLite alters tables in batch mode (a copy with the
new shape), since it cannot alter most of a table in place."""

from alembic import context

from feedsvc.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=context.config.attributes["version_table_schema"],
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
