"""Printing through a CUPS queue (``cups:QUEUE``), as raw jobs.

``send`` hands the ticket to CUPS and follows the job until CUPS says it is done, so a ticket
counts as printed only once the spooler has passed every byte on. Recovery only ever touches the
jobs this transport submitted (their ids are kept); other jobs on the queue are left alone.

Options: ``client=pycups|cli`` forces a client (default: pycups when it imports, else the ``lp``
tools); ``server=PATH|HOST[:PORT]`` talks to that cupsd instead of CUPS's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from spoonprint.errors import ConfigError, PrinterDisconnected, PrinterOffline, PrinterTimeout
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery, Ticket, Timeouts, Transport, ticket_bytes
from spoonprint.transports.cups_client import (
    CANCELED,
    COMPLETED,
    FINISHED,
    HELD,
    PROCESSING,
    QUEUE_STOPPED,
    CupsClient,
    CupsError,
    JobState,
    NotAccepting,
    NotPermitted,
    QueueUnknown,
    SpoolerDown,
    cli_available,
    make_client,
    pycups_available,
)
from spoonprint.transports.uri import PrinterUri

__all__ = ["CupsTransport", "from_uri", "usable"]

T = TypeVar("T")

#: How often a submitted job's state is read while ``send`` waits for it.
POLL_INTERVAL = 0.1
_OPTIONS = frozenset({"client", "server"})
_CLIENTS = ("pycups", "cli")
#: How many submitted job ids are remembered (far more than can be in flight at once).
_REMEMBERED_JOBS = 4096


@dataclass
class _Tracked:
    """A job this transport submitted and has not yet seen finish."""

    job_id: int
    #: A ``send`` is waiting for this job; when none is, the job was given up on.
    followed: bool = True
    #: The job has been processing at some point, so (part of) it may be on paper.
    started: bool = False
    #: Since when the job has been processing or held with no progress (time.monotonic()).
    progress_at: float | None = None
    progress: tuple[int, ...] = ()


class CupsTransport:
    def __init__(
        self,
        queue: str,
        timeouts: Timeouts = Timeouts(),
        client: CupsClient | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.queue = queue
        self.address = f"cups:{queue}"
        self.reads_status = False
        self.timeouts = timeouts
        self.client = client or make_client(None, None, *_tool_timeouts(timeouts))
        self.poll_interval = poll_interval
        #: Jobs submitted and not yet seen finished.
        self._tracked: dict[int, _Tracked] = {}
        #: Every job id this transport submitted lately: recovery touches no other job.
        self._submitted: deque[int] = deque(maxlen=_REMEMBERED_JOBS)

    # -- sending --------------------------------------------------------------------------------

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        """Queue ``data`` as a raw job and return once CUPS has completed it.

        ``query`` and ``check`` are not used: CUPS gives no way to ask the printer itself.
        """
        data = await ticket_bytes(ticket)
        await self._drop_abandoned()
        title = f"spoonprint {secrets.token_hex(6)}"
        job_id = await self._submit(data, title)
        self._submitted.append(job_id)
        tracked = self._tracked[job_id] = _Tracked(job_id)
        try:
            await self._follow(tracked, len(data))
        except asyncio.CancelledError:
            await self._withdraw(tracked)
            raise
        finally:
            tracked.followed = False
        return None

    async def ask(self, query: StatusQuery) -> bytes:
        # Never called for a spooler transport (reads_status is False): CUPS cannot pass a
        # status question to the printer and its answer back.
        raise PrinterTimeout(f"{self.address}: status questions cannot go through CUPS")

    async def _submit(self, data: bytes, title: str) -> int:
        bound = _tool_timeouts(self.timeouts)[1]
        submitting = asyncio.ensure_future(
            self._blocking(bound, self.client.submit, self.queue, data, title)
        )
        try:
            return await asyncio.shield(submitting)
        except asyncio.CancelledError:
            # The request goes on in its thread and may still create the job: take it back.
            with contextlib.suppress(CupsError):
                await self._cancel(await submitting)
            raise
        except NotAccepting as exc:
            raise PrinterOffline(f"{self.address} is not accepting jobs: {exc}") from exc
        except SpoolerDown as exc:
            raise PrinterOffline(f"{self.address}: CUPS is not answering: {exc}") from exc
        except CupsError as exc:
            raise PrinterOffline(f"{self.address}: CUPS did not take the job: {exc}") from exc

    async def _follow(self, tracked: _Tracked, size: int) -> None:
        """Wait until CUPS finishes the job; raise when it did not complete it."""
        lost_since: float | None = None
        # A raw job on a local queue is done in a few ms: look early, then every poll_interval.
        delay = self.poll_interval / 8
        while True:
            try:
                job = await self._job(tracked.job_id)
            except CupsError as exc:
                # Ride out a short outage (cupsd restarting); the job waits in its spool.
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self.timeouts.connect + self.timeouts.status:
                    raise self._lost(tracked, size, exc) from exc
            else:
                lost_since = None
                self._observe(tracked, job)
                if job is None or job.state in FINISHED:
                    self._tracked.pop(tracked.job_id, None)
                    self._raise_unless_completed(tracked, job, size)
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_interval)

    def _raise_unless_completed(self, tracked: _Tracked, job: JobState | None, size: int) -> None:
        where = f"{self.address} job {tracked.job_id}"
        if job is None:
            # Purged from the history before it was seen finishing: it may have printed.
            raise PrinterDisconnected(f"{where} vanished from CUPS", bytes_written=size)
        if job.state == COMPLETED:
            return
        how = "canceled" if job.state == CANCELED else "aborted"
        written = size if tracked.started else 0
        raise PrinterDisconnected(f"{where} was {how} in CUPS", bytes_written=written)

    def _lost(self, tracked: _Tracked, size: int, exc: Exception) -> PrinterOffline:
        # CUPS holds the job and may still print it once it answers again; the next send
        # cancels it if it is still waiting by then (see _drop_abandoned).
        return PrinterOffline(
            f"{self.address}: lost CUPS while job {tracked.job_id} was queued: {exc}",
            bytes_written=size,
        )

    async def _withdraw(self, tracked: _Tracked) -> None:
        """The wait was cancelled: take the job back unless it is printing right now, so CUPS
        does not print it later behind spoonprint's back. Best effort, bounded."""
        with contextlib.suppress(CupsError):
            if _waiting(await self._job(tracked.job_id)):
                await self._cancel(tracked.job_id)

    async def _drop_abandoned(self) -> None:
        """Cancel jobs an earlier ``send`` gave up on that still wait in the queue: the worker
        sends those tickets again, and the old copies must not print as well."""
        for tracked in [t for t in self._tracked.values() if not t.followed]:
            with contextlib.suppress(CupsError):
                job = await self._job(tracked.job_id)
                if _waiting(job):
                    await self._cancel(tracked.job_id)
                elif job is None or job.state in FINISHED:
                    self._tracked.pop(tracked.job_id, None)

    # -- health ---------------------------------------------------------------------------------

    async def check_path(self, stuck_after: float) -> Health:
        try:
            state = await self._blocking(self._query_bound, self.client.queue, self.queue)
        except QueueUnknown as exc:
            detail = f"CUPS has no queue {self.queue!r} (create it with lpadmin): {exc}"
            return Health((Problem(Fault.NOT_FOUND, detail),))
        except SpoolerDown as exc:
            return Health((Problem(Fault.SPOOLER_DOWN, f"cupsd is not answering: {exc}"),))
        except CupsError as exc:
            return Health((Problem(Fault.SPOOLER_DOWN, f"CUPS failed a status request: {exc}"),))
        problems = []
        if state.state == QUEUE_STOPPED:
            reasons = ", ".join(state.reasons) or "none"
            said = state.message or "no message"
            detail = f"CUPS queue {self.queue!r} is stopped: {said} (reasons: {reasons})"
            problems.append(Problem(Fault.QUEUE_DISABLED, detail))
        if not state.accepting:
            said = state.message or "no message"
            detail = f"CUPS queue {self.queue!r} rejects new jobs: {said}"
            problems.append(Problem(Fault.QUEUE_REJECTING, detail))
        stuck = await self._stuck_jobs(stuck_after)
        if stuck:
            detail = f"job(s) {_ids(stuck)} on {self.queue!r}: no progress for {stuck_after:g} s"
            problems.append(Problem(Fault.STUCK_JOB, detail, jobs=stuck))
        return Health(tuple(problems)) if problems else HEALTHY

    async def _stuck_jobs(self, stuck_after: float) -> tuple[int, ...]:
        stuck = []
        for tracked in list(self._tracked.values()):
            try:
                job = await self._job(tracked.job_id)
            except CupsError:
                continue
            self._observe(tracked, job)
            if job is None or job.state in FINISHED:
                if not tracked.followed:  # a waiting send forgets its own job
                    self._tracked.pop(tracked.job_id, None)
                continue
            since = tracked.progress_at
            if since is not None and time.monotonic() - since >= stuck_after:
                stuck.append(tracked.job_id)
        return tuple(stuck)

    def _observe(self, tracked: _Tracked, job: JobState | None) -> None:
        """Note whether the job has started and when it last made progress."""
        if job is None:
            return
        if job.started or job.state == PROCESSING:
            tracked.started = True
        # Held counts too: CUPS holds a job it could not send and retries only minutes later.
        if job.state not in (PROCESSING, HELD):
            tracked.progress_at = None
            return
        progress = (job.state, *job.progress)
        if tracked.progress_at is None or progress != tracked.progress:
            tracked.progress_at = time.monotonic()
            tracked.progress = progress

    # -- recovery -------------------------------------------------------------------------------

    def strategies(self) -> list[Strategy]:
        return [
            Strategy(
                "cups-enable",
                frozenset({Fault.QUEUE_DISABLED}),
                self._enable,
                "restart a stopped CUPS queue (cupsenable)",
            ),
            Strategy(
                "cups-accept",
                frozenset({Fault.QUEUE_REJECTING}),
                self._accept,
                "make a CUPS queue accept jobs again (cupsaccept)",
            ),
            Strategy(
                "cups-cancel-stuck",
                frozenset({Fault.STUCK_JOB}),
                self._cancel_stuck,
                "cancel spoonprint's own stuck CUPS jobs, so their tickets are sent again",
            ),
        ]

    async def _enable(self, problem: Problem) -> str:
        await self._admin(self.client.enable, "enable")
        return f"enabled CUPS queue {self.queue!r}"

    async def _accept(self, problem: Problem) -> str:
        await self._admin(self.client.accept, "accept jobs on")
        return f"CUPS queue {self.queue!r} accepts jobs again"

    async def _cancel_stuck(self, problem: Problem) -> str:
        ours = [job_id for job_id in problem.jobs if job_id in self._submitted]
        others = [job_id for job_id in problem.jobs if job_id not in self._submitted]
        if not ours:
            raise RecoveryFailed(f"job(s) {_ids(others)} not submitted by spoonprint: left alone")
        cancelled = [job_id for job_id in ours if await self._cancel_ours(job_id)]
        said = [f"canceled CUPS job(s) {_ids(cancelled)} on {self.queue!r}"] if cancelled else []
        if len(cancelled) < len(ours):
            said.append(f"job(s) {_ids(j for j in ours if j not in cancelled)} already finished")
        if others:
            said.append(f"left job(s) {_ids(others)} alone (not spoonprint's)")
        return "; ".join(said)

    async def _cancel_ours(self, job_id: int) -> bool:
        try:
            return await self._cancel(job_id)
        except NotPermitted as exc:
            raise NeedsAdmin(f"CUPS would not cancel job {job_id}: {exc}") from exc
        except CupsError as exc:
            raise RecoveryFailed(f"could not cancel CUPS job {job_id}: {exc}") from exc

    async def _admin(self, action: Callable[[str], None], what: str) -> None:
        try:
            await self._blocking(self._query_bound, action, self.queue)
        except NotPermitted as exc:
            raise NeedsAdmin(f"CUPS would not {what} {self.queue!r}: {exc}") from exc
        except CupsError as exc:
            raise RecoveryFailed(f"could not {what} CUPS queue {self.queue!r}: {exc}") from exc

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def _query_bound(self) -> float:
        return _tool_timeouts(self.timeouts)[0]

    async def _job(self, job_id: int) -> JobState | None:
        return await self._blocking(self._query_bound, self.client.job, self.queue, job_id)

    async def _cancel(self, job_id: int) -> bool:
        return await self._blocking(self._query_bound, self.client.cancel, self.queue, job_id)

    @staticmethod
    async def _blocking(bound: float, call: Callable[..., T], *args: object) -> T:
        """Run a blocking client call in a thread; SpoolerDown when it has not returned a second
        after ``bound``. The thread is left to finish by itself (the tools stop at their own
        timeout; pycups has none to set)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, *args), bound + 1.0)
        except TimeoutError as exc:
            raise SpoolerDown(f"CUPS did not answer within {bound + 1.0:g} s") from exc


def _tool_timeouts(timeouts: Timeouts) -> tuple[float, float]:
    """Bounds on one CUPS request: a query or admin request, and a job submission."""
    return timeouts.connect + timeouts.status, timeouts.connect + timeouts.write


def _ids(job_ids: Iterable[int]) -> str:
    return ", ".join(map(str, job_ids))


def _waiting(job: JobState | None) -> bool:
    """The job sits in the queue (pending or held): cancelling it keeps it off paper."""
    return job is not None and job.state not in FINISHED and job.state != PROCESSING


def usable() -> str | None:
    if pycups_available() or cli_available():
        return None
    return (
        "needs the CUPS client tools or pycups: apt-get install cups-client (or pip install pycups)"
    )


def from_uri(uri: PrinterUri, timeouts: Timeouts) -> CupsTransport:
    unknown = sorted(set(uri.options) - _OPTIONS)
    if unknown:
        raise ConfigError(
            f"printer {uri.raw!r}: unknown option {unknown[0]!r} (known: client, server)"
        )
    kind = uri.options.get("client")
    if kind is not None and kind not in _CLIENTS:
        raise ConfigError(
            f"printer {uri.raw!r}: option 'client' must be pycups or cli, not {kind!r}"
        )
    if kind == "pycups" and not pycups_available():
        raise ConfigError(f"printer {uri.raw!r}: client=pycups needs pycups: pip install pycups")
    if kind == "cli" and not cli_available():
        raise ConfigError(f"printer {uri.raw!r}: client=cli needs lp: apt-get install cups-client")
    server = uri.options.get("server") or None
    client = make_client(kind, server, *_tool_timeouts(timeouts))
    return CupsTransport(uri.target, timeouts, client)


if TYPE_CHECKING:  # mypy checks that CupsTransport is a Transport
    _transport: type[Transport] = CupsTransport
