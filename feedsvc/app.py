"""The composition root: the one place that builds feedsvc's parts and wires them, so that
data flows one way (seeds -> store -> read side -> HTTP). It opens the store, builds the read
side (FeedService), the scheduler (the leader's scans, every process's catch-up) and the
WebSub publisher, and hands the web app only the read side and the leader's status."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask

from feedsvc.config import Settings
from feedsvc.schedule import Scheduler
from feedsvc.service import FeedService
from feedsvc.store import StorageError, Store
from feedsvc.web import create_app as web_app
from feedsvc.web.asgi import Application
from feedsvc.web.state import AppState
from feedsvc.websub import WebSubPublisher

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """One process's parts; ``start`` begins their background work, ``stop`` ends it."""

    settings: Settings
    store: Store
    service: FeedService
    scheduler: Scheduler | None = None
    publisher: WebSubPublisher | None = None

    def start(self) -> None:
        """Start the background work: the scheduler (scans when this process leads) and the
        WebSub publisher. Called where the process starts serving, never by ``build``."""
        if self.publisher is not None:
            self.publisher.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self) -> None:
        """Stop the scheduler and close the database: the graceful part of a shutdown."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.publisher is not None:
            self.publisher.stop()
        self.store.close()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


def build(settings: Settings, *, watch: bool = True, upgrade: bool = True) -> Parts:
    """The parts serving ``settings``: with ``watch`` a scheduler (and a WebSub publisher
    when hubs are set); ``upgrade`` as for Store."""
    store = Store(settings.db, wait=True, upgrade=upgrade)
    service = FeedService(store, settings)
    try:
        service.refresh()
    except StorageError as exc:  # not reached yet: not ready until it is (see /readyz)
        log.warning("database: %s", exc)
    scheduler = Scheduler(store, settings, service) if watch else None
    publisher = None
    if scheduler is not None and settings.websub_hubs:
        publisher = WebSubPublisher(settings, store, service.document)
        scheduler.listeners.append(publisher.feeds_changed)
    return Parts(settings, store, service, scheduler, publisher)


def create_app(parts: Parts) -> Flask:
    """The web app over these parts: it sees the read side and the leader's status only."""
    return web_app(AppState(parts.settings, parts.service, parts.scheduler))


def asgi_app(settings: Settings, *, upgrade: bool = True) -> Application:
    """What a server worker runs: the app with its parts' background work tied to the
    lifespan."""
    parts = build(settings, upgrade=upgrade)
    return Application(create_app(parts), start=parts.start, stop=parts.stop)
