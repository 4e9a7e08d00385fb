"""One seed file's bytes -> an Entry: its fields normalised (names, categories, tags,
authors, dates, title, lead image, language) and its body rendered and sanitised."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from feedsvc.config import LANGUAGE_TAG, PLACEHOLDER_IMAGE_HOSTS
from feedsvc.dates import DateError, parse_date
from feedsvc.model import EPOCH, MAX_NAME_CHARS, Author, Entry, Format, Scope, ScopeKind, stable_uuid
from feedsvc.routes import MAX_FEED_PATH, feed_path
from feedsvc.sanitize import (
    UnsafeInput,
    absolute_url,
    clean_html,
    clean_text,
    decode_entities,
    html_to_text,
    link_as_base,
    on_hosts,
    render_body,
    summarize,
)
from feedsvc.seeds.discover import display_path
from feedsvc.seeds.errors import SeedError
from feedsvc.seeds.frontmatter import read_front_matter, scalar_text
from feedsvc.seeds.read import decode

MAX_HIERARCHIES = 100
MAX_DEPTH = 16
MAX_TITLE_CHARS = 500
TITLE_FROM_TEXT_CHARS = 80


@dataclass(frozen=True)
class Parsed:
    """What a seed file gave: an entry (None for drafts), warnings, and the dates the file states (None where it states none that can be used).

    The entry's own dates are the stated ones, or EPOCH: a file alone cannot say when an
    undated entry was first stored or when its content last changed, so the scan settles
    them against the store (feedsvc.revisions)."""

    entry: Entry | None
    warnings: tuple[str, ...]
    date: datetime | None = None
    updated: datetime | None = None


def _name(node: yaml.Node, field: str, rel: str, warnings: list[str]) -> str:
    """A category, tag or author name; '' for names that cannot be one."""
    if not isinstance(node, yaml.ScalarNode):
        kind = type(node).__name__.removesuffix("Node").lower()  # sequence, mapping
        raise SeedError(rel, f"{field}: expected a name, got a {kind}")
    name = _name_text(scalar_text(node) or "")
    if len(name) > MAX_NAME_CHARS:
        raise SeedError(rel, f"{field}: a name is over {MAX_NAME_CHARS} characters")
    return _usable_name(name, field, warnings)


def _name_text(value: str) -> str:
    """A name's text, NFC-normalised first: the form URLs name it by, whose length counts
    (NFC can lengthen text: U+0958 becomes two characters)."""
    return unicodedata.normalize("NFC", clean_text(value))


def _usable_name(name: str, field: str, warnings: list[str]) -> str:
    """The name; '' (with a warning) for '.' and '..', which are URL path steps of their
    own: browsers would resolve them away, so no feed could be named so."""
    if name in (".", ".."):
        warnings.append(f"{field}: {name!r} cannot be a name, left out")
        return ""
    return name


def _categories(
    node: yaml.Node | None, rel: str, warnings: list[str]
) -> tuple[tuple[str, ...], ...]:
    """A string is one category, a list one hierarchy (Hexo), a list of lists several."""
    if node is None or (scalar_text(node) is None and isinstance(node, yaml.ScalarNode)):
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
        if len(feed_path(Scope(ScopeKind.CATEGORY, path), Format.ATOM)) > MAX_FEED_PATH:
            raise SeedError(
                rel, f"categories: a hierarchy's feed URL would be over {MAX_FEED_PATH} bytes"
            )
        if path and path not in hierarchies:
            hierarchies.append(path)
    if len(hierarchies) > MAX_HIERARCHIES:
        raise SeedError(rel, f"categories: over {MAX_HIERARCHIES} hierarchies")
    return tuple(hierarchies)


def _tags(node: yaml.Node | None, rel: str, warnings: list[str]) -> tuple[str, ...]:
    if node is None or (isinstance(node, yaml.ScalarNode) and scalar_text(node) is None):
        return ()
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    tags = [_name(item, "tags", rel, warnings) for item in items]
    unique = tuple(dict.fromkeys(tag for tag in tags if tag))
    if len(unique) > MAX_HIERARCHIES:
        raise SeedError(rel, f"tags: over {MAX_HIERARCHIES} tags")
    return unique


def _authors(
    node: yaml.Node | None, value: Any, site: str, rel: str, warnings: list[str]
) -> tuple[Author, ...]:
    """A name, a mapping {name, email, url}, or a list of either; a relative url resolves
    against ``site``."""
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
                _name_text(str(item.get("name") or ""))[:MAX_NAME_CHARS], "author", warnings
            )
            email = clean_text(str(item.get("email") or "")) or None
            url = absolute_url(str(item["url"]), site) if item.get("url") else None
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


def parse_seed(
    data: bytes,
    rel: str,
    base_url: str,
    zone: tzinfo,
    *,
    placeholder_hosts: tuple[str, ...] = PLACEHOLDER_IMAGE_HOSTS,
) -> Parsed:
    """Normalise one file's bytes into an Entry. Raises SeedError; never anything else.
    Nothing but the bytes, the path and the settings goes in: no clock, no file times.
    ``placeholder_hosts``: the settings' placeholder_image_hosts (see _lead_image)."""
    shown = display_path(rel)
    try:
        return _parse(data, rel, shown, base_url, zone, placeholder_hosts)
    except SeedError:
        raise
    except RecursionError:
        raise SeedError(shown, "too deeply nested") from None
    except Exception as exc:
        raise SeedError(shown, f"cannot parse: {type(exc).__name__}: {exc}") from None


