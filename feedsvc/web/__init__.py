"""The Flask app (the routes table of feedsvc.web.views) over a read side it is handed: the
composition root (feedsvc.app) builds the store and the read side's follower, and gives
this package only an AppState. What every response gets is added by the ASGI layers
(feedsvc.web.asgi), whichever of them answers."""

from __future__ import annotations

from flask import Flask, Response, request

from feedsvc.routes import STATIC
from feedsvc.web.asgi import ROUTE_KEY, UNMATCHED
from feedsvc.web.state import AppState
from feedsvc.web.views import bp


def create_app(state: AppState) -> Flask:
    """The app answering from ``state``: routes, nothing else."""
    app = Flask(__name__, static_folder="static", static_url_path=STATIC)
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No redirects of its own: Werkzeug would write the client's Host header into the
    # Location of a cacheable 308 for '//' in a path. Such a path is simply not found.
    app.url_map.merge_slashes = False
    app.extensions["feedsvc"] = state
    app.register_blueprint(bp)

    @app.after_request
    def _route(response: Response) -> Response:
        """Tell the layer that counts requests which rule answered (see ROUTE_KEY)."""
        request.environ[ROUTE_KEY] = request.url_rule.rule if request.url_rule else UNMATCHED
        return response

    return app
