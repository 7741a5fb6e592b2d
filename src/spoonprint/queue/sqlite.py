"""SQLite job store. Every state change is a guarded update plus a job_events row, in one
transaction; a change the state table does not allow, or that lost a race (another state, or a
lease that is no longer the caller's), raises InvalidTransition instead of overwriting."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spoonprint.db import DB_FILENAME, cannot_write, connect, transaction
from spoonprint.domain.job import (
    PENDING_STATES,
    Job,
    JobEvent,
    JobState,
    NewJob,
    can_transition,
)
from spoonprint.errors import InvalidTransition, JobNotFound, StoreError
from spoonprint.queue.group_commit import GroupCommit, Settled

log = logging.getLogger("spoonprint.jobs")

#: Asked, storing a new job for an order: (owner, lease seconds) to lease it to at once, or
#: None (see :attr:`SqliteJobStore.lease_new`).
LeaseNew = Callable[[NewJob, Job], tuple[str, float] | None]

JOB_COLUMNS = (
    "id, printer, state, payload, copies, order_id, idempotency_key, created_at, updated_at,"
    " printed_at, attempts, last_error, maybe_printed, lease_owner, lease_expires,"
    " original_printer, reprint_of, submitted_by, first_accepted_at"
)
#: Whether a job of the printer older than a given one still waits (queued or printing).
_OLDER_PENDING = "SELECT 1 FROM jobs WHERE printer = ? AND state IN (?, ?) AND id < ? LIMIT 1"

#: The printers that have jobs, found by skipping through the (printer, state, id) index (one
#: lookup each, however many jobs), then each one's waiting jobs counted in that index.
_COUNT_PENDING = """
    WITH RECURSIVE printers(name) AS (
        SELECT MIN(printer) FROM jobs
        UNION ALL
        SELECT (SELECT MIN(printer) FROM jobs WHERE printer > printers.name)
        FROM printers WHERE printers.name IS NOT NULL
    )
    SELECT name, (
        SELECT COUNT(*) FROM jobs WHERE printer = printers.name AND state IN (?1, ?2)
    )
    FROM printers WHERE name IS NOT NULL
