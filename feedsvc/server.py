"""`feedsvc serve`: the Flask app under gunicorn (threaded workers), with graceful shutdown.

Each worker builds its own app after the fork, so each has its own watcher; the leader lock
makes exactly one of them (across all replicas on one database) the scanner."""

from __future__ import annotations

import os
import tempfile
from importlib import import_module
from typing import Any

from gunicorn.app.base import BaseApplication

from feedsvc.config import Settings


def _worker_exit(_server: Any, worker: Any) -> None:
    from feedsvc.web import stop_app

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        stop_app(app)


def _child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class Server(BaseApplication):
    """gunicorn configured from feedsvc's settings instead of gunicorn's command line."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        options = {
            "bind": f"{host}:{settings.port}",
            "workers": settings.workers,
            "threads": settings.threads,
            "worker_class": "gthread",
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": settings.log_level.lower(),
            "proc_name": "feedsvc",
            "control_socket_disable": True,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from feedsvc.web import create_app

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; workers finish their requests and stop their watchers."""
    from feedsvc.store import Store

    Store(settings.db).close()  # create the schema once, before the workers start
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="feedsvc-metrics-")
    # Import the whole application in the master: the workers it forks share those pages
    # instead of each loading its own copy. (Only code: each worker still builds its app.)
    import_module("feedsvc.web")
    Server(settings).run()
