"""What the commands say when they fail, and what they log: one line naming the cause, no
password, no traceback, no line forged by a file name; and an export whose long names still
fit the file system and stay linked."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET

import pytest
import requests
from sqlalchemy.engine import make_url

from feedsvc.logs import TextLines
from feedsvc.store.engine import failure_message, hide_password
from tests.helpers import PG_URL, require
from tests.server import run

SECRET = "pw-7f3c9e1d"  # unique: found in no message by chance
UNREACHABLE = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/db"  # port 1 refuses at once
SITE = "https://static.example"


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The single stderr line of a failed command, after the checks every failure passes."""
    output = result.stdout + result.stderr
    assert SECRET not in output
    assert "Traceback" not in output
    assert result.returncode == status, output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("feedsvc: error: ")
    return lines[0]


def command_args(command: str, tmp_path: Path) -> list[str]:
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    return [
        command,
        "--seeds",
        str(seeds),
        *([str(tmp_path / "out")] if command == "export" else []),
    ]


@pytest.mark.parametrize("command", ["scan", "check", "export"])
@pytest.mark.parametrize("source", ["--db", "FEEDSVC_DB"])
def test_an_unreachable_database_is_one_line_without_the_password(tmp_path, command, source):
    args = command_args(command, tmp_path)
    if source == "--db":
        result = run(*args, "--db", UNREACHABLE, cwd=tmp_path)
    else:
        result = run(*args, cwd=tmp_path, env={"FEEDSVC_DB": UNREACHABLE})
    line = one_line_error(result, 1)
    assert line.startswith(
        "feedsvc: error: cannot reach the database at postgresql+psycopg://u:***@127.0.0.1:1/db: "
    )
    assert "Connection refused" in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql+psycopg://u:{SECRET}@127.0.0.1:abc/db", "port is not a number"),
        (f"postgresql+psycopg://u:{SECRET}@[::1/db", "port is not a number"),
        (f"{SECRET} is no URL", "cannot be parsed"),
        (f"mysql://u:{SECRET}@h/db", "got 'mysql://u:***@h/db'"),
        (f"postgresql+nodriver://u:{SECRET}@h/db", "no database driver for"),
        (f"postgresql+psycopg2://u:{SECRET}@h/db", "No module named 'psycopg2'"),
    ],
)
def test_a_bad_database_url_is_one_line_without_the_password(tmp_path, url, says):
    for command in ("scan", "check", "export"):
        line = one_line_error(run(*command_args(command, tmp_path), "--db", url, cwd=tmp_path), 2)
        assert line.startswith("feedsvc: error: --db: ")
        assert says in line


def test_a_driver_message_quoting_the_password_is_masked(tmp_path):
    """The server names the database it lacks: here that name is the password."""
    require(bool(PG_URL), "PostgreSQL (FEEDSVC_TEST_PG)")
    assert PG_URL
    url = make_url(PG_URL).set(password=SECRET, database=f"no-{SECRET}")
    result = run(
        *command_args("scan", tmp_path),
        "--db",
        url.render_as_string(hide_password=False),
        cwd=tmp_path,
    )
    line = one_line_error(result, 1)
    assert 'database "no-***" does not exist' in line


def test_hide_password_masks_the_url_and_the_password_alone():
    text = f"bad {UNREACHABLE} and password={SECRET!r}"
    assert hide_password(text, UNREACHABLE) == (
        "bad postgresql+psycopg://u:***@127.0.0.1:1/db and password='***'"
    )
    assert failure_message("sqlite:///x.db", OSError("a\nb"), opening=True) == (
        "cannot open the database at sqlite:///x.db: a; b"
    )


# -- log lines and output lines no file name can forge --------------------------------------

FORGED = "WARNING fake.md"
BAD_SEED = "---\ntitle: [oops\n---\nbody\n"
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


@pytest.fixture
def forging_seeds(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / f"a\n{FORGED}").write_text(BAD_SEED)
    (seeds / "b\r\x1b[2Kc.md").write_text(BAD_SEED)
    (seeds / "c\u202egnp.md").write_text(BAD_SEED)  # shown as c, then 'dm.png' reversed
    (seeds / "d\u2066x\u2069\u200b.md").write_text(BAD_SEED)
    return seeds


