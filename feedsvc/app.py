"""The composition root: the one place that builds feedsvc's serving parts and wires them,
so that data flows one way (seeds -> store -> read side -> HTTP). A serving process opens
the store, builds the read side (FeedService) and its follower (catch-up, and what /status
says of the leader), and hands the web app only those. The scanning parts are built by the
leader process (feedsvc.leader), which `feedsvc serve` starts beside the workers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask

from feedsvc.config import Settings
from feedsvc.follower import Follower
from feedsvc.service import FeedService
from feedsvc.store import StorageError, Store
from feedsvc.web import create_app as web_app
from feedsvc.web.asgi import Lifespan, compose
from feedsvc.web.state import AppState

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """One serving process's parts; ``start`` begins their background work, ``stop`` ends
    it."""

    settings: Settings
    store: Store
    service: FeedService
    follower: Follower | None = None

    def start(self) -> None:
        """Start following the store. Called where the process starts serving."""
        if self.follower is not None:
            self.follower.start()

    def stop(self) -> None:
        """Stop following and close the database: the graceful part of a shutdown."""
        if self.follower is not None:
            self.follower.stop()
        self.store.close()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


def build(settings: Settings, *, follow: bool = True, reader: bool = False) -> Parts:
    """The parts serving ``settings``; with ``follow`` they keep up with the store's scans.
    ``reader`` as for Store: a serving worker's, which never writes."""
    store = Store(settings.db, wait=True, reader=reader)
    service = FeedService(store, settings)
    try:
        service.refresh()
    except StorageError as exc:  # not reached yet: not ready until it is (see /readyz)
        log.warning("database: %s", exc)
    return Parts(settings, store, service, Follower(store, service) if follow else None)


def create_app(parts: Parts) -> Flask:
    """The web app over these parts: it sees the read side and the leader's status only."""
    return web_app(AppState(parts.settings, parts.service, parts.follower))


def asgi_app(settings: Settings) -> Lifespan:
    """What a serving worker runs: the app, following the store, with its background work
    tied to the lifespan. `feedsvc serve` upgraded the schema before starting it."""
    parts = build(settings, reader=True)
    return compose(create_app(parts), start=parts.start, stop=parts.stop)
