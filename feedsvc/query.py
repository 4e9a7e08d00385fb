"""Query parameters every feed URL (and scope page) accepts, RSSHub-compatible: filters by
regular expression (RE2: linear time, so no pattern can make a request slow), a time window,
brief content, Simplified/Traditional conversion (OpenCC) and full-text search.

A query is parsed once into a normalised ``FeedQuery``: its ``key`` (defaults dropped, order
fixed) is part of the document's cache key and ETag, so two spellings of one query share
one cached document, and a bad value is a one-line 400 before any work is done."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import opencc
import re2

from feedsvc.hotlink import HOTLINK_NAMES, hotlink, template_problem
from feedsvc.model import Entry
from feedsvc.sanitize import html_to_text, map_text, summarize

FIELDS = ("title", "description", "author", "category")
OPENCC_CONFIGS = (
    "s2t", "t2s", "s2tw", "tw2s", "s2hk", "hk2s", "s2twp", "tw2sp", "t2tw", "hk2t", "t2hk",
    "t2jp", "jp2t", "tw2t",
)  # fmt: skip
MIN_BRIEF = 100
MAX_BRIEF = 100_000
MAX_PATTERN = 1000
MAX_SEARCH = 200


class BadQuery(ValueError):
    """A query value that cannot be used; the message is the one-line reason sent with 400."""


def query_int(
    args: Mapping[str, Sequence[str]], name: str, default: int, high: int, low: int = 1
) -> int:
    """A whole number from ``low`` to ``high``; absent means ``default``. One check with
    one message, so the range a 400 states is the range enforced."""
    raw = args.get(name, ())
    if not raw:
        return default
    if len(raw) > 1:
        raise BadQuery(f"{name} is given more than once")
    text = raw[0].strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}, got {raw[0][:40]!r}")
    return int(text)


def query_limit(args: Mapping[str, Sequence[str]], default: int, high: int) -> int:
    """RSSHub's ``limit``: 0 is an empty feed, more than ``high`` (max_limit) is ``high``."""
    raw = args.get("limit", ())
    if not raw:
        return default
    if len(raw) > 1:
        raise BadQuery("limit is given more than once")
    text = raw[0].strip()
    if not text.isascii() or not text.isdigit():
        raise BadQuery(f"limit must be a whole number, got {raw[0][:40]!r}")
    return min(int(text), high) if len(text) <= 12 else high


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name, ())
    if len(values) > 1:
        raise BadQuery(f"{name} is given more than once")
    return values[0] if values else None


# Memory RE2 may use for one compiled pattern (its program and DFA caches). A pattern that
# needs more is refused (400). Compiled patterns are never cached (re2's own cache of 128 is
# emptied at once): they live as long as one render, whose number at once is bounded
# (query_renders), so their memory is too.
PATTERN_MEM = 1 << 20
PATTERN_CHECKS = 1024  # verdicts on patterns kept (each at most MAX_PATTERN characters)
# The most instructions a pattern may compile to. RE2's time is linear in the text, but by a
# factor that grows with the program and with what its DFA cannot cache: '.{1000}x' takes
# 50 microseconds a character; within this bound the worst known takes 0.15. A list of a
# hundred words fits.
MAX_PROGRAM = 1000


def compile_pattern(pattern: str, case_sensitive: bool) -> re2._Regexp:
    """A pattern compiled by RE2, or BadQuery saying why RE2 refuses it."""
    if len(pattern) > MAX_PATTERN:
        raise BadQuery(f"pattern is longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    options.max_mem = PATTERN_MEM
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise BadQuery(f"bad pattern {pattern[:60]!r}: {reason}") from None
    finally:
        re2.purge()
    if compiled.programsize > MAX_PROGRAM:
        raise BadQuery(
            f"pattern {pattern[:60]!r} is too complex: {compiled.programsize} RE2 instructions,"
            f" at most {MAX_PROGRAM}"
        )
    return compiled


@functools.lru_cache(maxsize=PATTERN_CHECKS)
def pattern_problem(pattern: str, case_sensitive: bool) -> str | None:
    """Why RE2 refuses a pattern (None: it compiles). Only the verdict is kept, so a
    request for a known pattern (a 304, above all) compiles nothing."""
    try:
        compile_pattern(pattern, case_sensitive)
    except BadQuery as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=16)
def converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config + ".json")


