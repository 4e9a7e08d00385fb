"""Seed parsing: the real corpus's quirks pinned field by field, and every format variant."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedsvc.model import EPOCH, Author, stable_uuid
from feedsvc.seeds import (
    SeedError,
    SeedFile,
    is_seed_name,
    parse_seed,
    read_seed,
    walk_seeds,
)
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, TESTS

BASE = "http://feeds.example.test"
UTC_ZONE = ZoneInfo("UTC")


def parse_file(path: Path, rel: str | None = None, zone: ZoneInfo = UTC_ZONE):
    st = path.stat()
    seed = SeedFile(rel or path.name, str(path), st.st_mtime_ns, st.st_size)
    return parse_seed(read_seed(seed, 5 << 20), seed.rel, BASE, zone)


def parse_text(tmp_path: Path, text: str | bytes, name: str = "post.md", zone=UTC_ZONE):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return parse_file(path, name, zone)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# What each real file must give: its title, the date it states (None: none usable), its
# categories, author and lead image, as data beside the files (tests/corpus/README.md).
EXPECTED = json.loads((TESTS / "corpus" / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", EXPECTED, ids=[case["file"] for case in EXPECTED])
def test_real_files_normalise(case):
    name, title, author, image = case["file"], case["title"], case["author"], case["image"]
    published = datetime.fromisoformat(case["published"]) if case["published"] else None
    categories = tuple(tuple(hierarchy) for hierarchy in case["categories"])
    path = REAL_CORPUS / name
    parsed = parse_file(path)
    entry = parsed.entry
    assert entry is not None
    assert entry.title == title
    # dates are what the file states, nothing from its mtime; undated: settled by the scan
    assert parsed.date == published
    assert entry.published == (published or EPOCH)
    assert entry.updated == entry.published
    assert entry.categories == categories
    assert entry.authors == (Author(author),)
    assert entry.image == image
    assert entry.id == stable_uuid("path", name)
    if published is None:
        assert any("Invalid Date" in w for w in parsed.warnings)


def test_blank_title_falls_back_to_the_start_of_the_text():
    parsed = parse_file(REAL_CORPUS / " .md")
    assert parsed.entry.title.startswith("来源：三个设计师原标题：2021年草莓音乐节主视觉公布")
    assert parsed.entry.title.endswith("…")
    assert len(parsed.entry.title) <= 81
    assert any("empty title" in w for w in parsed.warnings)


def test_lazy_images_show_their_real_source_and_frames_become_links():
    entry = parse_file(REAL_CORPUS / " .md").entry
    assert "remote_161612201734453.png" in entry.content
    assert "loadimg.gif" not in entry.content
    bili = parse_file(REAL_CORPUS / '"等我两分钟，快画完了".md').entry
    assert "<iframe" not in bili.content
    assert 'href="https://player.bilibili.com/player.html?aid=' in bili.content


@pytest.mark.parametrize(
    "name", ['"""""""""\'2019\'""""""""".md', '"""""""\'NaNO_NaNaNの投稿イラスト\'""""""".md']
)
def test_front_matter_that_does_not_parse_is_reported_with_file_and_line(name):
    with pytest.raises(SeedError) as caught:
        parse_file(REAL_CORPUS / name)
    assert caught.value.path == name
    assert "invalid YAML front matter at line 3" in caught.value.reason


def test_every_corpus_file_is_served_or_reported():
    served, reported = [], []
    for root in (REAL_CORPUS, SAMPLE_SEEDS):
        for seed in walk_seeds(root):
            try:
                parsed = parse_seed(read_seed(seed, 5 << 20), seed.rel, BASE, UTC_ZONE)
            except SeedError as exc:
                reported.append(exc.path)
            else:
                assert parsed.entry is not None
                served.append(parsed.entry.path)
    assert len(os.listdir(REAL_CORPUS)) + len(os.listdir(SAMPLE_SEEDS)) == 50
    assert len(served) == 48 and len(reported) == 2
    assert sorted(reported) == sorted(n for n in os.listdir(REAL_CORPUS) if n.startswith('"""'))


def test_sample_seeds_start_with_a_blank_line_and_parse():
    for name in ("000_23e101d349b0cc50.txt", "001_33e289dd104536e3.txt"):
        assert (SAMPLE_SEEDS / name).read_bytes().startswith(b"\n---")
        entry = parse_file(SAMPLE_SEEDS / name).entry
        assert entry.categories[0][0] == "新媒体"
        assert entry.image and entry.image.startswith("https://")
        assert entry.summary and len(entry.summary) <= 201


