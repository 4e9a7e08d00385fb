"""`feedsvc export`: every feed, the index, the OPML and the entry pages as static files.

Files are laid out so that a static web server answers the same URLs feedsvc serves (first
pages at the default limit). Names are written decoded, as servers look them up; a name that
could climb out of the directory ('..', a leading dot, '/' or NUL) is percent-encoded."""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path

from feedsvc.config import Settings
from feedsvc.model import Format, Html, Scope, ScopeKind
from feedsvc.opml import render_opml
from feedsvc.service import FeedService
from feedsvc.store import Store


def safe_segment(name: str) -> str:
    name = name.replace("%", "%25").replace("/", "%2F").replace("\x00", "%00")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name


def feed_file(outdir: Path, scope: Scope, fmt: Format) -> Path:
    if scope.kind is ScopeKind.ALL:
        parts = ["all"]
    else:
        parts = [scope.kind.url_segment, *(safe_segment(p) for p in scope.names)]
    parts[-1] = f"{parts[-1]}.{fmt.value}"
    return outdir.joinpath("feeds", *parts)


def page_file(outdir: Path, scope: Scope) -> Path:
    """Where a scope's page goes: ``<its path>/index.html``, so a static server answers its
    URL ('/categories/a/b') with it (only page 1: paging needs the server)."""
    if scope.kind is ScopeKind.ALL:
        return outdir / "index.html"
    parts = [scope.kind.url_segment, *(safe_segment(p) for p in scope.names)]
    return outdir.joinpath(*parts, "index.html")


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
    written = 0
    for scope in scopes:
        for fmt in Format:
            rendered = service.feed(scope, fmt, 1, settings.feed_limit)
            _write(outdir, feed_file(outdir, scope, fmt), rendered.body)
            written += 1
    for scope in scopes if entries else [Scope.all()]:
        page = service.feed(scope, Html.PAGE, 1, settings.feed_limit)
        _write(outdir, page_file(outdir, scope), page.body)
        written += 1
    _write(outdir, outdir / "opml", render_opml(settings, catalog))
    for entry in store.all_entries() if entries else ():
        entry_page = service.entry_page(entry.id)
        assert entry_page is not None  # read from the store a moment ago, in this process
        _write(outdir, outdir / "entries" / entry.id / "index.html", entry_page.body)
        written += 1
    static = outdir / "static"
    static.mkdir(parents=True, exist_ok=True)
    for item in files("feedsvc.web").joinpath("static").iterdir():
        with item.open("rb") as source, (static / item.name).open("wb") as target:
            shutil.copyfileobj(source, target)
    return written + 1 + len(list(static.iterdir()))  # and the OPML
