"""The Flask app (routes and what every response gets) over a read side it is handed: the
composition root (feedsvc.app) builds the store and the read side's follower, and gives
this package only an AppState."""

from __future__ import annotations

from flask import Flask, Response, request

from feedsvc.web.asgi import UNMATCHED
from feedsvc.web.feedroute import EVERY_RESPONSE
from feedsvc.web.metrics import REQUESTS
from feedsvc.web.state import AppState
from feedsvc.web.views import bp


def create_app(state: AppState) -> Flask:
    """The app answering from ``state``: routes and response finishing, nothing else."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No redirects of its own: Werkzeug would write the client's Host header into the
    # Location of a cacheable 308 for '//' in a path. Such a path is simply not found.
    app.url_map.merge_slashes = False
    app.extensions["feedsvc"] = state
    app.register_blueprint(bp)

    @app.after_request
    def _finish(response: Response) -> Response:
        for name, value in EVERY_RESPONSE:
            response.headers.setdefault(name, value)
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        REQUESTS.labels(route=route, status=str(response.status_code)).inc()
        return response

    return app
