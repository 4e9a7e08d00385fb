"""What the web app holds: settings, the store (only to close it: views read through the
service), the read-side service and the scheduler and publisher that run in this process. One
instance per process, stored on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass

from feedsvc.config import Settings
from feedsvc.schedule import Scheduler
from feedsvc.service import FeedService
from feedsvc.store import Store
from feedsvc.websub import WebSubPublisher


@dataclass
class AppState:
    settings: Settings
    store: Store
    service: FeedService
    scheduler: Scheduler | None
    publisher: WebSubPublisher | None = None

    def ensure_ready(self) -> bool:
        """Whether this process can answer for every feed; until it can, each call checks
        the store again, so a worker never answers 404 for a feed a scan has just written."""
        return self.service.ready or self.service.catch_up()
