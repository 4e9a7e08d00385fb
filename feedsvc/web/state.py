"""What the web app holds: settings, the store, the read-side service and (when this process
scans) the watcher. One instance per process, stored on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feedsvc.config import Settings
from feedsvc.schedule import Watcher
from feedsvc.service import FeedService
from feedsvc.store import Store
from feedsvc.websub import WebSubPublisher


@dataclass
class AppState:
    settings: Settings
    store: Store
    service: FeedService
    watcher: Watcher | None
    publisher: WebSubPublisher | None = None
    pages: dict[str, Any] = field(default_factory=dict)

    def ensure_ready(self) -> bool:
        """Whether this process can answer for every feed; until it can, each call checks
        the store again, so a worker never answers 404 for a feed a scan has just written."""
        if self.watcher is not None:
            return self.watcher.ready or self.watcher.catch_up()
        self.service.refresh()
        return self.store.last_scan() is not None
