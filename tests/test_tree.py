"""Hostile shapes of the seeds directory, on real files and real databases (SQLite and
PostgreSQL): a file or directory swapped for a symlink out of the tree after the walk saw
it, a chain of over a thousand nested directories, directories that cannot be listed, and a
file name that is not UTF-8 under a watching server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedsvc.model import Scope
from feedsvc.scan import Scanner
from feedsvc.seeds import (
    MAX_DIR_DEPTH,
    FileChanging,
    content_hash,
    parse_seed,
    read_seed,
    walk_seeds,
)
from feedsvc.store import Changes, Store, StoredEntry
from tests.helpers import SAMPLE_SEEDS, copy_corpus, require
from tests.server import EVENTS_ONLY, author_titles, server_status, wait_for

POST = "---\ntitle: {title}\nauthor: {author}\ndate: 2030-01-01T00:00:00Z\n---\n<p>{title}</p>\n"
BASE_URL = "http://feeds.example.test"
TOO_DEEP = f"nested more than {MAX_DIR_DEPTH} directories deep: its files are not read"
CHAIN = 1100


def post(title: str, author: str = "作者") -> str:
    return POST.format(title=title, author=author)


def decoy(path: Path, title: str, like: Path) -> Path:
    """A post titled ``title`` at ``path`` with the size and modification time of ``like``
    (the titles are as long): a decoy that the stat checks of a read cannot tell from it."""
    path.write_text(post(title))
    st = like.stat()
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return path


def titles(store: Store) -> set[str]:
    return {entry.title for entry in store.all_entries()}


@pytest.fixture
def chain():
    """Makes a chain of nested directories `d/d/…` one level at a time (os.makedirs and
    shutil.rmtree recurse per level and fail at this depth), and removes it afterwards."""
    made: list[tuple[Path, int]] = []

    def make(top: Path, depth: int) -> Path:
        path = top
        for _ in range(depth):
            path = path / "d"
            path.mkdir()
        made.append((top, depth))
        return path

    yield make
    for top, depth in made:
        for level in range(depth, 0, -1):
            directory = top.joinpath(*["d"] * level)
            for child in directory.iterdir():
                if not child.is_dir() or child.is_symlink():
                    child.unlink()
            directory.rmdir()


def cut_at_limit() -> str:
    """How a scan names the first directory of a chain that is too deep to list."""
    return "/".join(["d"] * (MAX_DIR_DEPTH + 1)) + "/"


def feedsvc(
    *args: str, cwd: Path, env: dict[str, str], unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; ``unprivileged``: in a user namespace of its own, where
    the process has no privileges over the files (as a service account would not), so that
    permissions bind even when the tests run as root."""
    prefix = ["unshare", "-U"] if unprivileged else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "feedsvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "FEEDSVC_LOG_LEVEL": "WARNING", **env},
        timeout=300,
    )


# -- a symlink swapped in between the walk and the read ----------------------------------


def test_a_file_swapped_for_a_symlink_out_of_the_tree_after_the_walk_is_never_read(tmp_path):
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "post.md").write_text(post("inside"))
    outside = decoy(tmp_path / "secret.md", "SECRET", root / "post.md")
    (seed,) = walk_seeds(root).files
    (root / "post.md").unlink()
    (root / "post.md").symlink_to(outside)
    with pytest.raises(FileChanging):
        read_seed(seed, 5 << 20)


def test_a_directory_swapped_for_a_symlink_out_of_the_tree_after_the_walk_is_never_read(
    tmp_path,
):
    root = tmp_path / "seeds"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "post.md").write_text(post("inside"))
    (tmp_path / "elsewhere").mkdir()
    decoy(tmp_path / "elsewhere" / "post.md", "SECRET", root / "sub" / "post.md")
    (seed,) = walk_seeds(root).files
    os.rename(root / "sub", tmp_path / "moved-away")
    (root / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileChanging):
        read_seed(seed, 5 << 20)


def test_symlinks_that_stay_inside_the_tree_are_still_read(tmp_path):
    root = tmp_path / "seeds"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text(post("real"))
    (root / "inner.md").symlink_to(root / "sub" / "a.md")
    (root / "alias").symlink_to("sub")  # listed first (sorted): its files are read through it
    listing = walk_seeds(root)
    assert [seed.rel for seed in listing.files] == ["alias/a.md", "inner.md"]
    assert listing.unlisted == ()
    for seed in listing.files:
        assert read_seed(seed, 5 << 20) == (root / "sub" / "a.md").read_bytes()


