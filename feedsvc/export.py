"""`feedsvc export`: every feed, the index, the OPML and the entry pages as static files.

Files are laid out so that a static web server answers the same URLs feedsvc serves (first
pages at the default limit). Names are written decoded, as servers look them up; a name that
could climb out of the directory ('..', a leading dot, '/' or NUL) is percent-encoded, and one
too long for a file name is shortened (see ``safe_segment``). Links to a scope whose file name
is not its decoded name are rewritten to name the file, so the site stays linked."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from feedsvc.config import Settings
from feedsvc.model import Format, Html, Scope, ScopeKind
from feedsvc.opml import render_opml
from feedsvc.routes import OPML, STATIC, entry_path, feed_parts, feed_path, page_path, scope_parts
from feedsvc.service import FeedService
from feedsvc.store import Store

# The longest file name, in bytes, on the file systems a site is written to (ext4, XFS,
# btrfs, APFS, tmpfs): fixed rather than asked of OUTDIR, so names do not depend on where
# the site was exported.
NAME_MAX = 255
# A name longer than this is shortened: room is left for a feed's extension and for the
# ".tmp" of the file being written.
MAX_SEGMENT_BYTES = NAME_MAX - max(len(f".{fmt.value}.tmp") for fmt in Format)
# What a shortened name keeps of the name: short enough that the deepest hierarchy (16
# levels) of shortened names stays far inside PATH_MAX (4096 bytes).
SHORT_PREFIX_BYTES = 120


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


def feed_file(outdir: Path, scope: Scope, fmt: Format) -> Path:
    return outdir.joinpath(*feed_parts(scope, fmt, safe_segment))


def page_file(outdir: Path, scope: Scope) -> Path:
    """Where a scope's page goes: ``<its path>/index.html``, so a static server answers its
    URL ('/categories/a/b') with it (only page 1: paging needs the server)."""
    return outdir.joinpath(*scope_parts(scope, safe_segment), "index.html")


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


def _file(outdir: Path, path: str) -> Path:
    """Where a fixed path of the site (no names in it) is written."""
    return outdir.joinpath(*path.strip("/").split("/"))


def _write(outdir: Path, path: Path, data: bytes) -> None:
    resolved = path.resolve()
    if not resolved.is_relative_to(outdir.resolve()):
        raise ValueError(f"refusing to write outside {outdir}: {path}")
    resolved.parent.mkdir(parents=True, exist_ok=True)
    tmp = resolved.with_name(resolved.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, resolved)


def export_site(store: Store, settings: Settings, outdir: Path, *, entries: bool = True) -> int:
    """Write everything (without the entry pages unless ``entries``); returns the number of
    files written."""
    service = FeedService(store, settings)
    service.refresh()
    catalog = service.catalog()
    scopes = [s.scope for s in catalog.summaries] or [Scope.all()]
    relink = _relinker(settings.public_url, scopes)
    written = 0
    for scope in scopes:
        for fmt in Format:
            rendered = service.feed(scope, fmt, 1, settings.feed_limit)
            _write(outdir, feed_file(outdir, scope, fmt), relink(rendered.body))
            written += 1
    for scope in scopes if entries else [Scope.all()]:
        page = service.feed(scope, Html.PAGE, 1, settings.feed_limit)
        _write(outdir, page_file(outdir, scope), relink(page.body))
        written += 1
    _write(outdir, _file(outdir, OPML), relink(render_opml(settings, catalog)))
    for entry in store.all_entries() if entries else ():
        entry_page = service.entry_page(entry.id)
        assert entry_page is not None  # read from the store a moment ago, in this process
        written_to = _file(outdir, entry_path(entry.id)) / "index.html"
        _write(outdir, written_to, relink(entry_page.body))
        written += 1
    static = _file(outdir, STATIC)
    static.mkdir(parents=True, exist_ok=True)
    for item in files("feedsvc.web").joinpath("static").iterdir():
        with item.open("rb") as source, (static / item.name).open("wb") as target:
            shutil.copyfileobj(source, target)
    return written + 1 + len(list(static.iterdir()))  # and the OPML
