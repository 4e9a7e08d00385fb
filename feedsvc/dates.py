"""Dates as seed files write them: RFC 2822, ISO 8601, YAML dates and datetimes, and naive
times taken in the configured zone. Every result is an aware UTC datetime in whole seconds."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime

# Dates outside this range are treated as unparseable: they are typos or placeholders
# (year 1, year 9999), and RSS's RFC 822 dates and some readers cannot show them.
EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

_SLASHED = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


class DateError(ValueError):
    """A date value feedsvc cannot read; the message says what was found."""


def _in_range(value: datetime, raw: object) -> datetime:
    """The date to the second, in the offset it was written with (or the configured zone's):
    readers see the instant in their own zone, and the original is still known."""
    value = value.replace(microsecond=0)
    value = value.astimezone(timezone(value.utcoffset() or timedelta(0)))
    if not EARLIEST <= value < LATEST:
        raise DateError(f"date {raw!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


def _localize(value: datetime, zone: tzinfo) -> datetime:
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def parse_date(raw: object, zone: tzinfo) -> datetime:
    """Read one date value; raises DateError for anything that is not a date."""
    try:
        if isinstance(raw, datetime):
            return _in_range(_localize(raw, zone), raw)
        if isinstance(raw, date):
            return _in_range(datetime.combine(raw, time(), zone), raw)
        if not isinstance(raw, str) or not raw.strip():
            raise DateError(f"expected a date, got {raw!r}")
        text = raw.strip()
        try:
            return _in_range(
                _localize(datetime.fromisoformat(text.replace("Z", "+00:00")), zone), raw
            )
        except ValueError:
            pass
        slashed = _SLASHED.match(text)
        if slashed:
            year, month, day, hour, minute, second = (int(p) if p else 0 for p in slashed.groups())
            return _in_range(datetime(year, month, day, hour, minute, second, tzinfo=zone), raw)
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise DateError(f"unreadable date {raw!r}") from None
        return _in_range(_localize(parsed, zone), raw)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DateError):
            raise
        raise DateError(f"unreadable date {raw!r}") from None