DATES = [
    ("Sat, 27 Nov 2021 15:42:03 GMT", utc(2021, 11, 27, 15, 42, 3)),
    ("Sat, 27 Nov 2021 23:42:03 +0800", utc(2021, 11, 27, 15, 42, 3)),
    ("2021-11-27T15:42:03Z", utc(2021, 11, 27, 15, 42, 3)),
    ("2021-11-27T23:42:03+08:00", utc(2021, 11, 27, 15, 42, 3)),
    ("'2021-11-27 15:42:03'", utc(2021, 11, 27, 7, 42, 3)),  # a naive string, in the zone
    ("2021-11-27 15:42:03", utc(2021, 11, 27, 7, 42, 3)),  # a YAML naive timestamp
    ("2021-11-27", utc(2021, 11, 26, 16)),  # a YAML date: midnight in the zone
    ("2021/11/27 15:42", utc(2021, 11, 27, 7, 42)),
]


@pytest.mark.parametrize(("raw", "expected"), DATES)
def test_date_variants_in_the_configured_zone(tmp_path, raw, expected):
    text = f"---\ntitle: t\ndate: {raw}\n---\nbody\n"
    entry = parse_text(tmp_path, text, zone=ZoneInfo("Asia/Shanghai")).entry
    assert entry.published == expected


@pytest.mark.parametrize(
    "raw", ["Invalid Date", "0001-01-01", "9999-12-31 23:59:59", "yesterday", "[1, 2]"]
)
def test_unusable_dates_state_no_date_with_a_warning(tmp_path, raw):
    parsed = parse_text(tmp_path, f"---\ntitle: t\ndate: {raw}\n---\nbody\n")
    assert parsed.date is None and parsed.entry.published == EPOCH
    assert parsed.warnings and "first stored" in parsed.warnings[0]


def test_explicit_updated_date_wins(tmp_path):
    text = "---\ntitle: t\ndate: 2021-01-01T00:00:00Z\nupdated: 2021-02-01T00:00:00Z\n---\nx\n"
    parsed = parse_text(tmp_path, text)
    assert parsed.entry.updated == parsed.updated == utc(2021, 2, 1)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("新闻", (("新闻",),)),
        ("[新媒体, 快科技, 最新新闻]", (("新媒体", "快科技", "最新新闻"),)),
        ("[[A, B], [C], D]", (("A", "B"), ("C",), ("D",))),
        ("\n - 2021\n - 1.10", (("2021", "1.10"),)),
        ("[' A ', '', B]", (("A", "B"),)),
        ("", ()),
    ],
)
def test_category_shapes(tmp_path, yaml_value, expected):
    entry = parse_text(tmp_path, f"---\ntitle: t\ncategories: {yaml_value}\n---\nx\n").entry
    assert entry.categories == expected


def test_author_mapping_list_and_tags(tmp_path):
    text = (
        "---\ntitle: t\nauthor:\n  name: Ada\n  email: ada@example.org\n  url: /about\n"
        "tags: [rust, 2022, rust]\n---\nx\n"
    )
    entry = parse_text(tmp_path, text).entry
    assert entry.authors == (Author("Ada", "ada@example.org", BASE + "/about"),)
    assert entry.tags == ("rust", "2022")
    many = parse_text(tmp_path, "---\ntitle: t\nauthor: [A, {name: B}]\n---\nx\n").entry
    assert [a.name for a in many.authors] == ["A", "B"]


@pytest.mark.parametrize("flag", ["draft: true", "published: false", "draft: yes"])
def test_drafts_are_not_entries(tmp_path, flag):
    parsed = parse_text(tmp_path, f"---\ntitle: t\n{flag}\n---\nx\n")
    assert parsed.entry is None


def test_explicit_id_and_link(tmp_path):
    text = "---\ntitle: t\nid: post-42\nlink: https://origin.example/a\n---\nx\n"
    entry = parse_text(tmp_path, text).entry
    assert entry.id == stable_uuid("id", "post-42")
    assert entry.link == "https://origin.example/a"
    assert (
        parse_text(tmp_path, "---\ntitle: t\npermalink: /p/1\n---\nx\n").entry.link == BASE + "/p/1"
    )


