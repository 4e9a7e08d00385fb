"""The SQLite database file under a running process: can it be written, is it still the file
this process opened and still an SQLite file, and moving a broken one aside so a new one can
be built from the seeds."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feedsvc.store.problems import StoreProblem

SQLITE_HEADER = b"SQLite format 3\x00"


class SqliteFile:
    """One database file, and what this process knows of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._held: int | None = None  # a descriptor of the file, kept open: see remember()

    def writable(self) -> bool:
        """Whether SQLite could write the file and its WAL beside it; asked of the file system
        (a read-only mount says no even to root), not learnt from a write that may not happen."""
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def identity(self) -> tuple[int, int] | None:
        """The file's device and inode now (None: there is no file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def remember(self) -> None:
        """Note which file this process opened, and keep a descriptor of it open to read
        its header. SQLite's locks are POSIX locks, which a process loses on *every* file
        of its own when it closes *any* descriptor of that file: opening and closing the
        database to look at it would let another process think it is alone, checkpoint and
        delete the WAL under this one ("disk I/O error")."""
        self.release()
        self._identity = self.identity()
        if self._identity is not None:
            try:
                self._held = os.open(self.path, os.O_RDONLY)
            except OSError:
                self._held = None

    def release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def problem(self) -> StoreProblem | None:
        """What is wrong with the file under this process, if anything: deleted, replaced by
        another file, or not an SQLite file any more."""
        identity = self.identity()
        if identity is None:
            return StoreProblem.DELETED
        try:
            if identity == self._identity and self._held is not None:
                header = os.pread(self._held, len(SQLITE_HEADER), 0)
            else:  # another file: closing a descriptor of it costs this process no lock
                with open(self.path, "rb") as handle:
                    header = handle.read(len(SQLITE_HEADER))
        except OSError:
            return StoreProblem.UNREADABLE
        if len(header) == len(SQLITE_HEADER) and header != SQLITE_HEADER:
            return StoreProblem.CORRUPT
        if identity != self._identity:
            return StoreProblem.REPLACED
        return None

    @contextmanager
    def repair_lock(self) -> Iterator[None]:
        """Held by whoever repairs the file, across every process that uses it."""
        with open(self.path.with_name(self.path.name + ".repair.lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def written_by_feedsvc(self) -> bool:
        """Whether a file that does not read as a database may be replaced: it starts as
        SQLite files do (or is empty), or feedsvc's lock files lie beside it. Anything else
        is someone's file named by mistake (a typo in --db), never moved."""
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
        except OSError:
            return True  # gone or unreadable: nothing of anyone's to keep
        if not head or head == SQLITE_HEADER:
            return True
        return any(
            self.path.with_name(f"{self.path.name}.{role}.lock").exists()
            for role in ("scan", "leader")
        )

    def move_aside(self, broken: tuple[int, int] | None) -> bool:
        """Under the repair lock: move the file (if it is still the one that failed, whose
        identity was ``broken``) and a stale WAL aside. False when another process has
        repaired it already."""
        current = self.identity()
        if current is not None and (broken is None or current != broken):
            return False
        stamp = time.strftime("%Y%m%dT%H%M%S")
        suffixes = ("-wal", "-shm") if current is None else ("", "-wal", "-shm")
        for suffix in suffixes:
            old = self.path.with_name(self.path.name + suffix)
            if old.exists():
                os.replace(old, old.with_name(f"{old.name}.broken-{stamp}"))
        return True
