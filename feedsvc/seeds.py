"""One seed file -> one Entry (or a SeedError naming the file and the reason).

Front matter is split with python-frontmatter and read with PyYAML's C loader in two steps:
compose (to check size, aliases and duplicate keys, and to keep the source text of titles and
names that YAML would turn into numbers), then construct (for dates and flags)."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from feedsvc.config import LANGUAGE_TAG, Settings
from feedsvc.dates import DateError, parse_date
from feedsvc.model import Author, Entry, stable_uuid
from feedsvc.sanitize import (
    UnsafeInput,
    absolute_url,
    clean_html,
    clean_text,
    html_to_text,
    render_body,
    summarize,
)

SEED_SUFFIXES = (".md", ".markdown", ".txt")
LEFTOVER_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")

MAX_YAML_NODES = 10_000
MAX_YAML_DEPTH = 32
MAX_HIERARCHIES = 100
MAX_DEPTH = 16
MAX_NAME_CHARS = 200
MAX_TITLE_CHARS = 500
TITLE_FROM_TEXT_CHARS = 80

# What PyYAML refuses to read ("unacceptable character"): scraped titles carry such control
# characters, and one of them must not cost the whole entry. They go before the YAML parse
# (every field drops them afterwards anyway). NUL is refused earlier: it marks binary files.
_YAML_UNPRINTABLE = re.compile(
    "[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
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
    abspath: Path
    mtime_ns: int
    size: int

    @property
    def key(self) -> str:
        return display_path(self.rel)


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


def stat_seeds(root: Path, rels: Iterable[str]) -> list[SeedFile]:
    """The seed files among these relative paths that exist now, by the walk's rules (no
    hidden parts, no symlink out of ``root``, regular files only), sorted by path."""
    real_root = os.path.realpath(root)
    found = []
    for rel in sorted(set(rels)):
        parts = rel.split("/")
        if any(not part or part.startswith(".") for part in parts[:-1]):
            continue
        if not is_seed_name(parts[-1]):
            continue
        full = os.path.join(root, rel)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and _inside(real_root, os.path.realpath(full)):
            found.append(SeedFile(rel, Path(full), st.st_mtime_ns, st.st_size))
    return found


def walk_seeds(root: Path) -> Iterator[SeedFile]:
    """Every seed file under ``root`` in a stable (sorted) order.

    Symlinks are followed only while they stay inside ``root``; each directory is visited
    once, so symlink loops end. Only regular files count (a FIFO would block a read)."""
    real_root = os.path.realpath(root)
    visited: set[str] = set()

    def inside(real: str) -> bool:
        return _inside(real_root, real)

    def walk(directory: str, rel_dir: str) -> Iterator[SeedFile]:
        real_dir = os.path.realpath(directory)
        if real_dir in visited or not inside(real_dir):
            return
        visited.add(real_dir)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            full = os.path.join(directory, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                is_link = os.path.islink(full)
                st = os.stat(full)
            except OSError:
                continue
            if is_link and not inside(os.path.realpath(full)):
                continue
            if stat.S_ISDIR(st.st_mode):
                if not name.startswith("."):
                    yield from walk(full, rel)
            elif stat.S_ISREG(st.st_mode) and is_seed_name(name):
                yield SeedFile(rel, Path(full), st.st_mtime_ns, st.st_size)

    if os.path.isdir(real_root):
        yield from walk(str(root), "")


def read_seed(seed: SeedFile, max_bytes: int) -> bytes:
    """The file's bytes, refusing huge files unread and noticing writes in progress."""
    if seed.size > max_bytes:
        raise SeedError(
            display_path(seed.rel), f"file is {seed.size} bytes, over max_file_bytes ({max_bytes})"
        )
    try:
        fd = os.open(seed.abspath, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
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
    """True when GB18030-decoded text is almost surely Chinese, not bytes that happened to decode."""
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide:
        return False
    han = sum(1 for ch in wide if unicodedata.category(ch) == "Lo" and "\u3400" <= ch <= "\u9fff")
    punct = sum(1 for ch in wide if "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef")
    return (han + punct) / len(wide) >= 0.9 and han >= 2


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


def _load_front_matter(
    front: str, rel: str, first_line: int
) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """The constructed mapping and, per key, its node (for source text of scalars).
    ``first_line`` is the file's line number of the opening '---', for error messages."""
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
    return node.value


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
    node: yaml.Node | None, value: Any, base_url: str, rel: str, warnings: list[str]
) -> tuple[Author, ...]:
    """A name, a mapping {name, email, url}, or a list of either."""
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
            url = absolute_url(str(item["url"]), base_url) if item.get("url") else None
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
        parsed = parse_seed(data, seed.rel, settings.public_url, settings.tz)
    except SeedError as exc:
        return Loaded("error", digest, error=(exc.path, exc.reason))
    return Loaded("parsed", digest, parsed=parsed)


def content_hash(data: bytes) -> str:
    """What identifies a file's bytes: a re-read file with the same hash changed nothing."""
    return hashlib.sha256(data).hexdigest()


def parse_seed(data: bytes, rel: str, base_url: str, zone: tzinfo) -> Parsed:
    """Normalise one file's bytes into an Entry. Raises SeedError; never anything else.
    Nothing but the bytes, the path and the settings goes in: no clock, no file times."""
    shown = display_path(rel)
    try:
        return _parse(data, rel, shown, base_url, zone)
    except SeedError:
        raise
    except RecursionError:
        raise SeedError(shown, "too deeply nested") from None
    except Exception as exc:
        raise SeedError(shown, f"cannot parse: {type(exc).__name__}: {exc}") from None


def _parse(data: bytes, rel: str, shown: str, base_url: str, zone: tzinfo) -> Parsed:
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

    try:
        content = clean_html(render_body(body.strip()), base_url)
    except UnsafeInput as exc:
        raise SeedError(shown, str(exc)) from None
    summary = summarize(html_to_text(content))
    title = clean_text(_scalar_text(nodes.get("title")) or "")
    if len(title) > MAX_TITLE_CHARS:
        title = summarize(title, MAX_TITLE_CHARS)
    if not title:
        title = _fallback_title(summary, rel)
        warnings.append(f"empty title, using {title!r}")

    explicit_id = clean_text(_scalar_text(nodes.get("id")) or "")
    entry_id = stable_uuid("id", explicit_id) if explicit_id else stable_uuid("path", rel)
    lang = _language(meta.get("lang") or meta.get("language"), warnings)
    link_value = meta.get("link") or meta.get("permalink")
    image_value = meta.get("headimg") or meta.get("thumbnail")
    entry = Entry(
        id=entry_id,
        path=rel,
        title=title,
        published=published,
        updated=stated_updated or published,
        authors=_authors(nodes.get("author"), meta.get("author"), base_url, shown, warnings),
        categories=_categories(nodes.get("categories"), shown, warnings),
        tags=_tags(nodes.get("tags"), shown, warnings),
        link=absolute_url(str(link_value), base_url) if link_value else None,
        image=absolute_url(str(image_value), base_url) if image_value else None,
        summary=summary,
        content=content,
        lang=lang,
    )
    return Parsed(entry, tuple(warnings), date, stated_updated)


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
