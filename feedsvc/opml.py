"""OPML 2.0 of every feed: the category tree as nested outlines, then authors and tags."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from feedsvc.catalog import Catalog, TreeNode
from feedsvc.config import Settings
from feedsvc.feeds import feed_title
from feedsvc.model import Format, Html, Scope
from feedsvc.routes import document_url


def _outline(parent: ET.Element, settings: Settings, scope: Scope, text: str) -> ET.Element:
    return ET.SubElement(
        parent,
        "outline",
        {
            "type": "rss",
            "text": text,
            "title": feed_title(settings, scope),
            "xmlUrl": document_url(settings, scope, Format.ATOM),
            "htmlUrl": document_url(settings, scope, Html.PAGE),
        },
    )


def render_opml(settings: Settings, catalog: Catalog) -> bytes:
    """OPML for feed readers' import: subscribing to a category outline subscribes its feed."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"{settings.site_title} feeds"
    if catalog.summaries:
        newest = max(s.newest_updated for s in catalog.summaries)
        ET.SubElement(head, "dateModified").text = newest.strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = ET.SubElement(root, "body")
    _outline(body, settings, Scope.all(), "All entries")

    def branch(parent: ET.Element, nodes: Sequence[TreeNode]) -> None:
        for node in nodes:
            branch(_outline(parent, settings, node.summary.scope, node.name), node.children)

    branch(ET.SubElement(body, "outline", text="Categories"), catalog.tree)
    for group, label in ((catalog.authors, "Authors"), (catalog.tags, "Tags")):
        if group:
            holder = ET.SubElement(body, "outline", text=label)
            for summary in group:
                _outline(holder, settings, summary.scope, summary.scope.names[0])
    ET.indent(root, space=" ")
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