def test_a_newline_in_a_file_name_forges_no_log_line(tmp_path, forging_seeds):
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    result = run("scan", "--seeds", str(forging_seeds), "--db", db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    logged = result.stderr.splitlines()
    assert logged and all(RECORD.match(line) for line in logged), logged
    assert any(f"a\\n{FORGED}: invalid YAML" in line for line in logged)
    assert any("b\\r\\x1b[2Kc.md: invalid YAML" in line for line in logged)
    printed = result.stdout.splitlines()
    assert f"a\\n{FORGED}: invalid YAML front matter" in result.stdout
    assert not any(line.startswith(FORGED) for line in printed)
    assert "\r" not in result.stdout + result.stderr and "\x1b" not in result.stdout


def test_a_newline_in_a_file_name_forges_no_check_line(tmp_path, forging_seeds):
    result = run("check", "--seeds", str(forging_seeds), cwd=tmp_path)
    assert result.returncode == 1
    printed = result.stdout.splitlines()
    assert len(printed) == 4
    assert printed[0].startswith(f"a\\n{FORGED}: invalid YAML front matter")
    assert printed[1].startswith("b\\r\\x1b[2Kc.md: invalid YAML front matter")
    assert printed[2].startswith("c\\u202egnp.md: invalid YAML front matter")
    assert printed[3].startswith("d\\u2066x\\u2069\\u200b.md: invalid YAML front matter")


def test_a_newline_in_a_requested_path_forges_no_access_line(tmp_path, forging_seeds, serve):
    server = serve(forging_seeds, f"sqlite:///{tmp_path}/db.sqlite3")
    assert requests.get(f"{server.url}/nope%0A{FORGED}", timeout=10).status_code == 404
    server.stop()
    logged = server.log.read_text().splitlines()
    access = re.compile(r'^\S+ - - \[[^]]+\] "')
    assert all(RECORD.match(line) or access.match(line) for line in logged), logged
    assert any(f"/nope\\n{FORGED} HTTP/1.1" in line for line in logged)


def test_json_log_lines_stay_one_line(tmp_path, forging_seeds):
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    env = {"FEEDSVC_LOG_FORMAT": "json"}
    result = run("scan", "--seeds", str(forging_seeds), "--db", db, cwd=tmp_path, env=env)
    records = [json.loads(line) for line in result.stderr.split("\n") if line]
    paths = {record.get("path") for record in records}
    assert {f"a\n{FORGED}", "b\r\x1b[2Kc.md"} <= paths


def test_a_traceback_is_indented_under_its_line():
    formatter = TextLines("%(levelname)s %(message)s")
    try:
        raise ValueError(f"x\n{FORGED}")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, "", 0, "failed\u2028%s", ("\x85",), None)
        record.exc_info = sys.exc_info()
    first, *rest = formatter.format(record).split("\n")
    assert first == "ERROR failed\\u2028\\x85"
    assert rest and all(line.startswith("    ") for line in rest)


# -- an export with names too long for file names ------------------------------------------

LONG_AUTHOR = "作" * 200  # 600 bytes of UTF-8: over NAME_MAX, yet a valid name
# Five levels, two of them over NAME_MAX (600 and 298 bytes), whose feed URL stays within
# the 3,072 bytes a hierarchy's may have (2,928 percent-encoded).
DEEP = ["分类" * 100, "新闻", "孙" * 99 + "%", "子" * 20, "深"]


def _seed(title: str, author: str, categories: list[str], tags: list[str]) -> str:
    listed = "".join(f"\n - '{name}'" for name in categories)
    tagged = "".join(f"\n - '{name}'" for name in tags)
    return (
        f"---\ntitle: '{title}'\nauthor: '{author}'\ncategories:{listed}\ntags:{tagged}\n"
        "date: Tue, 19 Oct 2021 09:20:00 GMT\n---\n\n<p>body</p>\n"
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(value for _name, value in attrs if value)


def _xml_strings(root: ET.Element) -> Iterator[str]:
    for element in root.iter():
        yield from element.attrib.values()
        if element.text:
            yield element.text.strip()


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def document_urls(path: Path) -> list[str]:
    """The strings of a document that can be links, parsed as its format is: attribute
    values (HTML, XML), element texts (XML), every string (JSON)."""
    data = path.read_bytes()
    if path.suffix == ".json":
        return list(_json_strings(json.loads(data)))
    if path.suffix in (".atom", ".rss") or path.name == "opml":
        found = list(_xml_strings(ET.fromstring(data)))
        stylesheet = re.search(rb'<\?xml-stylesheet href="([^"]+)"', data)
        return found + ([stylesheet[1].decode()] if stylesheet else [])
    parser = _Links()
    parser.feed(data.decode())
    return parser.urls


def served_file(outdir: Path, url: str) -> Path:
    """The file a static server answers a site URL with: the decoded path, index.html for
    a directory."""
    path = unquote(urlsplit(url).path)
    found = outdir / path.lstrip("/")
    return found / "index.html" if found.is_dir() else found


def test_export_fits_long_names_and_stays_linked(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "long.md").write_text(_seed("长名", LONG_AUTHOR, DEEP, ["签" * 200, "a/b"]))
    (seeds / "short.md").write_text(_seed("短名", "作者", DEEP[:2], ["100%"]))
    out = tmp_path / "site"
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    result = run(
        "export",
        str(out),
        "--seeds",
        str(seeds),
        "--db",
        db,
        cwd=tmp_path,
        env={"FEEDSVC_BASE_URL": SITE},
    )
    assert result.returncode == 0, result.stderr
    files = [path for path in out.rglob("*") if path.is_file()]
    assert all(
        len(os.fsencode(part)) <= 255 for path in files for part in path.relative_to(out).parts
    )
    documents = [path for path in files if path.parent.name != "static"]
    # 11 scopes: everything, 5 levels of categories, 2 authors, 3 tags
    assert len([path for path in documents if path.suffix in (".atom", ".rss", ".json")]) == 33
    shortened = [path.name for path in (out / "authors").iterdir() if "~" in path.name]
    assert len(shortened) == 1 and shortened[0].startswith("作" * 40)
    checked = 0
    for document in documents:
        for url in document_urls(document):
            if url == SITE or url.startswith(SITE + "/"):
                target = served_file(out, url)
                assert target.is_file(), f"{document.relative_to(out)} links {url}"
                checked += 1
    assert checked > 100
