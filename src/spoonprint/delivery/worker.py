"""PrinterWorker: prints one printer's jobs, one at a time, in acceptance order.

It sleeps until woken by an enqueue (no polling), leases the oldest queued job (renewing the
lease while it prints), renders it, asks the printer whether it can print, sends the ticket and
asks again to confirm it. A job that did not finish goes back to the queue and keeps its place;
the worker waits out a backoff before trying the same job again, so a later order never
overtakes an earlier one. A circuit breaker stops ticket attempts at a printer that keeps
failing and probes it with status requests instead; after ``failover_after`` seconds down, the
printer's waiting jobs move to its backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass, field

from spoonprint.delivery.breaker import BreakerState, CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.domain.document import Document, with_banner
from spoonprint.domain.job import Job
from spoonprint.domain.profile import PrinterProfile
from spoonprint.domain.status import PrinterStatus, StatusDialect, status_dialect
from spoonprint.domain.ticket import document_for
from spoonprint.errors import (
    InvalidTransition,
    PrinterDisconnected,
    PrinterError,
    PrinterNotReady,
    PrinterOffline,
    PrinterTimeout,
    StoreError,
)
from spoonprint.queue.store import JobStore
from spoonprint.render.base import Renderer
from spoonprint.transports.base import StatusQuery, Transport

log = logging.getLogger("spoonprint.worker")

REPRINT_BANNER = "*** REPRINT 重印 ***"


def plain_problem(exc: PrinterError) -> str:
    """What is wrong, in words for staff, without addresses."""
    if isinstance(exc, PrinterNotReady):
        return str(exc).removeprefix("printer not ready: ")
    if isinstance(exc, PrinterOffline):
        return "printer unreachable: check its power and cable"
    if isinstance(exc, PrinterTimeout):
        return "printer not responding"
    if isinstance(exc, PrinterDisconnected):
        return "connection to the printer dropped"
    return "printer error"


def _query(dialect: StatusDialect) -> StatusQuery:
    return StatusQuery(dialect.request, dialect.first, dialect.total)


@dataclass
class PrinterState:
    """What the worker last learned about its printer, for /status and /printers."""

    online: bool | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_printed_at: float | None = None
    consecutive_failures: int = 0
    #: Since when (wall clock) the printer has been failing; None while it prints.
    down_since: float | None = None
    #: The current trouble in plain words, without addresses (safe for the public status).
    problem: str | None = None


@dataclass(frozen=True)
class Failover:
    backup: str
    after: float
    #: Wakes the backup printer's worker once jobs were moved to it.
    wake_backup: Callable[[], None]


@dataclass
class PrinterWorker:
    name: str
    store: JobStore
    transport: Transport
    renderer: Renderer
    profile: PrinterProfile
    retry: RetryPolicy = RetryPolicy()
    confirm: bool = True
    owner: str = "worker"
    lease_seconds: float = 30.0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    failover: Failover | None = None
    state: PrinterState = field(default_factory=PrinterState)
    #: Called after every failed attempt (the health monitor probes at once).
    on_trouble: Callable[[], None] | None = None
    #: Notified after every attempt or probe, whatever its outcome, for whoever watches.
    progress: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)
    #: Held while talking to the printer, so the health monitor never opens a second
    #: connection in the middle of a ticket.
    line: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _resume: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def wake(self) -> None:
        self._wake.set()

    def resume(self) -> None:
        """The printer is known to work again (the monitor healed it): close the breaker and
        end any backoff now, instead of at its time."""
        self.breaker.record_success()
        self._resume.set()
        self._wake.set()

    @property
    def busy(self) -> bool:
        return self.line.locked()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("printer %s: worker started (%s)", self.name, self.transport.address)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self._step()
            except StoreError:
                log.exception("printer %s: job store error; will try again", self.name)
                await self._pause(self.retry.delay(1))
        log.info("printer %s: worker stopped", self.name)

    async def _step(self) -> None:
        wait = self.breaker.ready_in()
        if wait > 0:
            await self._maybe_failover()
            await self._pause(wait)
            return
        if (
            self.breaker.state is BreakerState.HALF_OPEN
            and self.confirm
            and self.transport.reads_status
        ):
            await self._probe()
            return
        job = await asyncio.to_thread(
            self.store.claim_next, self.name, self.owner, self.lease_seconds
        )
        if job is None:
            await self._wake.wait()
            return
        error = await self._attempt(job)
        await self._notify()
        if error is not None:
            if self.on_trouble is not None:
                self.on_trouble()
            await self._maybe_failover()
            failures = max(self.state.consecutive_failures, 1)
            await self._pause(self.retry.delay(failures, error=error))

    # -- one ticket -----------------------------------------------------------------------

    async def _attempt(self, job: Job) -> PrinterError | None:
        """One delivery attempt; the printer error when it did not get through."""
        try:
            # Raster tickets take milliseconds of CPU: keep the event loop free meanwhile.
            data = await asyncio.to_thread(
                self.renderer, self.document(job), self.profile, job.copies
            )
        except Exception as exc:  # a job that cannot render will never print: fail it, visibly
            log.exception("printer %s: job %d cannot be rendered", self.name, job.id)
            await self._finish(self.store.mark_failed, job.id, f"cannot render: {exc}")
            return None
        heartbeat = asyncio.create_task(self._heartbeat(job.id))
        try:
            async with self.line:
                detail, confirmed = await self._deliver(data)
        except PrinterError as exc:
            await self._failed(job, exc)
            return exc
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        self._succeeded()
        mark = self.store.mark_printed if confirmed else self.store.mark_sent
        await self._finish(mark, job.id, detail)
        return None

    def document(self, job: Job) -> Document:
        """What ``job`` prints on this printer, banners (REPRINT, BACKUP FOR) included."""
        document = document_for(job.payload, self.profile.style)
        if job.moved_to_backup:
            document = with_banner(document, f"BACKUP FOR {job.original_printer}")
        if job.maybe_printed:
            accepted = time.strftime("%m-%d %H:%M", time.localtime(job.created_at))
            document = with_banner(document, REPRINT_BANNER)
            # Short enough for one large line even on 58 mm paper.
            document = with_banner(document, f"ordered {accepted}")
        return document

    async def _deliver(self, data: bytes) -> tuple[str, bool]:
        """Send the ticket; (detail, confirmed by the printer)."""
        if not self.confirm or not self.transport.reads_status:
            await self.transport.send(data)
            return f"{len(data)} bytes sent to {self.transport.address} (not confirmed)", False
        dialect = status_dialect(self.profile.protocol)
        query = _query(dialect)

        def ready(reply: bytes) -> None:
            status = dialect.decode(reply)
            if not status.online:
                raise PrinterNotReady(f"printer not ready: {status.problem}")

        try:
            reply = await self.transport.send(data, query, check=ready)
        except PrinterNotReady as exc:
            if exc.bytes_written:
                raise
            # Nothing was sent: say why the printer is not ready, as precisely as it tells.
            status = await self._explained(dialect, PrinterStatus(False, str(exc)))
            raise PrinterNotReady(f"printer not ready: {status.problem}") from exc
        assert reply is not None
        status = dialect.decode(reply)
        if not status.online:
            status = await self._explained(dialect, status, reply)
            raise PrinterNotReady(f"printer not ready: {status.problem}", bytes_written=len(data))
        return f"{len(data)} bytes to {self.transport.address}, printer confirmed", True

    async def _explained(
        self, dialect: StatusDialect, status: PrinterStatus, reply: bytes | None = None
    ) -> PrinterStatus:
        """Ask the follow-up question that says why an ESC/POS printer is offline."""
        if dialect.cause_request is None or dialect.decode_with_cause is None:
            return status
        try:
            if reply is None:
                reply = await self.transport.ask(_query(dialect))
            cause = await self.transport.ask(StatusQuery(dialect.cause_request))
        except PrinterError:
            return status
        return dialect.decode_with_cause(reply, cause)

    async def _failed(self, job: Job, exc: PrinterError) -> None:
        self._record_failure(str(exc), plain_problem(exc))
        if self.retry.counts(exc):  # paper out is not a broken line: keep polling it
            self.breaker.record_failure()
        attempts = job.attempts + int(self.retry.counts(exc))
        reason = self.retry.give_up(attempts, time.time() - job.created_at, exc)
        if reason is not None:
            log.error("printer %s: job %d failed: %s", self.name, job.id, reason)
            await self._finish(self.store.mark_failed, job.id, reason)
            return
        await self._finish(
            self.store.release,
            job.id,
            str(exc),
            maybe_printed=exc.bytes_written > 0,
            count_attempt=self.retry.counts(exc),
        )

    async def _finish(
        self, change: Callable[..., Job], job_id: int, *args: object, **kwargs: object
    ) -> None:
        try:
            await asyncio.to_thread(change, job_id, *args, owner=self.owner, **kwargs)
        except InvalidTransition as exc:
            # The lease ran out and the job was recovered: it prints again, marked REPRINT.
            log.error("printer %s: job %d: %s", self.name, job_id, exc)

    async def _heartbeat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await asyncio.to_thread(
                    self.store.heartbeat, job_id, self.owner, self.lease_seconds
                )
            except InvalidTransition:
                log.error("printer %s: job %d: lease lost while printing", self.name, job_id)
                return

    # -- printer health -------------------------------------------------------------------

    async def _probe(self) -> None:
        """Half-open breaker: a status request, not a ticket, decides whether to resume."""
        dialect = status_dialect(self.profile.protocol)
        try:
            async with self.line:
                status = dialect.decode(await self.transport.ask(_query(dialect)))
        except PrinterError as exc:
            self._record_failure(str(exc), plain_problem(exc))
            self.breaker.record_failure()
        else:
            # It answers: the line is fine. Paper or cover are for the not-ready polling.
            log.info("printer %s: answers again (%s)", self.name, status.problem or "online")
            self.breaker.record_success()
            if status.online:
                self._succeeded()
            else:
                self.state.problem = status.problem
        await self._notify()

    def _succeeded(self) -> None:
        self.breaker.record_success()
        self.state.online = True
        self.state.consecutive_failures = 0
        self.state.down_since = None
        self.state.problem = None
        self.state.last_printed_at = time.time()

    def _record_failure(self, error: str, problem: str) -> None:
        self.state.online = False
        self.state.problem = problem
        self.state.last_error = error
        self.state.last_error_at = time.time()
        self.state.consecutive_failures += 1
        if self.state.down_since is None:
            self.state.down_since = self.state.last_error_at
        log.warning("printer %s: %s", self.name, error)

    async def _maybe_failover(self) -> None:
        down_since = self.state.down_since
        if self.failover is None or down_since is None:
            return
        if time.time() - down_since < self.failover.after:
            return
        moved = await asyncio.to_thread(self.store.move_to_backup, self.name, self.failover.backup)
        if moved:
            log.warning(
                "printer %s: down for %.0f s; %d job(s) moved to %s",
                self.name,
                time.time() - down_since,
                len(moved),
                self.failover.backup,
            )
            self.failover.wake_backup()

    async def _notify(self) -> None:
        async with self.progress:
            self.progress.notify_all()

    async def _pause(self, seconds: float) -> None:
        """Wait, but stop at once when asked to, or when the monitor says the printer works
        again (a new order does not cut a backoff short)."""
        stop = asyncio.ensure_future(self._stop.wait())
        resume = asyncio.ensure_future(self._resume.wait())
        try:
            await asyncio.wait({stop, resume}, timeout=seconds, return_when=FIRST_COMPLETED)
        finally:
            stop.cancel()
            resume.cancel()
        self._resume.clear()
