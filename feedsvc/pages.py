"""HTML pages: the index of every feed and one page per entry (Jinja2, autoescaped).

Entry content is already sanitised by the parser; everything else is escaped here."""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import Environment, PackageLoader, select_autoescape

from feedsvc.config import Settings
from feedsvc.feeds import entry_url, feed_title, feed_url
from feedsvc.model import Entry, Format, Scope, ScopeKind
from feedsvc.store import ScopeSummary

_env = Environment(
    loader=PackageLoader("feedsvc", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class TreeNode:
    """One category in the index tree, with its sub-categories."""

    summary: ScopeSummary
    children: list[TreeNode] = field(default_factory=list)


def category_tree(summaries: list[ScopeSummary]) -> list[TreeNode]:
    roots: list[TreeNode] = []
    nodes: dict[tuple[str, ...], TreeNode] = {}
    for summary in summaries:
        if summary.scope.kind is not ScopeKind.CATEGORY:
            continue
        node = TreeNode(summary)
        nodes[summary.scope.path] = node
        parent = nodes.get(summary.scope.path[:-1])
        (parent.children if parent else roots).append(node)
    return roots


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


def render_index(settings: Settings, summaries: list[ScopeSummary]) -> str:
    everything = next((s for s in summaries if s.scope.kind is ScopeKind.ALL), None)
    return _env.get_template("index.html").render(
        everything=everything,
        tree=category_tree(summaries),
        authors=[s for s in summaries if s.scope.kind is ScopeKind.AUTHOR],
        tags=[s for s in summaries if s.scope.kind is ScopeKind.TAG],
        **_helpers(settings),
    )


def render_entry(settings: Settings, entry: Entry) -> str:
    return _env.get_template("entry.html").render(entry=entry, **_helpers(settings))
