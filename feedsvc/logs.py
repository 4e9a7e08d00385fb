"""Logging, configured in one place for every command and for the server's workers:
``log_format = "text"`` (a line per event) or ``"json"`` (one JSON object per line, via
python-json-logger: time, level, logger, message, and the event's structured fields such as
path, scope, counts and duration), so that `feedsvc serve | jq` works, access log included."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# One line per request, combined-log style (client, request, status, milliseconds).
ACCESS_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'
)
ACCESS_FIELDS = ("addr", "method", "path", "query_string", "protocol", "status", "dt_ms")


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

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == "granian.access" and isinstance(record.args, dict):
            for name in ACCESS_FIELDS:
                if name in record.args:
                    log_data[name] = record.args[name]


def log_config(level: str, log_format: str, stream: str = "stderr") -> dict[str, Any]:
    """A logging.config.dictConfig for feedsvc's loggers, the server's and its access log,
    all to one stream in one format: stdout for `serve` (which prints nothing else, so that
    `feedsvc serve | jq` works), stderr for the commands whose output is their result."""
    handler = {"class": "logging.StreamHandler", "stream": f"ext://sys.{stream}"}
    if log_format == "json":
        generic: dict[str, Any] = {"()": JsonLines}
        access: dict[str, Any] = {"()": JsonLines}
    else:
        generic, access = {"format": TEXT_FORMAT}, {"format": "%(message)s"}
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
        },
    }
