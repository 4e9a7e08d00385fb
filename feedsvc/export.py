"""`feedsvc export`: every feed, the index, the OPML and the entry pages as static files.

Files are laid out so that a static web server answers the same URLs feedsvc serves (first
pages at the default limit). Names are written decoded, as servers look them up; a name that
could climb out of the directory ('..', a leading dot, '/' or NUL) is percent-encoded, and one
too long for a file name is shortened (see ``safe_segment``). Links to a scope whose file name
is not its decoded name are rewritten to name the file, so the site stays linked.

Names the server tells apart can still collide as files: category x's feed is the file
``feeds/categories/x.atom``, where category ``x.atom › y`` needs a directory. Such a document
is skipped and said, the shallower path keeping its place (``_placed``); everything else is
written."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from feedsvc.config import Settings
from feedsvc.model import Format, Html, Scope, ScopeKind
from feedsvc.opml import render_opml
from feedsvc.routes import OPML, STATIC, entry_path, feed_parts, feed_path, page_path, scope_parts
from feedsvc.service import FeedNotFound, FeedService
from feedsvc.store import Store

# The longest file name, in bytes, on the file systems a site is written to (ext4, XFS,
# btrfs, APFS, tmpfs): fixed rather than asked of OUTDIR, so names do not depend on where
# the site was exported.
NAME_MAX = 255
# A name longer than this is shortened: room is left for a feed's extension and for the
# name of the file while it is written (``_write``'s '.' and '~' take two of the four
# bytes, once '.tmp'; the room stays, so that no exported name moves).
MAX_SEGMENT_BYTES = NAME_MAX - max(len(f".{fmt.value}.tmp") for fmt in Format)
# What a shortened name keeps of the name: short enough that the deepest hierarchy (16
# levels) of shortened names stays far inside PATH_MAX. Names just short of being shortened
# can still add up to more: such a document is skipped (see _placed).
SHORT_PREFIX_BYTES = 120
# The longest path, in bytes and with its terminating NUL, that Linux takes.
PATH_MAX = 4096


def safe_segment(name: str) -> str:
    """One name as one file or directory name. '%', '/' and NUL are percent-encoded, as is
    a leading dot; a result over MAX_SEGMENT_BYTES of UTF-8 becomes its first
    SHORT_PREFIX_BYTES (cut at a character boundary), '~' and 16 hex digits of the SHA-256
    of the whole: the same name always gets the same file, and (short of a 64-bit hash
    collision) two names never get one."""
    name = name.replace("%", "%25").replace("/", "%2F").replace("\x00", "%00")
    if name.startswith("."):
        name = "%2E" + name[1:]
    encoded = name.encode()
    if len(encoded) <= MAX_SEGMENT_BYTES:
        return name
    prefix = encoded[:SHORT_PREFIX_BYTES].decode("utf-8", "ignore")  # drops a cut character
    return f"{prefix}~{hashlib.sha256(encoded).hexdigest()[:16]}"


def page_parts(scope: Scope) -> tuple[str, ...]:
    """Where a scope's page goes: ``<its path>/index.html``, so a static server answers its
    URL ('/categories/a/b') with it (only page 1: paging needs the server)."""
    return (*scope_parts(scope, safe_segment), "index.html")


def _relinker(public_url: str, scopes: Sequence[Scope]) -> Callable[[bytes], bytes]:
    """What makes a rendered document's links name the exported files: each link to a
    scope's page or feed whose file is not at its decoded URL path (a shortened or encoded
    name) is rewritten to the file's path, percent-encoded, so that a static server's
    decoding finds the file. The document's other bytes stay as rendered."""
    moved: dict[bytes, bytes] = {}
    for scope in scopes:
        if scope.kind is ScopeKind.ALL:
            continue
        paths = [(page_path(scope), scope_parts(scope, safe_segment))]
        paths += [(feed_path(scope, fmt), feed_parts(scope, fmt, safe_segment)) for fmt in Format]
        for url_path, parts in paths:
            file_path = "/" + "/".join(quote(part, safe="") for part in parts)
            if file_path != url_path:
                moved[url_path.encode()] = file_path.encode()
    if not moved:
        return lambda data: data
    # The path of a link to the site, as rendered: percent-encoded, so it ends at the first
    # byte no encoded path holds (a quote, '<', '?', '#', white space...).
    site_link = re.compile(b"(" + re.escape(public_url.encode()) + rb")(/[\w%.~/-]*)")

    def relink(data: bytes) -> bytes:
        return site_link.sub(lambda m: m[1] + moved.get(m[2], m[2]), data)

    return relink


FORMAT_NAMES = {Format.ATOM: "Atom", Format.RSS: "RSS", Format.JSON: "JSON"}


class ExportFailed(Exception):
    """The export cannot go on (a file cannot be written); the message is one line naming
    the file."""


@dataclass(frozen=True)
class Document:
    """One file of the site: its segments under OUTDIR, what a reader calls it (in
    messages), and what makes its bytes (None: it went away since the catalog was read)."""

    parts: tuple[str, ...]
    what: str
    render: Callable[[], bytes | None]


@dataclass(frozen=True)
class Exported:
    written: int
    skipped: list[str]  # a line for each document not written, saying where and why


def _named(scope: Scope) -> str:
    """A scope as a reader names it: 'category 新媒体 › 快科技', 'author x', 'the site'."""
    return "the site" if scope.kind is ScopeKind.ALL else f"{scope.kind.value} {scope.label}"


