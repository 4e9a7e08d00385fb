"""`feedsvc export` where two documents' paths collide on a file system (a file where the
other needs a directory): real seed files, the real command, and what it writes compared
byte for byte with what the server answers for the same URLs."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote

from feedsvc.app import build, create_app
from feedsvc.config import Settings
from feedsvc.model import Format
from feedsvc.routes import OPML, STATIC, entry_path, feed_path, page_path
from feedsvc.store import Store
from tests.server import asgi_client, run

SITE = "https://static.example"
# Seed file -> its one category hierarchy. x's Atom feed is the file feeds/categories/x.atom,
# where x.atom › y needs a directory; z's page is categories/z/index.html, where
# z › index.html needs one. w.atom.tmp › v collides with nothing, though its directory is
# where an export used to write w's Atom feed before moving it into place.
COLLIDING = {"x.md": ["x"], "z.md": ["z"], "w.md": ["w"]}
BESIDE = {"xy.md": ["x.atom", "y"], "zi.md": ["z", "index.html"], "wv.md": ["w.atom.tmp", "v"]}
EXIT_INCOMPLETE = 3


def skipped_lines(out: Path) -> list[str]:
    """What the export says of each document it cannot place, in the order it says it."""
    page = f"{out}/categories/z/index.html"
    feed = f"{out}/feeds/categories/x.atom"
    lines = [
        f"feedsvc: warning: skipped the page of category z › index.html: {page}/index.html"
        f" needs {page} as a directory, which is the page of category z"
    ]
    for fmt, name in (("atom", "Atom"), ("json", "JSON"), ("rss", "RSS")):
        lines.append(
            f"feedsvc: warning: skipped the {name} feed of category x.atom › y: {feed}/y.{fmt}"
            f" needs {feed} as a directory, which is the Atom feed of category x"
        )
    return lines


def write_seeds(seeds: Path, hierarchies: dict[str, list[str]]) -> None:
    seeds.mkdir(exist_ok=True)
    for name, categories in hierarchies.items():
        listed = "".join(f"\n - '{category}'" for category in categories)
        (seeds / name).write_text(
            f"---\ntitle: '{name}'\nauthor: '作者'\ncategories:{listed}\n"
            f"date: Tue, 19 Oct 2021 09:20:00 GMT\n---\n\n<p>body of {name}</p>\n"
        )


def export(tmp_path: Path, out: Path, *extra: str, **env: str) -> tuple[int, list[str]]:
    """`feedsvc export` of tmp_path/seeds: its exit status and its stderr's lines."""
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    command = ("export", str(out), "--seeds", str(tmp_path / "seeds"), "--db", db, *extra)
    result = run(*command, cwd=tmp_path, env={"FEEDSVC_BASE_URL": SITE, **env})
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines()


def served(tmp_path: Path) -> dict[str, bytes]:
    """Every document the server answers for the exported site (first pages at the default
    limit, as exported), by the file a static server would answer its URL with."""
    settings = Settings(
        seeds=tmp_path / "seeds", db=f"sqlite:///{tmp_path}/db.sqlite3", base_url=SITE
    )
    store = Store(settings.db)
    scopes = [summary.scope for summary in store.scope_summaries() if summary.listed]
    ids = [entry.id for entry in store.all_entries()]
    store.close()
    static = files("feedsvc.web").joinpath("static").iterdir()
    fixed = [OPML, *(f"{STATIC}/{item.name}" for item in static)]
    feeds = [feed_path(scope, fmt) for scope in scopes for fmt in Format]
    pages = [page_path(scope) for scope in scopes] + [entry_path(i) for i in ids]
    files_of = {url: unquote(url).lstrip("/") for url in fixed + feeds}
    files_of |= {url: (unquote(url).strip("/") + "/index.html").lstrip("/") for url in pages}
    parts = build(settings, follow=False)
    client = asgi_client(create_app(parts))
    documents = {}
    for url, file in files_of.items():
        response = client.get(url)
        assert response.status_code == 200, url
        documents[file] = response.get_data()
    parts.store.close()
    return documents


def tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out``, by its path there."""
    return {
        str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*") if path.is_file()
    }


def test_colliding_documents_are_skipped_and_everything_else_is_written(tmp_path):
    write_seeds(tmp_path / "seeds", COLLIDING | BESIDE)
    out = tmp_path / "site"
    status, stderr = export(tmp_path, out)
    assert status == EXIT_INCOMPLETE, stderr
    assert stderr[:-1] == skipped_lines(out)
    assert stderr[-1].startswith("feedsvc: warning: export incomplete: 4 documents skipped")
    expected = served(tmp_path)
    skipped = {
        "categories/z/index.html/index.html",
        *(f"feeds/categories/x.atom/y.{fmt.value}" for fmt in Format),
    }
    assert skipped < expected.keys()
    written = tree(out)
    assert written == {path: data for path, data in expected.items() if path not in skipped}
    # 10 scopes (the site, 8 categories, 1 author): 27 of 30 feeds, 9 of 10 pages; 6 entries
    assert len([path for path in written if not path.startswith("static/")]) == 27 + 9 + 6 + 1


def test_which_document_wins_does_not_depend_on_the_order_or_the_last_export(tmp_path):
    """The shallower path keeps its place whatever an earlier export left in the way, and
    whichever seed came first: the same tree as an export into a new directory."""
    out, fresh = tmp_path / "site", tmp_path / "fresh"
    write_seeds(tmp_path / "seeds", BESIDE)
    status, stderr = export(tmp_path, out)
    assert status == EXIT_INCOMPLETE and stderr[:-1] == skipped_lines(out)[:1], stderr
    assert (out / "feeds/categories/x.atom/y.atom").is_file()  # no category x yet
    write_seeds(tmp_path / "seeds", COLLIDING)
    status, stderr = export(tmp_path, out)
    assert status == EXIT_INCOMPLETE, stderr
    assert stderr[:-1] == skipped_lines(out)
    status, stderr = export(tmp_path, fresh, "--no-scan")
    assert status == EXIT_INCOMPLETE and stderr[:-1] == skipped_lines(fresh)
    assert tree(out) == tree(fresh)
    assert (out / "feeds/categories/x.atom").is_file()
    assert (out / "categories/z/index.html").is_file()

    (tmp_path / "seeds" / "x.md").unlink()  # and the deletion is over: x's feeds are gone
    status, stderr = export(tmp_path, out, FEEDSVC_DELETE_GRACE="0")
    assert status == EXIT_INCOMPLETE and len(stderr) == 2, stderr  # z › index.html's page
    assert (out / "feeds/categories/x.atom/y.atom").read_bytes() == served(tmp_path)[
        "feeds/categories/x.atom/y.atom"
    ]


def test_an_export_that_cannot_write_says_which_file_in_one_line(tmp_path):
    write_seeds(tmp_path / "seeds", {"x.md": ["x"]})
    out, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "feeds").symlink_to(elsewhere)
    assert export(tmp_path, out) == (
        1,
        [
            f"feedsvc: error: refusing to write the Atom feed of the site outside {out}:"
            f" {out}/feeds/all.atom is {elsewhere}/all.atom"
        ],
    )
    assert not any(elsewhere.iterdir())
    (tmp_path / "file").write_text("")
    assert export(tmp_path, tmp_path / "file", "--no-scan") == (
        1,
        [f"feedsvc: error: cannot make the directory {tmp_path}/file: File exists"],
    )


def test_a_temporary_name_planted_as_a_symlink_is_never_written_through(tmp_path):
    write_seeds(tmp_path / "seeds", {"x.md": ["x"]})
    out, victim = tmp_path / "site", tmp_path / "victim"
    (out / "feeds").mkdir(parents=True)
    victim.write_text("keep me")
    (out / "feeds" / ".all.atom~").symlink_to(victim)
    assert export(tmp_path, out)[0] == 0
    assert victim.read_text() == "keep me"
    assert not (out / "feeds" / "all.atom").is_symlink()
    assert (out / "feeds" / "all.atom").read_bytes() == served(tmp_path)["feeds/all.atom"]


def test_a_path_longer_than_the_system_takes_is_skipped(tmp_path):
    """16 levels of 180-character names (feed URLs within their limit, names not
    shortened) under an OUTDIR 1.2 KB long: the deepest documents cannot have their path;
    the rest is written."""
    levels = [f"{n:x}" * 180 for n in range(16)]
    write_seeds(tmp_path / "seeds", {"deep.md": levels})
    out = tmp_path.joinpath(*["o" * 200] * 6)
    status, stderr = export(tmp_path, out)
    assert status == EXIT_INCOMPLETE, stderr
    too_long = [line for line in stderr if "bytes a path may have" in line]
    assert too_long and len(too_long) == len(stderr) - 1, stderr
    assert all(line.startswith("feedsvc: warning: skipped ") for line in too_long)
    assert (out / "feeds" / "all.atom").is_file()
