"""Settings: defaults < config file < environment (FEEDSVC_*) < command line.

Every setting is declared once in ``FIELDS``; the config file, the environment and the
command line all go through the same converter, so a bad value reads the same wherever
it came from and stops start-up with one line naming its source.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedsvc.hotlink import template_problem

DEFAULT_CONFIG_FILE = Path("config/feedsvc.toml")
ENV_PREFIX = "FEEDSVC_"


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line naming its source."""


# Services that answer any URL with a random picture: the producer gives undated, imageless
# items one with a new query on every run. An image from these hosts (or their subdomains)
# is no lead image.
PLACEHOLDER_IMAGE_HOSTS = (
    "picsum.photos",
    "placehold.co",
    "placehold.it",
    "placeholder.com",
    "dummyimage.com",
    "placekitten.com",
    "placebear.com",
    "loremflickr.com",
    "lorempixel.com",
    "placeimg.com",
    "source.unsplash.com",
)


@dataclass(frozen=True)
class Settings:
    seeds: Path = Path("seeds")
    db: str = "sqlite:///./data/feedsvc.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 4
    base_url: str = ""
    site_title: str = "feedsvc"
    language: str = ""
    timezone: str = "UTC"
    scan_interval: int = 10
    delete_grace: int = 60
    rescan_interval: int = 600
    watch: str = "events"
    feed_limit: int = 20
    max_limit: int = 100
    max_file_bytes: int = 5 * 1024 * 1024
    cache_bytes: int = 64 * 1024 * 1024
    filter_window: int = 1000
    tombstone_days: int = 7
    query_renders: int = 2
    websub_hubs: tuple[str, ...] = ()
    placeholder_image_hosts: tuple[str, ...] = PLACEHOLDER_IMAGE_HOSTS
    hotlink_template: str = ""
    allow_user_hotlink_template: bool = False
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def public_url(self) -> str:
        """The absolute URL feeds and pages are published under, without a trailing slash."""
        if self.base_url:
            return self.base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# Which settings show in what the store holds (a change re-reads every seed file) and in what
# is served (a change moves every ETag): decided here, beside the fields.
PARSE_SETTINGS = ("public_url", "timezone", "max_file_bytes", "placeholder_image_hosts")
RENDER_SETTINGS = (
    "public_url",
    "site_title",
    "language",
    "feed_limit",
    "scan_interval",
    "websub_hubs",
    "hotlink_template",
)


def settings_key(settings: Settings, names: tuple[str, ...], *versions: str) -> str:
    """The named settings' values (and the versions of the code that uses them) as one key."""

    def text(value: Any) -> str:
        return ",".join(value) if isinstance(value, tuple) else str(value)

    return "|".join([*versions, *(text(getattr(settings, name)) for name in names)])


