"""What a person sees, in a real browser: Debian's chromium driven by Playwright against a
real `feedsvc serve`. One reader's path through the site (index, a category opened and
filtered, a category page and its page 2, an entry and the next one, a feed URL copied),
checked at each step, with no console error and no Content-Security-Policy violation; a
screenshot of every page at desktop and phone sizes (and the index in dark mode) is saved
under tests/artifacts/.

Where chromium is not installed the tests skip with one line saying so (CI installs it, and
fails them instead of skipping)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus, require

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).with_name("artifacts")
LIMIT = 3  # entries per page, so a category has a page 2
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# A 1x1 PNG for every image from elsewhere: the pages are looked at offline, deterministically.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201e2fd7a0b0000000049454e44ae426082"
)
MIXED_TITLE = "多语言标题：日本語のタイトル، عنوان عربي 🚀 “引号” 123"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_module):
    require(CHROMIUM.exists(), "chromium (apt-get install chromium fonts-noto-cjk)")
    workdir = tmp_path_factory.mktemp("browser")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    (seeds / "mixed-scripts.md").write_text(
        "---\n"
        f"title: '{MIXED_TITLE}'\n"
        "categories:\n - 多语言\n - 混排\n"
        "author: 多语言作者\n"
        "date: Sat, 27 Nov 2021 23:42:03 +0800\n"
        "---\n<p>正文：日本語、العربية、emoji 🎉。</p>\n"
    )
    return serve_module(
        seeds,
        f"sqlite:///{workdir}/db.sqlite3",
        FEEDSVC_FEED_LIMIT=str(LIMIT),
        FEEDSVC_LANGUAGE="zh-CN",
    )


class Watched:
    """A browser page whose console errors, page errors and CSP violations are collected."""

    def __init__(self, context, server) -> None:
        self.problems: list[str] = []
        self.page = context.new_page()

        def console(message: Any) -> None:
            if message.type == "error":
                self.problems.append(message.text)

        self.page.on("console", console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e =>"
            " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
        )
        self.server = server

    def open(self, url: str):
        response = self.page.goto(url)
        assert response is not None and response.status == 200, url
        self.page.wait_for_load_state("load")
        return self.page


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def new_context(browser, server, viewport, **options):
    context = browser.new_context(viewport=viewport, locale="en-US", **options)

    def route(request_route):
        if request_route.request.url.startswith(server.url):
            request_route.continue_()
        else:
            request_route.fulfill(status=200, content_type="image/png", body=PIXEL)

    context.route("**/*", route)
    return context


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_reader_finds_a_category_reads_entries_and_copies_a_feed(browser, server):
    context = new_context(browser, server, DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    watched = Watched(context, server)
    visited: dict[str, str] = {}

    # the index: every feed, the category tree, a filter box, the newest entries
    page = watched.open(server.url + "/")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "feedsvc"
    assert page.locator("link[rel=alternate]").count() == 3
    assert page.locator(".directory a[download]").get_attribute("href").endswith("/opml")
    visited["index"] = page.url
    shoot(page, "index-desktop")

    # expand a category: its sub-categories appear
    first = page.locator(".directory > ul.tree > li > details").first
    child = first.locator("ul.tree > li").first
    assert not child.is_visible()
    first.locator(":scope > summary .count").click()
    assert first.evaluate("node => node.open")
    assert child.is_visible()

    # type in the filter: only matching names (and the categories above them) stay
    wanted = "混排"
    page.locator("#filter").fill(wanted)
    shown = [name for name in page.locator("[data-filter-item] .name").all() if name.is_visible()]
    names = {name.inner_text() for name in shown}
    assert wanted in names and "多语言" in names  # the match and its parent category
    assert not any("快科技" in name for name in names)
    page.locator("#filter").fill("")
    assert page.locator(".names [data-filter-item]").first.is_visible()

    # follow the biggest root category to its page
    roots = page.locator(".directory > ul.tree > li > details > summary")
    counts = [int(root.locator(":scope > .count").text_content()) for root in roots.all()]
    biggest = roots.nth(counts.index(max(counts)))
    assert max(counts) > LIMIT
    name = biggest.locator(":scope > .name").inner_text()
    biggest.locator(":scope > .name").click()
    page.wait_for_load_state("load")
    assert "/categories/" in page.url
    assert page.locator("h1").inner_text().endswith(name)
    assert page.locator(".breadcrumb a").first.inner_text() == "All entries"
    assert page.locator("link[rel=alternate]").count() == 3
    assert "/feeds/categories/" in page.locator("link[rel=alternate]").first.get_attribute("href")
    links = "els => els.map(el => el.getAttribute('href'))"
    first_page = page.locator(".entry .title").evaluate_all(links)
    assert len(first_page) == LIMIT
    visited["category"] = page.url
    shoot(page, "category-desktop")

    # copy the category's Atom feed URL
    copy = page.locator(".subscribe button[data-copy]").first
    atom_url = copy.get_attribute("data-copy")
    assert atom_url.startswith(server.url + "/feeds/categories/") and atom_url.endswith(".atom")
    copy.click()
    playwright_api.expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == atom_url

    # page 2 of the category
    page.locator("a[rel=next]").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("?page=2")
    assert "page 2" in page.locator(".entries h2").inner_text()
    second_page = page.locator(".entry .title").evaluate_all(links)
    assert second_page and not set(second_page) & set(first_page)
    visited["category-page-2"] = page.url
    shoot(page, "category-page-2-desktop")

    # open an entry, then the next one in its category
    title = page.locator(".entry .title").first.inner_text()
    page.locator(".entry .title").first.click()
    page.wait_for_load_state("load")
    assert re.search(r"/entries/[0-9a-f-]{36}$", page.url)
    assert page.locator("article h1").inner_text() == title
    moment = page.locator("article .meta time")
    assert moment.get_attribute("title").startswith("Original: ")
    assert moment.inner_text() != moment.get_attribute("datetime")  # shown in the reader's locale
    assert page.locator(".categories a").count() >= 1
    visited["entry"] = page.url
    shoot(page, "entry-desktop")
    following = page.locator("a[rel=next]")
    assert following.count() == 1
    next_title = following.inner_text().removesuffix(" →")
    following.click()
    page.wait_for_load_state("load")
    assert page.locator("article h1").inner_text() == next_title != title
    visited["next-entry"] = page.url
    shoot(page, "next-entry-desktop")

    # a title in Chinese, Japanese, Arabic and emoji is shown exactly
    watched.open(server.url + "/categories/" + "多语言/混排")
    page.locator(".entry .title").first.click()
    page.wait_for_load_state("load")
    assert page.locator("article h1").inner_text() == MIXED_TITLE
    visited["mixed-scripts"] = page.url
    shoot(page, "mixed-scripts-desktop")

    assert watched.problems == []
    context.close()

    # every page at phone size: nothing wider than the screen
    phone = new_context(browser, server, PHONE, is_mobile=True, has_touch=True)
    watched = Watched(phone, server)
    for name, url in visited.items():
        page = watched.open(url)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
        shoot(page, f"{name}-phone")
    assert watched.problems == []
    phone.close()


def test_pages_follow_the_readers_dark_mode(browser, server):
    context = new_context(browser, server, DESKTOP, color_scheme="dark")
    watched = Watched(context, server)
    page = watched.open(server.url + "/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(part) for part in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150  # a dark background
    shoot(page, "index-dark-desktop")
    assert watched.problems == []
    context.close()


def test_a_feed_opened_in_the_browser_links_to_its_page(browser, server):
    """Chromium shows a feed served as application/atom+xml as source: the feed's
    rel=alternate text/html link is what leads to something readable."""
    context = new_context(browser, server, DESKTOP)
    watched = Watched(context, server)
    page = watched.open(server.url + "/feeds/categories/" + "多语言/混排.atom")
    source = page.content()
    match = re.search(r'<link[^>]+href="([^"]+)"[^>]+rel="alternate"[^>]+type="text/html"', source)
    match = match or re.search(r'href="([^"]+)" rel="alternate" type="text/html"', source)
    assert match, source[:2000]
    target = match.group(1).replace("&amp;", "&")
    page = watched.open(target)
    assert page.locator("h1").inner_text().endswith("混排")
    context.close()
