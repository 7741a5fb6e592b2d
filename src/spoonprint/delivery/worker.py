"""PrinterWorker: prints one printer's jobs, one at a time, in acceptance order.

It sleeps until woken by an enqueue (no polling), leases the oldest queued job (renewing the
lease while it prints), renders it, asks the printer whether it can print, sends the ticket and
asks again to confirm it. Reaching the printer and asking it overlap the rendering. For an idle
worker, a new order's ticket is rendered while the order is being committed
(:meth:`PrinterWorker.expect`: used only if the job then leased prints exactly that ticket),
and the job is leased to it in the transaction that stores the order
(:meth:`PrinterWorker.expected`, asked by the job store's writer thread;
:meth:`PrinterWorker.settle`, told the outcome). A job that did not finish goes
back to the queue and keeps its place; the worker waits out a backoff before trying the same
job again, so a later order never overtakes an earlier one. A circuit breaker stops ticket
attempts at a printer that keeps failing and probes it with status requests instead; after
``failover_after`` seconds down, the printer's waiting jobs move to its backup.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from spoonprint.delivery.breaker import BreakerState, CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.domain.document import Document, with_banner
from spoonprint.domain.job import Job, NewJob
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
    StoreUnavailable,
)
from spoonprint.queue.store import JobStore
from spoonprint.render.loader import Renderer
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


#: A ticket being rendered in a thread. Not wrapped for the event loop: when the job is leased
#: after its rendering finished, the ticket is ready at once, without waiting for the loop to
#: be told (a turn in which the HTTP answers would be written first).
Rendering = concurrent.futures.Future[bytes]


@functools.cache
def _render_pool() -> concurrent.futures.ThreadPoolExecutor:
    # Two threads: one ticket ahead while another prints, for any number of printers; more
    # would not render faster, sharing one interpreter lock.
    return concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="spoonprint-render")


class _NoJob(Exception):
    """The claim found nothing to print (the job woken for was taken or cancelled)."""


class _Unrenderable(Exception):
    """The claimed job cannot be rendered (the cause is chained)."""


#: What a ticket without banners depends on: its printer, copies and payload.
_TicketKey = tuple[str, int, dict[str, Any]]


def _plain_ticket(printer: str, copies: int, payload: dict[str, Any]) -> _TicketKey:
    return (printer, copies, payload)


def _ticket_key(job: Job) -> _TicketKey | None:
    """What ``job``'s ticket depends on, when it has no banner (REPRINT, BACKUP FOR); None
    when it has one (those depend on more: kept simple, such tickets are not rendered ahead)."""
    if job.maybe_printed or job.moved_to_backup:
        return None
    return _plain_ticket(job.printer, job.copies, job.payload)


class _TicketMaker:
    """One attempt's ticket, made as soon as its job is leased and its rendering done, by
    callbacks rather than tasks: when the rendering is ready as the order's commit is settled,
    the ticket is too, before the commit's callers resume (so the printer gets its first bytes
    before the HTTP answers are written)."""

    def __init__(self, worker: PrinterWorker) -> None:
        self.worker = worker
        #: The ticket's bytes; _NoJob, _Unrenderable or a store error.
        self.ticket: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        #: The job leased for this attempt, once known.
        self.job: Job | None = None
        #: The ticket's size, once made.
        self.size = 0

    def settled(self, job: Job | None) -> None:
        """The expected order's job, leased with it, or None: then lease the oldest queued."""
        if job is not None:
            self.leased(job)
            return
        worker = self.worker
        claim = asyncio.ensure_future(
            asyncio.to_thread(
                worker.store.claim_next, worker.name, worker.owner, worker.lease_seconds
            )
        )
        claim.add_done_callback(self._claimed)

    def _claimed(self, claim: asyncio.Future[Job | None]) -> None:
        if claim.cancelled():  # only as the loop shuts down: nothing was leased to print
            self._fail(_NoJob())
        elif (error := claim.exception()) is not None:
            self._fail(error)
        else:
            self.leased(claim.result())

    def leased(self, job: Job | None) -> None:
        rendering = self.worker._rendering_for(job)
        if job is None or rendering is None:
            self._fail(_NoJob())
            return
        self.job = job
        if rendering.done():  # done in its thread: no need to wait for the loop to hear it
            self._rendered(rendering)
        else:
            asyncio.wrap_future(rendering).add_done_callback(self._rendered)

    def _rendered(self, rendering: Rendering | asyncio.Future[bytes]) -> None:
        if self.ticket.done():
            return
        if rendering.cancelled():
            self.ticket.cancel()
        elif (error := rendering.exception()) is not None:
            unrenderable = _Unrenderable(str(error))
            unrenderable.__cause__ = error
            self.ticket.set_exception(unrenderable)
        else:
            data = rendering.result()
            self.size = len(data)
            self.ticket.set_result(data)

    def _fail(self, error: BaseException) -> None:
        """No ticket: ``error`` says why."""
        if not self.ticket.done():
            self.ticket.set_exception(error)


