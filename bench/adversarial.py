"""Seconds per MB of hostile seed files through the whole parse (feedsvc.seeds.parse_seed).

    .venv/bin/python bench/adversarial.py    # ADVERSARIAL_SIZES=262144,1048576,5242880
                                             # ADVERSARIAL_ONLY=html-img,md-brackets

Builds a family of bodies that make some parser on the way do more than linear work (the
killers of issue 17 and their kin: unclosed tags, attribute floods, mis-nested formatting,
character references, bracket and emphasis runs, deep nesting up to the limits), each one unit
repeated up to each size (the last size is max_file_bytes), and times one parse of each with
time.perf_counter. Linear parsing shows as the same seconds per MB at every size. Prints one
row per body (its outcome, s/MB per size) and the worst case per MB."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from feedsvc.sanitize import MAX_HTML_DEPTH, MAX_MARKDOWN_QUOTES
from feedsvc.seeds import SeedError, parse_seed

SIZES = [int(n) for n in os.environ.get("ADVERSARIAL_SIZES", "262144,1048576,5242880").split(",")]
ONLY = {name for name in os.environ.get("ADVERSARIAL_ONLY", "").split(",") if name}
FRONT = "---\ntitle: hostile\ndate: 2021-01-01\n---\n"
BASE = "http://feeds.example.test"
UTC = ZoneInfo("UTC")


def repeat(unit: str, head: str = "", tail: str = "") -> Callable[[int], str]:
    """A body of about ``size`` bytes: ``head``, then ``unit`` as often as it fits, ``tail``."""

    def body(size: int) -> str:
        room = size - len(FRONT) - len(head.encode()) - len(tail.encode())
        return head + unit * max(1, room // len(unit.encode())) + tail

    return body


def counted(unit: Callable[[int], str], width: int) -> Callable[[int], str]:
    """A body of distinct units (``unit(i)`` is about ``width`` bytes long)."""

    def body(size: int) -> str:
        return "".join(unit(i) for i in range((size - len(FRONT)) // width))

    return body


def attribute_flood(size: int) -> str:
    """One tag with as many distinct attributes as fit: tokenizers compare each pair."""
    return "<p " + " ".join(f"a{i}" for i in range((size - len(FRONT)) // 8)) + ">x</p>"


def front_matter_keys(size: int) -> str:
    """Not a body: the front matter itself is the mass (a mapping of many short keys)."""
    return "".join(f"k{i}: v\n" for i in range((size - 40) // 12))


DEEP_HTML = "<div>" * (MAX_HTML_DEPTH - 2)
DEEP_QUOTE = "> " * MAX_MARKDOWN_QUOTES
BODIES: dict[str, Callable[[int], str]] = {
    # HTML bodies (they start with '<')
    "html-img": repeat("<img ", "<p>"),
    "html-lazy-img": repeat("<img data-src=", "<p>"),
    "html-a": repeat("<a ", "<p>"),
    "html-lt": repeat("<", "<p>"),
    "html-unclosed-quote": repeat('<a title="', "<p>"),
    "html-iframe": repeat("<iframe ", "<p>"),
    "html-attribute-flood": attribute_flood,
    "html-misnested": counted(lambda i: f"<div><b x={i}></i></div>y", 26),
    "html-ampersands": repeat("&", "<p>"),
    "html-char-refs": repeat("&amp;", "<p>"),
    "html-numeric-refs": repeat("&#", "<p>"),
    "html-comments": repeat("<!--", "<p>"),
    "html-scripts": repeat("<script>", "<p>"),
    "html-small-elements": repeat("<b>x</b>", "<p>"),
    "html-deep-then-wide": repeat("<p>x</p>", DEEP_HTML),
    "html-deep-then-unmatched": repeat("</x>", DEEP_HTML),
    "html-table-text": repeat("a&b ", "<table>"),
    "html-stray-end-p": repeat("</p>", "<div>"),
    "html-text": repeat("Lorem ipsum dolor sit amet, 中文 text. ", "<p>"),
    # Markdown bodies
    "md-brackets": repeat("[", "x"),
    "md-image-brackets": repeat("![", "x"),
    "md-open-links": repeat("[a](", "x"),
    "md-emphasis": repeat("*a **a ", "x"),
    "md-underscores": repeat("_a __a ", "x"),
    "md-backticks": repeat("`a ``a ", "x"),
    "md-mixed-emphasis": repeat("**_", "x"),
    "md-lt": repeat("<", "x"),
    "md-html-tags": repeat("<a\n", "x"),
    "md-autolinks": repeat("www.a ", "x"),
    "md-deep-quotes": repeat(DEEP_QUOTE + "a\n"),
    "md-indented-lists": repeat("- a\n  - b\n    - c\n      - d\n"),
    "md-footnote-refs": repeat("[^a]", "[^a]: note\n\nx"),
    "md-reference-links": repeat("[a]", "[a]: /u\n\nx"),
    "md-table": repeat("|x|y|\n", "|a|b|\n|-|-|\n"),
    "md-text": repeat("Lorem ipsum dolor sit amet, *consectetur* `code` [link](/x).\n\n", "x"),
    # the front matter
    "yaml-many-keys": front_matter_keys,
}


def measure(name: str, size: int) -> tuple[str, float]:
    """The outcome ('served' or the reported reason) and the seconds of one parse."""
    if name.startswith("yaml-"):
        data = ("---\ntitle: hostile\n" + BODIES[name](size) + "---\nx\n").encode()
    else:
        data = (FRONT + BODIES[name](size)).encode()
    gc.collect()
    started = time.perf_counter()
    try:
        parse_seed(data, f"{name}.md", BASE, UTC)
        outcome = "served"
    except SeedError as exc:
        outcome = exc.reason
    return outcome, (time.perf_counter() - started) / (len(data) / 2**20)


def main() -> None:
    names = [name for name in BODIES if not ONLY or name in ONLY]
    sizes = "  ".join(f"{size / 2**20:>7.2f}MB" for size in SIZES)
    print(f"{'body':<26} {sizes}   outcome (s/MB per size)")
    worst = (0.0, "", 0)
    for name in names:
        cells, outcome = [], ""
        for size in SIZES:
            outcome, per_mb = measure(name, size)
            cells.append(f"{per_mb:>9.3f}")
            worst = max(worst, (per_mb, name, size))
        print(f"{name:<26} {'  '.join(cells)}   {outcome[:60]}", flush=True)
    per_mb, name, size = worst
    print(f"\nworst: {per_mb:.3f} s/MB ({name}, {size / 2**20:.2f} MB)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
