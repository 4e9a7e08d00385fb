"""Make untrusted seed text safe to publish: HTML through nh3, text stripped of what XML 1.0
forbids, URLs made absolute. Everything that leaves feedsvc passes through here first.

All of it takes time linear in the input, whatever the input holds (issue 17). No regular
expression here backtracks. Markdown goes to cmark-gfm, built to be linear on pathological
input. HTML is split into tags by one linear regular expression (_PREFILTER) and read by
libxml2 into a tree, and nh3 only ever sees that tree written out again: html5ever, inside
nh3, is quadratic on some raw markup (formatting elements it re-opens ever deeper, long text
nodes full of character references, content it moves out of tables), not on markup another
parser wrote and _tree evened out. What would still cost too much is refused (UnsafeInput)."""

from __future__ import annotations

import html.entities
import re
from collections.abc import Callable, Iterable
from typing import cast
from urllib.parse import urljoin, urlsplit

import cmarkgfm  # type: ignore[import-untyped]
import nh3
from cmarkgfm.cmark import Options  # type: ignore[import-untyped]
from lxml import etree

SUMMARY_CHARS = 200

# The per-file budget. It counts work, not time, so a file's outcome never depends on the
# machine; a file past a limit is refused (UnsafeInput), except where a limit says it repairs.
# Nesting: html5ever's time grows with the square of the depth; libxml2 stops reading at 256
# levels (html and body included), so a tree that deep is incomplete as well.
MAX_HTML_DEPTH = 250
# Attributes of one tag (the rest are dropped): every HTML tokenizer (html5ever, libxml2,
# lexbor) compares each new attribute with all the tag's others, and 100,000 take minutes.
MAX_HTML_ATTRIBUTES = 256
# Tags (start and end) and comments, after Markdown, counted as _PREFILTER splits them (which
# stops there): every later step works per tag, about 3 microseconds for all of them, and the
# sanitised entry grows with them.
MAX_HTML_TAGS = 500_000
# Rendered Markdown at most this many times the Markdown's length (plus a little): footnote
# references multiply (each one adds a back-link to the note), ordinary text does not.
MAX_MARKDOWN_GROWTH = 10
MARKDOWN_GROWTH_SLACK = 1024
# Sanitised HTML at most this many times the size of the HTML it comes from, plus a little:
# every relative URL grows by the base it is resolved against (a seed's own `link`, of any
# length) and every link gains its rel, so 11 bytes of `<img src=x>` can become 2 KB. Checked
# on the parsed tree, before nh3 writes any of it.
MAX_HTML_GROWTH = 4
HTML_GROWTH_SLACK = 64 << 10  # (a feed of many such files must stay small too)
# Markdown longer than this is refused: cmark-gfm's memory grows by some 300 bytes per byte of
# the worst input (1 MiB of it peaks near 380 MB), and no article in Markdown comes close.
MAX_MARKDOWN_CHARS = 256 * 1024
# Markdown nested deeper than this (indentation or '>' quoting) is refused: cmark-gfm copes,
# but the HTML it gives would be past MAX_HTML_DEPTH, and this says why in Markdown's terms.
MAX_MARKDOWN_INDENT = 256
MAX_MARKDOWN_QUOTES = 32
# The longest text node nh3 is given (longer ones are split): html5ever copies a text node
# each time it appends to it, at every character reference ('&amp;'), so a long node costs
# its square.
TEXT_PIECE = 512

