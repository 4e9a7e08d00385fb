"""Prometheus metrics. Counters live in prometheus-client's registry (shared across gunicorn
workers through PROMETHEUS_MULTIPROC_DIR when set); the state gauges are read at scrape time
from the answering process's service, which every process keeps in step with the store."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from feedsvc.schedule import Watcher
from feedsvc.service import FeedService

REQUESTS = Counter(
    "feedsvc_http_requests",
    "HTTP requests answered, by route and status code",
    ["route", "status"],
)
SCANS = Counter("feedsvc_scans", "Scans run by this replica, by outcome", ["outcome"])
WEBSUB_PINGS = Counter("feedsvc_websub_pings", "WebSub publish pings, by outcome", ["outcome"])


class StateCollector(Collector):
    """Entries, feeds and seed errors as this process last loaded them."""

    def __init__(self, service: FeedService, watcher: Watcher | None) -> None:
        self.service = service
        self.watcher = watcher

    def collect(self) -> Iterator[GaugeMetricFamily]:
        summaries = self.service.summaries()
        everything = next((s for s in summaries if s.scope.key == "all"), None)
        yield GaugeMetricFamily(
            "feedsvc_entries", "Published entries", value=everything.count if everything else 0
        )
        yield GaugeMetricFamily(
            "feedsvc_feeds", "Feed scopes (each in Atom, RSS and JSON)", value=len(summaries)
        )
        yield GaugeMetricFamily(
            "feedsvc_seed_errors",
            "Seed files that do not parse",
            value=len(self.service.store.errors()),
        )
        yield GaugeMetricFamily(
            "feedsvc_store_generation", "Store generation loaded", value=self.service.generation
        )
        yield GaugeMetricFamily(
            "feedsvc_scanner",
            "1 if this replica holds the scan lock",
            value=int(bool(self.watcher and self.watcher.is_scanner)),
        )


def exposition(service: FeedService, watcher: Watcher | None) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(StateCollector(service, watcher))
    return body + generate_latest(state), CONTENT_TYPE_LATEST
