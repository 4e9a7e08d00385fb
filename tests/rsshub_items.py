"""The bodies of RSSHub's test items (DIYgod/RSSHub lib/routes/test/index.ts) that content
rules are checked on: one copy for the parameter replay and the content-rule tests (and, for
the multimedia item, what feedsvc serves of it, element by element)."""

COMPLICATED_0 = """<a href="/DIYgod/RSSHub"></a>
<img src="/DIYgod/RSSHub.jpg">
<script>alert(1);</script>
<a href="http://mock.com/DIYgod/RSSHub"></a>
<img src="/DIYgod/RSSHub.jpg" data-src="/DIYgod/RSSHub0.jpg">
<img data-src="/DIYgod/RSSHub.jpg">
<img data-mock="/DIYgod/RSSHub.png">
<img mock="/DIYgod/RSSHub.gif">
<img src="http://mock.com/DIYgod/DIYgod/RSSHub">
<img src="/DIYgod/RSSHub.jpg" onclick="alert(1);" onerror="alert(1);" onload="alert(1);">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">"""
COMPLICATED_1 = """<a href="/DIYgod/RSSHub"></a>
<img src="/DIYgod/RSSHub.jpg">"""
COMPLICATED_2 = """<a href="/DIYgod/RSSHub"></a>
<img src="/DIYgod/RSSHub.jpg">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">"""
# /test/multimedia's first item element by element, beside what feedsvc serves of each (links
# made absolute against the item's, images without a referrer, the frame a link to it:
# test_rsshub.py says where that differs from RSSHub).
MULTIMEDIA_0_ELEMENTS = [
    (
        '<img src="/DIYgod/RSSHub.jpg">',
        '<img src="https://mock.com/DIYgod/RSSHub.jpg" referrerpolicy="no-referrer">',
    ),
    (
        '<video src="/DIYgod/RSSHub.mp4"></video>',
        '<video src="https://mock.com/DIYgod/RSSHub.mp4"></video>',
    ),
    ('<video poster="/DIYgod/RSSHub.jpg">', '<video poster="https://mock.com/DIYgod/RSSHub.jpg">'),
    (
        '<source src="/DIYgod/RSSHub.mp4" type="video/mp4">',
        '<source src="https://mock.com/DIYgod/RSSHub.mp4" type="video/mp4">',
    ),
    (
        '<source src="/DIYgod/RSSHub.webm" type="video/webm">',
        '<source src="https://mock.com/DIYgod/RSSHub.webm" type="video/webm">',
    ),
    ("</video>", "</video>"),
    (
        '<audio src="/DIYgod/RSSHub.mp3"></audio>',
        '<audio src="https://mock.com/DIYgod/RSSHub.mp3"></audio>',
    ),
    (
        '<iframe src="/DIYgod/RSSHub.html"></iframe>',
        '<p><a href="https://mock.com/DIYgod/RSSHub.html" rel="noopener noreferrer nofollow">'
        "https://mock.com/DIYgod/RSSHub.html</a></p>",
    ),
]
MULTIMEDIA_0 = "\n".join(given for given, _served in MULTIMEDIA_0_ELEMENTS)
SERVED_MULTIMEDIA_0 = "\n".join(served for _given, served in MULTIMEDIA_0_ELEMENTS)
MULTIMEDIA_1 = """<img src="/DIYgod/RSSHub.jpg">
<video src="/DIYgod/RSSHub.mp4"></video>"""

# What RSSHub's test expects of /test/complicated's first two items and /test/multimedia's
# first, verbatim (feedsvc serves the multimedia one as it is).
