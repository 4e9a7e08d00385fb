"""Settings precedence (command line > environment > file > defaults) and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from feedsvc.config import DECLARED, MAX_CONFIG_BYTES, ConfigError, Settings, load_settings
from tests.helpers import CHECKOUT_ENV, ROOT


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
        ({"env": {"FEEDSVC_TIMEZONE": "a" * 300}}, "FEEDSVC_TIMEZONE: unknown time zone 'aaa"),
        ({"env": {"FEEDSVC_SITE_TITLE": "a\x01b"}}, "characters XML does not allow"),
        ({"env": {"FEEDSVC_BASE_URL": "http://h/?q=1"}}, "without a query, fragment or user"),
        ({"env": {"FEEDSVC_BASE_URL": "http://h/#f"}}, "without a query, fragment or user"),
        ({"env": {"FEEDSVC_BASE_URL": "http://u:p@h/"}}, "without a query, fragment or user"),
        ({"file": 'site_title = "a\\uFFFEb"'}, "characters XML does not allow"),
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
        # whole numbers are ASCII digits only (int() also takes '٣', ' 80 ', '+80', '8_0')
        ({"env": {"FEEDSVC_PORT": "٣"}}, "FEEDSVC_PORT: expected a whole number, got '٣'"),
        ({"env": {"FEEDSVC_PORT": " 80 "}}, "FEEDSVC_PORT: expected a whole number, got ' 80 '"),
        ({"env": {"FEEDSVC_PORT": "+80"}}, "FEEDSVC_PORT: expected a whole number, got '+80'"),
        ({"cli": {"workers": "2_0"}}, "--workers: expected a whole number, got '2_0'"),
        ({"file": "port = 80.0\n"}, "port: expected a whole number, got 80.0"),
        ({"env": {"FEEDSVC_PORT": "9" * 5000}}, "FEEDSVC_PORT: expected a whole number from 1"),
        # a NUL cannot be in a path: refused here, not by the first os call that meets it
        (
            {"env": {"FEEDSVC_DB": "sqlite:////tmp/x%00.db"}},
            "FEEDSVC_DB: expected a sqlite:/// or postgresql+psycopg:// URL without NUL "
            "characters, got 'sqlite:////tmp/x%00.db'",
        ),
        ({"file": 'db = "sqlite:///x\\u0000.db"\n'}, "db: expected a sqlite:/// or postgresql"),
        (
            {"env": {"FEEDSVC_DB": "postgresql+psycopg://u:se%00cret@h/db"}},
            "got 'postgresql+psycopg://u:***@h/db'",
        ),
        # host: an IP address or a host name, nothing a socket refuses to bind
        ({"file": 'host = "\\u0000"\n'}, "host: expected an IP address or a host name ("),
        ({"env": {"FEEDSVC_HOST": "a b"}}, "FEEDSVC_HOST: expected an IP address or a host name"),
        ({"env": {"FEEDSVC_HOST": ""}}, "FEEDSVC_HOST: expected an IP address or a host name"),
        ({"env": {"FEEDSVC_HOST": "1.2.3"}}, "FEEDSVC_HOST: expected an IP address or a host"),
        ({"env": {"FEEDSVC_HOST": "-x.example"}}, "FEEDSVC_HOST: expected an IP address or"),
        ({"env": {"FEEDSVC_HOST": "xn--"}}, "FEEDSVC_HOST: expected an IP address or a host"),
        ({"env": {"FEEDSVC_HOST": "[::1]"}}, "FEEDSVC_HOST: expected an IP address or a host"),
        ({"env": {"FEEDSVC_HOST": "fe80::1%eth0"}}, "FEEDSVC_HOST: expected an IP address"),
        ({"cli": {"host": "a_b.example"}}, "--host: expected an IP address or a host name"),
        # base_url: checked once here, not by every seed file's links
        ({"env": {"FEEDSVC_BASE_URL": "http://x:99999/"}}, "FEEDSVC_BASE_URL: port: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://x:0/"}}, "FEEDSVC_BASE_URL: port: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://x:/"}}, "FEEDSVC_BASE_URL: port: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://x:8o/"}}, "FEEDSVC_BASE_URL: port: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://xn--/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://xn--a.com/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://%00/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://a%20b/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://256.1.1.1/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://u@:80/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://[zz]/"}}, "FEEDSVC_BASE_URL: expected an absolute"),
        ({"env": {"FEEDSVC_BASE_URL": "http://[::1/"}}, "FEEDSVC_BASE_URL: expected an absolute"),
        ({"env": {"FEEDSVC_BASE_URL": "http://[v1.x]/"}}, "FEEDSVC_BASE_URL: host: expected"),
        ({"env": {"FEEDSVC_BASE_URL": "http://a b/"}}, "FEEDSVC_BASE_URL: expected a URL of"),
        ({"env": {"FEEDSVC_WEBSUB_HUBS": "https://hub:99999/"}}, "FEEDSVC_WEBSUB_HUBS: port:"),
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
        env={"FEEDSVC_PORT": "abc", "PATH": "/usr/bin:/bin", **CHECKOUT_ENV},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == "feedsvc: error: FEEDSVC_PORT: expected a whole number, got 'abc'\n"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("host", "0.0.0.0", "0.0.0.0"),
        ("host", "::", "::"),
        ("host", "::1", "::1"),
        ("host", "localhost", "localhost"),
        ("host", "Feeds-1.Example.org.", "Feeds-1.Example.org."),
        ("host", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("base_url", "http://[::1]:8080/", "http://[::1]:8080"),
        ("base_url", "https://xn--bcher-kva.example/feeds/", "https://xn--bcher-kva.example/feeds"),
        ("base_url", "http://127.0.0.1:65535", "http://127.0.0.1:65535"),
        ("base_url", "https://FEEDS.example.org", "https://FEEDS.example.org"),
        ("port", "065535", 65535),
    ],
)
def test_good_hosts_urls_and_ports_pass(tmp_path, name, value, expected):
    env = {f"FEEDSVC_{name.upper()}": value}
    settings = load_settings({}, config_file=write(tmp_path / "c.toml", ""), environ=env)
    assert getattr(settings, name) == expected


@pytest.mark.parametrize("name", [d.name for d in DECLARED if type(d.default) is int])
def test_every_whole_number_setting_takes_ascii_digits_only(tmp_path, name):
    config = write(tmp_path / "c.toml", "")
    env = {f"FEEDSVC_{name.upper()}": "\u0663"}  # ARABIC-INDIC DIGIT THREE: int() takes it
    with pytest.raises(ConfigError, match=f"FEEDSVC_{name.upper()}: expected a whole number"):
        load_settings({}, config_file=config, environ=env)
    env = {f"FEEDSVC_{name.upper()}": " 3"}
    with pytest.raises(ConfigError, match="expected a whole number, got ' 3'"):
        load_settings({}, config_file=config, environ=env)


def check_with(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`feedsvc check` on an empty seeds directory, as a user runs it (and stopped if it hangs)."""
    (tmp_path / "seeds").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--seeds", str(tmp_path / "seeds"), *args],
        env={"PATH": "/usr/bin:/bin", **CHECKOUT_ENV, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=15,  # (reading /dev/zero, it would eat memory until then)
    )


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe\n")
    result = check_with(tmp_path, "--config", "bad.toml")
    assert result.returncode == 2
    assert result.stderr == (
        "feedsvc: error: config file bad.toml: not UTF-8 (byte 0xff at offset 0)\n"
    )


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_a_config_file_must_be_a_regular_file(tmp_path, kind):
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")  # nobody writes: a reader would wait forever
        path = str(tmp_path / "pipe")
    elif kind == "directory":
        path = str(tmp_path)
    else:
        path = kind
    result = check_with(tmp_path, FEEDSVC_CONFIG=path)
    assert result.returncode == 2
    assert result.stderr == f"feedsvc: error: config file {path}: not a regular file\n"


