"""Prometheus metrics. Counters live in prometheus-client's registry (shared across server
workers through PROMETHEUS_MULTIPROC_DIR when set); the state gauges are read at scrape time
from the answering process's service, which every process keeps in step with the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from feedsvc.service import FeedService

if TYPE_CHECKING:
    from feedsvc.web.state import LeaderStatus

REQUESTS = Counter(
    "feedsvc_http_requests",
    "HTTP requests answered, by route and status code",
    ["route", "status"],
)


class StateCollector(Collector):
    """Entries, feeds and seed errors as this process last loaded them."""

    def __init__(self, service: FeedService, leader: LeaderStatus | None) -> None:
        self.service = service
        self.leader = leader

    def collect(self) -> Iterator[Metric]:
        catalog = self.service.catalog()
        websub = CounterMetricFamily(
            "feedsvc_websub_pings", "WebSub publish pings, by outcome", labels=["outcome"]
        )
        for outcome, count in self.service.websub_counts().items():
            if outcome != "pending":
                websub.add_metric([outcome], count)
        yield websub
        yield CounterMetricFamily(
            "feedsvc_feed_renders",
            "Feed documents rendered by this process",
            value=self.service.renders,
        )
        yield GaugeMetricFamily(
            "feedsvc_entries", "Published entries", value=catalog.everything.count
        )
        yield GaugeMetricFamily(
            "feedsvc_cache_bytes",
            "Bytes of rendered documents this process holds (bounded by cache_bytes)",
            value=self.service.cached_bytes,
        )
        yield GaugeMetricFamily(
            "feedsvc_process_resident_bytes",
            "Resident memory of the process that answered (see the memory budget in docs/operations.md)",
            value=resident_bytes(),
        )
        yield GaugeMetricFamily(
            "feedsvc_feeds",
            "Feed scopes (each in Atom, RSS and JSON)",
            value=len(catalog.summaries),
        )
        yield GaugeMetricFamily(
            "feedsvc_seed_errors",
            "Seed files that do not parse",
            value=len(self.service.errors()),
        )
        leads = int(bool(self.leader and self.leader.is_leader))
        yield GaugeMetricFamily("feedsvc_leader", "1 if this replica leads (scans)", value=leads)
        yield GaugeMetricFamily(
            "feedsvc_scanner", "The old name of feedsvc_leader (deprecated)", value=leads
        )


def resident_bytes() -> int:
    """This process's resident set, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def exposition(service: FeedService, leader: LeaderStatus | None) -> tuple[bytes, str]:
    """The counters (of every worker, in multiprocess mode) and this process's state."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    state = CollectorRegistry()
    state.register(StateCollector(service, leader))
    return generate_latest(registry) + generate_latest(state), CONTENT_TYPE_LATEST
