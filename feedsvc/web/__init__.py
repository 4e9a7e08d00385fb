"""The Flask app factory, and the ASGI application `feedsvc serve` runs around it."""

from __future__ import annotations

import os

from flask import Flask, Response, request

from feedsvc.config import Settings
from feedsvc.schedule import Scheduler
from feedsvc.service import FeedService
from feedsvc.store import StorageError, Store
from feedsvc.web.asgi import UNMATCHED, Application
from feedsvc.web.feedroute import EVERY_RESPONSE
from feedsvc.web.metrics import REQUESTS
from feedsvc.web.state import AppState
from feedsvc.web.views import bp
from feedsvc.websub import WebSubPublisher


def create_app(settings: Settings, *, watch: bool = True, upgrade: bool = True) -> Flask:
    """An app serving ``settings``. Only wiring: with ``watch`` it holds a scheduler (and a
    WebSub publisher when hubs are set), which ``start_app`` starts; ``upgrade`` as for Store."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No redirects of its own: Werkzeug would write the client's Host header into the
    # Location of a cacheable 308 for '//' in a path. Such a path is simply not found.
    app.url_map.merge_slashes = False
    store = Store(settings.db, wait=True, upgrade=upgrade)
    service = FeedService(store, settings)
    try:
        service.refresh()
    except StorageError as exc:  # not reached yet: not ready until it is (see /readyz)
        app.logger.warning("database: %s", exc)
    scheduler = Scheduler(store, settings, service) if watch else None
    publisher = None
    if scheduler is not None and settings.websub_hubs:
        publisher = WebSubPublisher(settings, store, service.document)
        scheduler.listeners.append(publisher.feeds_changed)
    app.extensions["feedsvc"] = AppState(settings, store, service, scheduler, publisher)
    app.register_blueprint(bp)

    @app.after_request
    def _finish(response: Response) -> Response:
        for name, value in EVERY_RESPONSE:
            response.headers.setdefault(name, value)
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        REQUESTS.labels(route=route, status=str(response.status_code)).inc()
        return response

    return app


def start_app(app: Flask) -> None:
    """Start the background work: the scheduler (scans when this process leads) and the
    WebSub publisher. Called where the process starts serving, never by the factory."""
    state: AppState = app.extensions["feedsvc"]
    if state.publisher is not None:
        state.publisher.start()
    if state.scheduler is not None:
        state.scheduler.start()


def stop_app(app: Flask) -> None:
    """Stop the scheduler and close the database: the graceful part of a shutdown."""
    state: AppState = app.extensions["feedsvc"]
    if state.scheduler is not None:
        state.scheduler.stop()
    if state.publisher is not None:
        state.publisher.stop()
    state.store.close()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def asgi_app(settings: Settings, *, upgrade: bool = True) -> Application:
    """What a server worker runs: the app with its background work tied to the lifespan."""
    app = create_app(settings, upgrade=upgrade)
    return Application(app, start=lambda: start_app(app), stop=lambda: stop_app(app))
