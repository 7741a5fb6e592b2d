"""Webhooks: every job state change POSTed to the ordering website, signed, in order, retried.

The job_events table already holds every state change durably, so the dispatcher keeps only a
cursor (the last event id the receiver acknowledged with a 2xx) in the database: after a crash
it resumes where it stopped. Delivery is at least once, in event order; each body carries its
``event_id`` so the receiver can drop a repeat. The body is signed with HMAC-SHA256 over the raw
bytes: ``X-Spoonprint-Signature: sha256=<hex>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spoonprint.db import transaction
from spoonprint.delivery.retry import RetryPolicy

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("spoonprint.webhooks")
SIGNATURE_HEADER = "X-Spoonprint-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookEvent:
    event_id: int
    job_id: int
    order_id: str | None
    printer: str
    state: str
    previous_state: str | None
    detail: str
    at: float

    def body(self) -> bytes:
        record: dict[str, Any] = {
            "event_id": self.event_id,
            "job_id": self.job_id,
            "order_id": self.order_id,
            "printer": self.printer,
            "state": self.state,
            "previous_state": self.previous_state,
            "detail": self.detail,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
        }
        return json.dumps(record, ensure_ascii=False).encode()


class WebhookOutbox:
    """Reads events after the cursor and moves the cursor (its own connection)."""

    def __init__(self, conn: sqlite3.Connection, url: str) -> None:
        self._conn = conn
        self._url = url
        self._lock = threading.Lock()

    def next_events(self, limit: int = 50) -> list[WebhookEvent]:
        with self._lock:
            row = self._conn.execute(
                "SELECT last_event_id FROM webhook_cursor WHERE url = ?", (self._url,)
            ).fetchone()
            if row is None:  # a new receiver starts with what happens from now on
                start = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM job_events")
                self._move(start.fetchone()[0])
                return []
            rows = self._conn.execute(
                "SELECT e.id, e.job_id, j.order_id, j.printer, e.to_state, e.from_state,"
                " e.detail, e.at FROM job_events e JOIN jobs j ON j.id = e.job_id"
                " WHERE e.id > ? ORDER BY e.id LIMIT ?",
                (row[0], limit),
            ).fetchall()
        return [WebhookEvent(*r) for r in rows]

    def acknowledge(self, event_id: int) -> None:
        with self._lock:
            self._move(event_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _move(self, event_id: int) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO webhook_cursor (url, last_event_id) VALUES (?, ?)"
                " ON CONFLICT(url) DO UPDATE SET last_event_id = excluded.last_event_id",
                (self._url, event_id),
            )


class WebhookDispatcher:
    def __init__(
        self,
        outbox: WebhookOutbox,
        url: str,
        secret: str,
        timeout: float,
        retry: RetryPolicy,
        states: frozenset[str] = frozenset(),
        poll: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.states = states
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.retry = retry
        self.poll = poll
        self._wake = asyncio.Event()
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        import httpx  # imported when used: it costs start-up time and memory

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                self._wake.clear()
                events = await asyncio.to_thread(self.outbox.next_events)
                if not events:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll)
                    continue
                for event in events:
                    await self._deliver(client, event)

    async def _deliver(self, client: httpx.AsyncClient, event: WebhookEvent) -> None:
        """Keep trying this event until the receiver takes it: later events wait (order)."""
        import httpx  # imported when used: it costs start-up time and memory

        if self.states and event.state not in self.states:
            await asyncio.to_thread(self.outbox.acknowledge, event.event_id)
            return
        body = event.body()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            "X-Spoonprint-Event-Id": str(event.event_id),
        }
        while True:
            try:
                answer = await client.post(self.url, content=body, headers=headers)
                if 200 <= answer.status_code < 300:
                    break
                problem = f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            delay = self.retry.delay(self.failures)
            log.warning("webhook event %d: %s; again in %.1f s", event.event_id, problem, delay)
            await asyncio.sleep(delay)
        self.failures = 0
        await asyncio.to_thread(self.outbox.acknowledge, event.event_id)
