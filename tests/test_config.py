"""Settings precedence (command line > environment > file > defaults) and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from feedsvc.config import ConfigError, Settings, load_settings
from tests.helpers import ROOT


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_match_the_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={})
    assert settings == Settings()
    assert settings.seeds == Path("seeds")
    assert settings.db == "sqlite:///./data/feedsvc.sqlite3"
    assert (settings.host, settings.port, settings.scan_interval, settings.feed_limit) == (
        "127.0.0.1",
        8080,
        10,
        20,
    )
    assert settings.public_url == "http://127.0.0.1:8080"


def test_shipped_config_file_lists_every_key_with_its_default():
    import tomllib

    data = tomllib.loads((ROOT / "config" / "feedsvc.toml").read_text())
    # the one value that is not the default: the sample seeds' language (the default is none)
    defaults = replace(Settings(), language="zh-CN")
    assert set(data) == set(Settings.__dataclass_fields__)
    assert load_settings({}, config_file=ROOT / "config" / "feedsvc.toml", environ={}) == defaults


def test_precedence_cli_over_env_over_file(tmp_path):
    config = write(
        tmp_path / "c.toml", 'port = 9001\nsite_title = "From file"\nscan_interval = 30\n'
    )
    env = {"FEEDSVC_PORT": "9002", "FEEDSVC_SITE_TITLE": "From env"}
    settings = load_settings({"port": "9003"}, config_file=config, environ=env)
    assert settings.port == 9003
    assert settings.site_title == "From env"
    assert settings.scan_interval == 30


def test_env_names_and_lists(tmp_path):
    env = {
        "FEEDSVC_SEEDS": "/srv/seeds",
        "FEEDSVC_DB": "postgresql+psycopg://u@h/db",
        "FEEDSVC_BASE_URL": "https://feeds.example.org/",
        "FEEDSVC_WEBSUB_HUBS": "https://hub.one/, https://hub.two",
        "FEEDSVC_SCAN_INTERVAL": "5",
    }
    settings = load_settings({}, config_file=write(tmp_path / "empty.toml", ""), environ=env)
    assert settings.seeds == Path("/srv/seeds")
    assert settings.db.startswith("postgresql")
    assert settings.public_url == "https://feeds.example.org"
    # hub URLs exactly as configured: a trailing slash names another resource
    assert settings.websub_hubs == ("https://hub.one/", "https://hub.two")
    assert settings.scan_interval == 5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"env": {"FEEDSVC_PORT": "eighty"}},
            "FEEDSVC_PORT: expected a whole number, got 'eighty'",
        ),
        (
            {"env": {"FEEDSVC_PORT": "70000"}},
            "FEEDSVC_PORT: expected a whole number from 1 to 65535",
        ),
        ({"cli": {"scan_interval": "0"}}, "--scan-interval: expected a whole number from 1"),
        ({"env": {"FEEDSVC_TIMEZONE": "Mars/Base"}}, "unknown time zone 'Mars/Base'"),
        ({"env": {"FEEDSVC_DB": "mysql://x"}}, "FEEDSVC_DB: expected a sqlite:/// or postgresql"),
        (
            {"env": {"FEEDSVC_BASE_URL": "ftp://x"}},
            "FEEDSVC_BASE_URL: expected an absolute http(s) URL",
        ),
        (
            {"env": {"FEEDSVC_BASE_URL": "http://x.example/a\n  <entry>"}},
            "FEEDSVC_BASE_URL: expected a URL of printable ASCII without spaces, quotes or <>",
        ),
        (
            {"env": {"FEEDSVC_WEBSUB_HUBS": 'https://hub.example/a"b'}},
            "FEEDSVC_WEBSUB_HUBS: expected a URL of printable ASCII",
        ),
        (
            {"env": {"FEEDSVC_BASE_URL": "http://例え.example/"}},
            "FEEDSVC_BASE_URL: expected a URL of printable ASCII",
        ),
        ({"file": "prot = 1\n"}, "unknown setting 'prot'"),
        ({"file": "port = [\n"}, "config file"),
        ({"file": 'port = "x"\n'}, "port: expected a whole number"),
        ({"env": {"FEEDSVC_FEED_LIMIT": "500"}}, "feed_limit (500) is larger than max_limit (100)"),
    ],
)
def test_bad_settings_name_their_source(tmp_path, source, message):
    config = write(tmp_path / "c.toml", source.get("file", ""))
    with pytest.raises(ConfigError) as caught:
        load_settings(source.get("cli", {}), config_file=config, environ=source.get("env", {}))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings({}, config_file=tmp_path / "nope.toml", environ={})


def test_cli_bad_setting_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--seeds", str(tmp_path)],
        env={"FEEDSVC_PORT": "abc", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == "feedsvc: error: FEEDSVC_PORT: expected a whole number, got 'abc'\n"
