"""Prometheus ``/metrics``: read from the live services when scraped, not counted along the way.

Access: an admin key (``X-API-Key``, HTTP Basic password, or ``Authorization: Bearer``), or no
key at all from ``security.allowed_networks`` when ``[metrics] open_to_allowed_networks`` is
true.

Metrics (``printer`` label on the per-printer ones):

- ``spoonprint_jobs{state}``: jobs in the database by state (gauge).
- ``spoonprint_queue_depth``, ``spoonprint_queue_held``, ``spoonprint_queue_oldest_age_seconds``:
  jobs waiting (queued or printing), held by an emergency clear, and how long the oldest
  waiting order has waited.
- ``spoonprint_print_latency_seconds``: accepted to printed (or sent, for printers that cannot
  confirm), a histogram of the jobs that printed since the server started. It is fed at scrape
  time from the job history (the ``printed``/``sent`` events after the last one seen), so the
  worker needs no hook and no ticket is missed between scrapes.
- ``spoonprint_printer_up``: 0 when the printer is known to be failing (its last attempt
  failed, or the health monitor found a problem), else 1.
- ``spoonprint_printer_breaker_state{state}``: 1 for the circuit breaker's current state.
- ``spoonprint_printer_fault{fault}``: 1 for every fault the health monitor sees now.
- ``spoonprint_printer_recoveries_total``: times the printer came back after a problem;
  ``spoonprint_recovery_actions_total{strategy,result}``: recovery strategies run.
- ``spoonprint_blocked_addresses``: addresses blocked now;
  ``spoonprint_security_events_total{event}``: security log events (strikes, blocks, refusals,
  rate limits) since the server started, read from the log's new lines at each scrape.
- ``spoonprint_uptime_seconds``, ``spoonprint_build_info{version}``, and the process metrics of
  ``prometheus_client``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from spoonprint.app import Services
from spoonprint.delivery.breaker import BreakerState
from spoonprint.http.ops_routes import OpsReader

#: Upper bounds (seconds) of the accept-to-print latency buckets.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class LatencyHistogram:
    """Accept-to-print latencies per printer, fed from the job history at scrape time."""

    def __init__(self, reader: OpsReader, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.reader = reader
        self.buckets = buckets
        self._cursor = reader.last_event_id()  # count what prints from now on
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(self) -> None:
        with self._lock:
            self._cursor, printed = self.reader.printed_since(self._cursor)
            for printer, seconds in printed:
                counts = self._counts.setdefault(printer, [0] * (len(self.buckets) + 1))
                for index, bound in enumerate(self.buckets):
                    if seconds <= bound:
                        counts[index] += 1
                counts[-1] += 1  # +Inf
                self._sums[printer] = self._sums.get(printer, 0.0) + seconds

    def family(self, printers: Iterable[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "spoonprint_print_latency_seconds",
            "Seconds from an order being accepted to its ticket printed (or sent), since start",
            labels=["printer"],
        )
        with self._lock:
            for printer in sorted({*printers, *self._counts}):
                counts = self._counts.get(printer, [0] * (len(self.buckets) + 1))
                bounds = [*(format(b, "g") for b in self.buckets), "+Inf"]
                family.add_metric(
                    [printer],
                    list(zip(bounds, map(float, counts), strict=True)),
                    self._sums.get(printer, 0.0),
                )
        return family


class LogFollower:
    """Counts the events of a JSON-lines log appended since it was created, at each look;
    survives the log being rotated (a new file starts from its beginning)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()
        stat = self._stat()
        if stat is not None:
            self._identity, self._offset = (stat.st_dev, stat.st_ino), stat.st_size

    def _stat(self) -> os.stat_result | None:
        try:
            return self.path.stat() if self.path is not None else None
        except OSError:
            return None

    def update(self) -> Counter[str]:
        with self._lock:
            stat = self._stat()
            if stat is None or self.path is None:
                return self.counts
            identity = (stat.st_dev, stat.st_ino)
            if identity != self._identity or stat.st_size < self._offset:
                self._identity, self._offset, self._partial = identity, 0, b""
            try:
                with self.path.open("rb") as file:
                    file.seek(self._offset)
                    data = file.read(stat.st_size - self._offset)
            except OSError:
                return self.counts
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.counts[str(event.get("event"))] += 1
            return self.counts


class ServicesCollector:
    """Everything from the running services, read when Prometheus scrapes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.reader = OpsReader(services.settings.server.data_dir)
        self.latency = LatencyHistogram(self.reader)
        self.security = LogFollower(services.guard.events.path)

    def collect(self) -> Iterator[Metric]:
        services = self.services
        now = time.time()
        yield from self._jobs(now)
        self.latency.update()
        yield self.latency.family(services.printers)
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


def registry_for(services: Services) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ServicesCollector(services))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_basic = HTTPBasic(auto_error=False, realm="spoonprint")


async def metrics_access(
    request: Request,
    key: str | None = Security(_api_key),
    basic: HTTPBasicCredentials | None = Security(_basic),
) -> None:
    """An admin key, or (when configured) a client on the shop's own networks."""
    services: Services = request.app.state.services
    ip = getattr(request.state, "client_ip", None) or (
        request.client.host if request.client else ""
    )
    if services.settings.metrics.open_to_allowed_networks and services.guard.allowlisted(ip):
        return
    bearer = request.headers.get("authorization", "")
    presented = key or (basic.password if basic else None)
    if presented is None and bearer[:7].lower() == "bearer ":
        presented = bearer[7:].strip()
    identity = services.auth.identify(presented)
    if identity is None:
        detail = "wrong API key" if presented else "send an admin API key in the X-API-Key header"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": 'Basic realm="spoonprint"'})
    if not identity.admin:
        raise HTTPException(403, "metrics need an admin key")


def metrics_routes(services: Services) -> APIRouter:
    """``/metrics`` for ``services``; counting starts now (made with the app, at start)."""
    router = APIRouter(tags=["operations"])
    registry = registry_for(services)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
        dependencies=[Security(metrics_access)],
    )
    def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
