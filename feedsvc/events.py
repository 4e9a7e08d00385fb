"""Filesystem events for the seeds directory (watchfiles: inotify and its peers), turned into
the relative paths a partial scan should look at.

A change the events cannot pin to seed files (a directory created, moved or removed) asks
for a full scan instead. Where events cannot be had (no inotify, too few watches), ``mode``
says so and the caller keeps polling. A watcher that fails is started again, after a pause
that doubles with each failure in a row: watchfiles fails for good at the first event for a
file name that is not UTF-8 (which the scan reports as such), and events must not end there.

inotify watches a directory, not its name: when the seeds path comes to name another
directory (a new release renamed into place, a symlink repointed), the watcher is started
again on it at once, with a full scan."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import watchfiles

from feedsvc.seeds.discover import LEFTOVER_SUFFIXES, is_seed_path, walked_into

log = logging.getLogger(__name__)

# Told the relative paths that changed, or None: scan everything.
Changed = Callable[[set[str] | None], None]
# Seconds before a failed watcher is started again: the first pause, doubled with each
# failure in a row up to the last; a watcher that ran that long before it failed was healthy.
RETRY_FIRST = 1.0
RETRY_LAST = 300.0


class SeedEvents:
    """Watches one seeds directory from a background thread."""

    def __init__(self, root: Path, changed: Changed, debounce_ms: int = 100) -> None:
        self.path = root  # as configured: what it names may change
        self.root = Path(os.path.realpath(root))  # the directory watched now
        self.changed = changed
        self.debounce_ms = debounce_ms
        self.mode = "starting"
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start watching; True once events flow, False (and ``mode`` says why) if not yet:
        it keeps trying in the background."""
        self._thread = threading.Thread(target=self._run, name="seed-events", daemon=True)
        self._thread.start()
        self._started.wait(30)
        return self.mode == "events"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        """Watch until stopped. A watcher that fails or stops is started again after a
        pause (``mode`` says so meanwhile: the caller polls); once it is back, a full scan
        catches up with what its events missed."""
        delay = RETRY_FIRST
        restarted = False
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if self._watch(restarted):
                    log.info("seeds directory %s names another directory: watching it", self.path)
                    self.mode, restarted = "starting", True  # (the new watcher's first batch scans)
                    continue
                reason = "filesystem events stopped"
            except Exception as exc:  # no inotify, too few watches, a name watchfiles cannot decode
                reason = f"filesystem events failed ({self._relative(str(exc))})"
            if self._stop.is_set():
                break
            if time.monotonic() - began >= RETRY_LAST:
                delay = RETRY_FIRST
            self.mode = f"polling: {reason}; retrying in {delay:.0f} s"
            log.warning("seeds directory %s: %s", self.root, self.mode)
            self._started.set()
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_LAST)
            restarted = True
        self._started.set()

    def _watch(self, restarted: bool) -> bool:
        """One watcher, until it is stopped, stops or fails (False), or the seeds path names
        another directory than the one it watches (True)."""
        # Held open, the watched directory's inode cannot be given to a directory made at
        # the same path once it is deleted (ext4 gives it back at once): a new inode, or no
        # link left to the one held, is another directory.
        held = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._watch_held(held, restarted)
        finally:
            os.close(held)

    def _watch_held(self, held: int, restarted: bool) -> bool:
        """``_watch`` on the directory open as ``held``."""
        found = os.fstat(held)
        watched = found.st_dev, found.st_ino
        self.root = Path(os.path.realpath(self.path))
        batches = watchfiles.watch(
            self.root,
            watch_filter=None,
            debounce=self.debounce_ms,
            step=20,
            stop_event=self._stop,
            rust_timeout=500,
            yield_on_timeout=True,
            force_polling=False,
            raise_interrupt=False,
            ignore_permission_denied=True,
        )
        for batch in batches:
            if self.mode != "events":  # set up once it first yields (or times out)
                self.mode = "events"
                self._started.set()
                if restarted:
                    log.info("seeds directory %s: filesystem events are back", self.root)
                    self._tell(None)
            if batch:
                self._deliver({path for _change, path in batch})
            if self._names() != watched or os.fstat(held).st_nlink == 0:  # (twice a second)
                return True
        return False

    def _names(self) -> tuple[int, int] | None:
        """The directory the seeds path names now, by device and inode (None: none)."""
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def _relative(self, text: str) -> str:
        """An error message with the seeds directory's absolute path left out (``mode`` is
        shown in /status, which names paths relative to the seeds directory only)."""
        return text.replace(str(self.root) + os.sep, "").replace(str(self.root), ".")

    def _deliver(self, paths: set[str]) -> None:
        rels: set[str] = set()
        for path in paths:
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            if not walked_into(rel):
                continue
            if _may_be_directory(path, rel):
                self._tell(None)  # came, went or moved: its files cannot be named here
                return
            if is_seed_path(rel):
                rels.add(rel)
        if rels:
            self._tell(rels)

    def _tell(self, rels: set[str] | None) -> None:
        try:
            self.changed(rels)
        except Exception:
            log.exception("scan after filesystem events failed")


def _may_be_directory(path: str, rel: str) -> bool:
    """Whether an event's path is a directory, or (gone) may have been one: a name that no
    seed, temporary, hidden or leftover file would carry, without a suffix."""
    if os.path.isdir(path):
        return True
    name = rel.rsplit("/", 1)[-1]
    if is_seed_path(rel) or os.path.lexists(path):
        return False
    return (
        not name.startswith((".", "#")) and not name.endswith(LEFTOVER_SUFFIXES) and "." not in name
    )