def test_a_scan_never_serves_a_file_swapped_in_from_outside(tmp_path, db_url, make_settings):
    """The race as a scan meets it: the walk saw b.md, then (while a.md is read) b.md is
    swapped for a symlink to a decoy of the same size and time, and later swapped back."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.md").write_text(post("first"))
    (seeds / "b.md").write_text(post("right"))
    wrong = decoy(tmp_path / "decoy.md", "WRONG", seeds / "b.md")
    store = Store(db_url)
    scanner = Scanner(store, make_settings(seeds, db_url))

    def swap(done: int, _total: int) -> None:
        if done == 1:  # a.md is read; b.md is next
            os.rename(seeds / "b.md", tmp_path / "b.md")
            (seeds / "b.md").symlink_to(wrong)

    scanner.scan(swap)
    assert "WRONG" not in titles(store)
    (seeds / "b.md").unlink()
    os.rename(tmp_path / "b.md", seeds / "b.md")  # back, with the stat the walk saw
    scanner.scan()
    assert titles(store) == {"first", "right"}
    store.close()


def test_an_entry_whose_file_became_a_symlink_out_of_the_tree_is_not_served_from_it(
    tmp_path, db_url, make_settings
):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "post.md").write_text(post("right"))
    wrong = decoy(tmp_path / "decoy.md", "WRONG", seeds / "post.md")
    store = Store(db_url)
    scanner = Scanner(store, make_settings(seeds, db_url))
    scanner.scan()
    (seeds / "post.md").unlink()
    (seeds / "post.md").symlink_to(wrong)
    named = scanner.scan(paths={"post.md"})  # as a filesystem event names it
    full = scanner.scan()
    assert named.missing == full.missing == 1  # gone from the tree, within its grace
    assert titles(store) == {"right"}
    assert scanner.scan(prune_now=True).removed == 1
    assert titles(store) == set()
    store.close()


# -- a chain of nested directories -----------------------------------------------------


def test_a_chain_of_1100_directories_is_one_reported_error(tmp_path, db_url, make_settings, chain):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "top.md").write_text(post("top"))
    bottom = chain(seeds, CHAIN)
    (bottom / "bottom.md").write_text(post("bottom"))
    shallow = seeds.joinpath(*["d"] * MAX_DIR_DEPTH)  # the deepest directory still listed
    (shallow / "shallow.md").write_text(post("shallow"))
    store = Store(db_url)
    scanner = Scanner(store, make_settings(seeds, db_url))
    first = scanner.scan()
    assert first.errors == [(cut_at_limit(), TOO_DEEP)]
    assert titles(store) == {"top", "shallow"}
    assert (cut_at_limit(), TOO_DEEP) in store.errors()
    again = scanner.scan()  # reported once, and kept in the store's errors while it lasts
    assert again.errors == [] and again.removed == 0
    assert (cut_at_limit(), TOO_DEEP) in store.errors()
    assert (store.last_scan() or {})["errors"] == 1
    store.close()

    env = {"FEEDSVC_BASE_URL": BASE_URL}
    checked = feedsvc("check", "--seeds", str(seeds), cwd=tmp_path, env=env)
    assert checked.returncode == 1
    assert checked.stdout == f"{cut_at_limit()}: {TOO_DEEP}\n"
    assert "Traceback" not in checked.stderr
    scanned = feedsvc("scan", "--seeds", str(seeds), "--db", db_url, cwd=tmp_path, env=env)
    assert scanned.returncode == 0, scanned.stderr
    assert "Traceback" not in scanned.stderr
    assert scanned.stdout.startswith("added 0, updated 0, removed 0, unchanged 2, errors 1 ")


def test_what_the_store_knows_beyond_the_depth_limit_is_kept(
    tmp_path, db_url, make_settings, chain
):
    """A store written when the walk still went deeper (an earlier feedsvc) serves a file
    below the limit: the walk cannot tell whether it is still there, so it stays served."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "top.md").write_text(post("top"))
    deep = chain(seeds, MAX_DIR_DEPTH + 3) / "deep.md"
    deep.write_text(post("deep"))
    rel = deep.relative_to(seeds).as_posix()
    settings = make_settings(seeds, db_url, delete_grace=0)
    store = Store(db_url)
    scanner = Scanner(store, settings)
    scanner.scan()
    data = deep.read_bytes()
    parsed = parse_seed(data, rel, settings.public_url, settings.tz)
    assert parsed.entry is not None
    stored = StoredEntry(parsed.entry, deep.stat().st_mtime_ns, len(data), content_hash(data))
    with store.transaction() as writer:
        writer.apply(Changes(upserts=[stored]), 0)
        writer.refresh_scopes()
    for report in (scanner.scan(prune_now=True), scanner.scan(paths={rel}, prune_now=True)):
        assert (report.removed, report.missing) == (0, 0)
    assert titles(store) == {"top", "deep"}
    assert [path for path, _reason in store.errors()] == [cut_at_limit()]
    store.close()


