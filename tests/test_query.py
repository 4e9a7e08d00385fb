"""Query parameters on every feed URL, end to end against a real server on SQLite and on
PostgreSQL: RSSHub's filters (RE2), filter_time, limit, brief, OpenCC both ways, full-text
search (Chinese substrings, from the index), the search feed and page, validators and
caching of filtered documents, languages, tombstones, and a flood of distinct filtered URLs
that must not take memory or cached feeds with it. (Bad values, each a 400 with one line:
test_http_rules.py.)"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any
from urllib.parse import quote

import feedparser
import pytest
import requests

from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import wait_for

JA = "---\ntitle: 東京の天気予報\nlang: ja\ncategories:\n - 国際\nauthor: 気象係\ndate: Mon, 01 Mar 2021 09:00:00 +0900\n---\n<p>明日は晴れ。</p>\n"
TRADITIONAL = "---\ntitle: 臺灣鐵路時刻表更新\ncategories:\n - 國際\nauthor: 編輯部\ndate: Tue, 02 Mar 2021 10:00:00 +0800\n---\n<p>鐵路局發布新時刻表，<b>請旅客注意</b>。</p>\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_db_url, serve_module):
    seeds = copy_corpus(tmp_path_factory.mktemp("query") / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    (seeds / "ja.md").write_text(JA)
    (seeds / "zh-hant.md").write_text(TRADITIONAL)
    (seeds / "stays.md").write_text(
        "---\ntitle: 留下的条目\ncategories:\n - 国际\ndate: Wed, 03 Mar 2021 09:00:00 +0800\n---\n<p>y</p>\n"
    )
    (seeds / "doomed.md").write_text(
        "---\ntitle: 将被删除的条目\ncategories:\n - 国际\ndate: Wed, 03 Mar 2021 10:00:00 +0800\n---\n<p>x</p>\n"
    )
    settings = {"FEEDSVC_LANGUAGE": "zh-CN", "FEEDSVC_DELETE_GRACE": "0", "FEEDSVC_WORKERS": "1"}
    yield serve_module(seeds, module_db_url, **settings)
    serve_module.stop_all()  # (before the next database's server starts)


def get(server, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=30)


def entries(server, path: str) -> list[Any]:
    response = get(server, path)
    assert response.status_code == 200, (path, response.text)
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, (path, parsed.bozo_exception)
    found: list[Any] = parsed.entries
    return found


def q(text: str) -> str:
    return quote(text, safe="")


def test_filters_keep_and_drop_by_field(server):
    everything = entries(server, "/feeds/all.atom?limit=100")
    xiaomi = entries(server, f"/feeds/all.atom?limit=100&filter={q('小米')}")
    assert xiaomi and all("小米" in e.title or "小米" in e.content[0].value for e in xiaomi)
    titled = entries(server, f"/feeds/all.rss?limit=100&filter_title={q('小米')}")
    assert titled and all("小米" in e.title for e in titled)
    dropped = entries(server, f"/feeds/all.atom?limit=100&filterout={q('小米')}")
    assert len(dropped) + len(xiaomi) == len(everything)
    untitled = entries(server, f"/feeds/all.atom?limit=100&filterout_title={q('小米')}")
    assert not any("小米" in e.title for e in untitled)
    by_author = entries(server, f"/feeds/all.atom?limit=100&filter_author={q('^気象係$')}")
    assert [e.title for e in by_author] == ["東京の天気予報"]
    by_category = entries(server, f"/feeds/all.atom?limit=100&filter_category={q('國際')}")
    assert [e.title for e in by_category] == ["臺灣鐵路時刻表更新"]
    in_body = entries(server, f"/feeds/all.atom?limit=100&filter_description={q('晴れ')}")
    assert [e.title for e in in_body] == ["東京の天気予報"]
    not_author = entries(server, f"/feeds/all.atom?limit=100&filterout_author={q('気象係')}")
    assert "東京の天気予報" not in {e.title for e in not_author}
    no_category = entries(server, f"/feeds/all.atom?limit=100&filterout_category={q('國際')}")
    assert len(no_category) == len(everything) - 1
    no_body = entries(server, f"/feeds/all.atom?limit=100&filterout_description={q('晴れ')}")
    assert len(no_body) == len(everything) - 1


def test_case_sensitivity_and_time_window(server):
    sensitive = entries(server, "/feeds/all.atom?limit=100&filter_title=godot")
    insensitive = entries(
        server, "/feeds/all.atom?limit=100&filter_title=godot&filter_case_sensitive=false"
    )
    assert sensitive == [] and insensitive and all("Godot" in e.title for e in insensitive)
    recent = entries(server, "/feeds/all.atom?limit=100&filter_time=86400")
    # the corpus is dated years ago, but undated items take the time they were first stored
    assert len(recent) < len(entries(server, "/feeds/all.atom?limit=100"))
    response = get(server, "/feeds/all.json?limit=100&filter_time=86400")
    stated = [item for item in response.json()["items"] if item["date_published"] < "2023"]
    assert stated == []
    # links carry the window as asked: the bytes depend on the entries shown, not the second
    assert "filter_time=86400" in response.json()["feed_url"]


def test_limit_and_brief(server):
    assert len(entries(server, f"/feeds/all.atom?limit=2&filter={q('.')}")) == 2
    document = get(server, "/feeds/all.json?limit=5&brief=100").json()
    for item in document["items"]:  # RSSHub's: <p>, the text cut to 100 characters, …, </p>
        text = item["content_html"].removeprefix("<p>").removesuffix("</p>")
        assert item["content_html"] == f"<p>{text}</p>" and "<" not in text
        assert len(text) <= 100 or (len(text) == 101 and text.endswith("…"))


def test_opencc_converts_both_ways_text_only(server):
    traditional = get(server, f"/feeds/all.json?limit=100&opencc=s2t&filter={q('小米')}").json()
    titles = [item["title"] for item in traditional["items"]]
    assert any("小米汽車" in title for title in titles)
    assert all("<" not in title for title in titles)
    simplified = get(server, f"/feeds/all.json?limit=100&opencc=t2s&filter={q('臺灣|台湾')}")
    item = simplified.json()["items"][0]
    assert item["title"] == "台湾铁路时刻表更新"
    assert "<b>请旅客注意</b>" in item["content_html"]  # markup untouched, text converted


def test_search_finds_chinese_substrings_from_the_index(server):
    found = entries(server, f"/feeds/all.atom?limit=100&q={q('量产')}")  # two characters
    assert found and all("量产" in e.title or "量产" in e.content[0].value for e in found)
    longer = entries(server, f"/feeds/search.atom?limit=100&q={q('小米汽车 量产')}")
    assert longer and set(e.title for e in longer) <= set(e.title for e in found)
    assert entries(server, f"/feeds/search.rss?q={q('不存在的词语组合')}") == []
    scoped = entries(server, f"/feeds/categories/{q('国際')}.atom?q={q('天気')}")
    assert [e.title for e in scoped] == ["東京の天気予報"]
    assert get(server, "/feeds/search.atom").status_code == 400
    page = get(server, f"/?q={q('量产')}")
    assert page.status_code == 200 and "Entries with “量产”" in page.text


def test_a_filtered_document_has_its_own_validators_and_links(server):
    path = f"/feeds/all.atom?limit=2&filter={q('小米|Godot')}"
    first = get(server, path, **{"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    etag = first.headers["ETag"]
    assert etag != get(server, "/feeds/all.atom?limit=2").headers["ETag"]
    assert get(server, path, **{"If-None-Match": etag}).status_code == 304
    # the same query spelled otherwise is the same document
    respelled = f"/feeds/all.atom?filter={q('小米|Godot')}&utm_source=x&limit=2"
    assert get(server, respelled).headers["ETag"] == etag
    assert f"filter={q('小米|Godot')}" in first.headers["Link"]
    parsed = feedparser.parse(first.content)
    links = {link.rel: link.href for link in parsed.feed.links}
    assert "filter=" in links["self"] and "filter=" in links["next"] and "page=2" in links["next"]


def test_languages_are_declared(server):
    atom = get(server, "/feeds/all.atom?limit=100").text
    assert re.search(r'<feed[^>]+xml:lang="zh-CN"', atom)
    assert re.search(r'<entry xml:lang="ja">', atom)
    assert "<language>zh-CN</language>" in get(server, "/feeds/all.rss").text
    document = get(server, "/feeds/all.json?limit=100").json()
    assert document["language"] == "zh-CN"
    assert [i["language"] for i in document["items"] if "language" in i] == ["ja"]
    japanese = next(i for i in document["items"] if i.get("language") == "ja")
    page = get(server, "/entries/" + japanese["id"].removeprefix("urn:uuid:")).text
    assert '<html lang="zh-CN">' in page and '<article lang="ja">' in page


def test_a_deleted_file_leaves_a_tombstone_in_its_atom_feeds(server):
    path = f"/feeds/categories/{q('国际')}.atom"
    before = get(server, path).text
    doomed = next(e for e in feedparser.parse(before).entries if e.title == "将被删除的条目")
    os.remove(server.seeds / "doomed.md")
    wait_for(lambda: "deleted-entry" in get(server, path).text, timeout=30)
    atom = get(server, path).text
    assert f'ref="{doomed.id}"' in atom and "tombstones/1.0" in atom
    assert feedparser.parse(atom).bozo == 0
    assert "将被删除的条目" not in get(server, f"/feeds/categories/{q('国际')}.rss").text
    assert doomed.id not in json.dumps(get(server, f"/feeds/categories/{q('国际')}.json").json())


def test_a_flood_of_filtered_urls_stays_within_its_budget(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    budget = 1 << 20
    settings = {"FEEDSVC_CACHE_BYTES": str(budget), "FEEDSVC_QUERY_RENDERS": "1"}
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", FEEDSVC_WORKERS="1", **settings)
    plain = get(server, "/feeds/all.atom")
    etag = plain.headers["ETag"]
    statuses: list[int] = []
    cached: list[int] = []

    def flood(start: int) -> None:
        with requests.Session() as session:
            for number in range(start, start + 60):
                url = f"{server.url}/feeds/all.atom?limit=100&filterout=zz{number}"
                statuses.append(session.get(url, timeout=60).status_code)

    def reader() -> None:
        with requests.Session() as session:
            for _ in range(40):
                response = session.get(
                    server.url + "/feeds/all.atom",
                    headers={"If-None-Match": etag},
                    timeout=60,
                )
                cached.append(response.status_code)

    threads = [threading.Thread(target=flood, args=(n * 60,)) for n in range(6)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 429} and 200 in statuses
    assert cached == [304] * 40  # cached documents and 304s are never refused
    metrics = get(server, "/metrics").text
    held = float(re.search(r"^feedsvc_cache_bytes (\S+)", metrics, re.M).group(1))
    assert 0 < held <= budget
    assert get(server, "/feeds/all.atom").content == plain.content
