"""One pass over the seeds directory: parse what changed, drop what is gone, keep what broke.

A file is re-read only when its size or modification time differs from what the store saw.
A file that stops parsing keeps its last good entry served and is reported; a file that is
being written while read is left alone until the next scan. Work is written in batches of
statements inside one transaction, so a scan killed at any point leaves the store as it was."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DatabaseError

from feedsvc.config import Settings
from feedsvc.locks import ScanLocks
from feedsvc.model import Scope
from feedsvc.seeds import (
    FileChanging,
    SeedError,
    SeedFile,
    display_path,
    load_seed,
    walk_seeds,
)
from feedsvc.store import Changes, Store, StoredEntry, Writer, is_corruption

log = logging.getLogger(__name__)

BATCH_FILES = 200
# Bump when parsing or normalisation changes, so stored entries are rebuilt from their files.
PARSER_VERSION = "1"


class ScanError(RuntimeError):
    """The scan could not run at all (e.g. the seeds directory is missing); nothing changed."""


@dataclass
class ScanReport:
    started: datetime
    finished: datetime | None = None
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    changing: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    changed_scopes: list[Scope] = field(default_factory=list)
    files_with_errors: int = 0

    def summary(self) -> dict[str, Any]:
        """The shape /status and the store keep (SPEC: started, finished, added, updated, removed)."""
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "errors": self.files_with_errors,
        }


def parse_settings_key(settings: Settings) -> str:
    """The settings a stored entry depends on; when they change every file is parsed again."""
    return f"{PARSER_VERSION}|{settings.public_url}|{settings.timezone}|{settings.max_file_bytes}"


def check_seeds_dir(root: Path) -> None:
    if not root.is_dir():
        raise ScanError(f"seeds directory {root} does not exist or is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ScanError(f"seeds directory {root} cannot be read")


class Scanner:
    """Runs scans of one seeds directory into one store, one at a time across processes."""

    def __init__(self, store: Store, settings: Settings, locks: ScanLocks | None = None) -> None:
        self.store = store
        self.settings = settings
        self.locks = locks or ScanLocks(store.engine)

    def scan(self, progress: Callable[[int, int], None] | None = None) -> ScanReport:
        """Scan now (waiting for any scan already running). ``progress(done, total)``.

        The whole scan is one transaction: readers see the store before it or after it,
        never half of it, and a scan killed part-way leaves no trace. A SQLite file found
        corrupt is moved aside and rebuilt from the seeds by scanning again."""
        try:
            return self._scan(progress)
        except DatabaseError as exc:
            if self.store.path is None or not is_corruption(exc):
                raise
            self.store.rebuild(f"is corrupt ({exc.orig})")
            return self._scan(progress)

    def _scan(self, progress: Callable[[int, int], None] | None) -> ScanReport:
        root = self.settings.seeds
        check_seeds_dir(root)
        with self.locks.scanning(), self.store.transaction() as writer:
            report = ScanReport(started=datetime.now(UTC).replace(microsecond=0))
            key = parse_settings_key(self.settings)
            if writer.get_meta("parse_settings") != key:
                log.info("parse settings changed: every seed file will be read again")
                writer.reset()
                writer.set_meta("parse_settings", key)
            known = writer.file_states()
            seeds = list(walk_seeds(root))
            changes = Changes()
            for done, seed in enumerate(seeds, 1):
                self._visit(seed, known.get(seed.rel), changes, report)
                if len(changes.upserts) + len(changes.errors) >= BATCH_FILES:
                    self._apply(writer, changes, report)
                    changes = Changes()
                if progress:
                    progress(done, len(seeds))
            present = {seed.rel for seed in seeds}
            for rel, state in known.items():
                if rel not in present:
                    changes.removed_paths.append(rel)
                    if state.entry_id:
                        report.removed += 1
            self._apply(writer, changes, report)
            report.changed_scopes = writer.refresh_scopes()
            report.files_with_errors = writer.error_count()
            report.finished = datetime.now(UTC).replace(microsecond=0)
            writer.set_meta("last_scan", json.dumps(report.summary(), sort_keys=True))
        changed = report.added or report.updated or report.removed or report.errors
        log.log(
            logging.INFO if changed else logging.DEBUG,
            "scan: %d added, %d updated, %d removed, %d errors, %d feeds changed",
            report.added,
            report.updated,
            report.removed,
            len(report.errors),
            len(report.changed_scopes),
        )
        return report

    def _visit(self, seed: SeedFile, known: Any, changes: Changes, report: ScanReport) -> None:
        if known and (known.mtime_ns, known.size) == (seed.mtime_ns, seed.size):
            report.unchanged += 1
            return
        try:
            parsed = load_seed(seed, self.settings)
        except FileChanging:
            report.changing += 1
            log.info(
                "%s: changed while being read; will read it at the next scan",
                display_path(seed.rel),
            )
            return
        except SeedError as exc:
            changes.errors.append((exc.path, seed.mtime_ns, seed.size, exc.reason))
            report.errors.append((exc.path, exc.reason))
            log.warning("%s", exc)
            return
        report.warnings.extend((seed.rel, warning) for warning in parsed.warnings)
        if parsed.entry is None:
            changes.drafts.append((seed.rel, seed.mtime_ns, seed.size))
            if known and known.entry_id:
                report.removed += 1
            return
        changes.upserts.append(
            StoredEntry(parsed.entry, seed.mtime_ns, seed.size, parsed.content_hash)
        )
        changes.cleared_errors.append(seed.rel)
        if known and known.entry_id:
            report.updated += 1
        else:
            report.added += 1
            changes.new_paths.add(seed.rel)

    def _apply(self, writer: Writer, changes: Changes, report: ScanReport) -> None:
        if not changes:
            return
        clashes = writer.apply(changes)
        if not clashes:
            return
        by_path = {stored.entry.path: stored for stored in changes.upserts}
        follow_up = Changes()
        for rel in clashes:
            stored = by_path[rel]
            reason = f"id {stored.entry.id} is already used by another seed file"
            follow_up.errors.append((rel, stored.mtime_ns, stored.size, reason))
            report.errors.append((rel, reason))
            if rel in changes.new_paths:
                report.added -= 1
            else:
                report.updated -= 1
        writer.apply(follow_up)
