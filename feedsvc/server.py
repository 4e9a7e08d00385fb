"""`feedsvc serve`: one leader process (feedsvc.leader, supervised by feedsvc.supervise)
and the serving workers: the ASGI application (feedsvc.web.asgi) under granian, a Rust HTTP
server, with graceful shutdown.

granian was chosen by measurement (docs/benchmarks.md): on the same machine and feed it
answered several times the requests per second of gunicorn's threaded workers. Each worker
is forked from this process, builds its own app and only reads; the leader lock makes
exactly one leader process (across all replicas on one database) the one that scans.
SIGTERM: granian stops accepting and lets requests finish, then the leader stops once the
scan in progress has committed."""

from __future__ import annotations

import ctypes
import errno
import faulthandler
import fcntl
import os
import shutil
import signal
import socket
import tempfile
from importlib import import_module
from types import FrameType
from typing import Any

from feedsvc.config import Settings
from feedsvc.logs import ACCESS_FORMAT, log_config
from feedsvc.shared import COMMITS_ENV, REPLICA_ENV, STATE_ENV
from feedsvc.supervise import LeaderSupervisor

_M_ARENA_MAX = -8  # glibc's mallopt parameter
# For a serving worker to finish its requests after SIGTERM, then it is killed (a stop takes
# this plus the leader's STOP_SECONDS at most: what a container's stop grace must allow).
WORKERS_KILL_SECONDS = 30


def _load(settings: Settings) -> Any:
    """Run in each worker after the fork: the app that worker serves."""
    from feedsvc.app import asgi_app

    return asgi_app(settings)


def serve(settings: Settings, *, upgrade: bool = True) -> None:
    """Run until SIGTERM or SIGINT; workers finish their requests and stop their schedulers.
    ``upgrade``: bring an older schema to this feedsvc's revision first (else refuse it)."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from feedsvc.store import Store

    # Scratch space named by the environment (the image points both into its data volume,
    # so a read-only root file system is enough) must exist before anything uses it.
    for name in ("TMPDIR", "PROMETHEUS_MULTIPROC_DIR"):
        if os.environ.get(name):
            os.makedirs(os.environ[name], exist_ok=True)
    _check_address(settings.host, settings.port)
    _few_malloc_arenas()
    # `kill -USR1` any of its processes (the workers and the leader inherit this): every
    # thread's stack on stderr, and it goes on running. Written from a Python handler, which
    # holds the GIL, so no thread's frames change under it: faulthandler's own C handler
    # reads them while they run, and a few signals during a scan crashed the process.
    signal.signal(signal.SIGUSR1, _dump_stacks)
    # Create or upgrade the schema once (or refuse a newer one, or with ``upgrade`` off an
    # older one) before forking; a database server not reached yet is tried again by the
    # leader process (which upgrades it once reached) and by every worker (which only
    # reads, and answers 503 until the schema is this feedsvc's).
    Store(settings.db, wait=True, upgrade=upgrade).close()
    # What this server's processes share: its name, the leader's word, the metrics.
    scratch = _scratch()
    os.environ[REPLICA_ENV] = f"{socket.gethostname()}:{os.getpid()}"
    os.environ[STATE_ENV] = os.path.join(scratch, "leader-state")
    os.environ[COMMITS_ENV] = os.path.join(scratch, "commits", "committed")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(scratch, "metrics")
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    # Import the whole application before forking: the workers share those pages instead
    # of each loading its own copy. (Only code: each worker still builds its app.)
    import_module("feedsvc.app")
    server = Granian(
        "feedsvc.app:asgi_app",  # a label only: the loader below builds the app
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
        workers_kill_timeout=WORKERS_KILL_SECONDS,
        process_name="feedsvc",
    )
    leader = LeaderSupervisor(settings, upgrade)
    leader.start()
    try:
        server.serve(target_loader=lambda: _load(settings), wrap_loader=False)
    finally:
        leader.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _dump_stacks(_signum: int, _frame: FrameType | None) -> None:
    faulthandler.dump_traceback(all_threads=True)


_SCRATCH_PREFIX = "feedsvc-"
_HELD = "held"  # the file a running server keeps locked in its scratch directory


def _scratch() -> str:
    """A new scratch directory for this server, once those of servers that are gone
    (killed with -9) are removed. Each server holds a lock on a file in its own for as long
    as any of its processes runs (the lock is the kernel's, so this holds across PID
    namespaces and containers sharing the directory); a directory without that file, or
    whose lock is held, is left alone."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if name.startswith(_SCRATCH_PREFIX):
            _remove_if_abandoned(os.path.join(root, name))
    scratch = tempfile.mkdtemp(prefix=_SCRATCH_PREFIX)
    # Locked before it takes its name: a sweep never finds it unlocked.
    fd = os.open(os.path.join(scratch, ".locking"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(os.path.join(scratch, ".locking"), os.path.join(scratch, _HELD))
    os.makedirs(os.path.join(scratch, "commits"))  # (watched by the workers, and only this)
    return scratch  # (fd stays open, and locked, for the server's life)


def _remove_if_abandoned(path: str) -> None:
    try:
        fd = os.open(os.path.join(path, _HELD), os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # not a server's scratch directory, or not ours to touch
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a running server holds it
        os.close(fd)
        return
    shutil.rmtree(path, ignore_errors=True)
    os.close(fd)


def _few_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own arena (up to 8 per core), and memory
    freed in one is never reused by another: a worker's render threads would hold tens of
    MB more than they use. Two arenas, set before the workers are forked (they inherit it)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(_M_ARENA_MAX, 2)


def _check_address(host: str, port: int) -> None:
    """Refuse a port another server listens on. granian binds with SO_REUSEPORT, with which
    a second server would start silently and the kernel would split the traffic between
    two sites; a bind without it fails where anything listens (SO_REUSEADDR only lets it
    past connections of a server that has just stopped)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise SystemExit(f"feedsvc: error: cannot listen on {host}:{port}: {reason}") from None
