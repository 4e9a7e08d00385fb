"""HTML pages (Jinja2, autoescaped): one per scope, at its feed's path without '/feeds' and
the extension ('/' for everything, with the directory of every feed), and one per entry.

Entry content is already sanitised by the parser; everything else is escaped here. Pages
load one stylesheet and one script from /static, so a strict Content-Security-Policy holds."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from feedsvc.catalog import Catalog
from feedsvc.config import Settings
from feedsvc.feeds import FeedPage, feed_title
from feedsvc.model import Entry, Format, Html, Scope, ScopeKind, category_levels
from feedsvc.routes import OPML, STATIC, document_url, entry_page_url, site_url

_env = Environment(
    loader=PackageLoader("feedsvc", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _helpers(settings: Settings, feed_scope: Scope) -> dict[str, Any]:
    return {
        "settings": settings,
        "formats": list(Format),
        "feed_scope": feed_scope,
        "feed_url": lambda scope, fmt: document_url(settings, scope, fmt),
        "feed_title": lambda scope: feed_title(settings, scope),
        "page_url": lambda scope: document_url(settings, scope, Html.PAGE),
        "entry_page": lambda entry: entry_page_url(settings, entry.id),
        "home_url": document_url(settings, Scope.all(), Html.PAGE),
        "opml_url": site_url(settings, OPML),
        "static_url": lambda name: site_url(settings, f"{STATIC}/{name}"),
        "category_levels": category_levels,
        "author_scope": lambda name: Scope(ScopeKind.AUTHOR, (name,)),
        "ScopeKind": ScopeKind,
    }


def render_scope_page(settings: Settings, feed: FeedPage, catalog: Catalog) -> str:
    """A scope's page: name and breadcrumb, subscribe box, sub-categories (for everything:
    the directory of every feed), and one page of its newest entries."""
    scope = feed.scope
    node = catalog.node(scope) if scope.kind is ScopeKind.CATEGORY else None
    return _env.get_template("scope.html").render(
        scope=scope,
        feed=feed,
        catalog=catalog,
        children=node.children if node else [],
        paged=lambda number: document_url(
            settings, scope, Html.PAGE, number, feed.limit, feed.params
        ),
        search=dict(feed.params).get("q"),
        filtered=bool(feed.params),
        **_helpers(settings, scope),
    )


def render_entry(
    settings: Settings, entry: Entry, newer: Entry | None = None, older: Entry | None = None
) -> str:
    """An entry's page, with the entries just newer and older in its first category."""
    return _env.get_template("entry.html").render(
        entry=entry, newer=newer, older=older, **_helpers(settings, Scope.all())
    )
