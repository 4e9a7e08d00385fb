"""The processes of the end-to-end tests: `feedsvc serve` on a free port (ServerProcess), a
WebSub hub, nginx, a TCP proxy, `feedsvc` commands; Servers, which starts servers, hubs and
nginx and stops them at the end (the tests' ``serve`` fixtures); and what tests ask a server."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import requests
from a2wsgi import ASGIMiddleware
from flask import Flask
from werkzeug.test import Client

from feedsvc.web.asgi import compose
from tests.helpers import CHECKOUT_ENV, ROOT, require

LEADER_PROCESS = "feedsvc-leader"  # its name in /proc (feedsvc.leader)
# A server stops in well under a second; this is past granian's 30 s for a worker that
# refuses to stop (its bug, rare and seen under load: it kills that worker, and the server
# still exits 0), so only a server that would not stop by itself is killed.
STOP_SECONDS = 90.0


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One `feedsvc` command as a user runs it: its own environment, warnings and errors only.
    PYTHONPATH names the feedsvc under test (the virtualenv's may be another checkout's)."""
    return subprocess.run(
        [sys.executable, "-m", "feedsvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            **CHECKOUT_ENV,
            "FEEDSVC_LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One `feedsvc serve` process; ``stop()`` sends SIGTERM and waits, as an operator would.
    Tests get theirs from the ``serve`` fixtures (tests/conftest.py), through ``Servers``.

    ``env`` overrides the settings below (FEEDSVC_WORKERS=2, FEEDSVC_SCAN_INTERVAL=1, ...) and
    adds to them; a value of None leaves that variable out: feedsvc's own default."""

    def __init__(
        self,
        seeds: Path,
        db: str,
        workdir: Path,
        command_prefix: list[str] | None = None,
        port: int | None = None,
        **env: str | None,
    ) -> None:
        self.seeds, self.db, self.workdir = seeds, db, workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **CHECKOUT_ENV,
            "FEEDSVC_SEEDS": str(seeds),
            "FEEDSVC_DB": db,
            "FEEDSVC_PORT": str(self.port),
            "FEEDSVC_BASE_URL": self.url,
            "FEEDSVC_WORKERS": "2",
            "FEEDSVC_SCAN_INTERVAL": "1",
            "FEEDSVC_LOG_LEVEL": "INFO",
            **env,
        }
        self.environ = {name: value for name, value in environ.items() if value is not None}
        self.ended = False  # stopped or killed (by the test, or by its fixture at the end)
        self._handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [*(command_prefix or []), sys.executable, "-m", "feedsvc", "serve"],
            cwd=workdir,
            env=self.environ,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a service manager gives it
        )

    def wait_ready(self, timeout: float = 30.0, *, indexed: bool = True) -> None:
        """Until /readyz answers 200 in every worker the client happens to reach, and (with
        ``indexed``) the search index has caught up with the first scan."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if all(
                    requests.get(self.url + "/readyz", timeout=2).status_code == 200
                    for _ in range(4)
                ) and (not indexed or self.search_pending() in (0, None)):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-3000:]}")

    def children(self) -> list[tuple[int, str]]:
        """The server's processes below its first one, as (pid, name in /proc)."""
        return [(child, name) for child in _children(self.process.pid) if (name := _comm(child))]

    def descendants(self, pid: int | None = None) -> list[int]:
        """Every process below ``pid`` (the server's first process, by default), however deep:
        a leader's pool and multiprocessing's helpers too."""
        found, todo = [], [self.process.pid if pid is None else pid]
        while todo:
            children = _children(todo.pop())
            found += children
            todo += children
        return found

    def workers(self) -> list[int]:
        """The serving workers' pids."""
        return [pid for pid, name in self.children() if name != LEADER_PROCESS]

    def leader(self) -> int | None:
        """The leader process's pid (None while it is being started again)."""
        return next((pid for pid, name in self.children() if name == LEADER_PROCESS), None)

    def search_pending(self) -> int | None:
        """Entries ?q= cannot find yet (None: the server does not say, as releases before
        the search index was built after the scan did not)."""
        search = requests.get(self.url + "/status", timeout=5).json().get("search", {})
        pending: int | None = search.get("pending")
        return pending

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """SIGTERM, then its exit code. Past ``timeout`` seconds, every process of it still
        there writes its threads' stacks to the log (SIGUSR1), which the test's output
        shows, and the first is killed."""
        self.ended = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._dump_stacks()
                self.process.kill()
                self.process.wait()
        self._handle.close()
        return self.process.returncode

    def _dump_stacks(self) -> None:
        left = [self.process.pid, *self.descendants()]
        for pid in left:  # (one at a time, so that their lines are not mixed)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
            time.sleep(0.5)
        names = [(pid, _comm(pid)) for pid in left]
        print(f"{self.url} did not stop: still running {names}; its log ends:", flush=True)
        print(self.log.read_text(errors="replace")[-20000:], flush=True)

    def kill(self) -> int:
        """kill -9 of its first process, as a crash or the OOM killer would; its exit code."""
        self.ended = True
        self.process.kill()
        self.process.wait()
        self._handle.close()
        return self.process.returncode