def test_html_is_sanitised_and_urls_made_absolute(tmp_path):
    body = (
        '<p onclick="evil()">hi<script>alert(1)</script><style>p{}</style>'
        '<a href="javascript:alert(1)">x</a><a href="/rel">rel</a>'
        '<img src="pic.png" onerror="x()"><iframe src="javascript:alert(1)"></iframe></p>'
    )
    entry = parse_text(tmp_path, f"---\ntitle: t\n---\n{body}\n").entry
    for bad in ("onclick", "<script", "alert", "<style", "javascript:", "onerror", "<iframe"):
        assert bad not in entry.content
    assert f'href="{BASE}/rel"' in entry.content
    assert f'src="{BASE}/pic.png"' in entry.content


def test_markdown_bodies_are_rendered(tmp_path):
    entry = parse_text(tmp_path, "---\ntitle: t\n---\n# Head\n\nSome *text* [a](/x).\n").entry
    assert "<h1>Head</h1>" in entry.content
    assert "<em>text</em>" in entry.content
    assert f'href="{BASE}/x"' in entry.content


def test_xml_forbidden_characters_are_removed_everywhere(tmp_path):
    text = '---\ntitle: "a\\x01b\\uFFFEc"\nauthor: "x\\x02y"\n---\n<p>p\x0bq</p>\n'
    entry = parse_text(tmp_path, text).entry
    assert entry.title == "abc"
    assert entry.authors[0].name == "xy"
    assert "\x0b" not in entry.content and "pq" in entry.content


def test_summary_is_plain_text_of_about_200_characters(tmp_path):
    body = "<p>" + "字" * 500 + "</p>"
    entry = parse_text(tmp_path, f"---\ntitle: t\n---\n{body}\n").entry
    assert entry.summary == "字" * 200 + "…"


@pytest.mark.parametrize("value", ["''", "None", "null", "~"])
def test_empty_thumbnails_mean_no_image(tmp_path, value):
    entry = parse_text(tmp_path, f"---\ntitle: t\nthumbnail: {value}\n---\nx\n").entry
    assert entry.image is None


def test_bom_and_crlf_and_leading_blank_lines(tmp_path):
    raw = b"\xef\xbb\xbf\r\n\r\n---\r\ntitle: crlf\r\ndate: 2021-01-01T00:00:00Z\r\n---\r\n<p>x</p>\r\n"
    entry = parse_text(tmp_path, raw).entry
    assert entry.title == "crlf"
    assert entry.published == utc(2021, 1, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no front matter here\n", "no front matter"),
        ("---\ntitle: t\nbody without end\n", "no closing '---'"),
        ("---\n- a\n- b\n---\nx\n", "not a mapping"),
        ("---\ntitle: a\ntitle: b\n---\nx\n", "key 'title' twice"),
        ("---\ntitle: !!python/object/apply:os.system ['true']\n---\nx\n", "invalid YAML"),
        ("---\ncategories: {a: 1}\n---\nx\n", "categories"),
    ],
)
def test_bad_front_matter_is_a_clear_error(tmp_path, text, reason):
    with pytest.raises(SeedError) as caught:
        parse_text(tmp_path, text)
    assert reason in caught.value.reason
    assert str(caught.value).startswith("post.md: ")


@pytest.mark.parametrize(
    ("name", "is_seed"),
    [
        ("a.md", True),
        ("a.markdown", True),
        ("a.txt", True),
        (".md", True),
        (".hidden.md", False),
        ("a.md~", False),
        ("a.md.swp", False),
        (".#a.md", False),
        ("#a.md#", False),
        ("a.html", False),
    ],
)
def test_seed_file_names(name, is_seed):
    assert is_seed_name(name) is is_seed


def test_walk_skips_hidden_dirs_and_links_out_of_the_tree(tmp_path):
    root = tmp_path / "seeds"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "sub" / "a.md").write_text("x")
    (root / ".git" / "b.md").write_text("x")
    outside = tmp_path / "outside.md"
    outside.write_text("x")
    (root / "link.md").symlink_to(outside)
    (root / "inner.md").symlink_to(root / "sub" / "a.md")
    (root / "loop").symlink_to(root)
    assert [s.rel for s in walk_seeds(root)] == ["inner.md", "sub/a.md"]
