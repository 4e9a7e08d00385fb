"""The CLI as a user runs it: real processes, real files, real databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from feedsvc.model import Format
from feedsvc.routes import KIND_SEGMENTS
from feedsvc.store import Store
from tests.helpers import CHECKOUT_ENV
from tests.server import run


@pytest.mark.parametrize("command", ["serve", "scan", "check", "export"])
def test_every_command_has_help(tmp_path, command):
    result = run(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--seeds" in result.stdout and "--db" in result.stdout and "--config" in result.stdout


def test_check_reports_each_problem_on_one_line_and_exits_1(corpus_dir, tmp_path):
    (corpus_dir / "broken.md").write_text("---\ntitle: [oops\n---\nbody\n")
    result = run("check", "--seeds", str(corpus_dir), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    errors = [line for line in lines if ": warning: " not in line]
    assert len(errors) == 3
    assert errors[2].startswith("broken.md: invalid YAML front matter at line 3, column 1")
    assert ".md: warning: date: unreadable date 'Invalid Date'" in result.stdout
    assert "51 files: 48 ok, 0 drafts, 3 errors" in result.stderr
    assert not (tmp_path / "data").exists()  # check writes nothing


def test_check_is_clean_on_the_sample_seeds(tmp_path):
    seeds = Path(__file__).parents[1] / "seeds"
    result = run("check", "--seeds", str(seeds), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""


def test_scan_prints_counts_and_is_incremental(corpus_dir, tmp_path, db_url):
    first = run("scan", "--seeds", str(corpus_dir), "--db", db_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout.splitlines()[-1]
        == "added 48, updated 0, removed 0, unchanged 0, errors 2 (2 new)"
    )
    second = run("scan", "--seeds", str(corpus_dir), "--db", db_url, cwd=tmp_path)
    assert (
        second.stdout.splitlines()[-1]
        == "added 0, updated 0, removed 0, unchanged 50, errors 2 (0 new)"
    )


def test_scan_of_a_missing_directory_fails_clearly(tmp_path):
    result = run("scan", "--seeds", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("feedsvc: error: seeds directory")


def test_export_writes_every_feed(corpus_dir, tmp_path):
    out = tmp_path / "site"
    db = f"sqlite:///{tmp_path}/db.sqlite3"
    command = ("export", str(out), "--seeds", str(corpus_dir), "--db", db)
    result = run(*command, cwd=tmp_path, env={"FEEDSVC_BASE_URL": "https://static.example"})
    assert result.returncode == 0, result.stderr
    store = Store(db)
    summaries = store.scope_summaries()
    for summary in summaries:
        for fmt in Format:
            parts = (
                ["all"]
                if summary.scope.key == "all"
                else [KIND_SEGMENTS[summary.scope.kind], *summary.scope.names]
            )
            path = out.joinpath("feeds", *parts[:-1], f"{parts[-1]}.{fmt.value}")
            body = path.read_bytes()
            if fmt is Format.JSON:
                assert json.loads(body)["feed_url"].startswith("https://static.example/feeds/")
            else:
                assert feedparser.parse(body).bozo == 0
    feed_files = [p for p in (out / "feeds").rglob("*") if p.is_file()]
    assert len(feed_files) == 3 * len(summaries)
    assert (out / "index.html").read_text().count('class="name"') > 10
    assert len(list((out / "entries").iterdir())) == 48
    assert (out / "static" / "feed.xsl").exists()
    store.close()


@pytest.mark.parametrize("outdir", ["", "  "])
def test_export_refuses_an_empty_outdir(corpus_dir, tmp_path, outdir):
    result = run("export", outdir, "--seeds", str(corpus_dir), cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr == "feedsvc: error: OUTDIR: expected a directory path, got an empty string\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seeds"]  # nothing written


def test_serve_refuses_a_host_a_socket_cannot_bind(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('host = "\\u0000"\n')
    result = run("serve", "--config", str(config), "--seeds", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"feedsvc: error: config file {config}: host: expected an IP address or a host name "
        "(ASCII letters, digits, hyphens, dots), got '\\x00'\n"
    )


def test_two_scans_in_two_processes_do_not_overlap(corpus_dir, tmp_path, db_url):
    command = [sys.executable, "-m", "feedsvc", "scan", "--seeds", str(corpus_dir), "--db", db_url]
    env = {"PATH": "/usr/bin:/bin", **CHECKOUT_ENV, "FEEDSVC_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120)[0].splitlines()[-1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    added = sorted(int(line.split(",")[0].split()[1]) for line in outputs)
    assert added == [0, 48]  # one scanned everything, the other waited and found nothing new
    store = Store(db_url)
    assert len(store.all_entries()) == 48
    store.close()
