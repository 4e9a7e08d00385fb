"""Alembic's script directory for feedsvc's database: ``env.py`` runs the revisions in
``versions/`` on the connection feedsvc.store.migrate hands it, inside that connection's
transaction, so an upgrade commits whole or not at all."""
