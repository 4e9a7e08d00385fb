"""Cross-process locks that keep scans from overlapping, whatever runs them.

Two locks per database: the *leader* lock, which one leader process (feedsvc.leader) wins and
keeps for its whole life (its replica scans on schedule: ``"leader": true`` in /status), and
the *scan* lock, held for the length of each scan by whoever scans (the leader, or a
``feedsvc scan`` run by hand). SQLite uses flock(2) on files beside the database; PostgreSQL
uses advisory locks, so replicas on different hosts exclude each other too. Both are released
by the operating system or the server when a process dies, even by kill -9."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from feedsvc.store.errors import StorageError
from feedsvc.store.migrate import schema_of

log = logging.getLogger(__name__)

# The schema is the one the session's search_path gave at this process's first lock
# (ScanLocks._key), the same key every release computed from current_schema() itself.
_PG_KEY = "hashtextextended('feedsvc:' || :role || ':' || :schema, 0)"
# Whether this session holds that lock (an advisory lock on a bigint key: classid, objid).
_PG_HELD = (
    "select count(*) from pg_locks where locktype = 'advisory' and granted"
    " and pid = pg_backend_pid() and objsubid = 1"
    f" and ((classid::bigint << 32) | objid::bigint) = {_PG_KEY}"
)


class ScanLocks:
    """The leader lock and the scan lock of one database."""

    def __init__(self, engine: Engine, path: Path | None) -> None:
        """``path``: the SQLite database file, beside which the lock files live (None for
        PostgreSQL, which locks through ``engine``, or an in-memory database: no locks)."""
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._dir = path.parent if path is not None and not self._pg else None
        self._stem = path.name if path is not None else ""
        self._leader_fd: int | None = None
        self._leader_conn: Connection | None = None
        self._local = threading.Lock()
        self._schema: str | None = None  # PostgreSQL: see _key

    def _key(self, conn: Connection, role: str) -> dict[str, str]:
        """A PostgreSQL lock's key: a lock taken keeps it when the schema is dropped under
        the process (current_schema() is then NULL, and so would every key be)."""
        if self._schema is None:
            self._schema = schema_of(conn)
            conn.commit()
        return {"role": role, "schema": self._schema or ""}

    @property
    def is_leader(self) -> bool:
        return self._leader_fd is not None or self._leader_conn is not None

    def try_lead(self) -> bool:
        """Win the leader lock if nobody holds it; once won it is kept until release()."""
        if self.is_leader:
            return True
        if self._pg:
            conn = self._engine.connect()
            try:
                key = self._key(conn, "leader")
                got = conn.execute(text(f"select pg_try_advisory_lock({_PG_KEY})"), key).scalar()
                conn.commit()
            except BaseException:
                conn.close()
                raise
            if got:
                self._leader_conn = conn
            else:
                conn.close()
            return bool(got)
        fd = self._open("leader")
        if fd is None:
            self._leader_fd = -1
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._leader_fd = fd
        return True

    def still_leading(self) -> bool:
        """Whether the leader lock is still this process's. A PostgreSQL advisory lock
        lives as long as its session, which can end under a live process (a server
        restart, a terminated backend): another replica may then lead, and this one must
        stop. A lock file's flock(2) cannot be lost that way."""
        conn = self._leader_conn
        if conn is None:
            return self.is_leader
        held = 0
        try:
            held = conn.execute(text(_PG_HELD), self._key(conn, "leader")).scalar() or 0
            conn.commit()
        except StorageError:
            pass
        if not held:
            self._leader_conn = None
            conn.invalidate()
            conn.close()
        return bool(held)

    def release(self) -> None:
        """Give the leader lock up, so that another process may lead."""
        if self._leader_conn is not None:
            conn, self._leader_conn = self._leader_conn, None
            # An advisory lock belongs to the server session, which outlives a pooled
            # connection's close(): unlock it, or end the session if that fails.
            try:
                conn.execute(
                    text(f"select pg_advisory_unlock({_PG_KEY})"), self._key(conn, "leader")
                )
                conn.commit()
                conn.close()
            except StorageError:  # the session is gone or going: make sure it ends
                conn.invalidate()
                conn.close()
        if self._leader_fd is not None:
            if self._leader_fd >= 0:
                os.close(self._leader_fd)
            self._leader_fd = None

    @contextmanager
    def scanning(self, timeout: float = 600.0) -> Iterator[None]:
        """Hold the scan lock for the block, waiting up to ``timeout`` for a running scan."""
        if not self._local.acquire(timeout=timeout):
            raise TimeoutError("another scan in this process is still running")
        try:
            if self._pg:
                with self._pg_scan_lock(timeout):
                    yield
            else:
                with self._file_scan_lock(timeout):
                    yield
        finally:
            self._local.release()

    @contextmanager
    def _pg_scan_lock(self, timeout: float) -> Iterator[None]:
        with self._engine.connect() as conn:
            query = text(f"select pg_try_advisory_lock({_PG_KEY})")
            key = self._key(conn, "scan")

            def attempt() -> bool:
                won = bool(conn.execute(query, key).scalar())
                conn.commit()
                return won

            _wait_for(attempt, timeout)
            try:
                yield
            finally:
                conn.execute(text(f"select pg_advisory_unlock({_PG_KEY})"), key)
                conn.commit()

    @contextmanager
    def _file_scan_lock(self, timeout: float) -> Iterator[None]:
        fd = self._open("scan")
        if fd is None:
            yield
            return

        def attempt() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            _wait_for(attempt, timeout)
            yield
        finally:
            os.close(fd)

    def _open(self, role: str) -> int | None:
        """The lock file's descriptor (read-only is enough for flock(2)); None when there is
        no file to lock, as in a directory that cannot be written: nothing can be written
        there either, so scans fail on their own and say why."""
        if self._dir is None:
            return None
        path = self._dir / f"{self._stem}.{role}.lock"
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                return os.open(path, flags, 0o644)
            except OSError:
                continue
        return None


def _wait_for(attempt: Callable[[], bool], timeout: float) -> None:
    """Try ``attempt`` (to take the scan lock) every 0.2 s until it wins, for at most
    ``timeout`` seconds; says once that it waits (a hand-run scan, another replica's)."""
    deadline = time.monotonic() + timeout
    waiting = False
    while not attempt():
        if not waiting:
            log.info("another scan holds the scan lock: waiting for it to end")
            waiting = True
        if time.monotonic() > deadline:
            raise TimeoutError("another process is still scanning")
        time.sleep(0.2)
