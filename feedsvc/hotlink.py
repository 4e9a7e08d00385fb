"""RSSHub's hotlink templates: image and media URLs rewritten through a proxy, because many
of the sources' hosts refuse requests that come from another site.

A template is a URL with ``${property}`` placeholders naming parts of the original URL as a
browser's URL object has them (``href``, ``host``, ``pathname``, ``search``, …); a ``_ue``
suffix URL-encodes the value. ``https://proxy.example/?url=${href_ue}`` sends every image
through proxy.example. As in RSSHub, ``image_hotlink_template`` rewrites images (``<img>``,
``<picture>`` sources, video posters, the lead image) and ``multimedia_hotlink_template``
video and audio; data: URLs are left alone. The operator's ``hotlink_template`` applies to
both and overrides a request's."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import SplitResult, quote, urlsplit

from feedsvc.model import Entry

HOTLINK_NAMES = ("image_hotlink_template", "multimedia_hotlink_template")
MAX_TEMPLATE = 1000
PROPERTIES = frozenset(
    [
        "hash",
        "host",
        "hostname",
        "href",
        "origin",
        "password",
        "pathname",
        "port",
        "protocol",
        "search",
        "searchParams",
        "username",
    ]
)
_PLACEHOLDER = re.compile(r"\$\{([^{}]*+)\}")
# A tag of the sanitiser's output (its attribute values are double-quoted, '>' and '<' in
# them escaped or quoted): possessive, so nothing is tried twice.
_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9]*+)((?:[^>"']++|"[^"]*+"|'[^']*+')*+)>""")
_URL_ATTRIBUTE = re.compile(r'(\s(?:src|srcset|poster)=")([^"]*+)"')
_CANDIDATE = re.compile(r"[^\s,]++")  # a URL in a srcset (its descriptor follows a space)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def template_problem(template: str) -> str | None:
    """Why a template cannot be used (None: it can)."""
    if len(template) > MAX_TEMPLATE:
        return f"hotlink template is longer than {MAX_TEMPLATE} characters"
    if not template.isprintable():  # control characters XML refuses, and their kin
        return "hotlink template holds a character that is not printable"
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1).removesuffix("_ue")
        if name not in PROPERTIES:
            return f"hotlink template names no URL property: {match.group(1)[:40]!r}"
    return None


def _properties(parts: SplitResult) -> dict[str, str]:
    """A URL's parts as a browser's URL object names them (default ports left out)."""
    port = parts.port
    port_text = "" if port is None or _DEFAULT_PORTS.get(parts.scheme) == port else str(port)
    hostname = parts.hostname or ""
    if ":" in hostname:  # an IPv6 address keeps its brackets, as a browser's URL has them
        hostname = f"[{hostname}]"
    host = hostname + (":" + port_text if port_text else "")
    protocol = parts.scheme + ":"
    userinfo = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
    search = "?" + parts.query if parts.query else ""
    fragment = "#" + parts.fragment if parts.fragment else ""
    return {
        "hash": fragment,
        "host": host,
        "hostname": hostname,
        "href": f"{protocol}//{userinfo}{host}{parts.path or '/'}{search}{fragment}",
        "origin": f"{protocol}//{host}",
        "password": parts.password or "",
        "pathname": parts.path or "/",
        "port": port_text,
        "protocol": protocol,
        "search": search,
        "searchParams": parts.query,
        "username": parts.username or "",
    }


def interpolate(template: str, url: str) -> str:
    """``url`` through ``template``; a URL that is not absolute http(s), or that the
    template would make into one that is not, stays as it is."""
    try:
        parts = urlsplit(url)
        values = _properties(parts) if parts.scheme in _DEFAULT_PORTS and parts.netloc else None
    except ValueError:  # e.g. a port that is not a number
        values = None
    if values is None:
        return url

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("_ue"):
            return quote(values[name.removesuffix("_ue")], safe="!'()*-._~")
        return values[name]

    result = _PLACEHOLDER.sub(value, template)
    # (a template that makes anything but a web URL, javascript: say, changes nothing)
    return result if result.lower().startswith(("http://", "https://")) else url


def _rewrite_tags(content: str, choose: Callable[[str, str, str], str | None]) -> str:
    """``content`` with the src/poster of each tag passed through the template ``choose``
    names for (tag, attribute, enclosing picture/video/audio); one pass over the tags."""
    parts: list[str] = []
    position = 0
    enclosing: list[str] = []
    for tag in _TAG.finditer(content):
        closing, name = tag.group(1), tag.group(2).lower()
        if closing:
            if name in enclosing:  # (well-formed output: at most the sanitiser's depth)
                del enclosing[len(enclosing) - 1 - enclosing[::-1].index(name) :]
            continue
        parent = enclosing[-1] if enclosing else ""
        if name in ("picture", "video", "audio"):
            enclosing.append(name)
        if name not in ("img", "source", "video", "audio"):
            continue

        def through(match: re.Match[str], tag_name: str = name, parent: str = parent) -> str:
            attribute = match.group(1).strip()[:-2]
            template = choose(tag_name, attribute, parent)
            if template is None:
                return match.group()
            value = html.unescape(match.group(2))
            if attribute == "srcset":  # each candidate's URL: the first word of each
                value = ", ".join(
                    _CANDIDATE.sub(lambda url: interpolate(template, url[0]), part.strip(), 1)
                    for part in value.split(",")
                    if part.strip()
                )
            else:
                value = interpolate(template, value)
            return f'{match.group(1)}{html.escape(value, quote=True)}"'

        parts.append(content[position : tag.start()])
        parts.append(_URL_ATTRIBUTE.sub(through, tag.group()))
        position = tag.end()
    parts.append(content[position:])
    return "".join(parts)


def hotlink(entry: Entry, image: str | None, media: str | None) -> Entry:
    """The entry with its images (``image``) and video and audio (``media``) sent through
    the templates, as RSSHub's anti-hotlink step does."""
    if not image and not media:
        return entry

    def choose(tag: str, attribute: str, parent: str) -> str | None:
        if attribute == "poster":
            return image or media
        if tag == "img" or (tag == "source" and parent == "picture"):
            return image
        if tag in ("video", "audio") or (tag == "source" and parent in ("video", "audio")):
            return media
        return None

    return replace(
        entry,
        content=_rewrite_tags(entry.content, choose),
        image=interpolate(image, entry.image) if image and entry.image else entry.image,
    )
