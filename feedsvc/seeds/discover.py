"""Which files are seed files, and finding them: a walk of the seeds directory that no
shape of tree (symlinks out or in loops, unreadable or absurdly deep directories, FIFOs) can
crash or mislead, and the stat of named paths for a partial scan."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

SEED_SUFFIXES = (".md", ".markdown", ".txt")
LEFTOVER_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")
# The walk lists directories at most this many levels below the seeds directory: no real tree
# is nested so deep, and a chain of thousands of directories (a runaway job, an attack) must
# not cost a crash, nor every read below it one open per level.
MAX_DIR_DEPTH = 64
# What a stat fails with where simply nothing is there to read: a name gone since it was
# listed, a dangling symlink, a symlink loop, a directory on the way replaced by a file.
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_TOO_DEEP = f"nested more than {MAX_DIR_DEPTH} directories deep: its files are not read"


@dataclass(frozen=True)
class SeedFile:
    """A file the walk found: its path relative to the seeds directory, and its stat.
    ``rel`` is the name as the file system has it (a name that is not UTF-8 keeps its bytes
    as surrogates, to open it by); ``key`` is the text the store knows the file by."""

    rel: str
    abspath: str  # (a string: a walk of 100k files makes no Path objects)
    mtime_ns: int
    size: int
    key: str = field(init=False, compare=False)  # (asked of every file at every scan)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", display_path(self.rel))

    @property
    def root(self) -> str:
        """The seeds directory: ``abspath`` is it joined with ``rel``."""
        root = os.fspath(self.abspath)
        for _ in range(self.rel.count("/") + 1):
            root = os.path.dirname(root)
        return root


def display_path(rel: str) -> str:
    """The relative path as printable text, even when the file name is not valid UTF-8."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_seed_name(name: str) -> bool:
    """Seed files end in .md, .markdown or .txt; hidden names and editor leftovers do not count.

    A name that is only a suffix ('.md') is a seed whose stem is empty, not a hidden file:
    crawlers write such names for items without a title."""
    lower = name.lower()
    if not lower.endswith(SEED_SUFFIXES) or lower.endswith(LEFTOVER_SUFFIXES):
        return False
    if name.startswith(".") and lower not in SEED_SUFFIXES:
        return False
    return not name.startswith("#")


def walked_into(rel: str) -> bool:
    """Whether the walk enters every directory on the way to this relative path: none is
    hidden (nor '..'), none is empty. (How deep it goes is the walk's own limit.)"""
    return not any(not part or part.startswith(".") for part in rel.split("/")[:-1])


def is_seed_path(rel: str) -> bool:
    """Whether a relative path names a seed file by the walk's rules: a seed file's name,
    in directories the walk enters. The walk, a partial scan and the watcher all ask this."""
    return is_seed_name(rel.rsplit("/", 1)[-1]) and walked_into(rel)