# Characters XML 1.0 does not allow anywhere, even escaped (C0 controls, surrogates, U+FFFE/F).
# One character class: each character is looked at once, so the `re` engine is linear here.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPACE = re.compile(r"\s+")
# Bidirectional embeddings, overrides and isolates: in a one-line field they reorder what
# follows them (a title, a name beside it in a list), so 'abc\u202edcba' shows as 'abcabcd'.
# Right-to-left text itself and the LRM/RLM marks stay.
# (a pattern, not str.translate: translate looks up every character of a body in a dict)
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# A character reference as HTML's named table and XML's numeric ones write it, ';' included.
# Each repetition is possessive and needs a '&' in front, so every character is looked at once.
_CHARACTER_REFERENCE = re.compile(r"&(?:#([0-9]++)|#[xX]([0-9a-fA-F]++)|([A-Za-z][A-Za-z0-9]*+));")
# More digits than this (leading zeros aside) are past U+10FFFF (1114111) whatever they say:
# they are not read as a number, which costs the square of the digits in decimal.
_CODE_POINT_DIGITS = 8
# A tag of clean_html's output (see html_to_text). Possessive: nothing inside is tried twice.
_SERIALISED_TAG = re.compile(r"""<(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")

# What libxml2 is given: the markup as the HTML tokenizer splits it, in one pass, less
# comments and bogus comments (doctypes, '<?...>'), which nh3 drops, the text inside raw-text
# elements (<script>, <style>, <textarea>, ...: nh3 drops nearly all of it, and a stray
# <title>'s text is no article's) and '</html>' (libxml2 stops reading there, HTML parsers go
# on). Each tag keeps its first MAX_HTML_ATTRIBUTES attributes. Every repetition is
# possessive and every alternative that scans ahead succeeds at the end of the input at the
# latest, so no character is looked at twice; re.split keeps the groups (the tags) and the
# text between matches, all in C.
_WS = r"\t\n\f\r "
_ATTRIBUTE = (
    rf"[{_WS}/]*+[^{_WS}/>][^{_WS}/>=]*+"
    rf"""(?:[{_WS}]*+=[{_WS}]*+(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^{_WS}>]*+))?+"""
)
_RAW_TEXT = "script|style|xmp|iframe|noembed|noframes|noscript|textarea|title|plaintext"
_TAG_END = rf"(?![^{_WS}/>])"
_PREFILTER = re.compile(
    r"<!--(?:-?>|.*?(?:--!?>|\Z))"
    r"|<[!?][^>]*+(?:>|\Z)|</(?:[^A-Za-z>][^>]*+(?:>|\Z)|>)"
    rf"|</html{_TAG_END}(?:{_ATTRIBUTE})*+[{_WS}/]*+(?:>|\Z)"
    rf"|(<(?:(?:{_RAW_TEXT}){_TAG_END}(?P<raw>)|/?[A-Za-z][^{_WS}/>]*+)"
    rf"(?:{_ATTRIBUTE}){{0,{MAX_HTML_ATTRIBUTES}}}+)(?:{_ATTRIBUTE})*+([{_WS}/]*+(?:>|\Z))"
    rf"(?(raw).*?(?=</(?:{_RAW_TEXT}){_TAG_END}|\Z))",
    re.IGNORECASE | re.DOTALL,
)
# XPath expressions are kept as text and compiled at each use: lxml's XPath objects are not to
# be shared between threads.
_TOO_DEEP = f"boolean(/html/*{'/*' * (MAX_HTML_DEPTH + 1)})"
# Tables: what HTML allows directly inside their parts; the rest it moves out, in front of the
# table ("foster parenting"). html5ever finds each node's place there by counting through the
# table's siblings, so thousands of such nodes cost the square: _foster moves them first.
_TABLE_PARTS = frozenset({"table", "tbody", "thead", "tfoot", "tr", "colgroup"})
_IN_TABLES = frozenset(
    {"caption", "colgroup", "col", "tbody", "thead", "tfoot", "tr", "td", "th"}
    | {"script", "style", "template"}
)
_HTML_SPACE = "\t\n\f\r "
_TABLE_TESTS = " or ".join(f"self::{name}" for name in sorted(_TABLE_PARTS))
# Long text nodes, except those left inside table parts (only whitespace there, now): an
# element that split them would be moved out.
_LONG_TEXT = f"//text()[string-length() > {TEXT_PIECE}][not(parent::*[{_TABLE_TESTS}])]"
# An element nh3 drops (keeping what is inside): empty ones split long text nodes.
_PLAIN = "feedsvc-plain"
# Where lazy loaders keep an image's real source, in order of preference (RSSHub reads the
# first two).
_LAZY_SOURCES = ("data-src", "data-original", "data-lazy-src", "data-actualsrc")
# An attribute whose value holds one of these names an image file (RSSHub's last resort).
_IMAGE_SUFFIXES = (".gif", ".png", ".jpg", ".webp")
# The Referrer-Policy tokens; an image's other values become no-referrer.
_REFERRER_POLICIES = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)
# The lines whose prefix of spaces, tabs and '>' could break a Markdown nesting limit. One
# character class from a line start: a prefix is scanned once.
_MD_LONG_PREFIX = re.compile(rf"^[ \t>]{{{MAX_MARKDOWN_QUOTES + 1},}}", re.MULTILINE)
# GitHub's Markdown, as Hexo's default renderer reads it, with footnotes; raw HTML is kept
# (nh3 sanitises it afterwards).
_CMARK_OPTIONS = Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_FOOTNOTES
_CMARK_EXTENSIONS = ["table", "strikethrough", "autolink"]

_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video", "audio"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["img"] = _ATTRIBUTES["img"] | {"title", "referrerpolicy"}
_ATTRIBUTES["a"] = _ATTRIBUTES["a"] | {"title"}
_ATTRIBUTES["source"] = {"src", "type", "srcset"}
_ATTRIBUTES["video"] = {"src", "poster", "controls", "width", "height"}
_ATTRIBUTES["audio"] = {"src", "controls"}
_URL_SCHEMES = {"http", "https", "mailto", "magnet", "ftp"}
_CLEAN_CONTENT = {"script", "style", "template", "noscript", "textarea", "select", "object"}
_LINK_REL = "noopener noreferrer nofollow"  # on every link
_RESOLVED_URLS = "count(//@href | //@src | //@poster)"  # what nh3's url_relative rewrites


class UnsafeInput(ValueError):
    """Input that would cost far too much to sanitise; the message says what and why."""


def _check_markdown_nesting(text: str) -> None:
    for prefix in _MD_LONG_PREFIX.findall(text):
        if prefix.count(">") > MAX_MARKDOWN_QUOTES or len(
            prefix.expandtabs(4)
        ) > MAX_MARKDOWN_INDENT + prefix.count(">"):
            raise UnsafeInput(
                f"Markdown nested deeper than {MAX_MARKDOWN_INDENT} columns or {MAX_MARKDOWN_QUOTES} quote levels"
            )


def strip_invalid_xml(text: str) -> str:
    return _XML_INVALID.sub("", text)


def clean_text(value: str) -> str:
    """A one-line plain-text field (title, name): XML-safe, without bidirectional controls,
    whitespace (any Unicode space, NBSP included) collapsed to one space, trimmed."""
    return _SPACE.sub(" ", _BIDI_CONTROLS.sub("", strip_invalid_xml(value))).strip()


def decode_entities(text: str) -> str:
    """``text`` with its character references decoded, as RSSHub decodes titles: '&name;'
    from HTML's table, '&#N;' and '&#xH;'; a name without its ';' ('&notify', '?a=1&lt=2')
    or not in the table stays as written. Crawlers copy titles from HTML, escaped."""
    return _CHARACTER_REFERENCE.sub(_decode_reference, text)


def _decode_reference(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return html.entities.html5.get(name + ";", match.group())
    digits = (decimal or hexadecimal).lstrip("0") or "0"
    if len(digits) > _CODE_POINT_DIGITS:
        return "\ufffd"
    return _code_point(int(digits, 10 if decimal else 16))


def _code_point(code: int) -> str:
    """A numeric reference's character as HTML reads it: no character (NUL, a surrogate,
    past U+10FFFF) is U+FFFD, and C1 controls are the windows-1252 characters pages meant."""
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return "\ufffd"
    if 0x80 <= code <= 0x9F:
        try:
            return bytes([code]).decode("cp1252")
        except UnicodeDecodeError:  # the five bytes windows-1252 leaves undefined
            pass
    return chr(code)


def absolute_url(url: str | None, base: str) -> str | None:
    """``url`` resolved against ``base`` (a page, or a directory ending in '/'; '' takes only
    absolute URLs); None for empty, non-web or malformed URLs (such as 'http://[x', which
    urllib refuses to split, or a port of 0 or past 65535)."""
    if url is None:
        return None
    url = clean_text(url)
    if not url or url.lower() in ("none", "null"):
        return None
    try:
        resolved = urljoin(base, url)
        parts = urlsplit(resolved)
        port = parts.port  # (ValueError for a port past 65535)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or port == 0:
        return None
    return resolved


def link_as_base(url: str | None) -> str | None:
    """``url`` when it is an absolute web URL that relative ones can be resolved against
    (nh3's URL parser refuses some that urllib takes, such as 'http://a b/'), else None."""
    page = absolute_url(url, "")
    if page is None:
        return None
    try:
        nh3.clean("", url_relative=("rewrite_with_base", page))
    except ValueError:
        return None
    return page


def on_hosts(url: str, hosts: Iterable[str]) -> bool:
    """Whether a URL's host is one of ``hosts`` or below one of them (a subdomain)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    return any(host == known or host.endswith("." + known) for known in hosts)


def render_body(body: str) -> str:
    """HTML bodies stay HTML; anything else is read as Markdown (as Hexo would)."""
    stripped = body.lstrip()
    if not stripped or stripped.startswith("<"):
        return body
    if len(body) > MAX_MARKDOWN_CHARS:
        raise UnsafeInput(f"Markdown body is over {MAX_MARKDOWN_CHARS} characters")
    _check_markdown_nesting(body)
    rendered: str = cmarkgfm.markdown_to_html_with_extensions(
        body, _CMARK_OPTIONS, _CMARK_EXTENSIONS
    )
    if len(rendered) > MAX_MARKDOWN_GROWTH * len(body) + MARKDOWN_GROWTH_SLACK:
        raise UnsafeInput(f"Markdown renders to over {MAX_MARKDOWN_GROWTH} times its size")
    return rendered


def _source(value: str | None) -> str | None:
    """An image source attribute's URL; None when empty or a data: URI: feedsvc serves none
    (in seeds they are lazy loaders' blank placeholders, or whole images in every feed)."""
    url = (value or "").strip()
    return None if not url or url[:5].lower() == "data:" else url


def _image_source(img: etree._Element) -> str | None:
    """Where an image really is: a lazy loader's source (_LAZY_SOURCES), since the src beside
    it is the loader's placeholder ('loadimg.gif' in real seeds); else the src; else, as
    RSSHub does, the first attribute whose value names an image file."""
    for name in (*_LAZY_SOURCES, "src"):
        source = _source(img.get(name))
        if source is not None:
            return source
    for attribute in img.attrib:
        source = _source(img.get(attribute)) if attribute != "src" else None
        if source is not None and any(suffix in source for suffix in _IMAGE_SUFFIXES):
            return source
    return None


def _prepare_image(img: etree._Element) -> None:
    """An image shows its real source (see _image_source), or is dropped when it has none
    (an empty frame); and it sends no Referer unless the seed names a valid policy: image
    hosts that refuse hotlinking tell by the Referer."""
    source = _image_source(img)
    if source is None:
        img.tag = _PLAIN  # an img element is empty
        return
    img.set("src", source)
    policy = (img.get("referrerpolicy") or "").strip().lower()
    img.set("referrerpolicy", policy if policy in _REFERRER_POLICIES else "no-referrer")


def _iframe_as_link(iframe: etree._Element, base: str) -> None:
    """An embedded frame becomes a paragraph linking to it (http and https, relative ones
    resolved against ``base``), or nothing."""
    url = absolute_url(iframe.get("src"), base)
    if url is None:
        iframe.tag = _PLAIN  # empty: the prefilter dropped what was inside
        return
    paragraph = etree.Element("p")
    etree.SubElement(paragraph, "a", href=url).text = url
    paragraph.tail = iframe.tail
    parent = iframe.getparent()
    assert parent is not None  # the tree's root is <html>, never an iframe
    parent.replace(iframe, paragraph)


def _split_text(text: etree._ElementUnicodeResult) -> None:
    """A long text node as pieces of TEXT_PIECE characters with an empty _PLAIN element
    between each two: nh3 joins them again, html5ever never holds a long node."""
    first, *rest = (text[start : start + TEXT_PIECE] for start in range(0, len(text), TEXT_PIECE))
    owner = text.getparent()
    assert owner is not None
    if text.is_tail:
        owner.tail = first
    else:
        owner.text = first
    previous = owner if text.is_tail else None
    for piece in rest:
        marker = etree.Element(_PLAIN)
        marker.tail = piece
        if previous is None:
            owner.insert(0, marker)
        else:
            previous.addnext(marker)
        previous = marker


def _foster(root: etree._Element) -> None:
    """What HTML would move out of each table (see _TABLE_PARTS), moved to just before it,
    in document order; text goes in an empty _PLAIN element, so no string grows by joins."""
    for table in list(root.iter("table")):
        misplaced: list[etree._Element] = []
        _misplaced_in(table, misplaced)
        for node in misplaced:
            table.addprevious(node)


def _misplaced_in(part: etree._Element, found: list[etree._Element]) -> None:
    """Collect, in document order, what HTML would not keep inside this table part: elements
    (with what follows them) and text that is not whitespace."""
    if part.text and part.text.strip(_HTML_SPACE):
        found.append(_plain_text(part.text))
        part.text = None
    for child in part:
        if child.tag not in _IN_TABLES:
            found.append(child)
            continue
        if child.tag in _TABLE_PARTS:
            _misplaced_in(child, found)
        if child.tail and child.tail.strip(_HTML_SPACE):
            found.append(_plain_text(child.tail))
            child.tail = None


def _plain_text(text: str) -> etree._Element:
    """An empty _PLAIN element followed by ``text``: text that can be moved on its own."""
    element = etree.Element(_PLAIN)
    element.tail = text
    return element


def _tree(fragment: str, base: str) -> etree._Element:
    """The fragment as libxml2 reads it, refused past the budget, and made ready for nh3:
    elements whose content nh3 drops emptied (HTML reads some of it, in <select>, in ways
    that would not split), images given their real source and a referrer policy, frames
    turned into links, what HTML would move out of tables moved, long text nodes split."""
    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    pieces = _PREFILTER.split(fragment, MAX_HTML_TAGS + 1)
    if len(pieces) > (MAX_HTML_TAGS + 1) * (_PREFILTER.groups + 1):
        raise UnsafeInput(f"HTML has over {MAX_HTML_TAGS} tags and comments")
    prefiltered = "".join(filter(None, pieces))
    root = etree.fromstring("<html><body>" + prefiltered, parser)
    if root.xpath(_TOO_DEEP):
        raise UnsafeInput(f"HTML nested deeper than {MAX_HTML_DEPTH} elements")
    for element in list(root.iter(*_CLEAN_CONTENT)):
        tail = element.tail  # what follows the element is not its content
        element.clear()
        element.tail = tail
    for img in list(root.iter("img")):
        _prepare_image(img)
    for iframe in list(root.iter("iframe")):
        _iframe_as_link(iframe, base)
    _foster(root)
    for text in cast(list[etree._ElementUnicodeResult], root.xpath(_LONG_TEXT)):
        _split_text(text)
    return root


def clean_html(fragment: str, base: str) -> str:
    """Sanitised HTML: no scripts, styles, frames, handlers or javascript: URLs; lazy-loaded
    images show their real source and send no Referer, embedded frames become links, relative
    URLs are resolved against ``base`` (a page, or a directory ending in '/')."""
    tree = _tree(strip_invalid_xml(fragment), base)
    prepared = etree.tostring(tree, method="html", encoding="unicode")
    _check_growth(tree, len(prepared), len(fragment), base)
    cleaned = nh3.clean(
        prepared,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel=_LINK_REL,
        strip_comments=True,
        url_relative=("rewrite_with_base", base),
    )
    return strip_invalid_xml(cleaned).strip()


def _check_growth(tree: etree._Element, size: int, given: int, base: str) -> None:
    """Refuse HTML that nh3 would make far bigger than it is: at most what resolving every
    URL nh3 resolves (href, src, poster) against ``base`` and a rel on every link would add."""
    urls = int(cast(float, tree.xpath(_RESOLVED_URLS)))
    links = int(cast(float, tree.xpath("count(//a)")))
    if (
        size + urls * len(base) + links * len(f' rel="{_LINK_REL}"')
        > MAX_HTML_GROWTH * given + HTML_GROWTH_SLACK
    ):
        raise UnsafeInput(
            f"HTML would grow to over {MAX_HTML_GROWTH} times its size: {urls} URLs"
            f" resolved against a link of {len(base)} characters"
        )


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
