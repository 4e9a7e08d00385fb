"""Scope + entries -> feed bytes, in Atom 1.0, RSS 2.0 (both via feedgen) or JSON Feed 1.1.

The output is a pure function of its inputs: no clock, no randomness, no dict-order accidents.
The same stored entries give the same bytes in every process and after every restart."""

from __future__ import annotations

import html
import json
import math
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from feedsvc import __version__
from feedsvc.config import RENDER_SETTINGS, Settings, settings_key
from feedsvc.hotlink import hotlink
from feedsvc.model import EPOCH, Entry, Format, Html, Scope, ScopeKind, category_levels
from feedsvc.routes import STATIC, document_url, entry_page_url, site_url

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"
STYLESHEET_PATH = STATIC + "/feed.xsl"
RENDER_VERSION = "3"  # bump when the bytes change for the same content and settings


def render_key(settings: Settings) -> str:
    """What every document's bytes depend on beside its entries: the render settings, this
    renderer's version and feedsvc's (in every ETag, and what kept parts are valid for)."""
    return settings_key(settings, RENDER_SETTINGS, RENDER_VERSION, __version__)


def shown(settings: Settings, entry: Entry) -> Entry:
    """What every document does to an entry: the operator's hotlink template."""
    template = settings.hotlink_template
    return hotlink(entry, template, template) if template else entry


@dataclass(frozen=True)
class FeedPage:
    """One page of one scope's feed: what a single feed document shows."""

    scope: Scope
    entries: list[Entry]
    page: int
    last_page: int
    limit: int
    params: tuple[tuple[str, str], ...] = ()  # the query it answers (see feedsvc.query)
    tombstones: tuple[tuple[str, datetime], ...] = ()  # (entry id, when): Atom only
    newest: datetime | None = None  # the newest update of entries given as parts (assemble)

    @property
    def updated(self) -> datetime:
        """The newest update among the entries and tombstones shown: the feed's updated and
        Last-Modified (a deletion an Atom feed tells of is news)."""
        times = [entry.updated for entry in self.entries] + [when for _id, when in self.tombstones]
        return max([*times, self.newest] if self.newest else times, default=EPOCH)


def page_count(total: int, limit: int) -> int:
    """Pages of ``limit`` entries (limit=0, RSSHub's empty feed, is one empty page)."""
    return max(1, math.ceil(total / limit)) if limit else 1


def entry_url(settings: Settings, entry: Entry) -> str:
    """Where the entry is read: its original link, else feedsvc's own page for it."""
    return entry.link or entry_page_url(settings, entry.id)


def feed_title(settings: Settings, scope: Scope) -> str:
    if scope.kind is ScopeKind.ALL:
        return settings.site_title
    return f"{scope.kind.noun}: {scope.label} · {settings.site_title}"


def feed_description(settings: Settings, scope: Scope) -> str:
    if scope.kind is ScopeKind.ALL:
        return f"Every entry published by {settings.site_title}"
    what = {
        ScopeKind.CATEGORY: f"in the category {scope.label} and its sub-categories",
        ScopeKind.AUTHOR: f"by {scope.label}",
        ScopeKind.TAG: f"tagged {scope.label}",
    }
    return f"Entries {what[scope.kind]} on {settings.site_title}"


def ttl_minutes(settings: Settings) -> int:
    """RSS <ttl>: how long a reader may cache, consistent with Cache-Control's max-age."""
    return max(1, math.ceil(settings.scan_interval / 60))


def paging_links(settings: Settings, page: FeedPage, fmt: Format) -> dict[str, str]:
    """RFC 5005 paged-feed links (first, last, previous, next) for this page."""

    def url(number: int) -> str:
        return document_url(settings, page.scope, fmt, number, page.limit, page.params)

    links = {"first": url(1), "last": url(page.last_page)}
    if page.page > 1:
        links["previous"] = url(page.page - 1)
    if page.page < page.last_page:
        links["next"] = url(page.page + 1)
    return links


def image_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def category_terms(entry: Entry) -> list[tuple[str, str]]:
    """(term, label) per category level and tag: every level is a category readers can filter by."""
    terms: dict[str, str] = {}
    for hierarchy in entry.categories:
        for level in category_levels(hierarchy):
            terms.setdefault(level.names[-1], level.label)
    for tag in entry.tags:
        terms.setdefault(tag, tag)
    return list(terms.items())


