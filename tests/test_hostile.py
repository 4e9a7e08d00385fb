"""Hostile input: the corpus in tests/hostile (every file served, a draft, or reported for the
expected reason; nothing escapes), filesystem tricks, and property-based tests of the parser."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import nh3
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedsvc.config import Settings
from feedsvc.feeds import FeedPage, assemble, parts, render
from feedsvc.model import Format, Scope, ScopeKind, stable_uuid
from feedsvc.routes import feed_path, parse_feed_path
from feedsvc.sanitize import UnsafeInput, clean_html, clean_text, html_to_text
from feedsvc.scan import Scanner
from feedsvc.seeds import (
    FileChanging,
    SeedError,
    SeedFile,
    parse_seed,
    read_seed,
    walk_seeds,
)
from feedsvc.store import Store
from tests.helpers import SAMPLE_SEEDS, TESTS, copy_corpus, require

HOSTILE = TESTS / "hostile"
MANIFEST = dict(
    line.split("\t")
    for line in (HOSTILE / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
)
UTC_ZONE = ZoneInfo("UTC")
BASE = "http://feeds.example.test"
BEFORE = datetime(2021, 11, 1, tzinfo=UTC)
# An event handler, or a script URL in any attribute, inside a tag (text may say anything).
DANGEROUS_ATTRIBUTE = re.compile(r"<[^>]*(\son[a-z]+\s*=|=\s*[\"']?\s*(javascript|vbscript|data):)")
XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def outcome(path: Path, rel: str) -> tuple[str, Any]:
    st_ = path.stat()
    seed = SeedFile(rel, str(path), st_.st_mtime_ns, st_.st_size)
    try:
        parsed = parse_seed(read_seed(seed, 5 << 20), rel, BASE, UTC_ZONE)
    except SeedError as exc:
        return "reported: " + exc.reason, None
    return ("served" if parsed.entry else "draft"), parsed


def assert_safe_entry(entry) -> None:
    """What every published entry guarantees, whatever its file held."""
    assert entry.title.strip()
    for text in (entry.title, entry.summary, entry.content, *(a.name for a in entry.authors)):
        assert not XML_INVALID.search(text)
    lowered = entry.content.lower()
    for bad in (
        "<script",
        "<style",
        "<iframe",
        "<object",
        "<embed",
        "<form",
        "<base",
        "<meta",
        "<svg",
        "<math",
    ):
        assert bad not in lowered, bad
    assert not DANGEROUS_ATTRIBUTE.search(lowered), lowered
    for url in (entry.link, entry.image):
        assert url is None or url.startswith(("http://", "https://"))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_hostile_file_has_its_expected_outcome(name):
    got, parsed = outcome(HOSTILE / name, name)
    expected = MANIFEST[name]
    if expected.startswith("reported: "):
        assert got.startswith("reported: ") and expected.removeprefix("reported: ") in got, got
    else:
        assert got == expected, got
    if parsed is not None and parsed.entry is not None:
        assert_safe_entry(parsed.entry)


def test_the_largest_max_file_bytes_reads_files_as_they_are(tmp_path, make_settings):
    """A read asks for what the file holds, not for max_file_bytes: at its documented
    maximum (1 TiB) every read once failed with MemoryError."""
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    store = Store(f"sqlite:///{tmp_path}/db.sqlite3")
    report = Scanner(store, make_settings(seeds, store.url, max_file_bytes=1 << 40)).scan()
    assert report.errors == [] and len(store.all_entries()) == len(list(seeds.iterdir()))
    store.close()


def test_the_whole_hostile_corpus_scans_and_every_feed_stays_valid(tmp_path, make_settings):
    seeds = tmp_path / "seeds"
    shutil.copytree(HOSTILE, seeds)
    (seeds / "MANIFEST.tsv").unlink()
    (seeds / "make_corpus.py").unlink()
    huge = seeds / "size-over-limit.md"
    with huge.open("wb") as handle:  # 6 MB: over max_file_bytes, never read
        handle.write(b"---\ntitle: huge\n---\n")
        handle.write(b"<p>" + b"x" * (6 << 20) + b"</p>")
    store = Store(f"sqlite:///{tmp_path}/db.sqlite3")
    report = Scanner(store, make_settings(seeds, store.url)).scan()
    served = sum(1 for e in MANIFEST.values() if e == "served")
    reported = sum(1 for e in MANIFEST.values() if e.startswith("reported")) + 1
    assert len(store.all_entries()) == served
    assert len(report.errors) == reported
    assert dict(report.errors)["size-over-limit.md"].startswith(
        "file is 6291483 bytes, over max_file_bytes"
    )
    from feedsvc.service import FeedService

    service = FeedService(store, make_settings(seeds, store.url))
    service.refresh()
    for summary in service.summaries():
        for fmt in (Format.ATOM, Format.RSS):
            body = service.feed(summary.scope, fmt, 1, 100).body
            etree.fromstring(body)
            assert feedparser.parse(body).bozo == 0, summary.scope
    names = {s.scope for s in service.summaries()}
    assert Scope(ScopeKind.CATEGORY, ("a/b",)) in names
    assert Scope(ScopeKind.CATEGORY, ("ok",)) in names
    assert not any(".." in s.names or "." in s.names for s in names)
    store.close()


def test_title_from_the_text_when_yaml_says_null():
    _got, parsed = outcome(HOSTILE / "value-title-null.md", "value-title-null.md")
    assert parsed.entry.title == "The text gives the title."


def test_numbers_and_booleans_in_titles_keep_their_source_text():
    assert outcome(HOSTILE / "value-title-number.md", "x.md")[1].entry.title == "0x1F"
    assert outcome(HOSTILE / "value-title-bool.md", "x.md")[1].entry.title == "yes"


def test_huge_titles_are_cut_and_control_characters_removed():
    title = outcome(HOSTILE / "size-huge-title.md", "x.md")[1].entry.title
    assert len(title) == 501 and title.endswith("…")
    control = outcome(HOSTILE / "value-title-control.md", "x.md")[1].entry.title
    assert control == "bell esc[31m nul del\x7f end"


def test_a_lazy_image_without_src_shows_its_real_source():
    """data-src alone once gave a bare <img>: the src= inside data-src= passed for a src."""
    content = outcome(HOSTILE / "cost-html-lazy-only.md", "x.md")[1].entry.content
    assert content == f'<p><img src="{BASE}/pic.png" referrerpolicy="no-referrer"></p>'


@pytest.mark.parametrize(
    "name", ["value-link-javascript.md", "value-image-port-past-65535.md", "value-image-port-0.md"]
)
def test_unusable_links_and_images_are_dropped(name):
    entry = outcome(HOSTILE / name, "x.md")[1].entry
    assert entry.link is None and entry.image is None


# -- the filesystem --------------------------------------------------------------------


def test_what_is_not_a_seed_file_is_never_read(tmp_path):
    root = tmp_path / "seeds"
    (root / "sub").mkdir(parents=True)
    good = b"---\ntitle: good\n---\n<p>x</p>\n"
    (root / "sub" / "real.md").write_bytes(good)
    outside = tmp_path / "secret.md"
    outside.write_text("---\ntitle: secret outside the tree\n---\nx\n")
    (root / "leak.md").symlink_to(outside)
    (root / "leakdir").symlink_to(tmp_path)
    (root / "loop").symlink_to(root)
    (root / "sub" / "back").symlink_to(root / "sub")
    (root / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    for name in (
        ".hidden.md",
        "editor.md~",
        "editor.md.swp",
        ".#lock.md",
        "#autosave.md#",
        "notes.html",
    ):
        (root / name).write_bytes(good)
    (root / ".git").mkdir()
    (root / ".git" / "inside.md").write_bytes(good)
    (root / "dir.md").mkdir()
    os.mkfifo(root / "fifo.md")
    assert [seed.rel for seed in walk_seeds(root)] == ["sub/real.md"]


def test_an_unreadable_file_is_reported(tmp_path):
    """Permissions do not bind root; in a user namespace of its own the check has no
    privileges over the files, as a service account would not."""
    require(
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-U", "true"]).returncode == 0,
        "a user namespace (unshare -U)",
    )
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "ok.md").write_text("---\ntitle: ok\ndate: 2021-01-01\n---\nx\n")
    (root / "locked.md").write_text("---\ntitle: locked\n---\nx\n")
    (root / "locked.md").chmod(0)
    result = subprocess.run(
        ["unshare", "-U", sys.executable, "-m", "feedsvc", "check", "--seeds", str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == "locked.md: cannot open: Permission denied\n"


def test_a_file_changing_while_read_is_left_for_the_next_scan(tmp_path):
    path = tmp_path / "growing.md"
    path.write_text("---\ntitle: half\n")
    st_ = path.stat()
    seed = SeedFile("growing.md", path, st_.st_mtime_ns, st_.st_size)
    with path.open("a") as handle:  # the writer is still at work after the walk saw the file
        handle.write("---\n<p>rest</p>\n")
    with pytest.raises(FileChanging):
        read_seed(seed, 5 << 20)


def test_a_scan_never_publishes_a_half_written_file(tmp_path, make_settings):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.md").write_text("---\ntitle: first\n---\nx\n")
    (seeds / "b.md").write_text("---\ntitle: second, being written\n")  # half written
    store = Store(f"sqlite:///{tmp_path}/db.sqlite3")
    scanner = Scanner(store, make_settings(seeds, store.url))

    def writer_finishes(done: int, _total: int) -> None:
        if done == 1:  # after the walk and while the scan is on a.md, the writer finishes b.md
            with (seeds / "b.md").open("a") as handle:
                handle.write("---\n<p>now complete</p>\n")

    report = scanner.scan(writer_finishes)
    assert report.errors == [] and report.added == 1
    assert store.entry(stable_uuid("path", "b.md")) is None  # neither half published nor reported
    scanner.scan()
    assert store.entry(stable_uuid("path", "b.md")).title == "second, being written"
    store.close()


def test_renames_atomic_replaces_and_deletes(tmp_path, make_settings):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "old.md").write_text("---\ntitle: moving\n---\nx\n")
    (seeds / "swap.md").write_text("---\ntitle: before\n---\nx\n")
    (seeds / "doomed.md").write_text("---\ntitle: doomed\n---\nx\n")
    store = Store(f"sqlite:///{tmp_path}/db.sqlite3")
    scanner = Scanner(store, make_settings(seeds, store.url, delete_grace=0))
    scanner.scan()
    os.rename(seeds / "old.md", seeds / "new.md")
    tmp = seeds / ".swap.md.tmp"
    tmp.write_text("---\ntitle: after\n---\nx\n")
    os.replace(tmp, seeds / "swap.md")
    (seeds / "doomed.md").unlink()
    report = scanner.scan()
    assert (report.added, report.updated, report.removed) == (1, 1, 2)
    assert store.entry(stable_uuid("path", "old.md")) is None
    assert store.entry(stable_uuid("path", "new.md")).title == "moving"
    assert store.entry(stable_uuid("path", "swap.md")).title == "after"
    assert len(store.all_entries()) == 2
    store.close()


# -- properties ------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(st.binary(max_size=4096))
def test_any_bytes_give_an_entry_or_a_reported_error(data):
    for candidate in (data, b"---\n" + data, b"---\ntitle: t\n---\n" + data):
        try:
            parsed = parse_seed(candidate, "fuzz.md", BASE, UTC_ZONE)
        except SeedError as exc:
            assert exc.path == "fuzz.md" and exc.reason
            continue
        if parsed.entry is not None:
            assert_safe_entry(parsed.entry)


NASTY_TEXT = st.lists(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(
        [
            "<",
            ">",
            "&",
            '"',
            "'",
            "/",
            "..",
            "%",
            "%2F",
            "\x00",
            "\x1b",
            "\ufeff",
            "\u202e",
            "<script>",
            "javascript:",
            "🎉",
            "中文",
        ]
    ),
    max_size=30,
).map("".join)
YAML_SCALAR = NASTY_TEXT.map(
    lambda t: '"' + t.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
)
HTML_BITS = st.lists(
    st.sampled_from(
        [
            "<p>",
            "</p>",
            "<div>",
            "</div>",
            "<b>",
            "<a href='javascript:x'>",
            "<img src=/a.png onerror=x>",
            "<script>x()</script>",
            "<style>p{}</style>",
            "<iframe src=https://v.example/e></iframe>",
            "<!-- c -->",
            "&amp;",
            "&bogus;",
            "<![CDATA[x]]>",
            "text",
            "中文",
            "\x0b",
            "<svg onload=x>",
        ]
    )
    | NASTY_TEXT,
    max_size=30,
).map("".join)


@PROPERTY_SETTINGS
@given(
    title=YAML_SCALAR,
    author=YAML_SCALAR,
    categories=st.lists(YAML_SCALAR, max_size=4),
    tags=st.lists(YAML_SCALAR, max_size=3),
    date=st.sampled_from(
        ["Sat, 27 Nov 2021 15:42:03 GMT", "2021-11-27", "Invalid Date", '""', "0001-01-01", "[x]"]
    ),
    body=HTML_BITS,
)
def test_any_front_matter_values_give_a_safe_entry_and_valid_feeds(
    title, author, categories, tags, date, body
):
    text = (
        f"---\ntitle: {title}\nauthor: {author}\ncategories: [{', '.join(categories)}]\n"
        f"tags: [{', '.join(tags)}]\ndate: {date}\n---\n{body}\n"
    )
    try:
        parsed = parse_seed(text.encode("utf-8", "surrogatepass"), "p.md", BASE, UTC_ZONE)
    except SeedError:
        return
    entry = parsed.entry
    assert entry is not None
    assert_safe_entry(entry)
    feed_settings = Settings(base_url=BASE)
    for scope in entry.scopes():
        assert parse_feed_path(feed_path(scope, Format.ATOM)) == (scope, Format.ATOM)
    page = FeedPage(Scope.all(), [entry], 1, 1, 20)
    for fmt in (Format.ATOM, Format.RSS):
        body_bytes = render(feed_settings, page, fmt)
        etree.fromstring(body_bytes)
        assert feedparser.parse(body_bytes).bozo == 0


SEED = st.builds(
    lambda title, author, tags, lang, image, body: (
        f"---\ntitle: {title}\nauthor: {author}\ncategories: [{title}, {author}]\n"
        f"tags: [{', '.join(tags)}]\nlang: {lang}\nheadimg: {image}\n"
        f"date: Sat, 27 Nov 2021 15:42:03 GMT\n---\n{body}\n"
    ),
    YAML_SCALAR,
    YAML_SCALAR,
    st.lists(YAML_SCALAR, max_size=3),
    st.sampled_from(["zh-CN", "ja", "en", '""']),
    st.sampled_from(["https://img.example/a.png?x=1&y=<2>", '""']),
    HTML_BITS,
)


@PROPERTY_SETTINGS
@given(
    seeds=st.lists(SEED, min_size=1, max_size=5),
    shown=st.data(),
    language=st.sampled_from(["", "zh-CN"]),
    graves=st.integers(0, 2),
)
def test_a_document_of_kept_parts_is_the_document_rendered_whole(seeds, shown, language, graves):
    """The rule every document a miss serves rests on: a head and the parts joined are the
    whole render, byte for byte, whatever the entries hold, in every format."""
    entries = []
    for n, text in enumerate(seeds):
        try:
            entry = parse_seed(text.encode(), f"p{n}.md", BASE, UTC_ZONE).entry
        except SeedError:
            continue
        assert entry is not None
        entries.append(entry)
    start = shown.draw(st.integers(0, len(entries)))
    chosen = entries[start : start + shown.draw(st.integers(0, len(entries)))]
    feed_settings = Settings(base_url=BASE, language=language)
    tombstones = tuple((stable_uuid("gone", str(i)), BEFORE) for i in range(graves))
    page = FeedPage(Scope.all(), chosen, 2, 3, 20, (("q", "x"),), tombstones)
    for fmt in Format:
        kept = parts(feed_settings, entries, fmt)[start : start + len(chosen)]
        newest = max((entry.updated for entry in chosen), default=None)
        head = FeedPage(Scope.all(), [], 2, 3, 20, (("q", "x"),), tombstones, newest)
        assert assemble(feed_settings, head, fmt, kept) == render(feed_settings, page, fmt)


@PROPERTY_SETTINGS
@given(st.text(max_size=200))
def test_any_feed_path_is_a_feed_or_a_clean_refusal(path):
    try:
        scope, fmt = parse_feed_path("/feeds/" + path)
    except ValueError:
        return
    assert isinstance(fmt, Format)
    assert all(part.strip() for part in scope.names)


@PROPERTY_SETTINGS
@given(HTML_BITS | st.text(max_size=300))
@example("\ufeff\ufeff")  # a parser drops one leading U+FEFF as a byte-order mark
def test_summaries_read_sanitised_html_as_a_second_html_parse_would(fragment):
    """The summary's text comes from the sanitiser's serialised output without parsing it
    again; html5ever (nh3) reading it once more must find the very same text."""
    try:
        cleaned = clean_html(fragment, BASE)
    except UnsafeInput:
        return
    reparsed = nh3.clean(cleaned, tags=set(), clean_content_tags={"script", "style"})
    assert html_to_text(cleaned) == clean_text(html.unescape(reparsed))
