"""Writes the hostile seed corpus in this folder and MANIFEST.tsv, its expected outcomes.

    python tests/hostile/make_corpus.py

Each case is (file name, bytes, expected): "served", "draft", or "reported: <words the reason
contains>". Files too large to keep in git (over max_file_bytes) are made by the tests."""

from __future__ import annotations

import codecs
from pathlib import Path

HERE = Path(__file__).parent


def fm(front: str, body: str = "<p>body</p>\n") -> bytes:
    return f"---\n{front.strip()}\n---\n{body}".encode()


ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]"
        for i in range(1, 10)
    ]
)
XSS_BODY = """
<script>alert(1)</script><style>body{display:none}</style>
<img src=x onerror=alert(1)><svg onload=alert(1)><math><mi xlink:href="javascript:alert(1)">x</mi></math>
<a href="javascript:alert(1)">a</a><a href="JaVaScRiPt:alert(1)">b</a><a href="java&#09;script:alert(1)">c</a>
<a href="data:text/html,<script>alert(1)</script>">d</a><iframe src="javascript:alert(1)"></iframe>
<object data="x.swf"></object><embed src="x.swf"><form action="/steal"><input name=p></form>
<div style="background:url(javascript:alert(1))">styled</div><base href="http://evil.example/">
<meta http-equiv="refresh" content="0;url=http://evil.example/"><link rel=stylesheet href=http://evil.example/x.css>
<p>kept text</p>
"""