def _int(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            number = int(str(value).strip(), 10) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {number}")
        return number

    return convert


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value.strip()


def _path(value: Any) -> Path:
    text = _text(value)
    if not text:
        raise ValueError("expected a directory path, got an empty string")
    return Path(text)


def _db_url(value: Any) -> str:
    """A SQLite or PostgreSQL URL that SQLAlchemy parses and has the driver for: a mistake
    stops start-up here, in one line that never shows the password (nor, when the URL
    cannot be parsed, the URL: where its password ends is unknown)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    text = _text(value)
    expected = "expected a sqlite:/// or postgresql+psycopg:// URL"
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(f"{expected}, got one that cannot be parsed") from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise ValueError(f"{expected}, got one whose port is not a number") from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{expected}, got {shown!r}")
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise ValueError(f"no database driver for {shown!r}: {exc}") from None
    return text


# What RFC 3986 lets a URL hold as written: printable ASCII but space, quotes, <>, \, ^, `, {|}.
_URL_CHARACTERS = re.compile(r"[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+")


def _absolute_http_url(value: Any) -> str:
    """An absolute http(s) URL exactly as written ('' stays ''): a trailing slash names a
    different resource, so it is the caller's to keep or drop."""
    text = _text(value)
    if not text:
        return ""
    if not _URL_CHARACTERS.fullmatch(text):
        # (it is written into headers and into every feed as it is: a newline or a quote
        # there would end a header or an attribute)
        raise ValueError(
            f"expected a URL of printable ASCII without spaces, quotes or <>: percent-encode "
            f"the rest, got {text!r}"
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL, got {text!r}")
    return text


def _base_url(value: Any) -> str:
    """The site's public URL, without a trailing slash: paths are appended to it."""
    return _absolute_http_url(value).rstrip("/")


def _hubs(value: Any) -> tuple[str, ...]:
    """Hub URLs used exactly as configured (`https://hub.example/publish/` keeps its slash)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of URLs, got {value!r}")
    hubs = tuple(_absolute_http_url(item) for item in items if _text(item))
    return tuple(dict.fromkeys(hubs))


def _hosts(value: Any) -> tuple[str, ...]:
    """Host names (lower case, no scheme or port), e.g. "picsum.photos"."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of host names, got {value!r}")
    hosts = tuple(_text(item).lower().rstrip(".") for item in items if _text(item))
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", host):
            raise ValueError(f"expected a host name such as picsum.photos, got {host!r}")
    return tuple(dict.fromkeys(hosts))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _hotlink_template(value: Any) -> str:
    """RSSHub's hotlink template: a URL with ${…} placeholders naming parts of the original
    URL (href, host, pathname, …; a _ue suffix URL-encodes). Checked here, used by render."""
    text = _text(value)
    problem = template_problem(text) if text else None
    if problem is not None:
        raise ValueError(problem)
    return text


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def _choice(*allowed: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value).lower()
        if text not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}, got {value!r}")
        return text

    return convert


def _log_level(value: Any) -> str:
    level = _text(value).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return level


LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")  # BCP 47, loosely


def _language(value: Any) -> str:
    """A BCP 47 language tag (e.g. zh-CN, ja, en-GB), or '' for none."""
    text = _text(value)
    if text and not LANGUAGE_TAG.match(text):
        raise ValueError(f"expected a BCP 47 language tag such as zh-CN, got {value!r}")
    return text


def _title(value: Any) -> str:
    text = _text(value)
    if not text:
        raise ValueError("expected a non-empty title")
    return text


FIELDS: dict[str, Callable[[Any], Any]] = {
    "seeds": _path,
    "db": _db_url,
    "host": _text,
    "port": _int(1, 65535),
    "workers": _int(1, 64),
    "threads": _int(1, 256),
    "base_url": _base_url,
    "site_title": _title,
    "language": _language,
    "timezone": _timezone,
    "scan_interval": _int(1, 86400),
    "delete_grace": _int(0, 30 * 86400),
    "rescan_interval": _int(1, 7 * 86400),
    "watch": _choice("events", "polling"),
    "feed_limit": _int(1, 10000),
    "max_limit": _int(1, 10000),
    "max_file_bytes": _int(1, 1 << 40),
    "cache_bytes": _int(1 << 16, 1 << 40),
    "filter_window": _int(1, 100_000),
    "tombstone_days": _int(0, 3650),
    "query_renders": _int(1, 64),
    "websub_hubs": _hubs,
    "placeholder_image_hosts": _hosts,
    "hotlink_template": _hotlink_template,
    "allow_user_hotlink_template": _bool,
    "log_level": _log_level,
    "log_format": _choice("text", "json"),
}
assert set(FIELDS) == {f.name for f in fields(Settings)}


def _convert(key: str, value: Any, source: str) -> Any:
    try:
        return FIELDS[key](value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file gives; unknown keys are errors (they are usually typos)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    values = {}
    for key, value in data.items():
        if key not in FIELDS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        values[key] = _convert(key, value, f"config file {path}: {key}")
    return values


def load_settings(
    cli: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the four sources; ``cli`` holds only the options given on the command line."""
    environ = os.environ if environ is None else environ
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    for key in FIELDS:
        name = ENV_PREFIX + key.upper()
        if name in environ:
            values[key] = _convert(key, environ[name], name)
    for key, value in cli.items():
        values[key] = _convert(key, value, "--" + key.replace("_", "-"))
    settings = Settings(**values)
    if settings.feed_limit > settings.max_limit:
        raise ConfigError(
            f"feed_limit ({settings.feed_limit}) is larger than max_limit ({settings.max_limit})"
        )
    return settings