def test_a_server_on_a_chain_of_1100_directories_becomes_ready(tmp_path, chain, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    chain(seeds, CHAIN)
    server = serve(seeds, f"sqlite:///{tmp_path}/data/db.sqlite3")
    errors = server_status(server)["errors"]
    assert {"path": cut_at_limit(), "error": TOO_DEEP} in errors
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()


# -- directories that cannot be listed ---------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (0o000, "cannot list the directory: Permission denied"),
        (0o600, "cannot look at 'deeper' in it: Permission denied"),  # listed, not searchable
    ],
)
def test_a_directory_that_cannot_be_listed_is_reported_and_its_entries_kept(
    tmp_path, db_url, mode, reason
):
    require(
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-U", "true"]).returncode == 0,
        "a user namespace (unshare -U)",
    )
    seeds = tmp_path / "seeds"
    (seeds / "locked" / "deeper").mkdir(parents=True)
    (seeds / "open.md").write_text(post("open"))
    (seeds / "locked" / "inside.md").write_text(post("inside"))
    (seeds / "locked" / "deeper" / "more.md").write_text(post("more"))
    env = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_DELETE_GRACE": "0"}
    scan = ["scan", "--seeds", str(seeds), "--db", db_url]
    assert feedsvc(*scan, cwd=tmp_path, env=env).returncode == 0
    # an edit the scans cannot see while the directory is locked, read once it is not
    (seeds / "locked" / "inside.md").write_text(post("inside, edited"))

    (seeds / "locked").chmod(mode)
    try:
        first = feedsvc(*scan, cwd=tmp_path, env=env, unprivileged=True)
        second = feedsvc(*scan, cwd=tmp_path, env=env, unprivileged=True)
        checked = feedsvc("check", "--seeds", str(seeds), cwd=tmp_path, env=env, unprivileged=True)
    finally:
        (seeds / "locked").chmod(0o755)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"locked/: {reason}",
        "added 0, updated 0, removed 0, unchanged 1, errors 1 (1 new)",
    ]
    assert second.stdout.splitlines() == [
        "added 0, updated 0, removed 0, unchanged 1, errors 1 (0 new)"
    ]
    assert checked.returncode == 1
    assert checked.stdout == f"locked/: {reason}\n"
    store = Store(db_url)
    try:
        assert titles(store) == {"open", "inside", "more"}
        assert store.errors() == [("locked/", reason)]
        assert store.tombstones(Scope.all(), 10) == []
        summary = store.last_scan() or {}
        assert (summary["removed"], summary["missing"], summary["errors"]) == (0, 0, 1)
    finally:
        store.close()

    readable = feedsvc(*scan, cwd=tmp_path, env=env)
    assert readable.stdout.splitlines() == [
        "added 0, updated 1, removed 0, unchanged 2, errors 0 (0 new)"
    ]
    store = Store(db_url)
    try:
        assert titles(store) == {"open", "inside, edited", "more"}
        assert store.errors() == []
    finally:
        store.close()


# -- a file name that is not UTF-8, under a watching server ------------------------------


def test_a_name_that_is_not_utf8_does_not_end_filesystem_events(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(
        seeds, f"sqlite:///{tmp_path}/data/db.sqlite3", FEEDSVC_WORKERS="1", **EVENTS_ONLY
    )

    bad = os.path.join(os.fsencode(seeds), b"caf\xe9.md")
    shown = {"path": "caf\\xe9.md", "error": "file name is not valid UTF-8"}
    wait_for(lambda: server_status(server)["watch"] == "events")
    with open(bad, "wb") as handle:  # watchfiles fails on the event for this name
        handle.write(post("bad name").encode())
    wait_for(lambda: shown in server_status(server)["errors"])  # by the scan once events are back
    assert server_status(server)["watch"] == "events"
    (seeds / "later.md").write_text(post("later", "later-author"))
    wait_for(lambda: author_titles(server, "later-author") == ["later"])

    os.unlink(bad)  # fails it once more: back again, and the file is gone from the errors
    wait_for(lambda: shown not in server_status(server)["errors"])
    (seeds / "last.md").write_text(post("last", "last-author"))
    wait_for(lambda: author_titles(server, "last-author") == ["last"])
    assert server_status(server)["watch"] == "events"
    assert server.stop() == 0
    log = server.log.read_text()
    assert log.count("filesystem events are back") == 2
    assert "retrying in 1 s" in log and "retrying in 2 s" in log
    assert "Traceback" not in log
