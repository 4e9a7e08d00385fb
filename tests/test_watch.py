"""Filesystem events: a real server whose periodic scan is an hour away still serves a new,
edited, moved or deleted seed file, because the scanning process watches the directory, and
goes on doing so when the seeds path comes to name another directory (a release renamed into
place, a symlink repointed). With `watch = "polling"` it says so in /status and scans on its
interval."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from feedsvc.model import stable_uuid
from tests.helpers import SAMPLE_SEEDS, copy_corpus
from tests.server import EVENTS_ONLY, author_titles, server_status, wait_for

POST = "---\ntitle: {title}\ncategories: [直播]\nauthor: {author}\ndate: 2030-01-01T00:00:00Z\n---\n<p>x</p>\n"


@pytest.fixture
def watched(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    return serve(seeds, f"sqlite:///{tmp_path}/data/db.sqlite3", **EVENTS_ONLY)


def in_every_worker(predicate) -> bool:
    return all(predicate() for _ in range(6))


def test_changes_reach_the_feeds_through_filesystem_events(watched):
    wait_for(lambda: any(server_status(watched)["watch"] == "events" for _ in range(6)))
    path = watched.seeds / "live.md"
    path.write_text(POST.format(title="第一版", author="现场"))
    wait_for(lambda: in_every_worker(lambda: author_titles(watched, "现场") == ["第一版"]))

    path.write_text(POST.format(title="第二版", author="现场"))
    wait_for(lambda: in_every_worker(lambda: author_titles(watched, "现场") == ["第二版"]))

    folder = watched.seeds / "栏目"
    folder.mkdir()
    (folder / "in-folder.md").write_text(POST.format(title="文件夹里", author="栏目作者"))
    wait_for(lambda: in_every_worker(lambda: author_titles(watched, "栏目作者") == ["文件夹里"]))
    shutil.move(folder, watched.seeds / "改名的栏目")  # a directory moved: a full scan
    # the moved file is plainly the same one renamed: its entry follows it, id and all
    moved = "改名的栏目/in-folder.md: takes over the entry of 栏目/in-folder.md"
    wait_for(lambda: moved in watched.log.read_text())
    wait_for(lambda: in_every_worker(lambda: entry_status(watched, "栏目/in-folder.md") == 200))
    assert in_every_worker(lambda: entry_status(watched, "改名的栏目/in-folder.md") == 404)
    # (each worker reloads its feeds within a second of the scan: entry pages read the store)
    wait_for(lambda: in_every_worker(lambda: author_titles(watched, "栏目作者") == ["文件夹里"]))

    path.unlink()  # the author's feed is emptied: it tells of the deletion, then goes (410)
    wait_for(lambda: in_every_worker(lambda: author_titles(watched, "现场") == []))
    assert "Traceback" not in watched.log.read_text()


def entry_status(server, rel: str) -> int:
    """The status of the entry page of the file at ``rel`` (ids derive from paths)."""
    url = server.url + "/entries/" + stable_uuid("path", rel)
    return requests.get(url, timeout=10).status_code


def test_polling_is_said_in_status(tmp_path, serve):
    seeds = copy_corpus(tmp_path / "seeds", SAMPLE_SEEDS)
    server = serve(seeds, f"sqlite:///{tmp_path}/db.sqlite3", FEEDSVC_WATCH="polling")
    modes = {server_status(server)["watch"] for _ in range(8)}
    assert "polling" in modes and "events" not in modes
    (seeds / "polled.md").write_text(POST.format(title="轮询", author="轮询作者"))
    wait_for(lambda: in_every_worker(lambda: author_titles(server, "轮询作者") == ["轮询"]))


def swap_by_rename(seeds: Path, release: Path) -> None:
    """The new release renamed into the seeds path; the old directory kept, then deleted."""
    os.rename(seeds, seeds.with_name("old"))
    os.rename(release, seeds)
    shutil.rmtree(seeds.with_name("old"))


def swap_by_symlink(seeds: Path, release: Path) -> None:
    """The seeds path, a symlink, repointed at the new release in one rename."""
    link = seeds.with_name("next-link")
    link.symlink_to(release)
    os.replace(link, seeds)


def swap_by_recreating(seeds: Path, release: Path) -> None:
    """The seeds directory deleted and made again at once (ext4 gives the new one the old
    one's inode), then the release's files copied in."""
    shutil.rmtree(seeds)
    seeds.mkdir()
    copy_corpus(seeds, release)


@pytest.mark.parametrize(
    "swap",
    [swap_by_rename, swap_by_symlink, swap_by_recreating],
    ids=["rename", "symlink", "recreate"],
)
def test_a_seeds_path_naming_another_directory_is_watched_there(tmp_path, serve, swap):
    first = copy_corpus(tmp_path / "release-1", SAMPLE_SEEDS)
    seeds = tmp_path / "seeds"
    if swap is swap_by_symlink:
        seeds.symlink_to(first)
    else:
        first.rename(seeds)
    server = serve(seeds, f"sqlite:///{tmp_path}/data/db.sqlite3", **EVENTS_ONLY)
    wait_for(lambda: any(server_status(server)["watch"] == "events" for _ in range(6)))
    release = copy_corpus(tmp_path / "release-2", SAMPLE_SEEDS)
    (release / "swapped-in.md").write_text(POST.format(title="新版本", author="发布"))
    swap(seeds, release)
    wait_for(lambda: in_every_worker(lambda: author_titles(server, "发布") == ["新版本"]))
    wait_for(lambda: "names another directory: watching it" in server.log.read_text())
    # written after the swap, into the directory the path names now: seen by its events
    (seeds / "written-after.md").write_text(POST.format(title="之后", author="之后的作者"))
    wait_for(lambda: in_every_worker(lambda: author_titles(server, "之后的作者") == ["之后"]))
