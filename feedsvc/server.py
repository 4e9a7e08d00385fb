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
from feedsvc.logs import ACCESS_FORMAT, log_config


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

    # Scratch space named by the environment (the image points both into its data volume,
    # so a read-only root file system is enough) must exist before anything uses it.
    for name in ("TMPDIR", "PROMETHEUS_MULTIPROC_DIR"):
        if os.environ.get(name):
            os.makedirs(os.environ[name], exist_ok=True)
    Store(settings.db).close()  # create the schema once (or refuse a newer one) before forking
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
        log_dictconfig=log_config(settings.log_level, settings.log_format, "stdout"),
        # Access lines are INFO events: none at WARNING and above, and none of their cost.
        log_access=settings.log_level in ("DEBUG", "INFO"),
        log_access_format=ACCESS_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        process_name="feedsvc",
    )
    server.serve(target_loader=lambda: _load(settings), wrap_loader=False)
