"""Filesystem events for the seeds directory (watchfiles: inotify and its peers), turned into
the relative paths a partial scan should look at.

A change the events cannot pin to seed files (a directory created, moved or removed) asks
for a full scan instead. Where events cannot be had (no inotify, too few watches), ``mode``
says so and the caller keeps polling."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from feedsvc.seeds import LEFTOVER_SUFFIXES, is_seed_name

log = logging.getLogger(__name__)

# Told the relative paths that changed, or None: scan everything.
Changed = Callable[[set[str] | None], None]


class SeedEvents:
    """Watches one seeds directory from a background thread."""

    def __init__(self, root: Path, changed: Changed, debounce_ms: int = 100) -> None:
        self.root = Path(os.path.realpath(root))
        self.changed = changed
        self.debounce_ms = debounce_ms
        self.mode = "starting"
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start watching; True once events flow, False (and ``mode`` says why) if not."""
        self._thread = threading.Thread(target=self._run, name="seed-events", daemon=True)
        self._thread.start()
        self._started.wait(30)
        return self.mode == "events"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
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
            first = True
            for batch in batches:
                if first:  # the watcher is set up once it first yields (or times out)
                    self.mode, first = "events", False
                    self._started.set()
                if batch:
                    self._deliver({path for _change, path in batch})
        except Exception as exc:  # no inotify, too few watches, a file system without events
            self.mode = f"polling: filesystem events unavailable ({exc})"
            log.warning("seeds directory %s: %s", self.root, self.mode)
        finally:
            if self.mode == "starting":
                self.mode = "polling: filesystem events stopped"
            self._started.set()

    def _deliver(self, paths: set[str]) -> None:
        rels: set[str] = set()
        for path in paths:
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            if rel.startswith("..") or any(p.startswith(".") for p in rel.split("/")[:-1]):
                continue
            kind = _kind(path, rel.rsplit("/", 1)[-1])
            if kind == "directory":  # came, went or moved: its files cannot be named here
                rels = set()
                self._tell(None)
                return
            if kind == "seed":
                rels.add(rel)
        if rels:
            self._tell(rels)

    def _tell(self, rels: set[str] | None) -> None:
        try:
            self.changed(rels)
        except Exception:
            log.exception("scan after filesystem events failed")


def _kind(path: str, name: str) -> str:
    """'seed', 'other' (a file that is no seed: a temporary or hidden file, a leftover) or
    'directory' (or what may have been one: a name gone that no file would carry)."""
    if os.path.isdir(path):
        return "directory"
    if is_seed_name(name):
        return "seed"
    if os.path.lexists(path) or name.startswith((".", "#")) or name.endswith(LEFTOVER_SUFFIXES):
        return "other"
    return "directory" if "." not in name else "other"
