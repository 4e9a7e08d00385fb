"""OPML 2.0 of every feed: the category tree as nested outlines, then authors and tags."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from feedsvc.config import Settings
from feedsvc.feeds import feed_title, feed_url
from feedsvc.model import Format, Scope, ScopeKind
from feedsvc.store import ScopeSummary


def _outline(parent: ET.Element, settings: Settings, scope: Scope, text: str) -> ET.Element:
    return ET.SubElement(
        parent,
        "outline",
        {
            "type": "rss",
            "text": text,
            "title": feed_title(settings, scope),
            "xmlUrl": feed_url(settings, scope, Format.ATOM),
            "htmlUrl": settings.public_url + "/",
        },
    )


def render_opml(settings: Settings, summaries: list[ScopeSummary]) -> bytes:
    """OPML for feed readers' import: subscribing to a category outline subscribes its feed."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"{settings.site_title} feeds"
    newest = max((s.newest_updated for s in summaries), default=None)
    if newest is not None:
        ET.SubElement(head, "dateModified").text = newest.strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = ET.SubElement(root, "body")
    _outline(body, settings, Scope.all(), "All entries")

    categories = ET.SubElement(body, "outline", text="Categories")
    nodes: dict[tuple[str, ...], ET.Element] = {}
    for summary in summaries:
        scope = summary.scope
        if scope.kind is ScopeKind.CATEGORY:
            parent = nodes.get(scope.path[:-1], categories)
            nodes[scope.path] = _outline(parent, settings, scope, scope.path[-1])
    for kind, label in ((ScopeKind.AUTHOR, "Authors"), (ScopeKind.TAG, "Tags")):
        group = [s.scope for s in summaries if s.scope.kind is kind]
        if group:
            holder = ET.SubElement(body, "outline", text=label)
            for scope in group:
                _outline(holder, settings, scope, scope.path[0])
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
