"""SQLite job store. Every state change is a guarded update plus a job_events row, in one
transaction; a change the state table does not allow, or that lost a race, raises
InvalidTransition instead of silently overwriting."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spoonprint.db import DB_FILENAME, connect, transaction
from spoonprint.domain.job import (
    PENDING_STATES,
    Job,
    JobEvent,
    JobState,
    NewJob,
    can_transition,
)
from spoonprint.errors import InvalidTransition, JobNotFound

log = logging.getLogger("spoonprint.jobs")

_COLUMNS = (
    "id, printer, state, payload, copies, order_id, idempotency_key, created_at, updated_at,"
    " printed_at, attempts, last_error, maybe_printed"
)


class SqliteJobStore:
    """Thread-safe: one connection, one lock (SQLite writes are serial anyway)."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._clock = clock

    @classmethod
    def open(cls, data_dir: Path) -> SqliteJobStore:
        return cls(connect(data_dir / DB_FILENAME))

    @classmethod
    def in_memory(cls) -> SqliteJobStore:
        """A private in-memory database with the real schema, for unit tests."""
        return cls(connect(Path(":memory:")))

    def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        now = self._clock()
        with self._lock, transaction(self._conn):
            existing = self._find_duplicate(new)
            if existing is not None:
                return existing, False
            cursor = self._conn.execute(
                "INSERT INTO jobs (printer, state, payload, copies, order_id, idempotency_key,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.printer,
                    JobState.QUEUED,
                    json.dumps(new.payload, ensure_ascii=False),
                    new.copies,
                    new.order_id,
                    new.idempotency_key,
                    now,
                    now,
                ),
            )
            job_id = int(cursor.lastrowid or 0)
            self._add_event(job_id, None, JobState.QUEUED, f"accepted for {new.printer}", now)
            job = self._get(job_id)
        log.info("job %d%s: queued for printer %s", job.id, _label(job), job.printer)
        return job, True

    def get(self, job_id: int) -> Job:
        with self._lock:
            return self._get(job_id)

    def events(self, job_id: int) -> list[JobEvent]:
        with self._lock:
            self._get(job_id)
            rows = self._conn.execute(
                "SELECT job_id, at, from_state, to_state, detail FROM job_events"
                " WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
        return [
            JobEvent(r[0], r[1], JobState(r[2]) if r[2] else None, JobState(r[3]), r[4])
            for r in rows
        ]

    def claim_next(self, printer: str) -> Job | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE printer = ? AND state = ? ORDER BY id LIMIT 1",
                (printer, JobState.QUEUED),
            ).fetchone()
            if row is None:
                return None
            job = _job(row)
            attempt = job.attempts + 1
            return self._transition(job, JobState.PRINTING, f"attempt {attempt}")

    def mark_printed(self, job_id: int, detail: str = "") -> Job:
        with self._lock:
            return self._transition(
                self._get(job_id), JobState.PRINTED, detail or "printed", printed_at=self._clock()
            )

    def release(self, job_id: int, error: str, *, maybe_printed: bool) -> Job:
        with self._lock:
            job = self._get(job_id)
            return self._transition(
                job,
                JobState.QUEUED,
                f"will retry: {error}",
                attempts=job.attempts + 1,
                last_error=error,
                maybe_printed=int(job.maybe_printed or maybe_printed),
            )

    def mark_failed(self, job_id: int, error: str) -> Job:
        with self._lock:
            job = self._get(job_id)
            return self._transition(
                job, JobState.FAILED, error, attempts=job.attempts + 1, last_error=error
            )

    def cancel(self, job_id: int, detail: str = "") -> Job:
        with self._lock:
            return self._transition(self._get(job_id), JobState.CANCELLED, detail or "cancelled")

    def pending(self, printer: str | None = None) -> list[Job]:
        states = tuple(PENDING_STATES)
        query = f"SELECT {_COLUMNS} FROM jobs WHERE state IN (?, ?)"
        params: tuple[Any, ...] = states
        if printer is not None:
            query += " AND printer = ?"
            params = (*states, printer)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        return [_job(r) for r in rows]

    def count_by_state(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(state): n for state, n in rows})
        return counts

    def recover_interrupted(self) -> list[Job]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY id", (JobState.PRINTING,)
            ).fetchall()
            return [
                self._transition(
                    _job(row),
                    JobState.QUEUED,
                    "recovered after restart: may have printed, will print marked REPRINT",
                    maybe_printed=1,
                )
                for row in rows
            ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- internals (caller holds the lock) -------------------------------------------------

    def _get(self, job_id: int) -> Job:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return _job(row)

    def _find_duplicate(self, new: NewJob) -> Job | None:
        for column, value in (("order_id", new.order_id), ("idempotency_key", new.idempotency_key)):
            if value is None:
                continue
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE {column} = ?", (value,)
            ).fetchone()
            if row is not None:
                return _job(row)
        return None

    def _transition(self, job: Job, new_state: JobState, detail: str, **columns: Any) -> Job:
        if not can_transition(job.state, new_state):
            raise InvalidTransition(f"job {job.id} is {job.state}, cannot become {new_state}")
        now = self._clock()
        assignments = ", ".join(f"{name} = ?" for name in ("state", "updated_at", *columns))
        with transaction(self._conn):
            cursor = self._conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?",
                (new_state, now, *columns.values(), job.id, job.state),
            )
            if cursor.rowcount != 1:
                raise InvalidTransition(f"job {job.id} changed state meanwhile")
            self._add_event(job.id, job.state, new_state, detail, now)
            updated = self._get(job.id)
        log.info("job %d%s: %s -> %s (%s)", job.id, _label(job), job.state, new_state, detail)
        return updated

    def _add_event(
        self, job_id: int, old: JobState | None, new: JobState, detail: str, at: float
    ) -> None:
        self._conn.execute(
            "INSERT INTO job_events (job_id, at, from_state, to_state, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id, at, old, new, detail),
        )


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        printer=row[1],
        state=JobState(row[2]),
        payload=json.loads(row[3]),
        copies=row[4],
        order_id=row[5],
        idempotency_key=row[6],
        created_at=row[7],
        updated_at=row[8],
        printed_at=row[9],
        attempts=row[10],
        last_error=row[11],
        maybe_printed=bool(row[12]),
    )


def _label(job: Job) -> str:
    return f" [order {job.order_id}]" if job.order_id else ""