def _comm(pid: int) -> str:
    """The name /proc gives the process (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    """The pids of the processes whose parent is ``pid`` (whichever of its threads made them)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


class HubProcess:
    """tests/hub.py as a real process; ``pings()`` reads what it has recorded so far."""

    def __init__(self, workdir: Path, *args: str, path: str = "/hub") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.log = workdir / f"hub-{self.port}.jsonl"
        self.log.touch()
        script = Path(__file__).with_name("hub.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(self.log), *args]
        )
        wait_for(lambda: listening(self.port), timeout=10)

    def pings(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # as sent: never decompressed


def exchange(port: int, target: str, method: str = "GET", **headers: str) -> Answer:
    """One request to 127.0.0.1:``port`` with exactly these headers (``_`` in a keyword for
    ``-``) and none added, not even Accept-Encoding."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def nginx_binary() -> str:
    """Debian's nginx (in /usr/sbin, which an unprivileged user's PATH may lack)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    require(found is not None, "nginx (apt-get install nginx)")
    assert found
    return found


def nginx_config(
    port: int, backends: list[int], workdir: Path, *, one_worker: bool = False
) -> Path:
    """The repository's nginx.conf with the compose service names replaced by local ports.
    ``one_worker``: one worker process, so what one request sees of a replica's health
    (each worker counts failures on its own) holds for every request."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    if one_worker:
        conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    names = re.findall(r"server (feedsvc-\w+):8080", conf)
    assert len(names) == len(backends) == 2
    for name, backend in zip(names, backends, strict=True):
        conf = conf.replace(f"server {name}:8080", f"server 127.0.0.1:{backend}")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")
    conf = conf.replace("events {", f"error_log {workdir}/nginx.err;\nevents {{", 1)
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


class NginxProcess:
    """Debian's nginx with the repository's config (nginx_config), in front of two backends;
    listening once made."""

    def __init__(
        self, workdir: Path, backends: list[int], port: int | None = None, one_worker: bool = False
    ) -> None:
        binary = nginx_binary()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = nginx_config(self.port, backends, workdir, one_worker=one_worker)
        self.process = subprocess.Popen([binary, "-c", str(conf), "-g", "daemon off;"])
        wait_for(lambda: listening(self.port), timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class TcpProxy:
    """127.0.0.1:<port> relayed to a target; stop() refuses and cuts every connection."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the accepting thread: no longer listening
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()


Started = ServerProcess | HubProcess | NginxProcess


