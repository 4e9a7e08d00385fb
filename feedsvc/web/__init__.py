"""The Flask app factory."""

from __future__ import annotations

from flask import Flask, Response, request

from feedsvc.config import Settings
from feedsvc.schedule import Watcher
from feedsvc.service import FeedService
from feedsvc.store import Store
from feedsvc.web.fastpath import FastFeeds
from feedsvc.web.feedroute import EVERY_RESPONSE
from feedsvc.web.metrics import REQUESTS
from feedsvc.web.state import AppState
from feedsvc.web.views import bp
from feedsvc.websub import WebSubPublisher


def create_app(settings: Settings, *, watch: bool = True) -> Flask:
    """An app serving ``settings``; with ``watch`` it also runs the scheduled watcher."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False, JSON_SORT_KEYS=False)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    store = Store(settings.db)
    service = FeedService(store, settings)
    service.refresh()
    watcher = Watcher(store, settings, service) if watch else None
    publisher = None
    if watcher is not None and settings.websub_hubs:
        publisher = WebSubPublisher(settings, store, service.document)
        watcher.listeners.append(publisher.feeds_changed)
        publisher.start()
    app.extensions["feedsvc"] = AppState(settings, store, service, watcher, publisher)
    app.register_blueprint(bp)
    app.wsgi_app = FastFeeds(app.extensions["feedsvc"], app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def _finish(response: Response) -> Response:
        for name, value in EVERY_RESPONSE:
            response.headers.setdefault(name, value)
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(route=route, status=str(response.status_code)).inc()
        return response

    if watcher is not None:
        watcher.start()
    return app


def stop_app(app: Flask) -> None:
    """Stop the watcher and close the database: the graceful part of a shutdown."""
    state: AppState = app.extensions["feedsvc"]
    if state.watcher is not None:
        state.watcher.stop()
    if state.publisher is not None:
        state.publisher.stop()
    state.store.close()
