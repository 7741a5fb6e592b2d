"""PrinterWorker: prints one printer's jobs, one at a time, in acceptance order.

It sleeps until woken by an enqueue (no polling), claims the oldest queued job, renders it,
sends it, confirms it with a status request where configured, and records the outcome. A job
that did not finish goes back to the queue and the worker waits out a backoff before trying the
same job again, so a later order never overtakes an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from spoonprint.delivery.retry import RetryPolicy
from spoonprint.domain.document import Document, with_banner
from spoonprint.domain.job import Job
from spoonprint.domain.profile import PrinterProfile
from spoonprint.domain.status import PrinterStatus, StatusDialect, status_dialect
from spoonprint.domain.ticket import document_for
from spoonprint.errors import PrinterError, PrinterNotReady, StoreError
from spoonprint.queue.store import JobStore
from spoonprint.render.base import Renderer
from spoonprint.transports.base import StatusQuery, Transport

log = logging.getLogger("spoonprint.worker")


def _query(dialect: StatusDialect) -> StatusQuery:
    return StatusQuery(dialect.request, dialect.first, dialect.total)


REPRINT_BANNER = "*** REPRINT 重印 ***"


@dataclass
class PrinterState:
    """What the worker last learned about its printer, for /status and /printers."""

    online: bool | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_printed_at: float | None = None
    consecutive_failures: int = 0


@dataclass
class PrinterWorker:
    name: str
    store: JobStore
    transport: Transport
    renderer: Renderer
    profile: PrinterProfile
    retry: RetryPolicy = RetryPolicy()
    confirm: bool = True
    state: PrinterState = field(default_factory=PrinterState)
    #: Notified after every attempt, whatever its outcome, for whoever watches this printer.
    progress: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("printer %s: worker started (%s)", self.name, self.transport.address)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                job = await asyncio.to_thread(self.store.claim_next, self.name)
                if job is None:
                    await self._wake.wait()
                    continue
                finished = await self._attempt(job)
                async with self.progress:
                    self.progress.notify_all()
                if not finished:
                    await self._backoff()
            except StoreError:
                log.exception("printer %s: job store error; will try again", self.name)
                await self._backoff()
        log.info("printer %s: worker stopped", self.name)

    async def _attempt(self, job: Job) -> bool:
        """One delivery attempt; True when the job reached a final state."""
        try:
            # Raster tickets take milliseconds of CPU: keep the event loop free meanwhile.
            data = await asyncio.to_thread(
                self.renderer, self._document(job), self.profile, job.copies
            )
        except Exception as exc:  # a job that cannot render will never print: fail it, visibly
            log.exception("printer %s: job %d cannot be rendered", self.name, job.id)
            await asyncio.to_thread(self.store.mark_failed, job.id, f"cannot render: {exc}")
            return True
        try:
            detail = await self._deliver(data)
        except PrinterError as exc:
            self._record_failure(str(exc))
            await asyncio.to_thread(
                self.store.release, job.id, str(exc), maybe_printed=exc.bytes_written > 0
            )
            return False
        self.state.online = True
        self.state.consecutive_failures = 0
        self.state.last_printed_at = time.time()
        await asyncio.to_thread(self.store.mark_printed, job.id, detail)
        return True

    def _document(self, job: Job) -> Document:
        document = document_for(job.payload, self.profile.style)
        if job.maybe_printed:
            accepted = time.strftime("%m-%d %H:%M", time.localtime(job.created_at))
            document = with_banner(document, REPRINT_BANNER)
            # Short enough for one large line even on 58 mm paper.
            document = with_banner(document, f"ordered {accepted}")
        return document

    async def _deliver(self, data: bytes) -> str:
        if not self.confirm:
            await self.transport.send(data)
            return f"{len(data)} bytes sent to {self.transport.address} (not confirmed)"
        dialect = status_dialect(self.profile.protocol)
        reply = await self.transport.send(data, _query(dialect))
        assert reply is not None
        status = dialect.decode(reply)
        if not status.online:
            status = await self._explained(dialect, reply, status)
            raise PrinterNotReady(f"printer not ready: {status.problem}", bytes_written=len(data))
        return f"{len(data)} bytes to {self.transport.address}, printer confirmed online"

    async def _explained(
        self, dialect: StatusDialect, reply: bytes, status: PrinterStatus
    ) -> PrinterStatus:
        """Ask the follow-up question that says why an ESC/POS printer is offline."""
        if dialect.cause_request is None or dialect.decode_with_cause is None:
            return status
        try:
            cause = await self.transport.ask(StatusQuery(dialect.cause_request))
        except PrinterError:
            return status
        return dialect.decode_with_cause(reply, cause)

    def _record_failure(self, error: str) -> None:
        self.state.online = False
        self.state.last_error = error
        self.state.last_error_at = time.time()
        self.state.consecutive_failures += 1
        log.warning("printer %s: %s", self.name, error)

    async def _backoff(self) -> None:
        delay = self.retry.delay(max(self.state.consecutive_failures, 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