CASES: list[tuple[str, bytes, str]] = [
    # YAML
    ("yaml-syntax-error.md", fm("title: [unclosed"), "reported: invalid YAML front matter"),
    (
        "yaml-tab-indent.md",
        fm("categories:\n\t- a\n\t- b\ntitle: t"),
        "reported: invalid YAML front matter",
    ),
    ("yaml-not-mapping-list.md", fm("- a\n- b"), "reported: not a mapping"),
    ("yaml-not-mapping-scalar.md", fm("just some text"), "reported: not a mapping"),
    ("yaml-alias-bomb.md", fm(ALIAS_BOMB + "\ntitle: t"), "reported: expands to over"),
    ("yaml-recursive-alias.md", fm("a: &a [*a]\ntitle: t"), "reported: front matter"),
    (
        "yaml-python-object.md",
        fm("title: !!python/object/apply:os.system ['echo pwned']"),
        "reported: could not determine a constructor",
    ),
    (
        "yaml-python-name.md",
        fm("title: !!python/name:os.system"),
        "reported: could not determine a constructor",
    ),
    (
        "yaml-duplicate-keys.md",
        fm("title: a\ndate: 2021-01-01\ntitle: b"),
        "reported: key 'title' twice",
    ),
    (
        "yaml-missing-close.md",
        b"---\ntitle: t\n<p>never closed</p>\n",
        "reported: no closing '---'",
    ),
    (
        "yaml-no-front-matter.md",
        b"# Just Markdown\n\nNo front matter.\n",
        "reported: no front matter",
    ),
    ("yaml-empty.md", b"---\n---\n<p>x</p>\n", "reported: front matter is empty"),
    ("yaml-complex-key.md", fm("? [a, b]\n: c\ntitle: t"), "reported: not a plain name"),
    (
        "yaml-deep-nesting.md",
        fm("title: t\nx: " + "[" * 100 + "]" * 100),
        "reported: nested deeper than",
    ),
    ("yaml-binary-tag.md", fm("title: !!binary aGVsbG8="), "served"),
    ("yaml-huge-int-date.md", fm("title: t\ndate: 99999999999999999999999"), "served"),
    ("yaml-impossible-timestamp.md", fm("title: t\ndate: 2021-02-30"), "served"),
    ("yaml-merge-key.md", fm("base: &b {x: 1}\nother:\n  <<: *b\ntitle: merged"), "served"),
    # encodings
    ("enc-utf8-bom.md", codecs.BOM_UTF8 + fm("title: 带BOM的标题"), "served"),
    ("enc-crlf.md", fm("title: crlf\ndate: 2021-01-01").replace(b"\n", b"\r\n"), "served"),
    ("enc-cr-only.md", fm("title: old mac").replace(b"\n", b"\r"), "served"),
    (
        "enc-utf16-le-bom.md",
        codecs.BOM_UTF16_LE + "---\ntitle: 十六位\n---\n<p>x</p>\n".encode("utf-16-le"),
        "served",
    ),
    (
        "enc-utf16-be-bom.md",
        codecs.BOM_UTF16_BE + "---\ntitle: 十六位\n---\n<p>x</p>\n".encode("utf-16-be"),
        "served",
    ),
    ("enc-utf16-no-bom.md", "---\ntitle: x\n---\n".encode("utf-16-le"), "reported: binary file"),
    (
        "enc-gb18030.md",
        "---\ntitle: 中文标题\ncategories: [新闻, 国内]\n---\n<p>这是一篇用国标码写的文章。</p>\n".encode(
            "gb18030"
        ),
        "served",
    ),
    (
        "enc-latin1.md",
        "---\ntitle: café crème\n---\n<p>déjà</p>\n".encode("latin-1"),
        "reported: not UTF-8 text",
    ),
    (
        "enc-invalid-bytes.md",
        b"---\ntitle: \xff\xfe\xfd\xc3\x28\n---\nx\n",
        "reported: not UTF-8 text",
    ),
    (
        "enc-binary.md",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "reported: binary file",
    ),
    # sizes
    ("size-empty.md", b"", "reported: empty file"),
    ("size-whitespace.md", b"\n\n   \n\t\n", "reported: empty file"),
    ("size-huge-title.md", fm("title: " + "长" * 100_000), "served"),
    (
        "size-thousands-of-categories.md",
        fm("title: t\ncategories:\n" + "".join(f" - [c{i}]\n" for i in range(3000))),
        "reported: over 100 hierarchies",
    ),
    (
        "size-many-hierarchies.md",
        fm("title: t\ncategories: [" + ", ".join(f"[c{i}]" for i in range(150)) + "]"),
        "reported: over 100 hierarchies",
    ),
    (
        "size-deep-category.md",
        fm("title: t\ncategories: [" + ", ".join(f"l{i}" for i in range(20)) + "]"),
        "reported: over 16 levels deep",
    ),
    ("size-long-name.md", fm("title: t\nauthor: " + "名" * 300), "reported: over 200 characters"),
    (  # each name allowed, but /feeds/categories/… would be 5.4 KB: no request could ask for it
        "size-long-hierarchy-url.md",
        fm("title: t\ncategories: [" + ", ".join(["长" * 200] * 3) + "]"),
        "reported: a hierarchy's feed URL would be over 3072 bytes",
    ),
    (
        "size-longest-hierarchy-url-served.md",
        fm("title: t\ncategories: [" + ", ".join(["长" * 100] * 3) + "]"),
        "served",
    ),
    (  # 200 characters as written, 400 once NFC-normalised (as URLs name it)
        "size-long-name-once-normalised.md",
        fm("title: t\ncategories: [" + "\u0958" * 200 + "]"),
        "reported: over 200 characters",
    ),
    (
        "size-deep-html.md",
        fm("title: t", "<div>" * 10_000 + "x" + "</div>" * 10_000),
        "reported: HTML nested deeper than",
    ),
    (
        "size-deep-markdown.md",
        fm("title: t", "".join("  " * i + "- x\n" for i in range(300))),
        "reported: Markdown nested deeper",
    ),
    ("size-wide-html.md", fm("title: wide", "<p>paragraph</p>\n" * 20_000), "served"),
    (  # each relative URL grows by the link's 2 KB: 22 KB would become 4 MB
        "size-links-resolved-against-a-long-link.md",
        fm("title: t\nlink: https://example.com/" + "p/" * 1000, "<img src=x>" * 2000),
        "reported: HTML would grow to over 4 times its size: 2000 URLs",
    ),
    (  # a small file too: a feed of many must stay small
        "size-small-file-links-resolved-against-a-long-link.md",
        fm("title: t\nlink: https://example.com/" + "p/" * 1000, "<img src=x>" * 100),
        "reported: HTML would grow to over 4 times its size: 100 URLs",
    ),
    (
        "size-long-link-few-urls.md",
        fm("title: t\nlink: https://example.com/" + "p/" * 1000, "<img src=x>" * 20),
        "served",
    ),
    # values
    ("value-title-html.md", fm("title: '<script>alert(\"t\")</script><b>bold</b>'"), "served"),
    ("value-title-control.md", fm('title: "bell\\a esc\\e[31m nul\\0 del\\x7f end"'), "served"),
    (
        "value-names-slash-percent.md",
        fm("title: t\ncategories: [a/b, 100%, '%2F']\ntags: [c/d]"),
        "served",
    ),
    ("value-names-dots.md", fm("title: t\ncategories: ['..', '.', ok]\nauthor: '..'"), "served"),
    ("value-names-emoji.md", fm("title: 🎉 party\ncategories: [😀, 表情]\nauthor: 🐱"), "served"),
    ("value-author-html.md", fm("title: t\nauthor: '<img src=x onerror=alert(1)>'"), "served"),
    (
        "value-rtl-and-bidi.md",
        fm('title: "abc\\u202Edcba\\u202C عربي"\ncategories: [عربي]'),
        "served",
    ),
    (
        "value-image-port-past-65535.md",
        fm("title: t\nheadimg: 'http://a:99999999/x.jpg'"),
        "served",
    ),
    (
        "value-image-port-0.md",
        fm("title: t\nlink: 'http://a:0/'\nheadimg: 'http://a:0/x.jpg'"),
        "served",
    ),
    ("value-date-year-1.md", fm("title: t\ndate: 0001-01-01"), "served"),
    ("value-date-year-9999.md", fm("title: t\ndate: 9999-12-31T23:59:59Z"), "served"),
    ("value-date-garbage.md", fm("title: t\ndate: next tuesday-ish"), "served"),
    (
        "value-link-javascript.md",
        fm("title: t\nlink: 'javascript:alert(1)'\nheadimg: 'javascript:alert(2)'"),
        "served",
    ),
    ("value-body-xss.md", fm("title: xss body", XSS_BODY), "served"),
    ("value-title-number.md", fm("title: 0x1F"), "served"),
    ("value-title-bool.md", fm("title: yes"), "served"),
    ("value-title-null.md", fm("title: ~", "<p>The text gives the title.</p>"), "served"),
    ("value-categories-mapping.md", fm("title: t\ncategories: {a: b}"), "reported: categories"),
    ("value-author-nested.md", fm("title: t\nauthor: [[a, b]]"), "reported: author"),
    ("value-tags-nested.md", fm("title: t\ntags: [[a]]"), "reported: tags"),
    ("value-id-html.md", fm("title: t\nid: '<b>id</b>'"), "served"),
    ("value-draft.md", fm("title: t\ndraft: true"), "draft"),
    ("value-unpublished.md", fm("title: t\npublished: false"), "draft"),
    # cost: bodies some parser on the way would spend far more than linear time on (the old
    # sanitiser's regexes and Python-Markdown took seconds to days over these, issue 17)
    ("cost-html-unclosed-img.md", fm("title: t", "<p>" + "<img " * 8000), "served"),
    ("cost-html-unclosed-lazy-img.md", fm("title: t", "<p>" + "<img data-src=" * 3000), "served"),
    ("cost-html-unclosed-iframe.md", fm("title: t", "<p>" + "<iframe " * 5000), "served"),
    ("cost-html-unclosed-a.md", fm("title: t", "<p>" + "<a " * 13000), "served"),
    ("cost-html-unclosed-quote.md", fm("title: t", "<p>" + '<a title="' * 4000), "served"),
    (
        "cost-html-attribute-flood.md",
        fm("title: t", "<p " + " ".join(f"a{i}" for i in range(8000)) + ">x</p>"),
        "served",
    ),
    (
        "cost-html-misnested.md",
        fm("title: t", "".join(f"<div><b x={i}></i></div>y" for i in range(2000))),
        "served",
    ),
    ("cost-html-table-foster.md", fm("title: t", "<table>" + "<b>x</b>" * 6000), "served"),
    ("cost-html-ampersands.md", fm("title: t", "<p>" + "&" * 40_000), "served"),
    ("cost-html-lazy-only.md", fm("title: lazy", '<p><img data-src="/pic.png"></p>'), "served"),
    ("cost-md-brackets.md", fm("title: t", "x" + "[" * 8000), "served"),
    ("cost-md-image-brackets.md", fm("title: t", "x" + "![" * 8000), "served"),
    ("cost-md-open-links.md", fm("title: t", "x" + "[a](" * 5000), "served"),
    (
        "cost-md-footnote-refs.md",
        fm("title: t", "[^a]: note\n\nx" + "[^a]" * 10_000),
        "reported: Markdown renders to over 10 times its size",
    ),
    (
        "cost-yaml-long-list.md",
        fm("title: t\nx: [" + ",".join(["1"] * 10_001) + "]"),
        "reported: front matter expands to over 10000 values",
    ),
]


def main() -> None:
    for old in HERE.glob("*.md"):
        old.unlink()
    lines = ["file\texpected"]
    for name, data, expected in CASES:
        (HERE / name).write_bytes(data)
        lines.append(f"{name}\t{expected}")
    (HERE / "MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