@dataclass(frozen=True)
class FeedQuery:
    """What a request asks of a feed beyond its scope, page and limit, by RSSHub's rules:

    - ``keep``: ``filter`` alone (field "any": title, description, authors or a category),
      else each of ``filter_title`` … ``filter_category`` given, all of which must match;
    - ``drop``: per field; ``filterout`` stands for title and description, and
      ``filterout_title`` / ``filterout_description`` replace it for their own field;
    - ``since``: filter_time's cut-off (``window`` seconds before the request) or a pinned
      ``filter_since``; undated entries always pass.
    """

    keep: tuple[tuple[str, str], ...] = ()  # (field or "any", pattern)
    drop: tuple[tuple[str, str], ...] = ()  # (field, pattern)
    case_sensitive: bool = True
    since: int | None = None  # only entries published at or after (epoch seconds)
    window: int | None = None  # filter_time as asked: what links carry (since moves with it)
    brief: int | None = None
    opencc: str | None = None
    search: str | None = None  # q
    image_template: str | None = None  # image_hotlink_template (see feedsvc.hotlink)
    media_template: str | None = None  # multimedia_hotlink_template

    @property
    def plain(self) -> bool:
        """Nothing asked: the scope's own document."""
        return self == PLAIN

    @property
    def filters(self) -> bool:
        """Whether entries are chosen (not only transformed)."""
        return bool(self.keep or self.drop or self.since is not None or self.search)

    def params(self) -> list[tuple[str, str]]:
        """The query as canonical URL parameters (defaults left out, a fixed order): links
        to other pages and rel=self carry exactly these, so a document's bytes depend on
        what it shows, never on the second it was asked (filter_time stays filter_time)."""
        out: list[tuple[str, str]] = []
        for field, pattern in self.keep:
            out.append(("filter" if field == "any" else f"filter_{field}", pattern))
        drop = dict(self.drop)
        if "title" in drop and drop.get("description") == drop["title"]:
            out.append(("filterout", drop.pop("title")))
            del drop["description"]
        out += [(f"filterout_{field}", pattern) for field, pattern in drop.items()]
        if not self.case_sensitive:
            out.append(("filter_case_sensitive", "false"))
        if self.window is not None:
            out.append(("filter_time", str(self.window)))
        elif self.since is not None:
            out.append(("filter_since", str(self.since)))
        if self.brief is not None:
            out.append(("brief", str(self.brief)))
        if self.opencc is not None:
            out.append(("opencc", self.opencc))
        if self.search is not None:
            out.append(("q", self.search))
        if self.image_template is not None:
            out.append(("image_hotlink_template", self.image_template))
        if self.media_template is not None:
            out.append(("multimedia_hotlink_template", self.media_template))
        return out

    @property
    def key(self) -> str:
        """The normalised query: part of the cache key. A filter_time query's key holds
        the window, not the cut-off: which cut-offs give the same document is the cache's
        to know (see FeedService)."""
        return urlencode(self.params())

    def matcher(self) -> Callable[[Entry], bool]:
        """Whether an entry passes the filters (not the search: the index answers that),
        with each pattern compiled once for all the entries it is asked about."""
        keep = [(f, compile_pattern(p, self.case_sensitive)) for f, p in self.keep]
        drop = [(f, compile_pattern(p, self.case_sensitive)) for f, p in self.drop]
        since = self.since

        def matches(entry: Entry) -> bool:
            if since is not None and not entry.undated and entry.published.timestamp() < since:
                return False
            if not keep and not drop:
                return True
            texts = _texts(entry)
            return all(_found(pattern, texts, field) for field, pattern in keep) and not any(
                _found(pattern, texts, field) for field, pattern in drop
            )

        return matches

    def transform(self, entry: Entry) -> Entry:
        """The entry as this query shows it: converted script, brief content, hotlinked
        media (in RSSHub's order: opencc, then brief)."""
        if self.opencc is not None:
            convert = converter(self.opencc).convert
            entry = replace(
                entry,
                title=convert(entry.title),
                summary=convert(entry.summary),
                content=map_text(entry.content, convert),
            )
        if self.brief is not None:
            text = html_to_text(entry.content)
            cut = text[: self.brief] + "…" if len(text) > self.brief else text
            entry = replace(entry, content=f"<p>{_escape(cut)}</p>", summary=summarize(text))
        if self.image_template is not None or self.media_template is not None:
            entry = hotlink(entry, self.image_template, self.media_template)
        return entry


