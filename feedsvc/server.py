"""`feedsvc serve`: the ASGI application (feedsvc.web.asgi) under granian, a Rust HTTP server,
with graceful shutdown.

granian was chosen by measurement (README, "Serving"): on the same machine and feed it
answered several times the requests per second of gunicorn's threaded workers. Each worker
is forked from this process and builds its own app; its lifespan starts the scheduler, and the
leader lock makes exactly one process (across all replicas on one database) the scanner.
SIGTERM: granian stops accepting, lets requests finish, and the lifespan stops the scheduler."""

from __future__ import annotations

import os
import tempfile
from importlib import import_module
from typing import Any

from feedsvc.config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# One line per request, as a combined-style access log (time, client, request, status, ms).
ACCESS_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'
)


def _log_config(level: str) -> dict[str, Any]:
    """granian's logging configuration, replaced whole so that feedsvc's own loggers, the
    server's and the access log all write the same format to stderr."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "formatters": {
            "generic": {"format": LOG_FORMAT},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "console": {**handler, "formatter": "generic"},
            "access": {**handler, "formatter": "access"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "apscheduler": {"level": "WARNING"},
        },
    }


def _load(settings: Settings) -> Any:
    """Run in each worker after the fork: the app that worker serves."""
    from feedsvc.web import asgi_app

    return asgi_app(settings)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; workers finish their requests and stop their schedulers."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from feedsvc.store import Store

    Store(settings.db).close()  # create the schema once, before the workers start
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="feedsvc-metrics-")
    # Import the whole application before forking: the workers share those pages instead
    # of each loading its own copy. (Only code: each worker still builds its app.)
    import_module("feedsvc.web")
    server = Granian(
        "feedsvc.web:asgi_app",  # a label only: the loader below builds the app
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        backlog=2048,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=_log_config(settings.log_level),
        # Access lines are INFO events: none at WARNING and above, and none of their cost.
        log_access=settings.log_level in ("DEBUG", "INFO"),
        log_access_format=ACCESS_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        process_name="feedsvc",
    )
    server.serve(target_loader=lambda: _load(settings), wrap_loader=False)
