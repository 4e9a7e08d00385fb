"""One pass over the seeds directory: parse what changed, drop what is gone, keep what broke.

A file is re-read only when its size or modification time differs from what the store saw,
and it changes what is served only when its content does: the same bytes, or an entry that
differs in nothing a reader sees, write nothing but the file's new stat (feedsvc.revisions
settles the dates). A file that stops parsing keeps its last good entry served and is
reported; a file being written while read is left alone until the next scan. A missing file
leaves the feeds only after ``delete_grace`` seconds, and a sudden mass disappearance is held
as a fault; a file that appears as plainly a missing one renamed (a headline edit) takes over
its entry (``Scanner._take_over``). A directory that cannot be listed (no permission, nested
too deep) is reported, and what the store knows under it stays as it is until it can be
listed again. Work is written in batches of statements inside one transaction, so a scan
killed at any point leaves the store as it was."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from feedsvc.config import PARSE_SETTINGS, Settings, settings_key
from feedsvc.locks import ScanLocks
from feedsvc.logs import log_done
from feedsvc.model import Entry, Scope, ScopeKind
from feedsvc.revisions import identity, settle
from feedsvc.seeds import (
    Changing,
    Fresh,
    Loaded,
    Parsed,
    Refused,
    SeedFile,
    SeedListing,
    Unchanged,
    content_hash,
    display_path,
    load_seed,
    stat_seeds,
    walk_seeds,
)
from feedsvc.store import (
    Changes,
    CorruptStorage,
    FileStat,
    FileState,
    Note,
    ScanTransaction,
    Store,
    StoredEntry,
)
from feedsvc.workers import start_pool, stop_pool

log = logging.getLogger(__name__)

BATCH_FILES = 1000
# Fewer files than this to read are read in this process: starting workers costs more.
POOL_MIN_FILES = 256
READ_WINDOW = 1024  # files handed to the pool at once
MAX_WORKERS = 4
# Bump when parsing or normalisation changes, so stored entries are derived again from their files.
PARSER_VERSION = "5"  # bumped when parsing gives other entries for the same bytes
# A scan that finds fewer than half the files of the last one, and at least this many fewer,
# is looking at a directory being regenerated or a mount gone missing: nothing is removed.
MASS_DISAPPEARANCE = 20
FILES_SERIAL = "files_serial"  # meta: a new value whenever a scan changed any file state

Clock = Callable[[], datetime]


class ScanError(RuntimeError):
    """The scan could not run at all (e.g. the seeds directory is missing); nothing changed.
    ``reason`` says why without the directory's absolute path (what /status shows)."""

    def __init__(self, root: Path, reason: str) -> None:
        super().__init__(f"seeds directory {root} {reason}")
        self.reason = f"the seeds directory {reason}"


DELETION_HOLD = "deletion_hold"  # meta: the hold in force, as DeletionHold.dump writes it


@dataclass(frozen=True)
class DeletionHold:
    """A sudden mass disappearance held as a fault: since when the directory has held
    ``files`` of the ``known`` files of the last scan (nothing is removed meanwhile)."""

    since: datetime
    files: int
    known: int

    @property
    def reason(self) -> str:
        return (
            f"the seeds directory holds {self.files} files, the last scan knew {self.known}: "
            "held as a fault, nothing is removed"
        )

    def summary(self) -> dict[str, Any]:
        """What /status, the store's last scan and the CLI show of it."""
        return {
            "since": self.since.isoformat(),
            "files": self.files,
            "known": self.known,
            "reason": self.reason,
        }

    @classmethod
    def load(cls, text: str | None) -> DeletionHold | None:
        """The hold a store's meta keeps (None, or 'null' as earlier versions wrote, for none)."""
        data = json.loads(text or "null")
        if data is None:
            return None
        return cls(datetime.fromisoformat(data["since"]), data["files"], data["known"])

    @staticmethod
    def dump(hold: DeletionHold | None) -> str:
        return json.dumps(hold.summary() if hold else None, sort_keys=True)


@dataclass
class ScanReport:
    started: datetime
    finished: datetime | None = None
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    missing: int = 0
    held: DeletionHold | None = None
    # The first scan into an empty store: all is new to the store, none of it news to anyone.
    baseline: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)
    changed_scopes: list[Scope] = field(default_factory=list)
    files_with_errors: int = 0

    def summary(self) -> dict[str, Any]:
        """The shape /status and the store keep (started, finished, added, updated, removed),
        with the files waiting out their delete grace and any deletion hold."""
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "held": self.held.summary() if self.held else None,
            "errors": self.files_with_errors,
        }