def inside(real_root: str, real: str) -> bool:
    """Whether a resolved path is the resolved seeds directory or lies beneath it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Unlisted:
    """A directory the walk could not list, and why (no permission, an I/O error, nested
    deeper than MAX_DIR_DEPTH): the walk cannot tell what is in it, so whatever the store
    knows under it stays as it is, neither read nor counted missing, until it can be listed."""

    rel: str
    reason: str

    @property
    def key(self) -> str:
        """How the store and the reports name it: its relative path and a slash (no seed
        file's key ends so), './' for the seeds directory itself."""
        return (display_path(self.rel) or ".") + "/"


@dataclass(frozen=True)
class SeedListing:
    """What a walk found: the seed files in path order, and the directories it could not list."""

    files: tuple[SeedFile, ...] = ()
    unlisted: tuple[Unlisted, ...] = ()

    def __iter__(self) -> Iterator[SeedFile]:
        return iter(self.files)

    @cached_property
    def _unlisted_keys(self) -> frozenset[str]:
        return frozenset(problem.key for problem in self.unlisted)

    def hides(self, key: str) -> bool:
        """Whether a path the store knows (a file's key, or an unlisted directory's own)
        lies in a directory that could not be listed: whether it is still there is unknown."""
        keys = self._unlisted_keys
        if not keys:
            return False
        if "./" in keys:
            return True
        end = key.find("/")
        while end != -1:
            if key[: end + 1] in keys:
                return True
            end = key.find("/", end + 1)
        return False


def _look(full: str, name: str, real_root: str, *, resolve: bool) -> os.stat_result | None:
    """The walk's rule for one name: the stat of a seed file or of a directory to enter, or
    None for anything else (hidden, gone, a dangling symlink or a loop, a symlink out of
    ``real_root``, a FIFO, ...). ``resolve``: check where the path leads even when its last
    name is no symlink (a directory on the way may be one). Raises OSError when it cannot
    tell (no permission to look): the directory holding the name is then not listed."""
    hidden = name.startswith(".")
    if hidden and not is_seed_name(name):
        return None
    try:
        st = os.lstat(full)
        if resolve or stat.S_ISLNK(st.st_mode):
            if not inside(real_root, os.path.realpath(full)):
                return None
            st = os.stat(full)
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise
    if stat.S_ISDIR(st.st_mode):
        return None if hidden else st
    return st if stat.S_ISREG(st.st_mode) and is_seed_name(name) else None


def _unlookable(rel_dir: str, name: str, exc: OSError) -> Unlisted:
    return Unlisted(rel_dir, f"cannot look at {display_path(name)!r} in it: {exc.strerror}")


def stat_seeds(root: Path, rels: Iterable[str]) -> SeedListing:
    """The seed files among these relative paths that exist now, by the walk's rules (see
    ``_look``; no hidden directories, none deeper than MAX_DIR_DEPTH), sorted by path, and
    the directories that kept a path from being looked at."""
    real_root = os.path.realpath(root)
    files: list[SeedFile] = []
    unlisted: list[Unlisted] = []
    for rel in sorted(set(rels)):
        if not is_seed_path(rel):
            continue
        *dirs, name = rel.split("/")
        if len(dirs) > MAX_DIR_DEPTH:
            unlisted.append(Unlisted("/".join(dirs[: MAX_DIR_DEPTH + 1]), _TOO_DEEP))
            continue
        full = os.path.join(root, rel)
        try:
            st = _look(full, name, real_root, resolve=True)
        except OSError as exc:
            unlisted.append(_unlookable("/".join(dirs), name, exc))
            continue
        if st is not None and stat.S_ISREG(st.st_mode):
            files.append(SeedFile(rel, full, st.st_mtime_ns, st.st_size))
    return SeedListing(tuple(files), tuple(unlisted))


def _list_dir(
    directory: str, rel_dir: str, real_root: str, unlisted: list[Unlisted]
) -> list[tuple[str, str, os.stat_result]]:
    """The seed files and directories to enter in one directory (relative path, path,
    stat), sorted by name; none, and the directory added to ``unlisted``, when it cannot be
    listed or a name in it cannot be looked at."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        if exc.errno not in _GONE:  # gone since its parent was listed: simply deleted
            unlisted.append(Unlisted(rel_dir, f"cannot list the directory: {exc.strerror}"))
        return []
    found = []
    for name in names:
        full = os.path.join(directory, name)
        try:
            st = _look(full, name, real_root, resolve=False)
        except OSError as exc:
            unlisted.append(_unlookable(rel_dir, name, exc))
            return []
        if st is not None:
            found.append((f"{rel_dir}/{name}" if rel_dir else name, full, st))
    return found


def walk_seeds(root: Path) -> SeedListing:
    """Every seed file under ``root`` in a stable (sorted) order, and the directories that
    could not be listed.

    Symlinks are followed only while they stay inside ``root``; each directory is visited
    once, so symlink loops end. Only regular files count (a FIFO would block a read). The
    walk keeps its own stack, at most MAX_DIR_DEPTH deep: no shape of tree can crash it."""
    real_root = os.path.realpath(root)
    try:
        top = os.stat(real_root)
    except OSError:
        return SeedListing()
    if not stat.S_ISDIR(top.st_mode):
        return SeedListing()
    files: list[SeedFile] = []
    unlisted: list[Unlisted] = []
    visited = {(top.st_dev, top.st_ino)}
    # one iterator per directory being listed, the deepest last
    pending: list[Iterator[tuple[str, str, os.stat_result]]] = [
        iter(_list_dir(str(root), "", real_root, unlisted))
    ]
    while pending:
        found = next(pending[-1], None)
        if found is None:
            pending.pop()
            continue
        rel, full, st = found
        if stat.S_ISREG(st.st_mode):
            files.append(SeedFile(rel, full, st.st_mtime_ns, st.st_size))
        elif (st.st_dev, st.st_ino) not in visited:
            visited.add((st.st_dev, st.st_ino))
            if len(pending) <= MAX_DIR_DEPTH:  # ``rel`` is len(pending) levels deep
                pending.append(iter(_list_dir(full, rel, real_root, unlisted)))
            else:
                unlisted.append(Unlisted(rel, _TOO_DEEP))
    return SeedListing(tuple(files), tuple(unlisted))
