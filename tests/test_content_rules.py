"""What is done to every entry's content, as RSSHub's parameter middleware does it to every
item (lib/middleware/parameter.ts and its tests): titles' character references decoded,
bidirectional controls out of one-line text, images lazy-loaded no more and sending no
Referer, relative URLs resolved against the entry's own link; and lead images that cannot be
the entry's (relative without a link, random placeholders) are none."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest

from feedsvc import scan
from feedsvc.model import Entry
from feedsvc.sanitize import clean_html, clean_text, decode_entities
from feedsvc.scan import Scanner
from feedsvc.seeds import SeedFile, content_hash, load_seed, parse_seed
from feedsvc.store import Changes, Store, StoredEntry
from tests.rsshub_items import COMPLICATED_0, MULTIMEDIA_0

BASE = "http://feeds.example.test"
LINK = "https://mock.com/DIYgod/RSSHub"
PICSUM = "https://picsum.photos/400/300?random=1850"


def entry(front: str, body: str = "<p>body</p>", **options: Any) -> Entry:
    data = f"---\ndate: 2021-11-27\n{front}\n---\n{body}\n".encode()
    parsed = parse_seed(data, "post.md", BASE, UTC, **options)
    assert parsed.entry is not None
    return parsed.entry


# -- titles: character references -------------------------------------------------------


def test_character_references_are_decoded_as_rsshub_decodes_titles():
    # RSSHub's own case: a name needs its ';' ('&notify', '&lt=2' stay) and must be HTML's
    assert decode_entities("Item&rsquo;s &#8217; &notify ?a=1&lt=2") == "Item’s ’ &notify ?a=1&lt=2"
    assert decode_entities("Feed&nbsp;Title &amp; More") == "Feed\u00a0Title & More"
    assert decode_entities("&bogus; &amp &#x; &#; & ;") == "&bogus; &amp &#x; &#; & ;"
    assert decode_entities("&#X41;&#x00000000042;&#0067;") == "ABC"
    # what is no character is U+FFFD; C1 codes are the windows-1252 characters pages meant
    assert decode_entities("&#0;&#xD800;&#x110000;&#150;&#x81;") == "\ufffd\ufffd\ufffd–\x81"


def test_references_of_any_length_are_read_in_one_pass():
    digits = "9" * 100_000  # int() would refuse it (and cost its square)
    assert decode_entities(f"&#{digits};&#x{digits};") == "\ufffd\ufffd"
    unterminated = "&" + "a" * 1_000_000
    assert decode_entities(unterminated) == unterminated


def test_titles_are_decoded_before_they_are_cleaned():
    title = "'Item&rsquo;s &#8217; &notify ?a=1&lt=2'"
    assert entry(f"title: {title}").title == "Item’s ’ &notify ?a=1&lt=2"
    # the one-line rule collapses every Unicode space, NBSP included: RSSHub keeps the NBSP
    assert entry("title: 'Feed&nbsp;Title &amp; More'").title == "Feed Title & More"
    # a decoded control or bidirectional character goes like one written as it is
    assert entry("title: 'a&#1;b&#x1b;c &#x202E;d'").title == "abc d"
    # a title is text, escaped wherever it is shown: a decoded '<' is a '<'
    assert entry("title: '&lt;b&gt;'").title == "<b>"


def test_only_titles_are_decoded():
    decoded = entry("title: t\ncategories: [A&amp;B]\ntags: [C&amp;D]\nauthor: E&amp;F")
    assert decoded.categories == (("A&amp;B",),)
    assert decoded.tags == ("C&amp;D",)
    assert decoded.authors[0].name == "E&amp;F"


# -- one-line text: bidirectional controls ------------------------------------------------


def test_bidirectional_controls_leave_one_line_text():
    controls = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    assert clean_text(f"a{controls}b") == "ab"
    # right-to-left text, and the LRM and RLM marks, stay
    assert clean_text("abc \u200eعربي\u200f") == "abc \u200eعربي\u200f"
    assert clean_text("a \u202e b") == "a b"  # then the whitespace is collapsed


def test_titles_and_names_lose_bidirectional_controls():
    e = entry(
        'title: "abc\\u202Edcba\\u202C عربي"\ncategories: ["x\\u2066عربي\\u2069"]\n'
        'tags: ["\\u202Dtag"]\nauthor: {name: "\\u2067مؤلف\\u2069\\u200F"}'
    )
    assert e.title == "abcdcba عربي"
    assert e.categories == (("xعربي",),)
    assert e.tags == ("tag",)
    assert e.authors[0].name == "مؤلف\u200f"
    assert entry('title: t\nauthor: "\\u202Ename"').authors[0].name == "name"


# -- images: referrer policy, lazy loading ------------------------------------------------


def test_images_send_no_referer_unless_the_seed_names_a_policy():
    cleaned = clean_html(
        '<img src="/a.png"><img src="/b.png" referrerpolicy=" Origin ">'
        '<img src="/c.png" referrerpolicy="always"><img src="/d.png" referrerpolicy="">',
        BASE + "/",
    )
    assert cleaned == (
        f'<img src="{BASE}/a.png" referrerpolicy="no-referrer">'
        f'<img src="{BASE}/b.png" referrerpolicy="origin">'
        f'<img src="{BASE}/c.png" referrerpolicy="no-referrer">'
        f'<img src="{BASE}/d.png" referrerpolicy="no-referrer">'
    )


def test_lazy_images_are_filled_in():
    cleaned = clean_html(
        '<img data-original="/o.jpg"><img src="" data-src="/s.jpg" data-original="/o.jpg">'
        '<img class="lazy" data-x="/x.webp">'
        '<img src="data:image/gif;base64,R0lGOD" data-src="/d.jpg">'
        '<img alt="nothing"><img src="data:image/png;base64,iVBOR">',
        BASE + "/",
    )
    # a data: URI is no source (feedsvc serves none), and an image without one is dropped
    assert cleaned == (
        f'<img src="{BASE}/o.jpg" referrerpolicy="no-referrer">'
        f'<img src="{BASE}/s.jpg" referrerpolicy="no-referrer">'
        f'<img src="{BASE}/x.webp" referrerpolicy="no-referrer">'
        f'<img src="{BASE}/d.jpg" referrerpolicy="no-referrer">'
    )


def test_rsshub_complicated_item():
    """RSSHub's 'complicated' test item, with what feedsvc does otherwise:
    - links get rel="noopener noreferrer nofollow" (nh3);
    - data-* and unknown attributes (data-src, mock) are dropped (nh3's allow-list);
    - the <script> goes with nothing left in its place (RSSHub leaves its line empty);
    - a data-src beside a src wins (RSSHub keeps the src): in real seeds the src is the
      lazy loader's placeholder (loadimg.gif), RSSHub0.jpg the picture;
    - the data: image is dropped (RSSHub keeps it): feedsvc serves no data: URIs."""
    content = entry(f"title: t\nlink: {LINK}", COMPLICATED_0).content
    image = '<img src="https://mock.com/DIYgod/{}" referrerpolicy="no-referrer">'.format
    rel = 'rel="noopener noreferrer nofollow"'
    assert content == "\n".join(
        [
            f'<a href="https://mock.com/DIYgod/RSSHub" {rel}></a>',
            image("RSSHub.jpg"),
            "",
            f'<a href="http://mock.com/DIYgod/RSSHub" {rel}></a>',
            image("RSSHub0.jpg"),
            image("RSSHub.jpg"),
            image("RSSHub.png"),
            image("RSSHub.gif"),
            '<img src="http://mock.com/DIYgod/DIYgod/RSSHub" referrerpolicy="no-referrer">',
            image("RSSHub.jpg"),
        ]
    )


def test_rsshub_multimedia_item():
    """RSSHub's 'multimedia' test item. video, audio and source stay, URLs absolute; the
    <iframe> is feedsvc's link to it (embedded frames are not served), sending no Referer."""
    content = entry(f"title: t\nlink: {LINK}", MULTIMEDIA_0).content
    frame = "https://mock.com/DIYgod/RSSHub.html"
    assert content == (
        '<img src="https://mock.com/DIYgod/RSSHub.jpg" referrerpolicy="no-referrer">\n'
        '<video src="https://mock.com/DIYgod/RSSHub.mp4"></video>\n'
        '<video poster="https://mock.com/DIYgod/RSSHub.jpg">\n'
        '<source src="https://mock.com/DIYgod/RSSHub.mp4" type="video/mp4">\n'
        '<source src="https://mock.com/DIYgod/RSSHub.webm" type="video/webm">\n</video>\n'
        '<audio src="https://mock.com/DIYgod/RSSHub.mp3"></audio>\n'
        f'<p><a href="{frame}" rel="noopener noreferrer nofollow">{frame}</a></p>'
    )


# -- relative URLs -------------------------------------------------------------------------


BODY = '<p><a href="about">a</a><img src="/pic.png"></p>'


def test_relative_urls_resolve_against_the_entrys_link():
    e = entry("title: t\nlink: https://origin.example/dir/page\nheadimg: lead.jpg", BODY)
    assert e.link == "https://origin.example/dir/page"
    assert 'href="https://origin.example/dir/about"' in e.content
    assert 'src="https://origin.example/pic.png"' in e.content
    assert e.image == "https://origin.example/dir/lead.jpg"
    assert entry("title: t\npermalink: https://origin.example/p\nthumbnail: /t.png").image == (
        "https://origin.example/t.png"
    )


def test_without_a_link_the_body_resolves_against_the_site_and_a_relative_lead_image_is_none():
    e = entry("title: t\nheadimg: /images/404.gif", BODY)
    assert e.link is None and e.image is None
    assert f'href="{BASE}/about"' in e.content and f'src="{BASE}/pic.png"' in e.content
    assert (
        entry("title: t\nheadimg: https://cdn.example/a.jpg").image == "https://cdn.example/a.jpg"
    )
    # a URL naming its host is no page of the site's: it takes the site's scheme
    assert entry("title: t\nheadimg: //cdn.example/a.jpg").image == "http://cdn.example/a.jpg"


def test_a_link_that_is_not_absolute_is_no_base():
    e = entry("title: t\nlink: /p/1\nheadimg: lead.jpg", BODY)
    assert e.link == BASE + "/p/1"
    assert f'href="{BASE}/about"' in e.content  # not {BASE}/p/about
    assert e.image is None
    # nh3 cannot resolve against this one (urllib can split it): the site's URL is used
    e = entry("title: t\nlink: 'http://a b/x'\nheadimg: lead.jpg", BODY)
    assert f'href="{BASE}/about"' in e.content
    assert e.image is None


# -- lead images from placeholder services --------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        PICSUM,
        "https://fastly.picsum.photos/id/1/200/300.jpg",
        "https://PICSUM.photos./200",
        "https://dummyimage.com/600x400/000/fff",
    ],
)
def test_placeholder_lead_images_are_none(image):
    assert entry(f"title: t\nheadimg: '{image}'").image is None


