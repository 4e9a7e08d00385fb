"""What the web app holds: its settings, the read side it answers from, and what its
replica's leader says of its scanning (None where nothing follows the store). The
composition root (feedsvc.app) builds it; the web package never sees the store, the leader
or the publisher themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from feedsvc.config import Settings
from feedsvc.service import FeedService


class LeaderStatus(Protocol):
    """What /status and /metrics say of the leader (feedsvc.follower answers)."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def watch_mode(self) -> str: ...

    def scan_error(self) -> str | None: ...


@dataclass
class AppState:
    settings: Settings
    service: FeedService
    leader: LeaderStatus | None = None

    def ensure_ready(self) -> bool:
        """Whether this process can answer for every feed; until it can, each call checks
        the store again, so a worker never answers 404 for a feed a scan has just written."""
        return self.service.ready or self.service.catch_up()
