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
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

from spoonprint.app import Services
from spoonprint.http.guard import strike_after
from spoonprint.http.ops_routes import OpsReader

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Prometheus's text format as prometheus_client writes it (its CONTENT_TYPE_LATEST, which a
#: test compares), for the API description without loading prometheus_client at start.
CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"

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

    def snapshot(self, printers: Iterable[str]) -> list[tuple[str, list[int], float]]:
        """Per printer (these and any that printed): its bucket counts, +Inf last, and the
        sum of its latencies."""
        with self._lock:
            return [
                (
                    printer,
                    list(self._counts.get(printer, [0] * (len(self.buckets) + 1))),
                    self._sums.get(printer, 0.0),
                )
                for printer in sorted({*printers, *self._counts})
            ]


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


class MetricsSource:
    """What ``/metrics`` counts from the moment it is made (at start): the accept-to-print
    latencies and the security log's events. Prometheus itself is loaded at the first scrape
    (:mod:`spoonprint.http.prometheus`): it is not needed to start or to take orders."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.reader = OpsReader(services.settings.server.data_dir)
        self.latency = LatencyHistogram(self.reader)
        self.security = LogFollower(services.guard.events.path)
        self._registry: CollectorRegistry | None = None
        self._lock = threading.Lock()

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        from spoonprint.http.prometheus import exposition, registry_for

        with self._lock:
            if self._registry is None:
                self._registry = registry_for(self)
        return exposition(self._registry)


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
        if presented:
            strike_after(request.scope, "wrong API key")
        detail = "wrong API key" if presented else "send an admin API key in the X-API-Key header"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": 'Basic realm="spoonprint"'})
    if not identity.admin:
        raise HTTPException(403, "metrics need an admin key")


def metrics_routes(services: Services) -> APIRouter:
    """``/metrics`` for ``services``; counting starts now (made with the app, at start)."""
    router = APIRouter(tags=["operations"])
    source = MetricsSource(services)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}},
        dependencies=[Security(metrics_access)],
    )
    def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(source.exposition(), media_type=CONTENT_TYPE)

    return router
