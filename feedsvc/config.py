"""Settings: defaults < config file < environment (FEEDSVC_*) < command line.

Every setting is declared once, as a ``Settings`` field made by ``setting()``: its default, its
converter, its one-line help and its command-line flag sit together, and everything else is
derived from them (``DECLARED``): the config file's keys, the environment's names, the CLI's
flags, config/feedsvc.toml and the table in docs/configuration.md (``make docs``). Every source
goes through the same converter, so a bad value reads the same wherever it came from and stops
start-up with one line naming its source.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedsvc.hotlink import template_problem
from feedsvc.sanitize import link_as_base, strip_invalid_xml

DEFAULT_CONFIG_FILE = Path("config/feedsvc.toml")
ENV_PREFIX = "FEEDSVC_"
# The largest config file read: every setting with its comment takes about 5 KiB, and a file
# without a bound (/dev/zero) would be read until memory runs out.
MAX_CONFIG_BYTES = 1 << 20

T = TypeVar("T")


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


def _int(low: int, high: int) -> Callable[[Any], int]:
    """Every whole-number setting's converter: a TOML integer or ASCII digits alone (int()
    would also take '٣', ' 8 ', '+8' and '8_0', none of which an operator means)."""

    def convert(value: Any) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            number = int(value) if len(value) <= 30 else None  # (int() refuses 4301 digits)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise ValueError(f"expected a whole number, got {value!r}")
        if number is None or not low <= number <= high:
            shown = number if number is not None else f"{value[:30]}..."
            raise ValueError(f"expected a whole number from {low} to {high}, got {shown}")
        return number

    return convert


_port = _int(1, 65535)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value.strip()


def directory_path(value: Any) -> Path:
    """A directory named by the user (seeds, export's OUTDIR): '' would silently be the
    working directory (Path('') is Path('.')), so it is refused."""
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
    shown = url.render_as_string(hide_password=True)  # (a NUL in it shows as %00)
    parts = (url.username, url.password, url.host, url.database, *url.query.values())
    if any("\x00" in str(part) for part in parts if part):  # no file name nor libpq takes one
        raise ValueError(f"{expected} without NUL characters, got {shown!r}")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{expected}, got {shown!r}")
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise ValueError(f"no database driver for {shown!r}: {exc}") from None
    return text


# A host name's label (RFC 1123): letters, digits and hyphens, not at either end.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _idna_problem(name: str) -> str | None:
    """Why the xn-- labels of a host name are no IDNA, or None, as the URL parser that
    resolves every link against the base URL (nh3's, UTS 46) judges them: a host it
    refuses would fail each seed file instead."""
    if link_as_base(f"http://{name}/") is None:
        return "expected an IP address or a host name (an xn-- label is no IDNA)"
    return None


def _host_problem(host: str) -> str | None:
    """Why ``host`` is neither an IP address nor a host name, or None. A name is RFC 1123's
    (an xn-- label must be IDNA); one ending in digits is a malformed IPv4 address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a zone (fe80::1%eth0) could not be written in a URL as it is
        return "expected an IP address without a zone index" if "%" in host else None
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "expected an IP address or a host name (ASCII letters, digits, hyphens, dots)"
    if labels[-1].isdigit():
        return "expected an IP address or a host name (this is no IPv4 address)"
    if any(label.startswith("xn--") for label in labels):
        return _idna_problem(name)
    return None


def _host(value: Any) -> str:
    """The address to listen on, as given: checked here because a socket's refusal of it
    (a NUL, a space) would come as a traceback from the server."""
    text = _text(value)
    problem = _host_problem(text)
    if problem is not None:
        raise ValueError(f"{problem}, got {text!r}")
    return text


def _authority_problem(netloc: str) -> str | None:
    """Why a URL's host or port cannot be used, or None. Checked once, at load: nh3 refuses
    such a base URL, so every seed file's links would otherwise fail with it."""
    userinfo, _, hostport = netloc.rpartition("@")
    if "[" in userinfo or "]" in userinfo:
        return "expected [ and ] only around an IPv6 address"
    if hostport.startswith("["):  # IPv6; urlsplit lets an IPvFuture ("[v1.x]") through too
        host, bracket, after = hostport[1:].partition("]")
        problem = _host_problem(host) if bracket and ":" in host else "expected an IPv6 address"
    else:
        host, colon, port = hostport.partition(":")
        after = colon + port
        problem = _host_problem(host)
    if problem is not None:
        return f"host: {problem}, got {host!r}"
    if after and not after.startswith(":"):
        return f"expected :PORT after the host, got {after!r}"
    if after:
        try:
            _port(after[1:])
        except ValueError as exc:
            return f"port: {exc}"
    return None


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
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # brackets that hold no IPv6 address
        raise ValueError(f"expected an absolute http(s) URL, got {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL, got {text!r}")
    if (problem := _authority_problem(parts.netloc)) is not None:
        raise ValueError(problem)
    return text


def _base_url(value: Any) -> str:
    """The site's public URL, without a trailing slash: paths are appended to it, so a
    query or a fragment would end up in front of them, and a user name in every link."""
    url = _absolute_http_url(value).rstrip("/")
    parts = urlsplit(url)
    if "?" in url or "#" in url or "@" in parts.netloc:
        raise ValueError(f"expected a site URL without a query, fragment or user, got {url!r}")
    return url


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
    except (ZoneInfoNotFoundError, ValueError, OSError):  # (OSError: a name too long for a file)
        raise ValueError(f"unknown time zone {name[:100]!r}") from None
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
    """A title every feed carries: XML 1.0 allows no control character (U+0001) or U+FFFE
    in a document, even escaped."""
    text = _text(value)
    if not text:
        raise ValueError("expected a non-empty title")
    if strip_invalid_xml(text) != text:
        raise ValueError(f"{text!r} holds characters XML does not allow (control characters)")
    return text


# The commands that read the seeds, which all take the flags of the settings they share.
SEED_COMMANDS = ("serve", "scan", "check", "export")


@dataclass(frozen=True)
class Flag:
    """A setting that is also a command-line option, ``--name-with-dashes METAVAR``, on each of
    ``commands`` (``db`` standing for each of its steps)."""

    metavar: str
    commands: tuple[str, ...]


def setting(default: T, convert: Callable[[Any], T], help: str, *, flag: Flag | None = None) -> T:
    """A ``Settings`` field that declares the whole setting: the converter every source's value
    goes through, the help every rendering of it shows, and its command-line flag if any."""
    return field(default=default, metadata={"convert": convert, "help": help, "flag": flag})


@dataclass(frozen=True)
class Settings:
    """What feedsvc runs with. Each field declares one setting (``setting()``); their order is
    the order config/feedsvc.toml and docs/configuration.md list them in."""

    seeds: Path = setting(
        Path("seeds"),
        directory_path,
        "directory of seed files, scanned recursively (`.md`, `.markdown`, `.txt`)",
        flag=Flag("DIR", SEED_COMMANDS),
    )
    db: str = setting(
        "sqlite:///./data/feedsvc.sqlite3",
        _db_url,
        "database URL: `sqlite:///PATH`, or `postgresql+psycopg://USER@HOST/DB` for several replicas",
        flag=Flag("URL", (*SEED_COMMANDS, "db")),
    )
    host: str = setting(
        "127.0.0.1",
        _host,
        "IP address or host name the HTTP server listens on (`0.0.0.0` or `::` for every "
        "interface)",
        flag=Flag("HOST", ("serve",)),
    )
    port: int = setting(
        8080, _port, "port the HTTP server listens on", flag=Flag("PORT", ("serve",))
    )
    workers: int = setting(
        2,
        _int(1, 64),
        "serving worker processes (granian's), beside the one leader process that scans",
        flag=Flag("N", ("serve",)),
    )
    threads: int = setting(
        4, _int(1, 256), "threads per serving worker for the pages Flask renders"
    )
    base_url: str = setting(
        "",
        _base_url,
        "public http(s) URL the site is reached at, in every link (set it behind a proxy; feed ids "
        "never depend on it); empty: `http://HOST:PORT`",
        flag=Flag("URL", SEED_COMMANDS),
    )
    site_title: str = setting(
        "feedsvc",
        _title,
        "site name: the title of the site-wide feed and the suffix of every other feed title",
    )
    timezone: str = setting(
        "UTC", _timezone, "time zone of dates written without one (e.g. `2021-11-27 15:42:03`)"
    )
    language: str = setting(
        "",
        _language,
        "the feeds' language, a BCP 47 tag such as `zh-CN`, `ja` or `en-GB`, declared by every "
        "feed and HTML page so that readers pick fitting fonts; empty: none (pages declare `und`)",
    )
    watch: str = setting(
        "events",
        _choice("events", "polling"),
        "how the leader notices changes: `events` (filesystem events, and a full scan every "
        "`rescan_interval`) or `polling` (a full scan every `scan_interval`)",
    )
    scan_interval: int = setting(
        10,
        _int(1, 86400),
        "seconds between scans when polling (with events: between retirements of missing files); "
        "also the feeds' `Cache-Control` `max-age` and RSS `ttl`",
        flag=Flag("SECONDS", ("serve",)),
    )
    rescan_interval: int = setting(
        600,
        _int(1, 7 * 86400),
        "seconds between full scans while filesystem events work: the safety net for a missed one",
    )
    delete_grace: int = setting(
        60,
        _int(0, 30 * 86400),
        "seconds a seed file must stay missing before its entry leaves the feeds (0: at once); "
        "also how long a mass disappearance is held",
    )
    feed_limit: int = setting(
        20,
        _int(1, 10000),
        "entries per feed page when a request gives no `?limit=` (at most `max_limit`)",
    )
    max_limit: int = setting(
        100, _int(1, 10000), "the largest `?limit=` served (a larger one is cut to it)"
    )
    max_file_bytes: int = setting(
        5 * 1024 * 1024,
        _int(1, 1 << 40),
        "seed files larger than this many bytes are reported, never read",
    )
    cache_bytes: int = setting(
        64 * 1024 * 1024,
        _int(1 << 16, 1 << 40),
        "bytes of rendered feed documents (every encoding counted) each process keeps in memory; "
        "the least recently used are dropped past it",
    )
    filter_window: int = setting(
        1000,
        _int(1, 100_000),
        "newest entries of a scope a filter (`?filter=...`) looks at, and newest matches a search "
        "(`?q=`) takes",
    )
    query_renders: int = setting(
        2,
        _int(1, 64),
        "documents with query parameters rendered at once per process; past it a request waits "
        "half a second for a slot, then gets `429 Too Many Requests`",
    )
    tombstone_days: int = setting(
        7,
        _int(0, 3650),
        "days a deleted file's entry stays in its Atom feeds as an RFC 6721 `at:deleted-entry` "
        "(0: none)",
    )
    websub_hubs: tuple[str, ...] = setting(
        (),
        _hubs,
        "WebSub hubs to notify when a feed changes (comma-separated in the environment)",
    )
    placeholder_image_hosts: tuple[str, ...] = setting(
        PLACEHOLDER_IMAGE_HOSTS,
        _hosts,
        "hosts (and their subdomains) that answer any URL with a random picture: a lead image "
        "from one is no lead image (comma-separated in the environment)",
    )
    hotlink_template: str = setting(
        "",
        _hotlink_template,
        "RSSHub's `HOTLINK_TEMPLATE`: image and media URLs are sent through it, e.g. "
        "`https://wsrv.nl/?url=${href_ue}` (`${href}`, `${host}`, `${pathname}`, ...; `_ue`: "
        "URL-encoded)",
    )
    allow_user_hotlink_template: bool = setting(
        False,
        _bool,
        "RSSHub's `ALLOW_USER_HOTLINK_TEMPLATE`: honour a request's `image_hotlink_template` and "
        "`multimedia_hotlink_template` (when `hotlink_template` is empty)",
    )
    log_level: str = setting(
        "INFO", _log_level, "`DEBUG`, `INFO`, `WARNING` or `ERROR` (the access log is at `INFO`)"
    )
    log_format: str = setting(
        "text",
        _choice("text", "json"),
        "`text` (a line per event) or `json` (one JSON object per line, the access log included)",
    )

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


@dataclass(frozen=True)
class Declared:
    """One setting as declared on ``Settings``, with the name each source knows it by."""

    name: str
    default: Any
    convert: Callable[[Any], Any]
    help: str
    flag: Flag | None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def plain_help(self) -> str:
        """The help for where Markdown is not read: without its code spans' backticks."""
        return self.help.replace("`", "")

    def shown_default(self, quote: Callable[[str], str] = str) -> str:
        """The default as a person reads it: a list's items, "empty", "none"."""
        if self.default == "":
            return "empty"
        if isinstance(self.default, tuple):
            return ", ".join(quote(item) for item in self.default) or "none"
        if isinstance(self.default, bool):
            return quote(str(self.default).lower())
        return quote(str(self.default))


DECLARED = tuple(
    Declared(f.name, f.default, f.metadata["convert"], f.metadata["help"], f.metadata["flag"])
    for f in fields(Settings)
)
_BY_NAME = {declared.name: declared for declared in DECLARED}


def _convert(key: str, value: Any, source: str) -> Any:
    try:
        return _BY_NAME[key].convert(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _config_text(path: Path) -> str:
    """A config file's text: a regular file (a FIFO or /dev/zero would never end; O_NONBLOCK
    keeps the open of a FIFO from waiting for a writer) of at most MAX_CONFIG_BYTES, in
    UTF-8 as TOML requires."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"config file {path}: not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(f"config file {path}: not UTF-8 ({where})") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file gives; unknown keys are errors (they are usually typos)."""
    try:
        data = tomllib.loads(_config_text(path))
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    values = {}
    for key, value in data.items():
        if key not in _BY_NAME:
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
    for declared in DECLARED:
        if declared.env in environ:
            values[declared.name] = _convert(declared.name, environ[declared.env], declared.env)
    for key, value in cli.items():
        values[key] = _convert(key, value, _BY_NAME[key].option)
    settings = Settings(**values)
    if settings.feed_limit > settings.max_limit:
        raise ConfigError(
            f"feed_limit ({settings.feed_limit}) is larger than max_limit ({settings.max_limit})"
        )
    return settings


# The width config/feedsvc.toml is wrapped to.
_TOML_WIDTH = 99


def _toml_value(value: Any, indent: int) -> str:
    """``value`` as TOML, a list one item after another on lines that fit past ``indent``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        items = [_toml_value(item, 0) for item in value]
        inline = f"[{', '.join(items)}]"
        if indent + len(inline) <= _TOML_WIDTH:
            return inline
        lines = [""]
        for item in items:
            if lines[-1] and len(lines[-1]) + len(item) + 2 > _TOML_WIDTH - 4:
                lines.append("")
            lines[-1] += f"{' ' if lines[-1] else ''}{item},"
        return "[\n" + "".join(f"    {line}\n" for line in lines) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def example_toml(sample: Mapping[str, Any] | None = None) -> str:
    """Every setting, its help as a comment and its default, as TOML: config/feedsvc.toml's
    body. ``sample`` gives a few settings other values, each saying so and what the default is."""
    sample = sample or {}
    if unknown := set(sample) - set(_BY_NAME):
        raise ValueError(f"unknown settings {sorted(unknown)}")
    blocks = []
    for declared in DECLARED:
        lines = textwrap.wrap(
            declared.plain_help,
            _TOML_WIDTH,
            initial_indent="# ",
            subsequent_indent="# ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        value = declared.default
        if declared.name in sample:
            value = declared.convert(sample[declared.name])
            lines.append(
                f"# Set for the sample seeds (the default is {_toml_value(declared.default, 0)})."
            )
        lines.append(f"{declared.name} = {_toml_value(value, len(declared.name) + 3)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def reference_table() -> str:
    """Every setting as a row of a Markdown table: docs/configuration.md's reference."""

    def code(text: str) -> str:
        return f"`{text}`"

    rows = [
        ("setting (TOML key)", "environment variable", "flag", "default", "meaning"),
        ("---",) * 5,
    ]
    for declared in DECLARED:
        flag = declared.flag
        rows.append(
            (
                code(declared.name),
                code(declared.env),
                f"`{declared.option} {flag.metavar}` ({', '.join(flag.commands)})" if flag else "",
                declared.shown_default(code),
                declared.help,
            )
        )
    return "".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n" for row in rows
    )
