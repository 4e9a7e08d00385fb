"""Make untrusted seed text safe to publish: HTML through nh3, text stripped of what XML 1.0
forbids, URLs made absolute. Everything that leaves feedsvc passes through here first."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import markdown
import nh3

SUMMARY_CHARS = 200
# HTML nested deeper than this is refused: html5ever's time grows with the square of the
# depth (100,000 nested <div>s take minutes), and no article needs more than a few dozen.
MAX_HTML_DEPTH = 512
# Markdown nested deeper than this (indentation or '>' quoting) is refused for the same reason.
MAX_MARKDOWN_INDENT = 256
MAX_MARKDOWN_QUOTES = 32

# Characters XML 1.0 does not allow anywhere, even escaped (C0 controls, surrogates, U+FFFE/F).
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPACE = re.compile(r"\s+")
_SERIALISED_TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_LAZY_SRC = re.compile(
    r"""\bdata-(?:original|src|lazy-src|actualsrc)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE
)
_SRC_ATTR = re.compile(r"""\bsrc\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_IFRAME = re.compile(r"<iframe\b([^>]*)>(?:.*?</iframe\s*>)?", re.IGNORECASE | re.DOTALL)

_TAG_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>")
# Elements that never nest (void) or whose end tag may be left out: they do not deepen the tree.
_FLAT_NAMES = (
    "area base br col embed hr img input link meta param source track wbr "
    "p li dt dd tr td th thead tbody tfoot option optgroup rb rt rtc rp colgroup caption "
    "html head body"
)
_FLAT_ELEMENTS = frozenset(_FLAT_NAMES.split())
_MD_PREFIX = re.compile(r"^[ \t>]*", re.MULTILINE)

_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video", "audio"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["img"] = _ATTRIBUTES["img"] | {"title", "referrerpolicy"}
_ATTRIBUTES["a"] = _ATTRIBUTES["a"] | {"title"}
_ATTRIBUTES["source"] = {"src", "type", "srcset"}
_ATTRIBUTES["video"] = {"src", "poster", "controls", "width", "height"}
_ATTRIBUTES["audio"] = {"src", "controls"}
_URL_SCHEMES = {"http", "https", "mailto", "magnet", "ftp"}
_CLEAN_CONTENT = {"script", "style", "template", "noscript", "textarea", "select", "object"}


class UnsafeInput(ValueError):
    """Input that would cost far too much to sanitise; the message says what and why."""


def html_depth(fragment: str) -> int:
    """How deeply elements nest, by a linear scan of the tags (no parser involved)."""
    depth = deepest = 0
    for closing, name, self_closing in _TAG_TOKEN.findall(fragment):
        if name.lower() in _FLAT_ELEMENTS or self_closing:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _check_markdown_nesting(text: str) -> None:
    for prefix in _MD_PREFIX.findall(text):
        if prefix.count(">") > MAX_MARKDOWN_QUOTES or len(
            prefix.expandtabs(4)
        ) > MAX_MARKDOWN_INDENT + prefix.count(">"):
            raise UnsafeInput(
                f"Markdown nested deeper than {MAX_MARKDOWN_INDENT} columns or {MAX_MARKDOWN_QUOTES} quote levels"
            )


def strip_invalid_xml(text: str) -> str:
    return _XML_INVALID.sub("", text)


def clean_text(value: str) -> str:
    """A one-line plain-text field (title, name): XML-safe, whitespace collapsed, trimmed."""
    return _SPACE.sub(" ", strip_invalid_xml(value)).strip()


def absolute_url(url: str | None, base_url: str) -> str | None:
    """``url`` resolved against the site's base URL; None for empty or non-web URLs."""
    if url is None:
        return None
    url = clean_text(url)
    if not url or url.lower() in ("none", "null"):
        return None
    resolved = urljoin(base_url + "/", url)
    parts = urlsplit(resolved)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return resolved


def _promote_lazy_image(match: re.Match[str]) -> str:
    tag = match.group(0)
    lazy = _LAZY_SRC.search(tag)
    if not lazy:
        return tag
    real = lazy.group(1)
    if _SRC_ATTR.search(tag):
        return _SRC_ATTR.sub(lambda _m: "src=" + real, tag, count=1)
    return tag[:4] + " src=" + real + tag[4:]


def _iframe_as_link(match: re.Match[str]) -> str:
    src = _SRC_ATTR.search(match.group(1))
    if not src:
        return ""
    url = html.unescape(src.group(1).strip("\"'")).strip()
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return ""
    url = html.escape(url)
    return f'<p><a href="{url}">{url}</a></p>'


def render_body(body: str) -> str:
    """HTML bodies stay HTML; anything else is read as Markdown (as Hexo would)."""
    stripped = body.lstrip()
    if not stripped or stripped.startswith("<"):
        return body
    _check_markdown_nesting(body)
    return markdown.markdown(body, extensions=["extra", "sane_lists"], output_format="html")


def clean_html(fragment: str, base_url: str) -> str:
    """Sanitised HTML: no scripts, styles, frames, handlers or javascript: URLs; lazy-loaded
    images show their real source, embedded frames become links, relative URLs become absolute."""
    fragment = strip_invalid_xml(fragment)
    if html_depth(fragment) > MAX_HTML_DEPTH:
        raise UnsafeInput(f"HTML nested deeper than {MAX_HTML_DEPTH} elements")
    fragment = _IMG_TAG.sub(_promote_lazy_image, fragment)
    fragment = _IFRAME.sub(_iframe_as_link, fragment)
    cleaned = nh3.clean(
        fragment,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        url_relative=("rewrite_with_base", base_url + "/"),
    )
    return strip_invalid_xml(cleaned).strip()


def html_to_text(fragment: str) -> str:
    """The readable text of HTML that clean_html produced, whitespace collapsed. Its output
    is serialised by html5ever: every tag is a '<...>' whose quoted attribute values may hold
    '>', and every '<' in text is escaped, so dropping the tags needs no second parse. (A
    parser would also drop one U+FEFF at the very start, taking it for a byte-order mark.)"""
    return clean_text(html.unescape(_SERIALISED_TAG.sub("", fragment.removeprefix("\ufeff"))))


def map_text(fragment: str, convert: Callable[[str], str]) -> str:
    """``convert`` applied to the text between the tags of HTML that clean_html produced
    (see html_to_text), markup untouched: for converting scripts, e.g. with OpenCC."""
    parts = []
    position = 0
    for tag in _SERIALISED_TAG.finditer(fragment):
        if tag.start() > position:
            parts.append(convert(fragment[position : tag.start()]))
        parts.append(tag.group())
        position = tag.end()
    if position < len(fragment):
        parts.append(convert(fragment[position:]))
    return "".join(parts)


def summarize(text: str, limit: int = SUMMARY_CHARS) -> str:
    """About ``limit`` characters of plain text, cut at a word boundary where there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,.;:，。；：、") + "…"