def parse_settings_key(settings: Settings) -> str:
    """The settings a stored entry depends on; when they change every file is parsed again."""
    return settings_key(settings, PARSE_SETTINGS, PARSER_VERSION)


def check_seeds_dir(root: Path) -> None:
    if not root.is_dir():
        raise ScanError(root, "does not exist or is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ScanError(root, "cannot be read")


# A file read and parsed: the hash of its bytes, and what the store knew of it.
@dataclass(frozen=True)
class _ReadFile:
    """A seed file read and parsed to an entry (no draft), to settle against the store:
    its bytes' hash, what parsing gave, and the state the store holds for it."""

    seed: SeedFile
    digest: str
    parsed: Parsed
    known: FileState | None

    @property
    def entry(self) -> Entry:
        entry = self.parsed.entry
        assert entry is not None  # drafts are never settled
        return entry


@dataclass
class _Batch:
    """Files of one batch: results known at once, and parsed files still to settle against
    the entries the store serves for them."""

    changes: Changes = field(default_factory=Changes)
    parsed: list[_ReadFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.parsed) + len(self.changes.errors) + len(self.changes.restats)


@dataclass
class _Renames:
    """What a scan needs to tell renamed files (a headline edit renames its file): the
    entries of the files missing now (``gone``), by ``identity`` once a file appears, and
    the new files with the identity of one of them, settled once every file has been seen."""

    gone: frozenset[str]
    identities: dict[str, list[str]] | None = None
    waiting: list[_ReadFile] = field(default_factory=list)

    def may_be_renamed(self, writer: ScanTransaction, entry: Entry) -> bool:
        """Whether a new file's entry has the identity of a missing file's entry."""
        key = identity(entry)
        if key is None or not self.gone:
            return False
        if self.identities is None:
            self.identities = {}
            gone = sorted(self.gone)
            for start in range(0, len(gone), BATCH_FILES):
                for rel, old in writer.entries_at(gone[start : start + BATCH_FILES]).items():
                    old_key = identity(old)
                    if old_key is not None:
                        self.identities.setdefault(old_key, []).append(rel)
        return key in self.identities


@dataclass
class _Pass:
    """One scan under way: its transaction, its report, whether every file is read again
    (the parse settings changed), and what it needs to tell renamed files."""

    writer: ScanTransaction
    report: ScanReport
    rebuild: bool
    renames: _Renames


def _narrowest_scope(entry: Entry) -> Scope:
    """A feed that holds every entry of the same categories and authors as this one."""
    if entry.categories:
        return Scope(ScopeKind.CATEGORY, entry.categories[0])
    if entry.authors:
        return Scope(ScopeKind.AUTHOR, (entry.authors[0].name,))
    return Scope.all()


def _shared_identities(writer: ScanTransaction, candidates: dict[str, Entry]) -> set[str]:
    """The identities of ``candidates`` (missing files' entries, by identity) that another
    stored entry has too: then no file can be told to be the renamed one."""
    by_scope: dict[Scope, set[str]] = {}
    for key, old in candidates.items():
        by_scope.setdefault(_narrowest_scope(old), set()).add(key)
    shared: set[str] = set()
    for scope, keys in by_scope.items():
        for entry in writer.entries_in(scope):
            found = identity(entry)
            if found is not None and found in keys and entry.path != candidates[found].path:
                shared.add(found)
    return shared


def _report(changes: Changes, report: ScanReport, note: Note, shown: str) -> None:
    """A file or a directory that cannot be published: its error note, the report's line,
    and one log line naming it as ``shown``."""
    changes.errors.append(note)
    report.errors.append((shown, note.reason))
    log.warning("%s: %s", shown, note.reason, extra={"path": shown, "reason": note.reason})


def _now() -> datetime:
    return datetime.now(UTC)


def _windowed(
    pool: ProcessPoolExecutor,
    load: Callable[[SeedFile, str | None], Loaded],
    seeds: list[SeedFile],
    hashes: list[str | None],
) -> Iterator[Loaded]:
    """The pool's results in order, with at most two windows of files in flight: the
    workers run ahead of the writes, but parsed files never pile up in memory."""
    windows = [
        (seeds[start : start + READ_WINDOW], hashes[start : start + READ_WINDOW])
        for start in range(0, len(seeds), READ_WINDOW)
    ]
    ahead = None
    for index, (window, known) in enumerate(windows):
        current = ahead if ahead is not None else pool.map(load, window, known, chunksize=32)
        ahead = None
        if index + 1 < len(windows):
            ahead = pool.map(load, *windows[index + 1], chunksize=32)
        yield from current


class Scanner:
    """Runs scans of one seeds directory into one store, one at a time across processes.
    ``clock`` tells the time of each scan (a test can move it instead of waiting);
    ``workers`` is how many processes read and parse (default: one per core, at most 4)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        locks: ScanLocks | None = None,
        clock: Clock = _now,
        workers: int | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.locks = locks or ScanLocks(store.engine, store.path)
        self.clock = clock
        self.workers = workers or min(MAX_WORKERS, os.cpu_count() or 1)
        # The file states as of this scanner's last full scan, under the store's files
        # serial then: a rescan finding the same serial stats the files and reads nothing.
        self._states: tuple[str, dict[str, FileState]] | None = None

    def scan(
        self,
        progress: Callable[[int, int], None] | None = None,
        *,
        prune_now: bool = False,
        paths: Collection[str] | None = None,
        index: bool = True,
    ) -> ScanReport:
        """Scan now (waiting for any scan already running). ``progress(done, total)``;
        ``prune_now`` removes missing files' entries without waiting out the grace.
        ``paths`` (relative) limits the scan to those files and to the files already
        missing (whose grace may have passed): what filesystem events name. While a
        deletion hold is in force, or when many files are missing, it scans everything:
        only a full scan can tell a mass disappearance, hold it, or end it.

        The whole scan is one transaction: readers see the store before it or after it,
        never half of it, and a scan killed part-way leaves no trace. A SQLite file found
        corrupt is moved aside and rebuilt from the seeds by scanning again. With ``index``
        the search index then catches up (see index_search), in transactions of its own."""
        try:
            report = self._scan(progress, prune_now, paths)
        except CorruptStorage as exc:
            if self.store.path is None:
                raise
            self.store.rebuild(f"is corrupt ({exc})")
            report = self._scan(progress, prune_now, None)
        if index:
            self.index_search()
        return report

    def index_search(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Index for search what the scans stored: after their commit, so the feeds are
        live first (an entry is not found by ?q= until then); ``stop`` as for the store's."""
        began = time.monotonic()
        log_done(log, "indexed", self.store.index_search(stop), "entries for search", began)

    def _scan(
        self,
        progress: Callable[[int, int], None] | None,
        prune_now: bool,
        paths: Collection[str] | None,
    ) -> ScanReport:
        root = self.settings.seeds
        check_seeds_dir(root)
        began = time.monotonic()
        with self.locks.scanning(), self.store.transaction() as writer:
            writer.check_schema(self.store.where)
            report = ScanReport(started=self.clock().astimezone(UTC).replace(microsecond=0))
            key = parse_settings_key(self.settings)
            rebuild = writer.get_meta("parse_settings") != key
            if rebuild:
                log.info("parse settings changed: every seed file will be read again")
                writer.set_meta("parse_settings", key)
            report.baseline = writer.get_meta("last_scan") is None
            if rebuild or report.baseline:
                paths = None  # everything must be read: no partial scan can do
            serial = writer.get_meta(FILES_SERIAL)
            if paths is None:
                known = self._known(writer, serial)
                listing = walk_seeds(root)
            else:
                known = writer.file_states([display_path(rel) for rel in paths])
                listing = stat_seeds(root, {*paths, *known})
                held = DeletionHold.load(writer.get_meta(DELETION_HOLD)) is not None
                gone = len(known) - len(listing.files)
                if held or listing.unlisted or gone >= MASS_DISAPPEARANCE:
                    # a mass disappearance or its end, or a directory that cannot be
                    # listed: only a full scan can tell
                    paths = None
                    known = self._known(writer, serial)
                    listing = walk_seeds(root)
            seeds = listing.files
            present = {seed.key for seed in seeds}
            renames = _Renames(
                frozenset(
                    rel
                    for rel, state in known.items()
                    if state.entry_id and rel not in present and not listing.hides(rel)
                )
            )
            run = _Pass(writer, report, rebuild, renames)
            batch = _Batch()
            for done, (seed, loaded) in enumerate(self._reads(seeds, known, rebuild), 1):
                self._visit(seed, known.get(seed.key), loaded, batch, report)
                if len(batch) >= BATCH_FILES:
                    self._apply(run, batch)
                    batch = _Batch()
                if progress:
                    progress(done, len(seeds))
            self._apply(run, batch)
            batch = _Batch()  # every file seen is stored: now the renames, and what is gone
            taken = self._take_over(run, batch)
            self._unlisted(listing, known, batch.changes, report)
            self._deletions(
                writer,
                known,
                present | taken,  # a file taken over lives on in its new one
                listing,
                batch.changes,
                report,
                prune_now,
                paths is None,
            )
            self._apply(run, batch, taken)
            started = int(report.started.timestamp())
            writer.expire_tombstones(started - self.settings.tombstone_days * 86400 + 1)
            report.changed_scopes = writer.refresh_scopes()
            report.files_with_errors = writer.error_count()
            report.finished = self.clock().astimezone(UTC).replace(microsecond=0)
            writer.set_meta("last_scan", json.dumps(report.summary(), sort_keys=True))
            if writer.files_changed or serial is None:
                serial = uuid.uuid4().hex  # (any scan that changes file states moves it)
                writer.set_meta(FILES_SERIAL, serial)
                kept = None
            else:
                kept = (serial, known) if paths is None else self._states
        self._states = kept  # once committed
        changed = report.added or report.updated or report.removed or report.errors
        counts = {
            "files": len(seeds),
            "added": report.added,
            "updated": report.updated,
            "removed": report.removed,
            "unchanged": report.unchanged,
            "errors": len(report.errors),
            "feeds_changed": len(report.changed_scopes),
            "full": paths is None,
            "duration_ms": round((time.monotonic() - began) * 1000, 1),
        }
        log.log(
            logging.INFO if changed else logging.DEBUG,
            "scan: %d added, %d updated, %d removed, %d errors, %d feeds changed in %.0f ms",
            report.added,
            report.updated,
            report.removed,
            len(report.errors),
            len(report.changed_scopes),
            counts["duration_ms"],
            extra=counts,
        )
        return report

    def _known(self, writer: ScanTransaction, serial: str | None) -> dict[str, FileState]:
        """Every file state the store holds: kept from this scanner's last full scan while
        no scan (this process's, a hand-run one, another replica's) has changed any."""
        if self._states is not None and serial is not None and self._states[0] == serial:
            return self._states[1]
        return writer.file_states()

    def _reads(
        self, seeds: Sequence[SeedFile], known: dict[str, FileState], rebuild: bool
    ) -> Iterator[tuple[SeedFile, Loaded | None]]:
        """Each seed with what reading it gave, in walk order; None for a file whose stat
        is the one the store holds (not read). With many files to read, they are read and
        parsed on a pool of processes, one per core: parsing and sanitising are CPU-bound."""
        to_read = [
            rebuild
            or (state := known.get(seed.key)) is None
            or (state.mtime_ns, state.size) != (seed.mtime_ns, seed.size)
            for seed in seeds
        ]
        wanted = [seed for seed, read in zip(seeds, to_read, strict=True) if read]
        hashes = [
            None if rebuild or seed.key not in known else known[seed.key].content_hash
            for seed in wanted
        ]
        load = partial(load_seed, settings=self.settings)
        pool = (
            start_pool(self.workers) if len(wanted) >= POOL_MIN_FILES and self.workers > 1 else None
        )
        if pool is None:
            loaded: Iterator[Loaded] = map(load, wanted, hashes)
        else:  # (a long scan says it has begun: its summary comes after its commit)
            log.info("reading %d seed files on %d processes", len(wanted), self.workers)
            loaded = _windowed(pool, load, wanted, hashes)
        try:
            for seed, read in zip(seeds, to_read, strict=True):
                yield seed, next(loaded) if read else None
        finally:
            if pool is not None:
                stop_pool(pool)

    def _visit(
        self,
        seed: SeedFile,
        known: FileState | None,
        loaded: Loaded | None,
        batch: _Batch,
        report: ScanReport,
    ) -> None:
        changes = batch.changes
        if loaded is None:  # the stat the store holds: not read
            assert known is not None
            if known.missing_since is not None:  # back, untouched (moved out and in again)
                changes.restats.append(
                    FileStat(seed.key, seed.mtime_ns, seed.size, known.content_hash, known.noted)
                )
            report.unchanged += 1
            return
        match loaded:
            case Changing():
                log.info("%s: changed while being read; will read it at the next scan", seed.key)
            case Refused(digest=digest, path=path, reason=reason):
                note = Note(seed.key, seed.mtime_ns, seed.size, digest, reason)
                _report(changes, report, note, path)
            case Unchanged(digest=digest):
                assert known is not None
                changes.restats.append(
                    FileStat(seed.key, seed.mtime_ns, seed.size, digest, known.noted)
                )
                report.unchanged += 1
            case Fresh(digest=digest, parsed=parsed) if parsed.entry is None:  # a draft
                changes.drafts.append(Note(seed.key, seed.mtime_ns, seed.size, digest, ""))
                if known and known.entry_id:
                    report.removed += 1
            case Fresh(digest=digest, parsed=parsed):
                batch.parsed.append(_ReadFile(seed, digest, parsed, known))

    def _settle(self, run: _Pass, batch: _Batch) -> None:
        """Turn the batch's parsed files into entries, dated against what the store serves;
        a new file that may be a missing one renamed waits for ``_take_over``."""
        served = run.writer.entries_at([read.seed.key for read in batch.parsed])
        for read in batch.parsed:
            previous = served.get(read.seed.key)
            if previous is None and run.renames.may_be_renamed(run.writer, read.entry):
                run.renames.waiting.append(read)
                continue
            self._settle_one(run, batch.changes, read, previous)
        batch.parsed.clear()

    def _settle_one(
        self, run: _Pass, changes: Changes, read: _ReadFile, previous: Entry | None
    ) -> None:
        """One parsed file as an entry, dated against ``previous``; an entry equal to the one
        served changes nothing but the file's stat."""
        seed, digest, known, report = read.seed, read.digest, read.known, run.report
        entry = settle(read.parsed, previous, report.started, rebuild=run.rebuild)
        if known and known.noted:
            changes.cleared_errors.append(seed.key)
        if entry == previous and known is not None:
            changes.restats.append(
                FileStat(seed.key, seed.mtime_ns, seed.size, digest, noted=False)
            )
            report.unchanged += 1
            return
        changes.upserts.append(StoredEntry(entry, seed.mtime_ns, seed.size, digest))
        if previous is not None:
            report.updated += 1
        else:
            report.added += 1
            changes.new_paths.add(seed.key)

    def _take_over(self, run: _Pass, batch: _Batch) -> set[str]:
        """Settle the new files that have the identity of a missing file's entry. The only
        such file takes over the only such entry when no other entry has that identity
        either, and when neither states an explicit id (an entry serving an id it took over
        counts as one, except for the file whose path gives that id: a headline edit undone):
        a renamed file. Its entry keeps the id and the published date. The rest are new
        entries. Returns the missing files whose entries were taken over."""
        renames, writer = run.renames, run.writer
        waiting: dict[str, list[_ReadFile]] = {}
        for read in renames.waiting:
            key = identity(read.entry)
            assert key is not None  # it waits because it has one
            waiting.setdefault(key, []).append(read)
        identities = renames.identities or {}
        pairs = {
            key: identities[key][0]
            for key, reads in waiting.items()
            if len(reads) == 1 and len(identities[key]) == 1
        }
        olds = writer.entries_at(sorted(pairs.values()))
        shared = _shared_identities(writer, {key: olds[rel] for key, rel in pairs.items()})
        taken: set[str] = set()
        for key, reads in waiting.items():
            old = olds[pairs[key]] if key in pairs and key not in shared else None
            for read in reads:
                new = read.entry
                takes = (
                    old is not None
                    and new.id == new.path_id
                    and old.id in (old.path_id, new.path_id)
                )
                if takes:
                    assert old is not None
                    taken.add(old.path)
                    log.info(
                        "%s: takes over the entry of %s (renamed)",
                        new.path,
                        old.path,
                        extra={"path": new.path, "renamed_from": old.path},
                    )
                self._settle_one(run, batch.changes, read, old if takes else None)
        renames.waiting.clear()
        return taken

    def _unlisted(
        self,
        listing: SeedListing,
        known: dict[str, FileState],
        changes: Changes,
        report: ScanReport,
    ) -> None:
        """Report each directory the walk could not list, once: an error note under the
        directory's key (its path and a slash), kept while it cannot be listed and
        forgotten once it can (``_deletions``); the note's hash is its reason's, so a new
        reason is reported anew. Nothing the store knows under it changes meanwhile."""
        for problem in listing.unlisted:
            digest = content_hash(problem.reason.encode())
            state = known.get(problem.key)
            if state is not None and state.content_hash == digest:
                continue
            _report(changes, report, Note(problem.key, 0, 0, digest, problem.reason), problem.key)

    def _deletions(
        self,
        writer: ScanTransaction,
        known: dict[str, FileState],
        present: set[str],
        listing: SeedListing,
        changes: Changes,
        report: ScanReport,
        prune_now: bool,
        full: bool,
    ) -> None:
        """Files the store knows that the walk did not find: a file that gave no entry is
        forgotten at once; an entry leaves the feeds once its file has been missing for
        ``delete_grace`` seconds, and none does while a mass disappearance is held (which
        only a full scan can tell). What lies in a directory the walk could not list is
        neither: it stays as the store has it (and counts as present for the hold)."""
        grace = 0 if prune_now else self.settings.delete_grace
        now = int(report.started.timestamp())
        unseen = {rel for rel in known if rel not in present and listing.hides(rel)}
        if full:
            report.held = self._hold(writer, len(known), len(present) + len(unseen), now, grace)
        for rel, state in known.items():
            if rel in present or rel in unseen:
                continue
            if state.entry_id is None:
                changes.removed_paths.append(rel)
                continue
            if state.noted:
                changes.cleared_errors.append(rel)
            since = now if state.missing_since is None else state.missing_since
            if report.held is None and now - since >= grace:
                changes.removed_paths.append(rel)
                report.removed += 1
                continue
            if state.missing_since is None:
                changes.missing.append(rel)
            report.missing += 1
        if report.missing:
            log.info(
                "%d seed files are missing: their entries stay served until %s",
                report.missing,
                "the deletion hold ends" if report.held else f"{grace} s have passed",
            )

    def _hold(
        self, writer: ScanTransaction, known: int, present: int, now: int, grace: int
    ) -> DeletionHold | None:
        """The deletion hold in force, if any: while the directory suddenly holds fewer than
        half the files of the last scan (and MASS_DISAPPEARANCE fewer), nothing is removed
        until that same state has lasted ``grace`` seconds."""
        previous = DeletionHold.load(writer.get_meta(DELETION_HOLD))
        fault = grace > 0 and present < known / 2 and known - present >= MASS_DISAPPEARANCE
        if not fault:
            if previous is not None:
                log.warning("deletion hold ended: the seeds directory holds %d files", present)
                writer.set_meta(DELETION_HOLD, DeletionHold.dump(None))
            return None
        hold = previous
        if hold is None or hold.files != present:
            hold = DeletionHold(datetime.fromtimestamp(now, UTC), present, known)
            log.warning("deletion hold: %s", hold.reason)
            writer.set_meta(DELETION_HOLD, DeletionHold.dump(hold))
        if now - int(hold.since.timestamp()) >= grace:
            log.warning("deletion hold: the same state has lasted %d s, removing", grace)
            return None
        return hold

    def _apply(self, run: _Pass, batch: _Batch, taken: Collection[str] = ()) -> None:
        """Write the batch; a file refused an explicit id another file keeps is written as
        an error instead, and the report counts it so."""
        self._settle(run, batch)
        changes, report = batch.changes, run.report
        if not changes:
            return
        seen_at = int(report.started.timestamp())
        news = not report.baseline
        clashes = run.writer.apply(changes, seen_at, taken, run.renames.gone, news=news)
        if not clashes:
            return
        by_path = {stored.entry.path: stored for stored in changes.upserts}
        follow_up = Changes()
        for clash in clashes:
            stored = by_path[clash.path]
            follow_up.errors.append(
                Note(clash.path, stored.mtime_ns, stored.size, stored.content_hash, clash.reason)
            )
            report.errors.append((clash.path, clash.reason))
            if clash.path in changes.new_paths:
                report.added -= 1
            else:
                report.updated -= 1
        run.writer.apply(follow_up, seen_at, missing=run.renames.gone, news=news)
