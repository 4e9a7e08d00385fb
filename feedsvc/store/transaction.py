"""The write side of the store, bound to one transaction (the scan's): what the store knows
of each seed file, and the batches of changes a scan applies."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from feedsvc.model import Entry, IdClash, Scope, json_digest, settle_claims
from feedsvc.store import migrate, search
from feedsvc.store.parts import entry_of, pack_entry
from feedsvc.store.records import GONE, Changes, FileStat, FileState, NoteKind, StoredEntry
from feedsvc.store.schema import (
    dirty_scopes,
    entries,
    entry_scopes,
    entry_text,
    fragments,
    path_id,
    scope_id,
    scopes,
    tombstones,
    unpublished,
)
from feedsvc.store.sql import (
    chunks,
    delete_in,
    get_meta,
    scope_fingerprints,
    scope_members,
    select_in,
    set_meta,
)


class ScanTransaction:
    """The write side, bound to one transaction: a whole scan commits at once, so readers
    (in this process or a replica) never see entries whose feed summaries are not written yet,
    and a scan killed at any point leaves the store exactly as the last finished scan left it."""

    def __init__(self, conn: Connection) -> None:
        self.files_changed = False  # whether a batch changed what file_states() reads
        self.conn = conn

    def set_meta(self, key: str, value: str) -> None:
        set_meta(self.conn, key, value)

    def get_meta(self, key: str) -> str | None:
        return get_meta(self.conn, key)

    def file_states(self, paths: Sequence[str] | None = None) -> dict[str, FileState]:
        """The seed files the store knows (only ``paths`` and the files missing now, when
        given), by relative path; an error's or a draft's stat wins, so a file that broke
        is not re-read until it changes again."""
        entry_query = select(
            entries.c.path,
            entries.c.mtime_ns,
            entries.c.size,
            entries.c.content_hash,
            entries.c.id,
            entries.c.missing_since,
        )
        note_query = select(unpublished)
        if paths is None:
            entry_rows = self.conn.execute(entry_query).all()
            note_rows = self.conn.execute(note_query).all()
        else:
            ids = [path_id(rel) for rel in paths]
            missing = entry_query.where(entries.c.missing_since.is_not(None))
            entry_rows = select_in(self.conn, entry_query, entries.c.path_id, ids)
            entry_rows += self.conn.execute(missing).all()
            note_rows = select_in(self.conn, note_query, unpublished.c.id, ids)
        states: dict[str, FileState] = {}
        for row in entry_rows:
            states[row.path] = FileState(
                row.mtime_ns, row.size, row.content_hash, row.id, False, row.missing_since
            )
        for row in note_rows:
            kept = states.get(row.path)
            states[row.path] = FileState(
                row.mtime_ns,
                row.size,
                row.content_hash,
                kept.entry_id if kept else None,
                True,
                kept.missing_since if kept else None,
            )
        return states

    def entries_at(self, paths: Sequence[str]) -> dict[str, Entry]:
        """The entries served now for these seed files, by relative path."""
        rows = select_in(
            self.conn,
            select(entries.c.path, entries.c.data),
            entries.c.path_id,
            [path_id(rel) for rel in paths],
        )
        return {row.path: entry_of(row.data) for row in rows}

    def entries_in(self, scope: Scope) -> Iterator[Entry]:
        """Every entry one feed holds, in no order."""
        query = (
            select(entries.c.data)
            .join(entry_scopes, entry_scopes.c.entry_id == entries.c.id)
            .where(entry_scopes.c.scope_id == scope_id(scope.key))
        )
        for data in self.conn.execute(query).scalars().all():
            yield entry_of(data)

    def check_schema(self, where: str) -> None:
        """Before writing: the database must still be at this revision (see
        migrate.check_writable)."""
        migrate.check_writable(self.conn, where)

    def expire_tombstones(self, before: int) -> None:
        """Forget tombstones older than ``before``: their feeds change (and move)."""
        rows = self.conn.execute(
            select(tombstones.c.scope_id).where(tombstones.c.removed < before).distinct()
        ).scalars()
        expired = set(rows)
        if not expired:
            return
        keys = dict(
            select_in(self.conn, select(scopes.c.id, scopes.c.key), scopes.c.id, list(expired))
        )
        self.conn.execute(delete(tombstones).where(tombstones.c.removed < before))
        self._mark_dirty(keys.values())

    def apply(
        self,
        changes: Changes,
        seen_at: int,
        taken: Collection[str] = (),
        missing: Collection[str] = (),
        *,
        news: bool = True,
    ) -> list[IdClash]:
        """Write one batch in one transaction, with a handful of set-wise statements;
        ``seen_at`` is the scan's time (a new entry's first_seen, a missing file's start);
        ``taken``: files gone whose entries an upsert takes over (renamed files): their rows
        go without tombstones; ``missing``: the files the scan found gone (a batch may come
        before their rows say so). Returns the files refused an explicit id another file
        keeps (not written). ``news`` False: the store's first (baseline) scan, whose new
        entries are stored with first_seen 0 (no news to anyone: see Store.page)."""
        self.files_changed = self.files_changed or bool(changes)
        conn = self.conn
        dirty: set[str] = set()
        self._restat(changes.restats)
        for chunk in chunks([path_id(rel) for rel in changes.missing]):
            conn.execute(
                update(entries).where(entries.c.path_id.in_(chunk)).values(missing_since=seen_at)
            )
        gone_paths = [*changes.removed_paths, *(note.rel for note in changes.drafts), *taken]
        upserts = {stored.entry.path: stored for stored in changes.upserts}
        leaving = set(gone_paths) | set(upserts)
        clashes, superseded = self._claim_ids(upserts, leaving, missing)
        gone_paths += superseded
        # Existing rows for every path this batch touches.
        touched = [path_id(rel) for rel in [*gone_paths, *upserts]]
        old_rows = select_in(
            self.conn,
            select(entries.c.id, entries.c.path, entries.c.first_seen, entries.c.data),
            entries.c.path_id,
            touched,
        )
        first_seen = {row.id: row.first_seen for row in old_rows}
        doomed = [row.id for row in old_rows if row.path in upserts or row.path in gone_paths]
        deleted = set(changes.removed_paths)
        graves = []
        for row in old_rows:
            if row.id in doomed:
                old_scopes = entry_of(row.data).scopes()
                dirty.update(scope.key for scope in old_scopes)
                if row.path in deleted:  # its file is gone: a tombstone in each feed it left
                    graves += [
                        {"scope_id": scope_id(s.key), "entry_id": row.id, "removed": seen_at}
                        for s in old_scopes
                    ]
        returning = [stored.entry.id for stored in upserts.values()]
        delete_in(self.conn, tombstones, tombstones.c.entry_id, [*returning, *doomed])
        if graves:
            conn.execute(insert(tombstones), graves)
        delete_in(self.conn, entry_scopes, entry_scopes.c.entry_id, doomed)
        search.forget(self.conn, doomed)
        kept = set(returning)  # (parts still match an entry back unchanged: see fragments)
        delete_in(self.conn, fragments, fragments.c.entry_id, [i for i in doomed if i not in kept])
        delete_in(self.conn, entries, entries.c.id, doomed)

        entry_rows, scope_rows, text_rows = [], [], []
        for rel, stored in upserts.items():
            entry = stored.entry
            data = entry.to_json()
            text_rows.append({"entry_id": entry.id, "indexed": False})
            published = int(entry.published.timestamp())
            entry_rows.append(
                {
                    "id": entry.id,
                    "path": rel,
                    "path_id": path_id(rel),
                    "updated": int(entry.updated.timestamp()),
                    "fingerprint": json_digest(data).hex(),
                    "content_hash": stored.content_hash,
                    "mtime_ns": stored.mtime_ns,
                    "size": stored.size,
                    "first_seen": first_seen.get(entry.id, seen_at if news else 0),
                    "missing_since": None,
                    "data": pack_entry(data, search.searchable_text(entry)),
                }
            )
            for scope in entry.scopes():
                dirty.add(scope.key)
                scope_rows.append(
                    {
                        "scope_id": scope_id(scope.key),
                        "entry_id": entry.id,
                        "published": published,
                    }
                )
        if entry_rows:
            conn.execute(insert(entries), entry_rows)
            conn.execute(insert(entry_scopes), scope_rows)
            conn.execute(insert(entry_text), text_rows)

        notes = [(note, NoteKind.ERROR) for note in changes.errors]
        notes += [(note, NoteKind.DRAFT) for note in changes.drafts]
        cleared = [
            *changes.removed_paths,
            *taken,
            *superseded,
            *changes.cleared_errors,
            *(note.rel for note, _kind in notes),
        ]
        delete_in(self.conn, unpublished, unpublished.c.id, [path_id(rel) for rel in cleared])
        if notes:
            conn.execute(
                insert(unpublished),
                [
                    {
                        "id": path_id(note.rel),
                        "path": note.rel,
                        "mtime_ns": note.mtime_ns,
                        "size": note.size,
                        "kind": kind,
                        "error": note.reason,
                        "content_hash": note.content_hash,
                    }
                    for note, kind in notes
                ],
            )
        self._mark_dirty(dirty)
        return clashes

    def _claim_ids(
        self, upserts: dict[str, StoredEntry], leaving: set[str], missing: Collection[str]
    ) -> tuple[list[IdClash], list[str]]:
        """Which file gets each id the batch writes; ``upserts`` is changed to match.

        An id a path gives belongs to that path's file: an entry holding it under another
        path (taken over from a renamed file that has come back) goes back to the id its own
        path gives, or, when its file is missing, goes. Every other id is kept by the file
        holding it unless that one is gone or was re-read in this batch (then its new
        version, if any, claims it among the batch's files): see model.settle_claims.
        Returns the clashes (files refused an id another file keeps, by path), and the missing files
        whose entries went."""
        clashes: list[IdClash] = []
        superseded: list[str] = []
        pending = set(upserts)
        while pending:
            claimants: dict[str, list[str]] = {}
            for rel, stored in upserts.items():
                claimants.setdefault(stored.entry.id, []).append(rel)
            wanted = sorted({upserts[rel].entry.id for rel in pending})
            holders = {
                row.id: row
                for row in select_in(
                    self.conn,
                    select(
                        entries.c.id,
                        entries.c.path,
                        entries.c.missing_since,
                        entries.c.mtime_ns,
                        entries.c.size,
                        entries.c.content_hash,
                    ),
                    entries.c.id,
                    wanted,
                )
            }
            pending = set()
            contested: dict[str, list[str]] = {}
            for entry_id in wanted:
                rels = claimants[entry_id]
                holder = holders.get(entry_id)
                owner = holder.path if holder is not None else None
                rightful = [rel for rel in rels if upserts[rel].entry.path_id == entry_id]
                if not rightful:
                    holding = [owner] if owner is not None and owner not in leaving else []
                    contested[entry_id] = [*holding, *rels]
                    continue
                for rel in rels:
                    if rel != rightful[0]:
                        stored = upserts[rel]
                        upserts[rel] = replace(
                            stored, entry=replace(stored.entry, id=stored.entry.path_id)
                        )
                        pending.add(rel)
                if holder is None or owner in leaving:
                    continue
                leaving.add(holder.path)
                if holder.missing_since is not None or holder.path in missing:
                    superseded.append(holder.path)
                    continue
                entry = self.entries_at([holder.path])[holder.path]
                upserts[holder.path] = StoredEntry(
                    replace(entry, id=entry.path_id),
                    holder.mtime_ns,
                    holder.size,
                    holder.content_hash,
                )
                pending.add(holder.path)
            served = {key: holders[key].path for key in contested if key in holders}
            for clash in settle_claims(contested, served)[1]:
                clashes.append(clash)
                del upserts[clash.path]
        return sorted(clashes, key=lambda clash: clash.path), superseded

    def _restat(self, restats: list[FileStat]) -> None:
        """Record the new stat of files whose bytes did not change: nothing served moves."""
        targets = ((entries, entries.c.path_id, False), (unpublished, unpublished.c.id, True))
        for table, key, noted in targets:
            rows = [
                {
                    "pid": path_id(item.rel),
                    "m": item.mtime_ns,
                    "n": item.size,
                    "h": item.content_hash,
                }
                for item in restats
                if item.noted is noted
            ]
            if not rows:
                continue
            values: dict[str, Any] = {
                "mtime_ns": bindparam("m"),
                "size": bindparam("n"),
                "content_hash": bindparam("h"),
            }
            if table is entries:
                values["missing_since"] = None
            self.conn.execute(update(table).where(key == bindparam("pid")).values(**values), rows)

    def _mark_dirty(self, keys: Iterable[str]) -> None:
        wanted = {scope_id(key): key for key in keys}
        present = {
            row.id
            for row in select_in(
                self.conn, select(dirty_scopes.c.id), dirty_scopes.c.id, list(wanted)
            )
        }
        rows = [{"id": sid, "key": key} for sid, key in wanted.items() if sid not in present]
        if rows:
            self.conn.execute(insert(dirty_scopes), rows)

    def refresh_scopes(self) -> list[Scope]:
        """Recompute the summary of every scope a write touched; bump the generation when a
        summary really changed. Returns the scopes whose feeds changed."""
        changed: list[Scope] = []
        conn = self.conn
        dirty = dict(conn.execute(select(dirty_scopes.c.id, dirty_scopes.c.key)).all())
        for chunk in chunks(sorted(dirty), 200):
            old = scope_fingerprints(conn, chunk)
            members = conn.execute(
                scope_members(
                    chunk, entries.c.id, entries.c.fingerprint, entries.c.updated
                ).order_by(entry_scopes.c.scope_id, entries.c.id)
            )  # streamed, one scope's members at a time: at 100k entries the chunk's are millions
            graves: dict[str, list[str]] = {}
            newest_grave: dict[str, int] = {}
            for grave in conn.execute(
                select(tombstones.c.scope_id, tombstones.c.entry_id, tombstones.c.removed)
                .where(tombstones.c.scope_id.in_(chunk))
                .order_by(tombstones.c.scope_id, tombstones.c.entry_id)
            ):
                graves.setdefault(grave.scope_id, []).append(f"-{grave.entry_id}:{grave.removed};")
                newest_grave[grave.scope_id] = max(
                    grave.removed, newest_grave.get(grave.scope_id, 0)
                )
            summaries: dict[str, dict[str, Any]] = {}
            for sid, group in itertools.groupby(members, key=lambda row: row.scope_id):
                rows = list(group)
                digest = hashlib.sha256()
                for row in rows:
                    digest.update(f"{row.id}:{row.fingerprint};".encode())
                for grave_text in graves.get(sid, ()):
                    digest.update(grave_text.encode())
                summaries[sid] = {
                    "id": sid,
                    "key": dirty[sid],
                    "entry_count": len(rows),
                    "newest_updated": max(row.updated for row in rows),
                    "fingerprint": digest.hexdigest(),
                }
            # A scope that lost its last entry stays: an empty feed while its tombstones
            # last (readers learn of the deletions), then gone (410), never a 404.
            for sid in chunk:
                if sid in summaries or sid not in old:
                    continue
                digest = hashlib.sha256("".join(graves.get(sid, ())).encode())
                summaries[sid] = {
                    "id": sid,
                    "key": dirty[sid],
                    "entry_count": 0,
                    "newest_updated": newest_grave.get(sid, 0),
                    "fingerprint": digest.hexdigest() if sid in graves else GONE,
                }
            conn.execute(delete(scopes).where(scopes.c.id.in_(chunk)))
            if summaries:
                conn.execute(insert(scopes), list(summaries.values()))
            for sid in chunk:
                new = summaries.get(sid, {}).get("fingerprint")
                if new != old.get(sid):
                    changed.append(Scope.from_key(dirty[sid]))
        conn.execute(delete(dirty_scopes))
        if changed:
            generation = get_meta(conn, "generation")
            self.set_meta("generation", str(int(generation or 0) + 1))
        return sorted(changed)

    def error_count(self) -> int:
        query = (
            select(func.count())
            .select_from(unpublished)
            .where(unpublished.c.kind == NoteKind.ERROR)
        )
        return int(self.conn.execute(query).scalar() or 0)