class _RssAtomLinks(BaseExtension):
    """atom:link elements in an RSS channel (paging and hubs), which feedgen has no API for."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []

    def extend_ns(self) -> dict[str, str]:
        return {"atom": ATOM_NS}

    def extend_rss(self, rss_feed: Any) -> Any:
        channel = rss_feed[0]
        for rel, href in self.links:
            xml_elem(f"{{{ATOM_NS}}}link", channel, rel=rel, href=href)
        return rss_feed


class _Tombstones(BaseExtension):
    """RFC 6721 at:deleted-entry elements: entries that left the feed (their file was
    deleted), so readers that understand them drop their copies."""

    def __init__(self) -> None:
        self.deleted: tuple[tuple[str, datetime], ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {"at": TOMBSTONES_NS}

    def extend_atom(self, atom_feed: Any) -> Any:
        for entry_id, when in self.deleted:
            xml_elem(
                f"{{{TOMBSTONES_NS}}}deleted-entry",
                atom_feed,
                ref="urn:uuid:" + entry_id,
                when=when.isoformat(),
            )
        return atom_feed


class _EntryExtras(BaseEntryExtension):
    """The lead image as an enclosure (<link rel="enclosure"> in Atom, <enclosure> in RSS),
    and in Atom the entry's xml:lang where it differs from the feed's.

    feedgen's own entry links lose their rel and type attributes (it shadows the dict it
    reads them from), which would turn an enclosure into a second alternate link."""

    def __init__(self) -> None:
        self.image: str | None = None
        self.lang: str | None = None

    def extend_atom(self, entry: Any) -> Any:
        if self.lang:
            entry.set(XML_LANG, self.lang)
        if self.image:
            # feedgen writes Atom elements without a namespace under a literal xmlns attribute.
            attrs = {"rel": "enclosure", "type": image_type(self.image), "href": self.image}
            xml_elem("link", entry, **attrs)
        return entry

    def extend_rss(self, item: Any) -> Any:
        if self.image:
            xml_elem("enclosure", item, url=self.image, length="0", type=image_type(self.image))
        return item


def _xml_feed(settings: Settings, page: FeedPage, fmt: Format) -> bytes:
    fg = FeedGenerator()
    fg.load_extension("media", atom=True, rss=True)
    fg.load_extension("dc", atom=False, rss=True)
    fg.register_extension("rsslinks", _RssAtomLinks, None, atom=False, rss=True)
    fg.register_extension("lead", BaseExtension, _EntryExtras, atom=True, rss=True)
    if settings.language:
        fg.language(settings.language)  # Atom xml:lang on the feed, RSS <language>
    if fmt is Format.ATOM and page.tombstones:
        fg.register_extension("tombstones", _Tombstones, None, atom=True, rss=False)
        fg.tombstones.deleted = page.tombstones
    fg.id(page.scope.feed_id)
    fg.title(feed_title(settings, page.scope))
    fg.subtitle(feed_description(settings, page.scope))
    fg.author({"name": settings.site_title})
    fg.generator("feedsvc", __version__)
    fg.updated(page.updated)
    self_url = document_url(settings, page.scope, fmt, page.page, page.limit, page.params)
    fg.link(href=self_url, rel="self", type=fmt.media_type)
    extra_links = [(rel, href) for rel, href in paging_links(settings, page, fmt).items()]
    extra_links += [("hub", hub) for hub in settings.websub_hubs]
    if fmt is Format.ATOM:
        for rel, href in extra_links:
            fg.link(href=href, rel=rel)
    else:
        fg.rsslinks.links = extra_links
        fg.ttl(ttl_minutes(settings))
    # RSS takes the last link added as <link>: the scope's HTML page goes last. Readers and
    # browsers follow it to something readable without the stylesheet (XSLT is going away).
    fg.link(href=document_url(settings, page.scope, Html.PAGE), rel="alternate", type="text/html")

    for entry in page.entries:
        fe = fg.add_entry(order="append")
        fe.id(entry.urn)
        fe.title(entry.title)
        fe.link(href=entry_url(settings, entry))
        fe.published(entry.published)
        fe.updated(entry.updated)
        if entry.summary:
            # Atom's <summary> is text; RSS's <description> is HTML, so the text is escaped
            # once more: a summary reading "use <b> & more" shows as that text.
            fe.summary(entry.summary if fmt is Format.ATOM else html.escape(entry.summary, False))
        fe.content(entry.content or entry.summary or entry.title, type="html")
        for term, label in category_terms(entry):
            fe.category(term=term, label=label)
        if fmt is Format.ATOM:
            for author in entry.authors:
                fe.author(
                    {
                        k: v
                        for k, v in (
                            ("name", author.name),
                            ("email", author.email),
                            ("uri", author.url),
                        )
                        if v
                    }
                )
        for author in entry.authors:
            fe.dc.dc_creator(author.name)
        if entry.image:
            fe.media.thumbnail(url=entry.image, group=None)
            fe.lead.image = entry.image
        if entry.lang and entry.lang != settings.language:
            fe.lead.lang = entry.lang
    body: bytes = fg.atom_str(pretty=True) if fmt is Format.ATOM else fg.rss_str(pretty=True)
    declaration, _, rest = body.partition(b"\n")
    stylesheet = f'<?xml-stylesheet href="{site_url(settings, STYLESHEET_PATH)}" type="text/xsl"?>'
    return declaration + b"\n" + stylesheet.encode() + b"\n" + rest


def _json_item(settings: Settings, entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.urn,
        "url": entry_url(settings, entry),
        "title": entry.title,
        "content_html": entry.content or entry.summary or entry.title,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.updated.isoformat(),
    }
    if entry.lang and entry.lang != settings.language:
        item["language"] = entry.lang
    if entry.summary:
        item["summary"] = entry.summary
    if entry.image:
        item["image"] = entry.image
    if entry.authors:
        item["authors"] = [
            {k: v for k, v in (("name", a.name), ("url", a.url)) if v} for a in entry.authors
        ]
    terms = [term for term, _label in category_terms(entry)]
    if terms:
        item["tags"] = terms
    return item


def _json_feed(settings: Settings, page: FeedPage) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title(settings, page.scope),
        "home_page_url": document_url(settings, page.scope, Html.PAGE),
        "feed_url": document_url(
            settings, page.scope, Format.JSON, page.page, page.limit, page.params
        ),
        "description": feed_description(settings, page.scope),
        "authors": [{"name": settings.site_title}],
    }
    if settings.language:
        feed["language"] = settings.language
    links = paging_links(settings, page, Format.JSON)
    if "next" in links:
        feed["next_url"] = links["next"]
    if settings.websub_hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in settings.websub_hubs]
    items = [_json_item(settings, entry) for entry in page.entries]
    feed["items"] = items
    return json.dumps(feed, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def render(settings: Settings, page: FeedPage, fmt: Format) -> bytes:
    """The feed document for one page of one scope."""
    if fmt is Format.JSON:
        return _json_feed(settings, page)
    return _xml_feed(settings, page, fmt)


# Where a document's entries end: every entry is the last child of the root (Atom), of the
# channel (RSS) or of the items list (JSON Feed), and pretty-printed the same in any document.
_TAILS = {Format.ATOM: b"</feed>\n", Format.RSS: b"  </channel>\n</rss>\n"}
_STARTS = {Format.ATOM: (b"\n  <entry>", b"\n  <entry "), Format.RSS: (b"\n    <item>",)}
_JSON_EMPTY = b"[]\n}\n"  # the end of a JSON Feed without items
_JSON_INDENT = b"  "  # an item's indent in the items list of a document (indent=1)
PART_FORMATS = (Format.JSON, Format.ATOM, Format.RSS)  # the order parts are kept in


def parts(settings: Settings, entries: Sequence[Entry], fmt: Format) -> list[bytes]:
    """Each entry's bytes exactly as every document of ``fmt`` holds them, rendered once
    (feedgen stays the renderer of record): a document is its head and these (assemble)."""
    if not entries:
        return []
    if fmt is Format.JSON:
        return [_json_part(settings, entry) for entry in entries]
    page = FeedPage(Scope.all(), list(entries), 1, 1, len(entries))
    body = _xml_feed(settings, page, fmt)
    tail = _TAILS[fmt]
    head = _xml_feed(settings, replace(page, entries=[], newest=page.updated), fmt)[: -len(tail)]
    if not body.startswith(head) or not body.endswith(tail):
        raise ValueError(f"{fmt.value}: the entries are not where a document holds them")
    starts = sorted(
        at + 1 for start in _STARTS[fmt] for at in _occurrences(body, start, len(head) - 1)
    )  # (past the head, text is escaped: these bytes open an entry and nothing else)
    if len(starts) != len(entries):
        raise ValueError(f"{fmt.value}: {len(starts)} entries found for {len(entries)} rendered")
    ends = [*starts[1:], len(body) - len(tail)]
    return [body[start:end] for start, end in zip(starts, ends, strict=True)]


def _occurrences(body: bytes, needle: bytes, start: int) -> list[int]:
    found, at = [], body.find(needle, start)
    while at >= 0:
        found.append(at)
        at = body.find(needle, at + len(needle))
    return found


def _json_part(settings: Settings, entry: Entry) -> bytes:
    text = json.dumps(_json_item(settings, entry), ensure_ascii=False, indent=1).encode("utf-8")
    return b"\n".join(_JSON_INDENT + line for line in text.split(b"\n"))


def assemble(settings: Settings, page: FeedPage, fmt: Format, shown: Sequence[bytes]) -> bytes:
    """The document of ``page`` (whose entries are given as their ``parts``, newest update in
    ``page.newest``): byte for byte what ``render`` gives for the same entries."""
    head = render(settings, page, fmt)
    if not shown:
        return head
    if fmt is Format.JSON:
        return head[: -len(_JSON_EMPTY)] + b"[\n" + b",\n".join(shown) + b"\n ]\n}\n"
    tail = _TAILS[fmt]
    return head[: -len(tail)] + b"".join(shown) + tail