def test_a_config_file_over_the_limit_is_refused(tmp_path):
    comment = "#" * 99 + "\n"
    fits = write(tmp_path / "fits.toml", comment * (MAX_CONFIG_BYTES // 100) + 'site_title = "x"\n')
    assert fits.stat().st_size <= MAX_CONFIG_BYTES
    assert load_settings({}, config_file=fits, environ={}).site_title == "x"
    big = write(tmp_path / "big.toml", comment * (MAX_CONFIG_BYTES // 100 + 1))
    result = check_with(tmp_path, "--config", str(big))
    assert result.returncode == 2
    assert result.stderr == (
        f"feedsvc: error: config file {big}: larger than {MAX_CONFIG_BYTES} bytes\n"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FEEDSVC_DB": "sqlite:////tmp/x%00.db"},
            "FEEDSVC_DB: expected a sqlite:/// or postgresql+psycopg:// URL without NUL "
            "characters, got 'sqlite:////tmp/x%00.db'",
        ),
        (
            {"FEEDSVC_BASE_URL": "http://x:99999/"},
            "FEEDSVC_BASE_URL: port: expected a whole number from 1 to 65535, got 99999",
        ),
        ({"FEEDSVC_BASE_URL": "http://xn--/"}, "FEEDSVC_BASE_URL: host: expected an IP address"),
    ],
)
def test_cli_bad_db_or_base_url_is_one_line_and_exit_2(tmp_path, env, message):
    (tmp_path / "seeds" / "a.md").parent.mkdir()
    (tmp_path / "seeds" / "a.md").write_text("---\ntitle: A\n---\n[x](y)\n")
    result = check_with(tmp_path, **env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"feedsvc: error: {message}")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
