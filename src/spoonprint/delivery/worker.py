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
from spoonprint.domain.document import Document, document_for, with_banner
from spoonprint.domain.job import Job
from spoonprint.domain.profile import PrinterProfile
from spoonprint.domain.status import STATUS_OFFLINE_CAUSE, STATUS_PRINTER, decode_printer_status
from spoonprint.errors import PrinterError, PrinterNotReady, StoreError
from spoonprint.queue.store import JobStore
from spoonprint.render.base import Renderer
from spoonprint.transports.base import StatusQuery, Transport

log = logging.getLogger("spoonprint.worker")

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
            data = self.renderer(self._document(job), self.profile, job.copies)
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
        document = document_for(job.payload)
        if job.maybe_printed:
            accepted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created_at))
            document = with_banner(document, REPRINT_BANNER)
            document = with_banner(document, f"ordered {accepted}")
        return document

    async def _deliver(self, data: bytes) -> str:
        if not self.confirm:
            await self.transport.send(data)
            return f"{len(data)} bytes sent to {self.transport.address} (not confirmed)"
        reply = await self.transport.send(data, StatusQuery(STATUS_PRINTER))
        assert reply is not None
        status = decode_printer_status(reply[0])
        if not status.online:
            status = decode_printer_status(reply[0], await self._offline_cause())
            raise PrinterNotReady(f"printer not ready: {status.problem}", bytes_written=len(data))
        return f"{len(data)} bytes to {self.transport.address}, printer confirmed online"

    async def _offline_cause(self) -> int | None:
        try:
            return (await self.transport.ask(StatusQuery(STATUS_OFFLINE_CAUSE)))[0]
        except PrinterError:
            return None

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