def _fixed(path: str) -> tuple[str, ...]:
    """The segments of a fixed path of the site (no names in it)."""
    return tuple(path.strip("/").split("/"))


def _documents(
    service: FeedService, settings: Settings, scopes: Sequence[Scope], entries: bool
) -> list[Document]:
    """Every file of the site, each at the path routes.py gives its URL."""
    relink = _relinker(settings.public_url, scopes)

    def feed(scope: Scope, fmt: Format) -> Callable[[], bytes | None]:
        return lambda: None if (body := service.document(scope, fmt)) is None else relink(body)

    def page(scope: Scope) -> Callable[[], bytes | None]:
        def render() -> bytes | None:
            try:
                return relink(service.feed(scope, Html.PAGE, 1, settings.feed_limit).body)
            except FeedNotFound:
                return None

        return render

    def entry_page(entry_id: str) -> Callable[[], bytes | None]:
        return lambda: None if (got := service.entry_page(entry_id)) is None else relink(got.body)

    documents = [
        Document(
            tuple(feed_parts(scope, fmt, safe_segment)),
            f"the {FORMAT_NAMES[fmt]} feed of {_named(scope)}",
            feed(scope, fmt),
        )
        for scope in scopes
        for fmt in Format
    ]
    documents += [
        Document(page_parts(scope), f"the page of {_named(scope)}", page(scope))
        for scope in (scopes if entries else [Scope.all()])
    ]
    catalog = service.catalog()
    documents.append(
        Document(_fixed(OPML), "the OPML", lambda: relink(render_opml(settings, catalog)))
    )
    documents += [
        Document(
            (*_fixed(entry_path(entry.id)), "index.html"),
            f"the page of entry {entry.id}",
            entry_page(entry.id),
        )
        for entry in (service.store.all_entries() if entries else ())
    ]
    static = files("feedsvc.web").joinpath("static")
    documents += [
        Document((*_fixed(STATIC), item.name), f"the static file {item.name}", item.read_bytes)
        for item in sorted(static.iterdir(), key=lambda item: item.name)
    ]
    return documents


def _placed(outdir: Path, documents: Sequence[Document]) -> tuple[list[Document], list[str]]:
    """The documents that get their path, in their order, and a line for each that cannot:
    a path one document takes as its file cannot be another's directory. The shallower
    path keeps its place (a scope's own feed or page never gives way to a deeper name),
    decided in path order: the same documents are placed on every run, in any order."""
    taken: dict[tuple[str, ...], Document] = {}
    skipped: list[str] = []
    absolute = outdir.absolute()
    for document in sorted(documents, key=lambda d: (len(d.parts), d.parts)):
        parts = document.parts
        # (its temporary name is two bytes longer: see _write)
        if len(os.fsencode(absolute.joinpath(*parts))) + 2 >= PATH_MAX:
            longest = PATH_MAX - 3
            skipped.append(
                f"skipped {document.what}: {outdir.joinpath(*parts)} is longer than the"
                f" {longest} bytes a path may have"
            )
            continue
        held = next((parts[:n] for n in range(1, len(parts) + 1) if parts[:n] in taken), None)
        if held is None:
            taken[parts] = document
            continue
        why = (
            "is also"
            if held == parts
            else f"needs {outdir.joinpath(*held)} as a directory, which is"
        )
        skipped.append(
            f"skipped {document.what}: {outdir.joinpath(*parts)} {why} {taken[held].what}"
        )
    return [d for d in documents if taken.get(d.parts) is d], skipped


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW  # made here, or refused


def _write(root: Path, outdir: Path, document: Document, data: bytes, made: set[Path]) -> None:
    """Write one document whole: a hidden temporary file renamed over it, so a reader gets
    the old file or the new (no document's name starts with a dot, so the temporary file
    is in no document's way). What an earlier export left in the way (a file where this
    one needs a directory, or the reverse) is removed: _placed put nothing of this export
    there."""
    path = outdir.joinpath(*document.parts)
    if not (resolved := path.resolve()).is_relative_to(root):
        raise ExportFailed(
            f"refusing to write {document.what} outside {outdir}: {path} is {resolved}"
        )
    tmp = path.with_name(f".{path.name}~")
    try:
        parent = outdir
        for part in document.parts[:-1]:
            parent /= part
            if parent not in made:
                if not parent.is_dir() and (parent.exists() or parent.is_symlink()):
                    parent.unlink()
                parent.mkdir(exist_ok=True)
                made.add(parent)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        try:
            tmp.unlink(missing_ok=True)  # (a symlink left there would be written through)
            with os.fdopen(os.open(tmp, _NEW_FILE, 0o644), "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        where = path if exc.filename in (None, str(tmp)) else exc.filename
        raise ExportFailed(f"cannot write {document.what}: {where}: {exc.strerror or exc}") from exc


def export_site(
    store: Store, settings: Settings, outdir: Path, *, entries: bool = True
) -> Exported:
    """Write every document that has a place (without the entry pages unless
    ``entries``); the others are skipped and said (see _placed)."""
    service = FeedService(store, settings)
    service.refresh()
    scopes = [s.scope for s in service.catalog().summaries] or [Scope.all()]
    placed, skipped = _placed(outdir, _documents(service, settings, scopes, entries))
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportFailed(f"cannot make the directory {outdir}: {exc.strerror or exc}") from exc
    root, made = outdir.resolve(), {outdir}
    written = 0
    for document in placed:
        data = document.render()
        if data is not None:
            _write(root, outdir, document, data, made)
            written += 1
    return Exported(written, skipped)