def test_only_placeholder_hosts_and_their_subdomains_count():
    assert entry("title: t\nheadimg: https://notpicsum.photos/a.jpg").image == (
        "https://notpicsum.photos/a.jpg"
    )
    body = entry("title: t", f'<img src="{PICSUM}">').content
    assert 'src="https://picsum.photos/400/300?random=1850"' in body  # body images stay


def test_placeholder_hosts_come_from_the_settings(tmp_path, make_settings):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    path = seeds / "post.md"
    path.write_text(f"---\ntitle: t\nheadimg: {PICSUM}\n---\nx\n")
    st = path.stat()
    seed = SeedFile("post.md", path, st.st_mtime_ns, st.st_size)
    own = make_settings(seeds, placeholder_image_hosts=("img.example",))
    loaded = load_seed(seed, None, own)
    assert loaded.parsed is not None and loaded.parsed.entry is not None
    assert loaded.parsed.entry.image == PICSUM
    assert entry("title: t\nheadimg: https://img.example/a.jpg").image is not None
    hosts = ("img.example",)
    assert (
        entry("title: t\nheadimg: https://img.example/a.jpg", placeholder_hosts=hosts).image is None
    )


# -- stored entries are derived again ------------------------------------------------------


def test_entries_stored_by_the_previous_parser_are_read_again(tmp_path, make_settings, monkeypatch):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    path = seeds / "post.md"
    data = f"---\ntitle: t\ndate: 2021-11-27\nheadimg: {PICSUM}\n---\nx\n".encode()
    path.write_bytes(data)
    settings = make_settings(seeds)
    store = Store(settings.db)
    try:
        monkeypatch.setattr(scan, "PARSER_VERSION", "4")
        Scanner(store, settings).scan()
        # what version 4 stored: the placeholder as the lead image
        (stored,) = store.all_entries()
        st = path.stat()
        old = StoredEntry(
            replace(stored, image=PICSUM), st.st_mtime_ns, st.st_size, content_hash(data)
        )
        with store.transaction() as writer:
            writer.apply(Changes(upserts=[old]), 0)
            writer.refresh_scopes()
        monkeypatch.undo()
        report = Scanner(store, settings).scan()
        assert report.updated == 1
        assert store.all_entries()[0].image is None
    finally:
        store.close()