"""
_RETURN_NUMBER = (
    "UPDATE sqlite_sequence SET seq = seq - 1"
    " WHERE name = 'jobs' AND seq > (SELECT COALESCE(MAX(id), 0) FROM jobs)"
)
#: The job a printer is printing now (one at a time): its id.
_PRINTING = "SELECT id FROM jobs WHERE printer = ? AND state = ? LIMIT 1"
_RECOVERED = "recovered: its printer process stopped mid-ticket; will print marked REPRINT"
_RECOVERED_UNSENT = "recovered: its printer process stopped before sending any of its ticket"


class _Refused(Exception):
    """A job of a batch failed and the transaction is still open (the cause is chained)."""


class SqliteJobStore:
    """Thread-safe: one connection, one lock (SQLite writes are serial anyway). Orders taken on
    the event loop go through :meth:`enqueue_async`, which commits concurrent orders together."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._clock = clock
        # Its writer thread starts with the first order.
        self._group: GroupCommit[NewJob, tuple[Job, bool]] = GroupCommit(
            self._enqueue_batch, name="job-store-writer"
        )
        #: Asked in the writer thread, inside the transaction that stores an order that came
        #: through :meth:`enqueue_async`: (owner, lease seconds) to lease the new job to at
        #: once (a worker waiting for exactly that order), or None to leave it queued. The
        #: lease is then on disk with the order: one commit, one fsync, for both.
        self.lease_new: LeaseNew | None = None

    @classmethod
    def open(cls, data_dir: Path) -> SqliteJobStore:
        return cls(connect(data_dir / DB_FILENAME))

    @classmethod
    def in_memory(cls, clock: Callable[[], float] = time.time) -> SqliteJobStore:
        """A private in-memory database with the real schema, for unit tests."""
        return cls(connect(Path(":memory:")), clock)

    # -- accepting ------------------------------------------------------------------------

    def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        (outcome,) = self.enqueue_many([new])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def enqueue_async(
        self, new: NewJob, settled: Settled[tuple[Job, bool]] | None = None
    ) -> tuple[Job, bool]:
        """:meth:`enqueue` for callers on an event loop: committed in one transaction (one
        fsync) with the other callers' jobs waiting meanwhile, by one writer thread; returns
        once that transaction is on disk, as :meth:`enqueue` does. ``settled`` is called with
        the outcome (or the error) on the loop first, before the batch's callers resume (see
        :mod:`spoonprint.queue.group_commit`). The new job may come back already leased
        (``printing``): see :attr:`lease_new`."""
        return await self._group.submit(new, settled)

    def _enqueue_batch(self, news: Sequence[NewJob]) -> list[tuple[Job, bool] | Exception]:
        return self.enqueue_many(news, lease=self.lease_new)

    def enqueue_many(
        self,
        news: Sequence[NewJob],
        lease: LeaseNew | None = None,
    ) -> list[tuple[Job, bool] | Exception]:
        """Commit new jobs in one transaction, in order; per job, what :meth:`enqueue` would
        return (a duplicate of an earlier job of the same batch included) or the error that
        refused that job alone (its changes undone, the others kept). Raises, with nothing
        committed, when the transaction itself fails."""
        now = self._clock()
        outcomes: list[tuple[Job, bool] | Exception]
        with self._lock:
            try:
                with transaction(self._conn):
                    outcomes = [self._store_one(new, now, lease) for new in news]
            except _Refused:
                # Done again job by job, each under a savepoint, so that the error undoes
                # that job alone. Rare (a job the database refuses), so the usual batch goes
                # without the two savepoint statements per job.
                with transaction(self._conn):
                    outcomes = [self._enqueue_one(new, now, lease) for new in news]
        for outcome in outcomes:
            if not isinstance(outcome, Exception) and outcome[1]:
                job = outcome[0]
                log.info("job %d%s: queued for printer %s", job.id, _label(job), job.printer)
                if job.state is JobState.PRINTING:
                    log.info(
                        "job %d: queued -> printing (attempt 1, leased with the order)", job.id
                    )
        return outcomes

    def reprint(self, job_id: int) -> Job:
        """A new job printing the same order again, marked REPRINT when the original may
        already be on paper. The original keeps its state and history."""
        original = self.get(job_id)
        if original.state in (JobState.QUEUED, JobState.PRINTING):
            raise InvalidTransition(f"job {job_id} is still {original.state}: it will print")
        maybe = original.maybe_printed or original.state in (JobState.PRINTED, JobState.SENT)
        printer = original.original_printer or original.printer
        new = NewJob(
            printer,
            original.payload,
            original.copies,
            maybe_printed=maybe,
            reprint_of=original.id,
            first_accepted_at=original.ordered_at,
        )
        job, _ = self.enqueue(new)
        return job

    # -- reading --------------------------------------------------------------------------

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

    def pending(self, printer: str | None = None) -> list[Job]:
        states = tuple(PENDING_STATES)
        query = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?, ?)"
        params: tuple[Any, ...] = states
        if printer is not None:
            query += " AND printer = ?"
            params = (*states, printer)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        return [job_from_row(r) for r in rows]

    def count_pending_by_printer(self) -> dict[str, int]:
        """Jobs waiting per printer (none: not listed). Counted in the index on (printer, state,
        id) alone, printer by printer: a plain GROUP BY went through the state index and read
        every waiting job's row, 25 ms for 10,000 waiting jobs, on every (public) /status."""
        with self._lock:
            rows = self._conn.execute(_COUNT_PENDING, tuple(PENDING_STATES)).fetchall()
        return {printer: count for printer, count in rows if count}

    def printing(self, printer: str) -> int | None:
        """The id of the job ``printer`` is printing now, if any."""
        with self._lock:
            row = self._conn.execute(_PRINTING, (printer, JobState.PRINTING)).fetchone()
        return None if row is None else int(row[0])

    def count_by_state(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(state): n for state, n in rows})
        return counts

    # -- printing -------------------------------------------------------------------------

    def claim_next(self, printer: str, owner: str = "", lease_seconds: float = 30.0) -> Job | None:
        """Lease the printer's oldest queued job (``queued -> printing``). Nothing while a job
        of that printer is still ``printing`` under someone's lease: one ticket at a time, in
        order (a job moved here from a failed printer may be older than the one printing)."""
        with self._lock:
            printing = self._conn.execute(
                "SELECT 1 FROM jobs WHERE printer = ? AND state = ? LIMIT 1",
                (printer, JobState.PRINTING),
            ).fetchone()
            if printing is not None:
                return None
            row = self._conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE printer = ? AND state = ?"
                " ORDER BY id LIMIT 1",
                (printer, JobState.QUEUED),
            ).fetchone()
            if row is None:
                return None
            job = job_from_row(row)
            return self._transition(
                job,
                JobState.PRINTING,
                f"attempt {job.attempts + 1}",
                attempts=job.attempts + 1,
                lease_owner=owner,
                lease_expires=self._clock() + lease_seconds,
                ticket_started=0,
            )

    def mark_ticket_started(self, job_id: int, owner: str) -> None:
        """On disk before the first byte of the job's ticket is handed to the printer: from
        now on this attempt may print it (see :meth:`recover_interrupted`). InvalidTransition
        if the job is no longer leased to ``owner``: then it must not be sent."""
        with self._lock, transaction(self._conn):
            cursor = self._conn.execute(
                "UPDATE jobs SET ticket_started = 1 WHERE id = ? AND state = ? AND lease_owner = ?",
                (job_id, JobState.PRINTING, owner),
            )
            if cursor.rowcount != 1:
                raise InvalidTransition(f"job {job_id} is no longer leased to {owner}")

    def heartbeat(self, job_id: int, owner: str, lease_seconds: float) -> None:
        """Extend a lease; InvalidTransition if it is no longer the owner's."""
        with self._lock, transaction(self._conn):
            cursor = self._conn.execute(
                "UPDATE jobs SET lease_expires = ? WHERE id = ? AND state = ? AND lease_owner = ?",
                (self._clock() + lease_seconds, job_id, JobState.PRINTING, owner),
            )
            if cursor.rowcount != 1:
                raise InvalidTransition(f"job {job_id}: lease lost")

    def mark_printed(self, job_id: int, detail: str = "", owner: str | None = None) -> Job:
        return self._finish(job_id, JobState.PRINTED, detail or "printed", owner)

    def mark_sent(self, job_id: int, detail: str = "", owner: str | None = None) -> Job:
        return self._finish(job_id, JobState.SENT, detail or "sent, not confirmed", owner)

    def release(
        self,
        job_id: int,
        error: str,
        *,
        maybe_printed: bool,
        count_attempt: bool = True,
        owner: str | None = None,
    ) -> Job:
        """An attempt did not finish: ``printing -> queued``, keeping the job's place. An
        attempt that does not count (the printer waits for paper) is taken back off the count
        its start added."""
        with self._lock:
            job = self._owned(job_id, owner)
            return self._transition(
                job,
                JobState.QUEUED,
                f"will retry: {error}",
                attempts=job.attempts if count_attempt else max(job.attempts - 1, 0),
                last_error=error,
                maybe_printed=int(job.maybe_printed or maybe_printed),
                lease_owner=None,
                lease_expires=None,
                ticket_started=0,
            )

    def mark_failed(self, job_id: int, error: str, owner: str | None = None) -> Job:
        with self._lock:
            job = self._owned(job_id, owner)
            return self._transition(
                job,
                JobState.FAILED,
                error,
                last_error=error,
                lease_owner=None,
                lease_expires=None,
            )

    def cancel(self, job_id: int, detail: str = "") -> Job:
        with self._lock:
            return self._transition(self._get(job_id), JobState.CANCELLED, detail or "cancelled")

    def recover_interrupted(self, *, expired_only: bool = False) -> list[Job]:
        """Jobs left ``printing`` (their process died, or their lease ran out) go back to the
        queue; flagged as possibly printed (they come out marked REPRINT) when their attempt
        had started handing over the ticket, not when it had only asked the printer's status."""
        query = f"SELECT {JOB_COLUMNS}, ticket_started FROM jobs WHERE state = ?"
        params: tuple[Any, ...] = (JobState.PRINTING,)
        if expired_only:
            query += " AND (lease_expires IS NULL OR lease_expires < ?)"
            params = (*params, self._clock())
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
            return [
                self._transition(
                    job,
                    JobState.QUEUED,
                    _RECOVERED if row[-1] else _RECOVERED_UNSENT,
                    maybe_printed=int(job.maybe_printed or bool(row[-1])),
                    lease_owner=None,
                    lease_expires=None,
                    ticket_started=0,
                )
                for row in rows
                for job in [job_from_row(row[:-1])]
            ]

    def move_to_backup(self, printer: str, backup: str) -> list[Job]:
        """Hand every queued job of ``printer`` to ``backup`` (they print with a BACKUP FOR
        banner); returns the moved jobs."""
        now = self._clock()
        with self._lock, transaction(self._conn):
            rows = self._conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE printer = ? AND state = ? ORDER BY id",
                (printer, JobState.QUEUED),
            ).fetchall()
            for row in rows:
                self._conn.execute(
                    "UPDATE jobs SET printer = ?, original_printer = COALESCE(original_printer, ?),"
                    " updated_at = ? WHERE id = ? AND state = ?",
                    (backup, printer, now, row[0], JobState.QUEUED),
                )
                self._add_event(
                    row[0],
                    JobState.QUEUED,
                    JobState.QUEUED,
                    f"moved from {printer} to {backup}",
                    now,
                )
            moved = [self._get(row[0]) for row in rows]
        for job in moved:
            log.warning(
                "job %d%s: moved from printer %s to backup %s", job.id, _label(job), printer, backup
            )
        return moved

    def hold_queued(self, printer: str | None = None, detail: str = "held") -> list[Job]:
        """Set every queued job (of ``printer``, or of all) aside: ``queued -> held``."""
        return self._move_all(JobState.QUEUED, JobState.HELD, printer, detail)

    def release_held(self, printer: str | None = None, detail: str = "released") -> list[Job]:
        """Queue held jobs again, in their original order: ``held -> queued``."""
        return self._move_all(JobState.HELD, JobState.QUEUED, printer, detail)

    def close(self) -> None:
        self._group.close()  # commits what is still waiting
        with self._lock:
            self._conn.close()

    # -- internals (caller holds the lock) -------------------------------------------------

    def _store_one(self, new: NewJob, now: float, lease: LeaseNew | None) -> tuple[Job, bool]:
        """Insert one job (leased at once when ``lease`` says so) inside the caller's
        transaction; :class:`_Refused` when that failed and the transaction is still open."""
        try:
            return self._insert_and_lease(new, now, lease)
        except Exception as exc:
            if not self._conn.in_transaction:
                raise  # SQLite rolled the whole transaction back: no job of it stays
            raise _Refused from exc

    def _insert_and_lease(
        self, new: NewJob, now: float, lease: LeaseNew | None
    ) -> tuple[Job, bool]:
        outcome = self._insert(new, now)
        if lease is not None and outcome[1]:
            outcome = (self._lease_at_once(new, outcome[0], now, lease), True)
        return outcome

    def _enqueue_one(
        self,
        new: NewJob,
        now: float,
        lease: LeaseNew | None,
    ) -> tuple[Job, bool] | Exception:
        """:meth:`_insert_and_lease` under a savepoint: an error undoes this job only, and is
        its outcome."""
        self._conn.execute("SAVEPOINT enqueue_one")
        try:
            outcome = self._insert_and_lease(new, now, lease)
        except Exception as exc:
            if not self._conn.in_transaction:
                raise  # SQLite rolled the whole transaction back: no job of it stays
            self._conn.execute("ROLLBACK TO enqueue_one")
            self._conn.execute("RELEASE enqueue_one")
            if isinstance(exc, sqlite3.OperationalError):
                return cannot_write(self._conn, exc)
            return exc
        self._conn.execute("RELEASE enqueue_one")
        return outcome

    def _lease_at_once(
        self,
        new: NewJob,
        job: Job,
        now: float,
        lease: LeaseNew,
    ) -> Job:
        """``queued -> printing`` in the transaction that stored ``job``, when ``lease`` names
        an owner and no older job of its printer is still waiting (order first)."""
        taken = None if new.maybe_printed else lease(new, job)
        # Asked second: most orders are not waited for (their printer is busy).
        older = (job.printer, *PENDING_STATES, job.id)
        if taken is None or self._conn.execute(_OLDER_PENDING, older).fetchone():
            return job
        owner, seconds = taken
        self._conn.execute(
            "UPDATE jobs SET state = ?, attempts = 1, lease_owner = ?, lease_expires = ?"
            " WHERE id = ?",
            (JobState.PRINTING, owner, now + seconds, job.id),
        )
        self._add_event(job.id, JobState.QUEUED, JobState.PRINTING, "attempt 1", now)
        return dataclasses.replace(
            job, state=JobState.PRINTING, attempts=1, lease_owner=owner, lease_expires=now + seconds
        )

    def _insert(self, new: NewJob, now: float) -> tuple[Job, bool]:
        # The unique indexes on order_id and idempotency_key find a repeated order: the row is
        # not inserted (DO NOTHING acts on uniqueness alone, unlike INSERT OR IGNORE), and only
        # then is the first job looked up. A new order costs no lookup.
        cursor = self._conn.execute(
            "INSERT INTO jobs (printer, state, payload, copies, order_id, idempotency_key,"
            " created_at, updated_at, maybe_printed, reprint_of, submitted_by, first_accepted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                new.printer,
                JobState.QUEUED,
                json.dumps(new.payload, ensure_ascii=False),
                new.copies,
                new.order_id,
                new.idempotency_key,
                now,
                now,
                int(new.maybe_printed),
                new.reprint_of,
                new.submitted_by,
                new.first_accepted_at,
            ),
        )
        if cursor.rowcount == 0:
            # AUTOINCREMENT drew a number for the refused row: give it back, or every repeated
            # order leaves a gap in the job numbers staff read. Never below a stored job.
            self._conn.execute(_RETURN_NUMBER)
            existing = self._find_duplicate(new)
            if existing is None:  # cannot be: only the two unique indexes make a conflict
                raise StoreError(f"order {new.order_id!r} conflicts with no job")
            return existing, False
        job_id = int(cursor.lastrowid or 0)
        detail = f"accepted for {new.printer}"
        if new.reprint_of is not None:
            detail = f"reprint of job {new.reprint_of}, for {new.printer}"
        self._add_event(job_id, None, JobState.QUEUED, detail, now)
        # The row as just written (its other columns start empty): reading it back would cost
        # a query and a JSON parse per order, a quarter of the store's time for each.
        job = Job(
            id=job_id,
            printer=new.printer,
            state=JobState.QUEUED,
            payload=new.payload,
            copies=new.copies,
            created_at=now,
            updated_at=now,
            order_id=new.order_id,
            idempotency_key=new.idempotency_key,
            maybe_printed=new.maybe_printed,
            reprint_of=new.reprint_of,
            submitted_by=new.submitted_by,
            first_accepted_at=new.first_accepted_at,
        )
        return job, True

    def _move_all(
        self, old: JobState, new: JobState, printer: str | None, detail: str
    ) -> list[Job]:
        query = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?"
        params: tuple[Any, ...] = (old,)
        if printer is not None:
            query += " AND printer = ?"
            params = (*params, printer)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
            return [self._transition(job_from_row(row), new, detail) for row in rows]

    def _finish(self, job_id: int, state: JobState, detail: str, owner: str | None) -> Job:
        with self._lock:
            job = self._owned(job_id, owner)
            return self._transition(
                job, state, detail, printed_at=self._clock(), lease_owner=None, lease_expires=None
            )

    def _owned(self, job_id: int, owner: str | None) -> Job:
        job = self._get(job_id)
        if owner is not None and job.state is JobState.PRINTING and job.lease_owner != owner:
            raise InvalidTransition(f"job {job_id}: lease lost to {job.lease_owner!r}")
        return job

    def _get(self, job_id: int) -> Job:
        row = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return job_from_row(row)

    def _find_duplicate(self, new: NewJob) -> Job | None:
        for column, value in (("order_id", new.order_id), ("idempotency_key", new.idempotency_key)):
            if value is None:
                continue
            row = self._conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE {column} = ?", (value,)
            ).fetchone()
            if row is not None:
                return job_from_row(row)
        return None

    def _transition(self, job: Job, new_state: JobState, detail: str, **columns: Any) -> Job:
        if not can_transition(job.state, new_state):
            raise InvalidTransition(f"job {job.id} is {job.state}, cannot become {new_state}")
        now = self._clock()
        assignments = ", ".join(f"{name} = ?" for name in ("state", "updated_at", *columns))
        guard = "id = ? AND state = ?"
        params: tuple[Any, ...] = (job.id, job.state)
        if job.state is JobState.PRINTING:
            guard += " AND lease_owner IS ?"
            params = (*params, job.lease_owner)
        with transaction(self._conn):
            cursor = self._conn.execute(
                f"UPDATE jobs SET {assignments} WHERE {guard}",
                (new_state, now, *columns.values(), *params),
            )
            if cursor.rowcount != 1:
                raise InvalidTransition(f"job {job.id} changed meanwhile")
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


def job_from_row(row: tuple[Any, ...]) -> Job:
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
        lease_owner=row[13],
        lease_expires=row[14],
        original_printer=row[15],
        reprint_of=row[16],
        submitted_by=row[17],
        first_accepted_at=row[18],
    )


def _label(job: Job) -> str:
    return f" [order {job.order_id}]" if job.order_id else ""
