"""Logging, configured in one place for every command and for the server's workers:
``log_format = "text"`` (a line per event) or ``"json"`` (one JSON object per line, via
python-json-logger: time, level, logger, message, and the event's structured fields such as
path, scope, counts and duration), so that `feedsvc serve | jq` works, access log included.

Either way an event is one line: file names (any character but '/' and NUL) reach messages,
and a newline in one must not forge a line of its own."""

from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# One line per request, combined-log style (client, request, status, milliseconds).
ACCESS_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'
)
ACCESS_FIELDS = ("addr", "method", "path", "query_string", "protocol", "status", "dt_ms")

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: what a
# terminal or a log reader can take for a line break or a command; and the invisible
# formatting characters that reorder or hide what follows them on the line (bidirectional
# marks, embeddings, overrides and isolates; zero-width spaces and joiners; U+FEFF), so
# that a file name cannot disguise the message about it.
_FORMATTING = (0x061C, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *_FORMATTING, 0xFEFF)
_ESCAPES = {code: repr(chr(code))[1:-1] for code in _CONTROLS}
# JSON escapes C0 itself; the rest, left raw by ensure_ascii=False, as \uXXXX.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}


def escape_controls(text: str) -> str:
    """``text`` with each control character as its Python escape (a newline as ``\\n``),
    as ``display_path`` shows undecodable bytes: a message or a line of the commands' output
    stays one line, whatever a file name holds."""
    return text.translate(_ESCAPES)


class TextLines(logging.Formatter):
    """A line per event: the message's control characters escaped, and a traceback's lines
    indented under it, so that only an event's own line starts at the margin."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class JsonLines(JsonFormatter):
    """JSON lines with fixed names for the common fields; an access-log record's fields
    (granian passes them as the record's arguments) become fields of their own."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            json_ensure_ascii=False,
        )

    def jsonify_log_record(self, log_data: Any) -> str:
        return super().jsonify_log_record(log_data).translate(_JSON_ESCAPES)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == "granian.access" and isinstance(record.args, dict):
            for name in ACCESS_FIELDS:
                if name in record.args:
                    log_data[name] = record.args[name]


def log_done(log: logging.Logger, field: str, count: int, what: str, began: float) -> None:
    """One INFO line for work done since ``began`` (monotonic), if any was: "<field> <count>
    <what> in <ms> ms", with ``field`` and ``duration_ms`` as JSON fields (the bench reads
    them)."""
    if not count:
        return
    duration = round((time.monotonic() - began) * 1000)
    log.info(
        "%s %d %s in %d ms",
        field,
        count,
        what,
        duration,
        extra={field: count, "duration_ms": duration},
    )


def log_config(level: str, log_format: str, stream: str = "stderr") -> dict[str, Any]:
    """A logging.config.dictConfig for feedsvc's loggers, the server's and its access log,
    all to one stream in one format: stdout for `serve` (which prints nothing else, so that
    `feedsvc serve | jq` works), stderr for the commands whose output is their result."""
    handler = {"class": "logging.StreamHandler", "stream": f"ext://sys.{stream}"}
    if log_format == "json":
        generic: dict[str, Any] = {"()": JsonLines}
        access: dict[str, Any] = {"()": JsonLines}
    else:
        generic = {"()": TextLines, "fmt": TEXT_FORMAT}
        access = {"()": TextLines, "fmt": "%(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": generic, "access": access},
        "handlers": {
            "console": {**handler, "formatter": "generic"},
            "access": {**handler, "formatter": "access"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "apscheduler": {"level": "WARNING"},
            # ("skipped: maximum number of running instances reached": a tick that comes while
            # a long scan runs is skipped by design, not news every scan_interval)
            "apscheduler.scheduler": {"level": "ERROR"},
            "alembic": {"level": "WARNING"},  # feedsvc.store.migrate says what it upgraded
        },
    }
