"""One seed file -> one Entry (or a SeedError naming the file and the reason).

Front matter is split with python-frontmatter and read with PyYAML's C loader in two steps:
compose (to check size, aliases and duplicate keys, and to keep the source text of titles and
names that YAML would turn into numbers), then construct (for dates and flags)."""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from frontmatter.default_handlers import YAMLHandler

from feedsvc.config import LANGUAGE_TAG, PLACEHOLDER_IMAGE_HOSTS, Settings
from feedsvc.dates import DateError, parse_date
from feedsvc.model import MAX_NAME_CHARS, Author, Entry, stable_uuid
from feedsvc.sanitize import (
    UnsafeInput,
    absolute_url,
    clean_html,
    clean_text,
    decode_entities,
    html_to_text,
    link_as_base,
    on_hosts,
    render_body,
    summarize,
)

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
# Opening beneath the seeds directory: no name on the way may be a symlink (any more).
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK

MAX_YAML_NODES = 10_000
MAX_YAML_DEPTH = 32
MAX_HIERARCHIES = 100
MAX_DEPTH = 16
MAX_TITLE_CHARS = 500
TITLE_FROM_TEXT_CHARS = 80

# What PyYAML refuses to read ("unacceptable character"): scraped titles carry such control
# characters, and one of them must not cost the whole entry. They go before the YAML parse
# (every field drops them afterwards anyway). NUL is refused earlier: it marks binary files.
_YAML_UNPRINTABLE = re.compile(
    "[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# The Han ideographs of the Basic Multilingual Plane (CJK Extension A and Unified Ideographs:
# every code point assigned, letters all) and CJK and full-width punctuation.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_PUNCTUATION = re.compile("[\u3000-\u303f\uff00-\uffef]")
# The published date of an entry whose file states none, until the scan settles it.
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_HANDLER = YAMLHandler()


class SeedLoader(yaml.CSafeLoader):
    """PyYAML's C safe loader, except that an impossible timestamp (2021-02-30) stays text:
    the date falls back like any unreadable date instead of rejecting the whole file."""

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return node.value


SeedLoader.add_constructor(_TIMESTAMP_TAG, SeedLoader.construct_lenient_timestamp)


class SeedError(Exception):
    """A seed file that cannot be published, with the reason in words a writer can act on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FileChanging(Exception):
    """The file changed while it was read: try again at the next scan, publish nothing now."""


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


@dataclass(frozen=True)
class Parsed:
    """What a seed file gave: an entry (None for drafts), warnings, and the dates the file states (None where it states none that can be used).

    The entry's own dates are the stated ones, or UNDATED: a file alone cannot say when an
    undated entry was first stored or when its content last changed, so the scan settles
    them against the store (feedsvc.revisions)."""

    entry: Entry | None
    warnings: tuple[str, ...]
    date: datetime | None = None
    updated: datetime | None = None


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


def _inside(real_root: str, real: str) -> bool:
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
            if not _inside(real_root, os.path.realpath(full)):
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
        *dirs, name = rel.split("/")
        if any(not part or part.startswith(".") for part in dirs):
            continue
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


def _open_beneath(seed: SeedFile) -> int:
    """A descriptor on the seed file that cannot be outside the seeds directory, whatever
    its path became since the walk (a symlink swapped in for the file or a directory on the
    way). The path is resolved (symlinks inside the seeds directory are followed, as by the
    walk), then the resolved path is opened one name at a time from the seeds directory,
    with O_NOFOLLOW: a name that has become a symlink meanwhile fails the open (ELOOP or
    ENOTDIR). Raises FileChanging when the path leads outside now."""
    real_root = os.path.realpath(seed.root)
    real = os.path.realpath(seed.abspath)
    if real == real_root or not _inside(real_root, real):
        raise FileChanging(seed.rel)
    *dirs, name = os.path.relpath(real, real_root).split(os.sep)
    fd = os.open(real_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in dirs:
            parent, fd = fd, os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(parent)
        return os.open(name, _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def read_seed(seed: SeedFile, max_bytes: int) -> bytes:
    """The file's bytes, refusing huge files unread and noticing writes in progress. It is
    opened beneath the seeds directory at every read, not only checked at the walk: a file
    swapped for a symlink out of it since is never opened (``_open_beneath``). A name that
    is not UTF-8 is refused unread: no entry can come of it, and any event for such a name,
    an open included, makes watchfiles fail (feedsvc.events)."""
    if seed.key != seed.rel:
        raise SeedError(seed.key, "file name is not valid UTF-8")
    if seed.size > max_bytes:
        raise SeedError(
            display_path(seed.rel), f"file is {seed.size} bytes, over max_file_bytes ({max_bytes})"
        )
    try:
        fd = _open_beneath(seed)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink swapped in meanwhile
            raise FileChanging(seed.rel) from None
        raise SeedError(display_path(seed.rel), f"cannot open: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise SeedError(display_path(seed.rel), "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(max_bytes + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise SeedError(display_path(seed.rel), f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SeedError(display_path(seed.rel), f"file is over max_file_bytes ({max_bytes})")
    unchanged = (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    if not unchanged or (after.st_mtime_ns, after.st_size) != (seed.mtime_ns, seed.size):
        raise FileChanging(seed.rel)
    if len(data) != after.st_size:
        raise FileChanging(seed.rel)
    return data


def _looks_like_gb18030(text: str) -> bool:
    """True when GB18030-decoded text is almost surely Chinese, not bytes that happened to
    decode. The characters are counted by single-class regexes, in C: a file is megabytes."""
    wide = _NON_ASCII.subn("", text)[1]
    if not wide:
        return False
    han = _HAN.subn("", text)[1]
    punct = _CJK_PUNCTUATION.subn("", text)[1]
    return (han + punct) / wide >= 0.9 and han >= 2


def decode(data: bytes, rel: str) -> str:
    """Text of a seed file: UTF-8 (BOM optional), UTF-16 with a BOM, or GB18030 when certain."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SeedError(rel, "invalid UTF-16 text") from None
    if b"\x00" in data:
        raise SeedError(rel, "binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = ""
    if text and _looks_like_gb18030(text):
        return text
    raise SeedError(
        rel, f"not UTF-8 text (invalid byte at offset {utf8_error.start}) and not certainly GB18030"
    )


def _count_nodes(root: yaml.Node, rel: str) -> None:
    """Reject alias bombs and recursive aliases before anything is constructed."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int = 0) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SeedError(rel, "front matter contains a recursive alias")
        if depth > MAX_YAML_DEPTH:
            raise SeedError(rel, f"front matter is nested deeper than {MAX_YAML_DEPTH} levels")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise SeedError(rel, f"front matter expands to over {MAX_YAML_NODES} values")
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def _check_events(front: str, rel: str) -> None:
    """Refuse front matter of over MAX_YAML_NODES values from the parser's events, before a
    node is composed: composing costs far more per value than parsing, and a long mapping
    would be composed whole before _count_nodes could stop it. (Each value is at least one
    event, a list or mapping two; the stream and the document add four.) YAML errors are
    left to _load_front_matter, which reports them with their line."""
    loader = SeedLoader(front)
    try:
        for _ in range(2 * MAX_YAML_NODES + 5):
            if not loader.check_event():
                return
            loader.get_event()
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()
    raise SeedError(rel, f"front matter expands to over {MAX_YAML_NODES} values")


def _load_front_matter(
    front: str, rel: str, first_line: int
) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """The constructed mapping and, per key, its node (for source text of scalars).
    ``first_line`` is the file's line number of the opening '---', for error messages."""
    _check_events(front, rel)
    loader = SeedLoader(front)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SeedError(rel, "front matter is empty")
        if not isinstance(node, yaml.MappingNode):
            raise SeedError(rel, "front matter is not a mapping of keys to values")
        _count_nodes(node, rel)
        nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SeedError(rel, "front matter has a key that is not a plain name")
            if key_node.value in nodes:
                raise SeedError(rel, f"front matter has the key {key_node.value!r} twice")
            nodes[key_node.value] = value_node
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + first_line}, column {mark.column + 1}" if mark else ""
        raise SeedError(rel, f"invalid YAML front matter{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SeedError(rel, f"invalid YAML front matter: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise SeedError(rel, f"invalid value in front matter: {exc}") from None
    finally:
        loader.dispose()
    return {str(k): v for k, v in data.items()}, nodes


def _scalar_text(node: yaml.Node | None) -> str | None:
    """The source text of a scalar (so `title: 12_00` stays '12_00'); None for null/absent."""
    if node is None or not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag == _NULL_TAG and not node.style:  # plain (unquoted) null: ~, null, empty
        return None
    return str(node.value)


def _name(node: yaml.Node, field: str, rel: str, warnings: list[str]) -> str:
    """A category, tag or author name; '' for names that cannot be one."""
    if not isinstance(node, yaml.ScalarNode):
        kind = type(node).__name__.removesuffix("Node").lower()  # sequence, mapping
        raise SeedError(rel, f"{field}: expected a name, got a {kind}")
    name = clean_text(_scalar_text(node) or "")
    if len(name) > MAX_NAME_CHARS:
        raise SeedError(rel, f"{field}: a name is over {MAX_NAME_CHARS} characters")
    return _usable_name(name, field, warnings)


def _usable_name(name: str, field: str, warnings: list[str]) -> str:
    """The name, NFC-normalised; '' (with a warning) for '.' and '..', which are URL path
    steps of their own: browsers would resolve them away, so no feed could be named so."""
    if name in (".", ".."):
        warnings.append(f"{field}: {name!r} cannot be a name, left out")
        return ""
    return unicodedata.normalize("NFC", name)


def _categories(
    node: yaml.Node | None, rel: str, warnings: list[str]
) -> tuple[tuple[str, ...], ...]:
    """A string is one category, a list one hierarchy (Hexo), a list of lists several."""
    if node is None or (_scalar_text(node) is None and isinstance(node, yaml.ScalarNode)):
        return ()
    if isinstance(node, yaml.ScalarNode):
        raw: list[list[yaml.Node]] = [[node]]
    elif isinstance(node, yaml.SequenceNode):
        if any(isinstance(item, yaml.SequenceNode) for item in node.value):
            raw = [
                item.value if isinstance(item, yaml.SequenceNode) else [item] for item in node.value
            ]
        else:
            raw = [node.value]
    else:
        raise SeedError(rel, "categories: expected a name, a list or a list of lists")
    hierarchies: list[tuple[str, ...]] = []
    for items in raw:
        path = tuple(n for n in (_name(item, "categories", rel, warnings) for item in items) if n)
        if len(path) > MAX_DEPTH:
            raise SeedError(rel, f"categories: a hierarchy is over {MAX_DEPTH} levels deep")
        if path and path not in hierarchies:
            hierarchies.append(path)
    if len(hierarchies) > MAX_HIERARCHIES:
        raise SeedError(rel, f"categories: over {MAX_HIERARCHIES} hierarchies")
    return tuple(hierarchies)


def _tags(node: yaml.Node | None, rel: str, warnings: list[str]) -> tuple[str, ...]:
    if node is None or (isinstance(node, yaml.ScalarNode) and _scalar_text(node) is None):
        return ()
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    tags = [_name(item, "tags", rel, warnings) for item in items]
    unique = tuple(dict.fromkeys(tag for tag in tags if tag))
    if len(unique) > MAX_HIERARCHIES:
        raise SeedError(rel, f"tags: over {MAX_HIERARCHIES} tags")
    return unique


def _authors(
    node: yaml.Node | None, value: Any, site: str, rel: str, warnings: list[str]
) -> tuple[Author, ...]:
    """A name, a mapping {name, email, url}, or a list of either; a relative url resolves
    against ``site``."""
    if node is None:
        return ()
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    values = value if isinstance(node, yaml.SequenceNode) else [value]
    authors: list[Author] = []
    for item_node, item in zip(nodes, values, strict=True):
        if isinstance(item_node, yaml.ScalarNode):
            name = _name(item_node, "author", rel, warnings)
            author = Author(name) if name else None
        elif isinstance(item, dict):
            name = _usable_name(
                clean_text(str(item.get("name") or ""))[:MAX_NAME_CHARS], "author", warnings
            )
            email = clean_text(str(item.get("email") or "")) or None
            url = absolute_url(str(item["url"]), site) if item.get("url") else None
            author = Author(name, email, url) if name else None
        else:
            raise SeedError(rel, "author: expected a name or a mapping with name, email, url")
        if author and author.name not in (a.name for a in authors):
            authors.append(author)
    return tuple(authors)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    return None


@dataclass(frozen=True)
class Loaded:
    """What a scan learns from reading one file (picklable: it may come from another process).
    ``kind``: "changing" (being written: try later), "error" (``error`` is path and reason),
    "same" (the bytes hash to ``known_hash``: nothing to parse) or "parsed"."""

    kind: str
    digest: str = ""
    parsed: Parsed | None = None
    error: tuple[str, str] | None = None


def load_seed(seed: SeedFile, known_hash: str | None, settings: Settings) -> Loaded:
    """Read one seed file and parse it as the settings say, unless its bytes hash to
    ``known_hash`` (what the store holds): what a scan and a check both do."""
    try:
        data = read_seed(seed, settings.max_file_bytes)
    except FileChanging:
        return Loaded("changing")
    except SeedError as exc:
        return Loaded("error", error=(exc.path, exc.reason))
    digest = content_hash(data)
    if digest == known_hash:
        return Loaded("same", digest)
    try:
        parsed = parse_seed(
            data,
            seed.rel,
            settings.public_url,
            settings.tz,
            placeholder_hosts=settings.placeholder_image_hosts,
        )
    except SeedError as exc:
        return Loaded("error", digest, error=(exc.path, exc.reason))
    return Loaded("parsed", digest, parsed=parsed)


def content_hash(data: bytes) -> str:
    """What identifies a file's bytes: a re-read file with the same hash changed nothing."""
    return hashlib.sha256(data).hexdigest()


def parse_seed(
    data: bytes,
    rel: str,
    base_url: str,
    zone: tzinfo,
    *,
    placeholder_hosts: tuple[str, ...] = PLACEHOLDER_IMAGE_HOSTS,
) -> Parsed:
    """Normalise one file's bytes into an Entry. Raises SeedError; never anything else.
    Nothing but the bytes, the path and the settings goes in: no clock, no file times.
    ``placeholder_hosts``: the settings' placeholder_image_hosts (see _lead_image)."""
    shown = display_path(rel)
    try:
        return _parse(data, rel, shown, base_url, zone, placeholder_hosts)
    except SeedError:
        raise
    except RecursionError:
        raise SeedError(shown, "too deeply nested") from None
    except Exception as exc:
        raise SeedError(shown, f"cannot parse: {type(exc).__name__}: {exc}") from None


def _parse(
    data: bytes,
    rel: str,
    shown: str,
    base_url: str,
    zone: tzinfo,
    placeholder_hosts: tuple[str, ...],
) -> Parsed:
    if shown != rel:
        raise SeedError(shown, "file name is not valid UTF-8")
    text = decode(data, shown).lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first_line = text[: len(text) - len(text.lstrip())].count("\n") + 1
    text = text.lstrip()
    if not text.strip():
        raise SeedError(shown, "empty file")
    if not _HANDLER.detect(text):
        raise SeedError(shown, "no front matter: the file must start with a '---' line")
    try:
        front, body = _HANDLER.split(text)
    except ValueError:
        raise SeedError(shown, "front matter has no closing '---' line") from None
    warnings: list[str] = []
    front, removed = _YAML_UNPRINTABLE.subn("", front)
    if removed:
        warnings.append(f"front matter: removed {removed} control character(s)")
    meta, nodes = _load_front_matter(front, shown, first_line)

    if _flag(meta.get("draft")) is True or _flag(meta.get("published")) is False:
        return Parsed(None, tuple(warnings))

    date = _stated_date(meta.get("date"), "date", warnings, required=True, zone=zone)
    stated_updated = _stated_date(meta.get("updated"), "updated", warnings, zone=zone)
    published = date or UNDATED

    site = base_url + "/"
    link_value = meta.get("link") or meta.get("permalink")
    page = link_as_base(str(link_value)) if link_value else None
    try:
        content = clean_html(render_body(body.strip()), page or site)
    except UnsafeInput as exc:
        raise SeedError(shown, str(exc)) from None
    summary = summarize(html_to_text(content))
    title = clean_text(decode_entities(_scalar_text(nodes.get("title")) or ""))
    if len(title) > MAX_TITLE_CHARS:
        title = summarize(title, MAX_TITLE_CHARS)
    if not title:
        title = _fallback_title(summary, rel)
        warnings.append(f"empty title, using {title!r}")

    explicit_id = clean_text(_scalar_text(nodes.get("id")) or "")
    entry_id = stable_uuid("id", explicit_id) if explicit_id else stable_uuid("path", rel)
    lang = _language(meta.get("lang") or meta.get("language"), warnings)
    image_value = meta.get("headimg") or meta.get("thumbnail")
    entry = Entry(
        id=entry_id,
        path=rel,
        title=title,
        published=published,
        updated=stated_updated or published,
        authors=_authors(nodes.get("author"), meta.get("author"), site, shown, warnings),
        categories=_categories(nodes.get("categories"), shown, warnings),
        tags=_tags(nodes.get("tags"), shown, warnings),
        link=absolute_url(str(link_value), site) if link_value else None,
        image=_lead_image(image_value, page, site, placeholder_hosts),
        summary=summary,
        content=content,
        lang=lang,
    )
    return Parsed(entry, tuple(warnings), date, stated_updated)


def _lead_image(
    value: Any, page: str | None, site: str, placeholder_hosts: tuple[str, ...]
) -> str | None:
    """The headimg (or thumbnail) as an absolute URL, or None. A relative one resolves
    against the entry's own link (``page``) and, without one, is none: feedsvc serves no
    images, so against ``site`` it would be a 404 ('/images/404.gif'); '//host/x.jpg' takes
    the site's scheme. A picture from a placeholder service (one of ``placeholder_hosts`` or
    below it: a random picture, new at every crawl) is none either."""
    url = absolute_url(str(value), page or urlsplit(site).scheme + ":") if value else None
    if url is None:
        return None
    return None if on_hosts(url, placeholder_hosts) else url


def _language(raw: Any, warnings: list[str]) -> str | None:
    """The `lang` (or `language`) field: a BCP 47 tag, or None (with a warning if unusable)."""
    if raw is None or raw == "":
        return None
    text = clean_text(str(raw))
    if not LANGUAGE_TAG.match(text):
        warnings.append(f"lang: {text[:40]!r} is not a language tag such as zh-CN, ignored")
        return None
    return text


def _stated_date(
    raw: Any, field: str, warnings: list[str], *, zone: tzinfo, required: bool = False
) -> datetime | None:
    """The date a field states, or None (with a warning) when it states none that can be
    used: the entry is real all the same (crawlers write 'Invalid Date' for items they could
    not date), and the scan dates it by when it was first stored."""
    if raw is None:
        if required:
            warnings.append(f"no {field}, using the time the entry was first stored")
        return None
    try:
        return parse_date(raw, zone)
    except DateError as exc:
        fallback = "the time the entry was first stored" if required else "the published date"
        warnings.append(f"{field}: {exc}, using {fallback}")
        return None


def _fallback_title(summary: str, rel: str) -> str:
    """An empty title reads as the start of the text, else the file name, else 'Untitled'."""
    if summary:
        return summarize(summary, TITLE_FROM_TEXT_CHARS)
    stem = clean_text(Path(rel).name.rsplit(".", 1)[0])
    return stem or "Untitled"
