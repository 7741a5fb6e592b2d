"""Operations routes: what the live monitor shows beside /printers and /recovery/status (queue
depth and the oldest waiting order per printer, recent jobs, blocked addresses and recent
security events), and Prometheus ``/metrics`` (see :mod:`spoonprint.http.metrics`).

Reads go through their own read-only SQLite connection, one per request: the job store's
connection and lock stay for printing, and a reader never blocks a writer (WAL).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from spoonprint.app import Services
from spoonprint.db import DB_FILENAME
from spoonprint.domain.job import PENDING_STATES, JobState
from spoonprint.http.auth import require_admin
from spoonprint.security.events import recent_events

#: Bytes read from the end of the security log for its recent events.


class OpsReader:
    """Read-only queries for operators, on a connection of their own."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILENAME

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0, isolation_level=None
        )
        try:
            yield conn
        finally:
            conn.close()

    def queue(self, now: float) -> dict[str, dict[str, Any]]:
        """Per printer with waiting or held jobs: how many, and the oldest waiting one."""
        pending = tuple(PENDING_STATES)
        with self.connection() as conn:
            waiting = conn.execute(
                "SELECT printer, COUNT(*), MIN(id) FROM jobs WHERE state IN (?, ?)"
                " GROUP BY printer",
                pending,
            ).fetchall()
            held = conn.execute(
                "SELECT printer, COUNT(*) FROM jobs WHERE state = ? GROUP BY printer",
                (JobState.HELD,),
            ).fetchall()
            oldest = (
                {
                    row[0]: row
                    for row in conn.execute(
                        "SELECT id, order_id, created_at, state, attempts, last_error FROM jobs"
                        f" WHERE id IN ({','.join('?' * len(waiting))})",
                        [row[2] for row in waiting],
                    )
                }
                if waiting
                else {}
            )
        result: dict[str, dict[str, Any]] = {}
        for printer, count, first in waiting:
            job_id, order_id, created_at, state, attempts, last_error = oldest[first]
            result[printer] = {
                "waiting": count,
                "held": 0,
                "oldest": {
                    "id": job_id,
                    "order_id": order_id,
                    "state": state,
                    "age_seconds": round(now - created_at, 3),
                    "attempts": attempts,
                    "last_error": last_error,
                },
            }
        for printer, count in held:
            entry = result.setdefault(printer, {"waiting": 0, "held": 0, "oldest": None})
            entry["held"] = count
        return result

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` jobs accepted, newest first, as they are now."""
        columns = (
            "id", "printer", "state", "order_id", "created_at", "updated_at", "printed_at",
            "attempts", "last_error", "maybe_printed", "reprint_of", "original_printer",
        )  # fmt: skip
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(columns)} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        jobs = [dict(zip(columns, row, strict=True)) for row in rows]
        for job in jobs:
            job["maybe_printed"] = bool(job["maybe_printed"])
        return jobs

    def printed_since(self, event_id: int) -> tuple[int, list[tuple[str, float]]]:
        """(the last job event id, then (printer, seconds from accepted to printed) for every
        job that printed or was sent after ``event_id``)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT e.id, j.printer, e.at - j.created_at FROM job_events e"
                " JOIN jobs j ON j.id = e.job_id"
                " WHERE e.id > ? AND e.to_state IN (?, ?) ORDER BY e.id",
                (event_id, JobState.PRINTED, JobState.SENT),
            ).fetchall()
            last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()[0]
        return max(last, event_id), [(printer, max(seconds, 0.0)) for _, printer, seconds in rows]

    def last_event_id(self) -> int:
        try:
            with self.connection() as conn:
                value = conn.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()
        except sqlite3.Error:  # no database yet: nothing has happened
            return 0
        return int(value[0])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def ops_routes(services: Services) -> APIRouter:
    """The operations routes and ``/metrics`` (which has its own access rule) for
    ``services``."""
    from spoonprint.http.metrics import metrics_routes

    router = APIRouter()
    admin = APIRouter(tags=["operations"], dependencies=[Depends(require_admin)])

    @admin.get("/ops/activity")
    def activity(
        request: Request,
        jobs: int = Query(15, ge=0, le=200, description="recent jobs to list"),
        events: int = Query(10, ge=0, le=200, description="recent security events to list"),
    ) -> dict[str, Any]:
        """For the live monitor: per printer the waiting and held jobs and the oldest
        waiting order; jobs by state; the most recent jobs; blocked addresses and the most
        recent security events."""
        services = _services(request)
        reader = OpsReader(services.settings.server.data_dir)
        now = time.time()
        queue = reader.queue(now)
        guard = services.guard
        blocked = [
            {
                "ip": block.ip,
                "until": block.until,
                "seconds_left": round(block.until - now),
                "reason": block.reason,
            }
            for block in guard.blocks.active(now)
        ]
        return {
            "time": now,
            "queue": [
                {"printer": name, **queue.get(name, {"waiting": 0, "held": 0, "oldest": None})}
                for name in [*services.printers, *(p for p in queue if p not in services.printers)]
            ],
            "jobs_by_state": {str(k): v for k, v in services.store.count_by_state().items()},
            "recent_jobs": reader.recent_jobs(jobs),
            "security": {
                "blocked": blocked,
                "events": recent_events(guard.events.path, events),
            },
        }

    router.include_router(admin)
    router.include_router(metrics_routes(services))
    return router