class Servers:
    """What starts a test's processes and stops them at its end (the ``serve`` fixtures of
    tests/conftest.py are one of these; bench/ uses it as a context manager).

    Calling it starts `feedsvc serve` on ``seeds`` and ``db`` with ``env`` as settings (see
    ServerProcess), in ``workdir`` (the fixture's temporary directory by default), and waits
    until it is ready unless ``wait`` is false. ``hub()`` starts a WebSub hub, ``nginx()``
    nginx in front of two servers. ``stop_all()``, which the fixtures run at their end even when
    the test failed, stops everything still running, the last started first; a server the test
    left running must then stop with exit code 0, and one that stopped on its own must have
    exited 0. A server the test ended itself (``stop()``, ``kill()``) is the test's to judge."""

    def __init__(self, workdir: Path, stop_timeout: float = STOP_SECONDS) -> None:
        self.workdir = workdir
        self.stop_timeout = stop_timeout
        self._started: list[Started] = []

    def __call__(
        self,
        seeds: Path,
        db: str,
        *,
        wait: bool = True,
        timeout: float = 30.0,
        indexed: bool = True,
        workdir: Path | None = None,
        command_prefix: list[str] | None = None,
        port: int | None = None,
        **env: str | None,
    ) -> ServerProcess:
        server = ServerProcess(seeds, db, workdir or self.workdir, command_prefix, port, **env)
        self._started.append(server)
        if wait:
            server.wait_ready(timeout, indexed=indexed)
        return server

    def hub(self, *args: str, path: str = "/hub") -> HubProcess:
        """tests/hub.py, recording the pings it gets (``args``: how it answers them)."""
        hub = HubProcess(self.workdir, *args, path=path)
        self._started.append(hub)
        return hub

    def nginx(
        self, backends: list[int], *, port: int | None = None, one_worker: bool = False
    ) -> NginxProcess:
        nginx = NginxProcess(self.workdir, backends, port, one_worker)
        self._started.append(nginx)
        return nginx

    def stop_all(self) -> None:
        unclean, errors = [], []
        while self._started:
            process = self._started.pop()
            try:
                if not isinstance(process, ServerProcess):
                    process.stop()
                elif not process.ended and (code := process.stop(self.stop_timeout)) != 0:
                    unclean.append(
                        f"{process.url} exited {code}: {process.log.read_text()[-2000:]}"
                    )
            except Exception as error:  # (the others are stopped all the same)
                errors.append(error)
        if errors:
            raise errors[0]
        assert not unclean, "\n".join(unclean)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


def server_status(server: ServerProcess) -> dict[str, Any]:
    """The /status document of whichever worker answers."""
    status: dict[str, Any] = requests.get(server.url + "/status", timeout=10).json()
    return status


def wait_for_scans(server: ServerProcess, count: int = 2, timeout: float = 60.0) -> dict[str, Any]:
    """Until ``count`` more scans have finished (each started later than the one before); the
    last one's summary."""
    seen = {server_status(server)["last_scan"]["started"]}

    def another() -> bool:
        seen.add(server_status(server)["last_scan"]["started"])
        return len(seen) > count

    wait_for(
        another,
        timeout=timeout,
    )
    scan: dict[str, Any] = server_status(server)["last_scan"]
    return scan


def author_titles(server: ServerProcess, author: str) -> list[str] | None:
    """The titles in an author's JSON feed (None: no such feed, or not now)."""
    response = requests.get(f"{server.url}/feeds/authors/{quote(author)}.json", timeout=10)
    if response.status_code != 200:
        return None
    return [item["title"] for item in json.loads(response.content)["items"]]


# No periodic scan within a test (only filesystem events), and deletions at once.
EVENTS_ONLY = {"FEEDSVC_SCAN_INTERVAL": "3600", "FEEDSVC_DELETE_GRACE": "0"}


def asgi_client(app: Flask) -> Client:
    """A test client for the serving ASGI layers over ``app``, in this process: what a
    request gets through them, closing headers and all. (The bridge keeps no raw path: it is
    the decoded path encoded again, so '%2F' in a name is tested through a real server.)"""
    serving = compose(app)

    async def raw_path(scope: Any, receive: Any, send: Any) -> None:
        await serving({**scope, "raw_path": quote(scope["path"]).encode()}, receive, send)

    return Client(ASGIMiddleware(raw_path))  # type: ignore[arg-type]
