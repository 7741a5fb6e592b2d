"""The Prometheus side of ``/metrics`` (see :mod:`spoonprint.http.metrics` for the metrics):
a registry reading the live services at each scrape. Imported at the first scrape, so that
prometheus_client costs the start-up nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from spoonprint.delivery.breaker import BreakerState
from spoonprint.http.metrics import LatencyHistogram, MetricsSource


def latency_family(histogram: LatencyHistogram, printers: Iterable[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "spoonprint_print_latency_seconds",
        "Seconds from an order being accepted to its ticket printed (or sent), since start",
        labels=["printer"],
    )
    bounds = [*(format(b, "g") for b in histogram.buckets), "+Inf"]
    for printer, counts, total in histogram.snapshot(printers):
        family.add_metric([printer], list(zip(bounds, map(float, counts), strict=True)), total)
    return family


class ServicesCollector:
    """Everything from the running services, read when Prometheus scrapes."""

    def __init__(self, source: MetricsSource) -> None:
        self.services = source.services
        self.reader = source.reader
        self.latency = source.latency
        self.security = source.security

    def collect(self) -> Iterator[Metric]:
        services = self.services
        now = time.time()
        yield from self._jobs(now)
        self.latency.update()
        yield latency_family(self.latency, services.printers)
        yield from self._printers()
        yield from self._security(now)
        uptime = GaugeMetricFamily("spoonprint_uptime_seconds", "Seconds since the server started")
        uptime.add_metric([], now - services.started_at)
        yield uptime
        info = GaugeMetricFamily("spoonprint_build_info", "spoonprint version", labels=["version"])
        info.add_metric([services.version], 1)
        yield info

    def _jobs(self, now: float) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "spoonprint_jobs", "Jobs in the database by state", labels=["state"]
        )
        for state, count in self.services.store.count_by_state().items():
            jobs.add_metric([str(state)], count)
        yield jobs
        queue = self.reader.queue(now)
        depth = GaugeMetricFamily(
            "spoonprint_queue_depth",
            "Jobs waiting to print (queued or printing)",
            labels=["printer"],
        )
        held = GaugeMetricFamily(
            "spoonprint_queue_held", "Jobs set aside by an emergency clear", labels=["printer"]
        )
        oldest = GaugeMetricFamily(
            "spoonprint_queue_oldest_age_seconds",
            "Seconds the oldest waiting order has waited (0 when none waits)",
            labels=["printer"],
        )
        for printer in sorted({*self.services.printers, *queue}):
            entry = queue.get(printer, {})
            depth.add_metric([printer], entry.get("waiting", 0))
            held.add_metric([printer], entry.get("held", 0))
            first = entry.get("oldest")
            oldest.add_metric([printer], first["age_seconds"] if first else 0.0)
        yield from (depth, held, oldest)

    def _printers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "spoonprint_printer_up", "0 when the printer is known to be failing", labels=["printer"]
        )
        breaker = GaugeMetricFamily(
            "spoonprint_printer_breaker_state",
            "1 for the printer's circuit breaker state",
            labels=["printer", "state"],
        )
        faults = GaugeMetricFamily(
            "spoonprint_printer_fault", "1 for each current fault", labels=["printer", "fault"]
        )
        recoveries = CounterMetricFamily(
            "spoonprint_printer_recoveries",
            "Times the printer came back after a problem",
            labels=["printer"],
        )
        actions = CounterMetricFamily(
            "spoonprint_recovery_actions",
            "Recovery strategies run, by result",
            labels=["printer", "strategy", "result"],
        )
        monitor = self.services.monitor
        for name, worker in self.services.printers.items():
            record = monitor.records.get(name) if monitor is not None else None
            problems = record.health.problems if record is not None else ()
            up.add_metric([name], 0 if worker.state.online is False or problems else 1)
            for state in BreakerState:
                breaker.add_metric([name, str(state)], int(worker.breaker.state is state))
            for fault in sorted({str(problem.fault) for problem in problems}):
                faults.add_metric([name, fault], 1)
            if record is None:
                continue
            recoveries.add_metric([name], record.recoveries)
            for strategy, stats in sorted(record.strategies.items()):
                actions.add_metric([name, strategy, "succeeded"], stats.succeeded)
                actions.add_metric([name, strategy, "failed"], stats.tried - stats.succeeded)
        yield from (up, breaker, faults, recoveries, actions)

    def _security(self, now: float) -> Iterator[Metric]:
        blocked = GaugeMetricFamily("spoonprint_blocked_addresses", "Addresses blocked now")
        blocked.add_metric([], len(self.services.guard.blocks.active(now)))
        yield blocked
        events = CounterMetricFamily(
            "spoonprint_security_events",
            "Security log events since the server started",
            labels=["event"],
        )
        counts = self.security.update()
        for event in sorted({"strike", "blocked", "refused", "rate_limited", *counts}):
            events.add_metric([event], counts.get(event, 0))
        yield events


def registry_for(source: MetricsSource) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ServicesCollector(source))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