PLAIN = FeedQuery()
NAMES = frozenset(
    [
        "filter",
        "filterout",
        *(f"{prefix}_{field}" for prefix in ("filter", "filterout") for field in FIELDS),
        "filter_case_sensitive",
        "filter_time",
        "filter_since",
        "brief",
        "opencc",
        "q",
        *HOTLINK_NAMES,
    ]
)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _texts(entry: Entry) -> dict[str, list[str]]:
    """What each filter field matches, as RSSHub reads an item: a description falls back to
    the title, authors are one string joined by spaces, each category name on its own."""
    texts = {
        "title": [entry.title],
        "description": [entry.content or entry.title],
        "author": [" ".join(author.name for author in entry.authors)],
        "category": [name for hierarchy in entry.categories for name in hierarchy]
        + list(entry.tags),
    }
    texts["any"] = [text for field in FIELDS for text in texts[field]]
    return texts


def _found(pattern: re2._Regexp, texts: dict[str, list[str]], field: str) -> bool:
    return any(pattern.search(text) is not None for text in texts[field])


def _checked(value: str, case_sensitive: bool) -> str:
    problem = pattern_problem(value[: MAX_PATTERN + 1], case_sensitive)
    if problem is not None:  # refused now: 400, before any work
        raise BadQuery(problem)
    return value


def _seconds(args: Mapping[str, Sequence[str]], name: str, digits: int) -> int | None:
    value = _one(args, name)
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > digits:
        raise BadQuery(f"{name} must be a whole number of seconds, got {value[:40]!r}")
    return int(value)


def user_templates(args: Mapping[str, Sequence[str]]) -> tuple[str | None, str | None]:
    """A request's image and multimedia hotlink templates (where the operator allows them)."""
    found: list[str | None] = []
    for name in HOTLINK_NAMES:
        value = _one(args, name) or None
        problem = template_problem(value) if value else None
        if problem is not None:
            raise BadQuery(f"{name}: {problem}")
        found.append(value)
    return found[0], found[1]


def parse_query(
    args: Mapping[str, Sequence[str]],
    clock: Callable[[], float] = time.time,
    *,
    user_hotlink: bool = False,
) -> FeedQuery:
    """The query of a request (unknown parameters ignored, bad values a BadQuery). The
    hotlink templates count only where the operator allows them (``user_hotlink``)."""
    if not any(name in args for name in NAMES):
        return PLAIN
    for name in NAMES:
        if any("\x00" in value for value in args.get(name, ())):
            raise BadQuery(f"{name} holds a NUL character")
    # RSSHub: only the exact value "false" turns case off; anything else leaves it on.
    case_sensitive = _one(args, "filter_case_sensitive") != "false"

    def pattern(name: str) -> str | None:
        value = _one(args, name)
        return _checked(value, case_sensitive) if value else None

    everywhere = pattern("filter")
    if everywhere is not None:  # filter_title … filter_category are ignored beside it
        keep: tuple[tuple[str, str], ...] = (("any", everywhere),)
    else:
        keep = tuple(
            (field, value) for field in FIELDS if (value := pattern(f"filter_{field}")) is not None
        )
    out = pattern("filterout")
    drop = []
    for field in FIELDS:
        value = pattern(f"filterout_{field}")
        if value is None and field in ("title", "description"):
            value = out
        if value is not None:
            drop.append((field, value))

    window = _seconds(args, "filter_time", 10)
    since = max(0, int(clock()) - window) if window is not None else None
    if since is None:
        since = _seconds(args, "filter_since", 12)  # a pinned cut-off
    brief = None
    if _one(args, "brief"):
        brief = query_int(args, "brief", 0, MAX_BRIEF, low=MIN_BRIEF)
    config = _one(args, "opencc")
    if config is not None and config not in OPENCC_CONFIGS:
        raise BadQuery(f"opencc must be one of {', '.join(OPENCC_CONFIGS)}, got {config[:40]!r}")
    search = _one(args, "q")
    if search is not None:
        search = " ".join(search.split())[:MAX_SEARCH] or None
    images, media = user_templates(args) if user_hotlink else (None, None)
    return FeedQuery(
        keep=keep,
        drop=tuple(drop),
        case_sensitive=case_sensitive if keep or drop else True,
        since=since,
        window=window,
        brief=brief,
        opencc=config or None,
        search=search,
        image_template=images,
        media_template=media,
    )


def select(entries: Iterable[Entry], query: FeedQuery) -> list[Entry]:
    """The entries that pass the query's filters, in the order given."""
    matches = query.matcher()
    return [entry for entry in entries if matches(entry)]
