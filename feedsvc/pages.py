"""HTML pages: the index of every feed and one page per entry (Jinja2, autoescaped).

Entry content is already sanitised by the parser; everything else is escaped here."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from feedsvc.catalog import Catalog
from feedsvc.config import Settings
from feedsvc.feeds import entry_url, feed_title, feed_url
from feedsvc.model import Entry, Format, Scope, ScopeKind

_env = Environment(
    loader=PackageLoader("feedsvc", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _helpers(settings: Settings) -> dict[str, object]:
    return {
        "settings": settings,
        "formats": list(Format),
        "feed_url": lambda scope, fmt: feed_url(settings, scope, fmt),
        "feed_title": lambda scope: feed_title(settings, scope),
        "entry_url": lambda entry: entry_url(settings, entry),
        "Scope": Scope,
        "ScopeKind": ScopeKind,
    }


def render_index(settings: Settings, catalog: Catalog) -> str:
    return _env.get_template("index.html").render(catalog=catalog, **_helpers(settings))


def render_entry(settings: Settings, entry: Entry) -> str:
    return _env.get_template("entry.html").render(entry=entry, **_helpers(settings))