class _HandOver:
    """The ticket as the transport awaits it, once the printer said it can print: made, and
    then recorded on disk as started (:meth:`JobStore.mark_ticket_started`) before the
    transport writes its first byte. A process killed before then, say while it waited for
    the status reply, leaves a job that did not print: recovered without a REPRINT banner.
    Awaitable rather than a coroutine: a transport that never gets as far as the ticket must
    not leave an un-awaited coroutine behind."""

    def __init__(self, worker: PrinterWorker, maker: _TicketMaker) -> None:
        self.worker = worker
        self.maker = maker

    def __await__(self) -> Generator[Any, None, bytes]:
        return self._started().__await__()

    async def _started(self) -> bytes:
        data = await self.maker.ticket
        job = self.maker.job
        assert job is not None  # a ticket is made only for a leased job
        worker = self.worker
        try:
            await asyncio.to_thread(worker.store.mark_ticket_started, job.id, worker.owner)
        except InvalidTransition as exc:  # the lease ran out and the job was recovered
            log.error("printer %s: job %d: %s; not sending it", worker.name, job.id, exc)
            raise _NoJob() from exc
        return data


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
    #: Set while the worker waits for work, nothing queued for it.
    idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    #: A ticket being rendered ahead, for an order being committed (see :meth:`expect`).
    #: (None until it is handed to a thread, at the loop's next turn.)
    _ahead: tuple[_TicketKey, Rendering | None] | None = field(default=None, init=False)
    #: Guards the three below: the job store's writer thread reads them (:meth:`expected`).
    _claims: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopping: bool = field(default=False, init=False)
    #: The order this idle worker waits for, leased to it as it is committed (see expect()).
    _expected: NewJob | None = field(default=None, init=False)
    #: That order's job once settled: leased to this worker, or None (it leases for itself).
    _handoff: asyncio.Future[Job | None] | None = field(default=None, init=False)
    #: Told that job at once when it is settled, if an attempt already waits for it.
    _on_settled: Callable[[Job | None], None] | None = field(default=None, init=False)

    def wake(self) -> None:
        self._wake.set()

    def expect(self, new: NewJob) -> None:
        """An order for this printer is about to be committed. An idle worker with a working
        printer takes it as its next job: it renders the ticket and reaches the printer while
        the order is written to disk, and the job store leases the job to it in the same
        transaction (see :meth:`expected`). Whoever commits the order must then call
        :meth:`settle` with it. The ticket rendered ahead is used only for a job whose ticket
        it is (same printer, copies and order, no banner)."""
        if not self.idle.is_set() or new.maybe_printed:  # busy: the usual case under load
            return
        if self.breaker.state is not BreakerState.CLOSED or self.breaker.ready_in() > 0:
            return
        with self._claims:
            if self._stopping or self._expected is not None or self._handoff is not None:
                return
            self._expected = new
        loop = asyncio.get_running_loop()
        self._handoff = loop.create_future()
        key = _plain_ticket(new.printer, new.copies, new.payload)
        self._ahead = (key, None)
        loop.call_soon(self._render_ahead, key, new.payload, new.copies)
        self._wake.set()

    def _render_ahead(self, key: _TicketKey, payload: dict[str, Any], copies: int) -> None:
        # At the loop's next turn: by then the order is with the job store's writer thread,
        # which starts its commit before this rendering competes with it for the CPU.
        if self._ahead is not None and self._ahead[0] is key and self._ahead[1] is None:
            self._ahead = (key, self._rendering(payload, copies))

    def expected(self, new: NewJob) -> bool:
        """Any thread: whether this worker waits for ``new`` (so its job may be leased to it
        as it is stored)."""
        with self._claims:
            return self._expected is new

    def settle(self, new: NewJob, leased: Job | None) -> None:
        """``new`` was committed (``leased``: its job, if leased to this worker) or refused
        (None); wakes the worker either way."""
        with self._claims:
            mine = self._expected is new
            if mine:
                self._expected = None
        if mine and self._handoff is not None and not self._handoff.done():
            self._handoff.set_result(leased)
            listener, self._on_settled = self._on_settled, None
            if listener is not None:
                # At once, not at the loop's next turn: a ticket ready now reaches the printer
                # before the commit's callers resume to write their answers.
                self._handoff = None
                listener(leased)
        self._wake.set()

    def _await_settle(self, maker: _TicketMaker) -> None:
        """Have ``maker`` told the expected order's job as soon as it is settled."""
        handoff = self._handoff
        assert handoff is not None
        if handoff.done():
            self._handoff = None
            maker.settled(handoff.result())
        else:
            self._on_settled = maker.settled

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
        with self._claims:
            self._stopping = True
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("printer %s: worker started (%s)", self.name, self.transport.address)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self._step()
            except StoreUnavailable as exc:  # a full disk: said in one line, not a traceback
                log.error("printer %s: %s; will try again", self.name, exc)
                await self._pause(self.retry.delay(1))
            except StoreError:
                log.exception("printer %s: job store error; will try again", self.name)
                await self._pause(self.retry.delay(1))
        await self._give_back()
        log.info("printer %s: worker stopped", self.name)

    async def _give_back(self) -> None:
        """A job leased to this worker with its order that it did not start goes back to its
        place in the queue, unmarked: it did not print."""
        handoff, self._handoff = self._handoff, None
        if handoff is None:
            return
        try:
            job = await asyncio.wait_for(handoff, 5)
        except TimeoutError:
            log.error("printer %s: the order it waited for was not settled", self.name)
            return
        if job is not None:
            await self._finish(
                self.store.release,
                job.id,
                "not started: stopping",
                maybe_printed=False,
                count_attempt=False,
            )

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
        job = None
        # Waiting for an order being committed, the printer is reached meanwhile; otherwise
        # only once there is a job (no connection at every idle wake).
        if self._handoff is None:
            job = await asyncio.to_thread(
                self.store.claim_next, self.name, self.owner, self.lease_seconds
            )
            if job is None:
                await self._wait_for_work()
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

    async def _attempt(self, job: Job | None) -> PrinterError | None:
        """One delivery attempt of ``job``, or (None) of the expected order's job once it is
        settled (none: nothing happens); the printer error when it did not get through."""
        maker = _TicketMaker(self)
        if job is not None:
            maker.leased(job)
        else:
            self._await_settle(maker)
        heartbeat = asyncio.create_task(self._heartbeat(maker))
        try:
            async with self.line:
                confirmed = await self._deliver(maker)
        except PrinterError as exc:
            await self._wait_out(maker.ticket)  # the printer failed first: let the lease finish
            if maker.job is None:
                self._record_failure(str(exc), plain_problem(exc))
                return exc
            await self._failed(maker.job, exc)
            return exc
        except _NoJob:
            return None
        except _Unrenderable as exc:  # a job that cannot render will never print: fail it
            assert maker.job is not None
            log.error(
                "printer %s: job %d cannot be rendered", self.name, maker.job.id, exc_info=exc
            )
            await self._finish(
                self.store.mark_failed, maker.job.id, f"cannot render: {exc.__cause__}"
            )
            return None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        assert maker.job is not None
        self._succeeded()
        if confirmed:
            mark = self.store.mark_printed
            detail = f"{maker.size} bytes to {self.transport.address}, printer confirmed"
        else:
            mark = self.store.mark_sent
            detail = f"{maker.size} bytes sent to {self.transport.address} (not confirmed)"
        await self._finish(mark, maker.job.id, detail)
        return None

    def _rendering_for(self, job: Job | None) -> Rendering | None:
        """``job``'s ticket: the one rendered ahead if it is that ticket, else rendered now;
        a rendering ahead for anything else is dropped. None when there is no job."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            key, rendering = ahead
            if job is not None and rendering is not None and key == _ticket_key(job):
                return rendering
            if rendering is not None:
                rendering.cancel()
        return None if job is None else self._render(job)

    def _render(self, job: Job) -> Rendering:
        return self._in_thread(lambda: self.renderer(self.document(job), self.profile, job.copies))

    def _rendering(self, payload: dict[str, Any], copies: int) -> Rendering:
        """A ticket without banners."""
        style = self.profile.style
        return self._in_thread(
            lambda: self.renderer(document_for(payload, style), self.profile, copies)
        )

    @staticmethod
    def _in_thread(render: Callable[[], bytes]) -> Rendering:
        # Raster tickets take milliseconds of CPU: keep the event loop free meanwhile.
        return _render_pool().submit(render)

    @staticmethod
    async def _wait_out(ticket: asyncio.Future[bytes]) -> None:
        """Wait for a ticket the transport gave up on before taking it: its job is then known.
        A store error raises; not having a job or a ticket does not matter any more."""
        await asyncio.wait([ticket])
        if ticket.cancelled():
            return
        error = ticket.exception()
        if error is not None and not isinstance(error, _NoJob | _Unrenderable):
            raise error

    def document(self, job: Job) -> Document:
        """What ``job`` prints on this printer, banners (REPRINT, BACKUP FOR) included."""
        document = document_for(job.payload, self.profile.style)
        if job.moved_to_backup:
            document = with_banner(document, f"BACKUP FOR {job.original_printer}")
        if job.maybe_printed:
            accepted = time.strftime("%m-%d %H:%M", time.localtime(job.ordered_at))
            document = with_banner(document, REPRINT_BANNER)
            # Short enough for one large line even on 58 mm paper.
            document = with_banner(document, f"ordered {accepted}")
        return document

    async def _deliver(self, maker: _TicketMaker) -> bool:
        """Send the ticket; whether the printer confirmed it."""
        ticket = _HandOver(self, maker)
        if not self.confirm or not self.transport.reads_status:
            await self.transport.send(ticket)
            return False
        dialect = status_dialect(self.profile.protocol)
        query = _query(dialect)

        def ready(reply: bytes) -> None:
            status = dialect.decode(reply)
            if not status.online:
                raise PrinterNotReady(f"printer not ready: {status.problem}")

        try:
            reply = await self.transport.send(ticket, query, check=ready)
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
            raise PrinterNotReady(f"printer not ready: {status.problem}", bytes_written=maker.size)
        return True

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
        # The job as leased: its attempts include this one.
        reason = self.retry.give_up(job.attempts, time.time() - job.created_at, exc)
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

    async def _heartbeat(self, maker: _TicketMaker) -> None:
        """Renew the lease of the attempt's job, once it is known, until cancelled."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if maker.job is None:
                continue  # not leased yet (its lease, if it comes, is fresh)
            job_id = maker.job.id
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

    async def _wait_for_work(self) -> None:
        self.idle.set()
        try:
            await self._wake.wait()
        finally:
            self.idle.clear()

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