def _parse(
    data: bytes,
    rel: str,
    shown: str,
    base_url: str,
    zone: tzinfo,
    placeholder_hosts: tuple[str, ...],
) -> Parsed:
    if shown != rel:
        raise SeedError(shown, "file name is not valid UTF-8")
    text = decode(data, shown).lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first_line = text[: len(text) - len(text.lstrip())].count("\n") + 1
    text = text.lstrip()
    if not text.strip():
        raise SeedError(shown, "empty file")
    warnings: list[str] = []
    meta, nodes, body = read_front_matter(text, shown, first_line, warnings)

    if _flag(meta.get("draft")) is True or _flag(meta.get("published")) is False:
        return Parsed(None, tuple(warnings))

    date = _stated_date(meta.get("date"), "date", warnings, required=True, zone=zone)
    stated_updated = _stated_date(meta.get("updated"), "updated", warnings, zone=zone)
    published = date or EPOCH  # (settled by the scan: feedsvc.revisions)

    site = base_url + "/"
    link_value = meta.get("link") or meta.get("permalink")
    page = link_as_base(str(link_value)) if link_value else None
    try:
        content = clean_html(render_body(body.strip()), page or site)
    except UnsafeInput as exc:
        raise SeedError(shown, str(exc)) from None
    summary = summarize(html_to_text(content))
    title = clean_text(decode_entities(scalar_text(nodes.get("title")) or ""))
    if len(title) > MAX_TITLE_CHARS:
        title = summarize(title, MAX_TITLE_CHARS)
    if not title:
        title = _fallback_title(summary, rel)
        warnings.append(f"empty title, using {title!r}")

    explicit_id = clean_text(scalar_text(nodes.get("id")) or "")
    entry_id = stable_uuid("id", explicit_id) if explicit_id else stable_uuid("path", rel)
    lang = _language(meta.get("lang") or meta.get("language"), warnings)
    image_value = meta.get("headimg") or meta.get("thumbnail")
    entry = Entry(
        id=entry_id,
        path=rel,
        title=title,
        published=published,
        updated=stated_updated or published,
        authors=_authors(nodes.get("author"), meta.get("author"), site, shown, warnings),
        categories=_categories(nodes.get("categories"), shown, warnings),
        tags=_tags(nodes.get("tags"), shown, warnings),
        link=absolute_url(str(link_value), site) if link_value else None,
        image=_lead_image(image_value, page, site, placeholder_hosts),
        summary=summary,
        content=content,
        lang=lang,
    )
    return Parsed(entry, tuple(warnings), date, stated_updated)


def _lead_image(
    value: Any, page: str | None, site: str, placeholder_hosts: tuple[str, ...]
) -> str | None:
    """The headimg (or thumbnail) as an absolute URL, or None. A relative one resolves
    against the entry's own link (``page``) and, without one, is none: feedsvc serves no
    images, so against ``site`` it would be a 404 ('/images/404.gif'); '//host/x.jpg' takes
    the site's scheme. A picture from a placeholder service (one of ``placeholder_hosts`` or
    below it: a random picture, new at every crawl) is none either."""
    url = absolute_url(str(value), page or urlsplit(site).scheme + ":") if value else None
    if url is None:
        return None
    return None if on_hosts(url, placeholder_hosts) else url


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
