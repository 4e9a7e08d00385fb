"""Reading a seed file costs work linear in its size, whatever it holds (issue 17).

Work is counted, never timed: every Python function call and every call into C that parsing
one file makes (sys.setprofile), for a body of n repetitions of a generated unit and for one
of 4n. Linear work grows about 4 times; the backtracking regular expressions and the
Python-Markdown link parser this replaced grew 16 times. The profiler does not see inside C
(cmark-gfm, libxml2, nh3, the `re` engine): that work is bounded by construction (see
feedsvc/sanitize.py) and measured by bench/adversarial.py; the corpus in tests/hostile holds
files the old code took many seconds over."""

from __future__ import annotations

import contextlib
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feedsvc.sanitize import MAX_HTML_TAGS, MAX_MARKDOWN_QUOTES
from feedsvc.seeds import MAX_YAML_NODES, SeedError, parse_seed
from tests.helpers import MAX_GROWTH, work

BASE = "http://feeds.example.test"
UTC = ZoneInfo("UTC")
FRONT = "---\ntitle: t\ndate: 2021-01-01\n---\n"
# A body of SMALL bytes against one of 4 * SMALL: enough for quadratic work to show over the
# fixed cost of parsing a file, small enough for the old code to finish within minutes.
SMALL = 2048


def parse(text: str) -> None:
    """Parse one file; refused within the budget is fine (that work is counted too)."""
    with contextlib.suppress(SeedError):
        parse_seed(text.encode("utf-8", "surrogatepass"), "linear.md", BASE, UTC)


def growth(head: str, unit: str, size: int = SMALL) -> float:
    """How much more work a body of 4 times as many units takes."""
    times = max(1, size // len(unit))
    small = work(lambda: parse(FRONT + head + unit * times))
    large = work(lambda: parse(FRONT + head + unit * (4 * times)))
    return large / small


def test_the_work_count_sees_quadratic_work():
    """The measure itself: a quadratic loop shows as such, a linear one does not."""

    def quadratic(n: int) -> None:
        for i in range(n):
            for _ in range(i):
                abs(i)

    def linear(n: int) -> None:
        for i in range(n):
            abs(i)

    assert work(lambda: quadratic(400)) / work(lambda: quadratic(100)) > 12
    assert work(lambda: linear(400)) / work(lambda: linear(100)) < 4.1


UNITS = st.lists(
    st.sampled_from(
        [
            "<",
            ">",
            "<a ",
            "<img ",
            "<img data-src=",
            "<iframe ",
            "<b>",
            "</i>",
            "<div>",
            "</div>",
            "<table>",
            "<tr>",
            "<p>",
            "</p>",
            '"',
            "'",
            "=",
            " ",
            "\n",
            "\t",
            "&",
            "&amp;",
            "&#",
            "<!--",
            "-->",
            "<script>",
            "[",
            "]",
            "(",
            ")",
            "![",
            "*",
            "_",
            "`",
            "~",
            "|",
            "-",
            "#",
            "> ",
            "[^",
            "\\",
            "x",
            "中",
        ]
    ),
    min_size=1,
    max_size=8,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.sampled_from(["<p>", "x ", ""]), unit=UNITS)
@example(head="<p>", unit="<img ")
@example(head="<p>", unit="<img data-src=")
@example(head="<p>", unit="<iframe ")
@example(head="<p>", unit="<a ")
@example(head="<p>", unit='<a title="')
@example(head="<p>", unit="<")
@example(head="<p>", unit="&")
@example(head="<p>", unit="<div><b x=1></i></div>y")
@example(head="<table>", unit="<b>x</b>")
@example(head="x ", unit="[")
@example(head="x ", unit="![")
@example(head="x ", unit="[a](")
@example(head="x ", unit="<a ")
@example(head="x ", unit="*a **a ")
@example(head="", unit=">")
@example(head="", unit=" ")
@example(head="", unit="\t")
def test_work_grows_linearly_with_the_body(head, unit):
    assert growth(head, unit) <= MAX_GROWTH


@pytest.mark.parametrize(
    ("where", "unit"),
    [
        ("title: ", "x "),
        ("title: ", "'"),
        ("date: ", "2021-"),
        ("tags: [", "a, "),
        ("", "k: v\n"),
    ],
)
def test_work_grows_linearly_with_the_front_matter(where, unit):
    """Long values and long mappings: a mapping past MAX_YAML_NODES is refused before its
    nodes are composed, whatever its length."""
    times = SMALL // len(unit)
    small = work(lambda: parse(f"---\n{where}{unit * times}\n---\nx\n"))
    large = work(lambda: parse(f"---\n{where}{unit * 4 * times}\n---\nx\n"))
    assert large / small <= MAX_GROWTH


def test_a_long_mapping_is_refused_before_it_is_composed():
    mapping = "".join(f"k{i}: v\n" for i in range(50 * MAX_YAML_NODES))
    with pytest.raises(SeedError, match=f"over {MAX_YAML_NODES} values") as caught:
        parse_seed(f"---\n{mapping}---\nx\n".encode(), "keys.md", BASE, UTC)
    assert caught.value.path == "keys.md"


def test_a_body_past_the_tag_budget_is_reported_with_the_file():
    body = "<p>" + "<b>x</b>" * (MAX_HTML_TAGS // 2)
    with pytest.raises(SeedError) as caught:
        parse_seed((FRONT + body).encode(), "wide.md", BASE, UTC)
    assert caught.value.path == "wide.md"
    assert caught.value.reason == f"HTML has over {MAX_HTML_TAGS} tags and comments"


def test_markdown_quoted_past_the_limit_is_reported():
    with pytest.raises(SeedError, match="Markdown nested deeper"):
        parse_seed((FRONT + "> " * (MAX_MARKDOWN_QUOTES + 1) + "a\n").encode(), "q.md", BASE, UTC)
