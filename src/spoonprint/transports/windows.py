"""Windows print queues: ``windows:PRINTER NAME[?mode=gdi|raw]``, through the spooler (pywin32).

- ``gdi`` (default): the ticket arrives as a PNG picture and is drawn through the installed
  driver (see :mod:`~spoonprint.transports.windows_gdi`); any printer Windows can print to works.
- ``raw``: the rendered printer bytes go to the queue untouched as a RAW job.

The spooler stands between spoonprint and the printer, so ``reads_status`` is False. ``send``
submits the job (every step bounded by the timeouts), then follows it until it leaves the
queue. The queue cannot say afterwards whether a job printed or was deleted, so a job that
vanishes counts as printed unless it was seen being deleted, a recovery strategy deleted it,
or the queue was holding every job (paused, "Use Printer Offline") when it went. Waiting for a
stopped or held queue is unbounded on purpose: the health monitor heals the queue (the
strategies below) and the ticket then prints; cancelling ``send`` ends the wait at once and
withdraws the job if it has not started printing.

Rights: deleting spoonprint's own jobs needs none; clearing "Use Printer Offline" and resuming
a paused queue need the printer's "Manage printers" permission (administrators by default);
restarting the Spooler service needs administrator rights (an elevated administrator, or
spoonprint running as a service under LocalSystem). Before a restart the process asks whether
it has them (shell32 IsUserAnAdmin through pywin32) and does not try without; the queue
settings are tried, since a printer's own permissions may allow them. ERROR_ACCESS_DENIED from
any call becomes :class:`NeedsAdmin` saying what to do, never a crash.

Calls into pywin32 run in helper processes of the queue's own
(:mod:`~spoonprint.transports.windows_host`): pywin32 holds the GIL in most spooler calls, so
a hung spooler would stop the whole server if they ran in its threads. A call that overruns
its timeout is ended by killing its helper.

pywin32 is imported only when a queue is used: importing this module needs nothing from it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from spoonprint.errors import (
    ConfigError,
    PrinterDisconnected,
    PrinterError,
    PrinterNotReady,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery, Ticket, Timeouts, ticket_bytes
from spoonprint.transports.uri import PrinterUri
from spoonprint.transports.windows_driver import describe_driver
from spoonprint.transports.windows_gdi import DrawImage, NotAPicture, draw_dib, submit
from spoonprint.transports.windows_host import SpoolerCalls, default_calls
from spoonprint.transports.windows_spool import (
    DOCUMENT_PREFIX,
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_DATATYPE,
    ERROR_INVALID_PRINTER_NAME,
    SPOOLER_GONE,
    Job,
    Submission,
    delete_job,
    describe,
    get_job,
    installed_printers,
    is_admin,
    queue_holding,
    read_queue,
    restart_spooler,
    resume,
    set_online,
    spooler_state,
    win32,
    winerror,
)

T = TypeVar("T")
MODES = ("gdi", "raw")
#: What to tell the owner when a strategy lacks administrator rights.
ADMIN_FIX = (
    "run spoonprint as Administrator (right-click, Run as administrator), or as a Windows "
    "service under an administrator account"
)

__all__ = ["MODES", "WindowsTransport", "from_uri", "usable"]


def needs_admin(what: str) -> NeedsAdmin:
    return NeedsAdmin(f"{what} needs Administrator rights: {ADMIN_FIX}")


class WindowsTransport:
    def __init__(
        self,
        printer: str,
        mode: str = "gdi",
        timeouts: Timeouts = Timeouts(),
        *,
        draw: DrawImage = draw_dib,
        poll_interval: float = 0.15,
        restart_wait: float = 30.0,
        calls: SpoolerCalls | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"windows printer mode must be one of {MODES}, got {mode!r}")
        self.printer = printer
        self.mode = mode
        self.timeouts = timeouts
        self.address = f"windows:{printer}" + ("" if mode == "gdi" else f"?mode={mode}")
        self.reads_status = False
        #: Draws the ticket picture on a device context (Pillow's ImageWin on Windows).
        self.draw = draw
        self.poll_interval = poll_interval
        #: Seconds the Spooler service may take to stop and start again.
        self.restart_wait = restart_wait
        #: Jobs a strategy deleted: when one leaves the queue it did not print.
        self._deleted: set[int] = set()
        #: Job id -> (progress mark, monotonic time it last changed), for stuck jobs.
        self._progress: dict[int, tuple[tuple[int, bool], float]] = {}
        #: The driver was seen to take RAW jobs (mode=raw).
        self._raw_checked = False
        #: Where the pywin32 calls run: this queue's own helper processes by default.
        self._calls = default_calls() if calls is None else calls

    async def _blocking(self, seconds: float, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking pywin32 call, for at most ``seconds``."""
        return await self._calls.run(seconds, call, *args)

    # -- printing -------------------------------------------------------------------------

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        """Submit the ticket and return once the spooler is done with it (``query`` and
        ``check`` do not apply: a queue has no status channel to the printer)."""
        data = await ticket_bytes(ticket)
        if self.mode == "raw":
            refusal = await self._raw_refusal()
            if refusal is not None:
                raise PrinterNotReady(f"{self.address}: {refusal}", bytes_written=0)
        sub = Submission(f"{DOCUMENT_PREFIX}{uuid.uuid4().hex[:12]}")
        try:
            await self._submit(data, sub)
            assert sub.job_id is not None
            await self._follow(sub.job_id, len(data))
        except asyncio.CancelledError:
            await self._abandon(sub)
            raise
        return None

    async def _raw_refusal(self) -> str | None:
        """Why this queue's driver would not pass RAW tickets to the printer; None when it
        would, or when the spooler cannot say (the ticket is then tried: a wrong answer
        here would stop every ticket). A good answer is kept: drivers change seldom."""
        if self._raw_checked:
            return None
        try:
            driver = await self._blocking(self.timeouts.status, describe_driver, self.printer)
        except Exception:
            return None
        refusal = driver.raw_refusal()
        self._raw_checked = refusal is None
        return refusal

    async def ask(self, query: StatusQuery) -> bytes:
        raise PrinterNotReady(f"{self.address}: a Windows queue does not pass printer status")

    async def _submit(self, data: bytes, sub: Submission) -> None:
        budget = self.timeouts.connect + self.timeouts.write
        try:
            await self._blocking(budget, submit, self.mode, self.printer, data, sub, self.draw)
        except TimeoutError as exc:
            nothing = await self._abandon(sub)
            raise PrinterTimeout(
                f"{self.address}: the spooler did not take the ticket within {budget:g} s",
                bytes_written=0 if nothing else sub.written,
            ) from exc
        except Exception as exc:
            raise self._submit_error(exc, sub, len(data)) from exc

    def _submit_error(self, exc: Exception, sub: Submission, size: int) -> PrinterError:
        code = winerror(exc)
        if isinstance(exc, NotAPicture):
            what = f"prints pictures (mode=gdi) but was given {exc}"
        elif code in SPOOLER_GONE:
            what = f"the Windows print spooler is not running ({describe(exc)})"
        elif code == ERROR_INVALID_PRINTER_NAME:
            what = f"Windows has no printer named {self.printer!r}"
        elif code == ERROR_INVALID_DATATYPE:
            what = (
                f"the printer's driver does not take {self.mode.upper()} jobs "
                f"({describe(exc)}): use mode=gdi"
            )
        elif code == ERROR_ACCESS_DENIED:
            what = "Windows does not allow spoonprint to print to this printer"
        else:
            what = f"the spooler refused the ticket: {describe(exc)}"
        kind = PrinterOffline if sub.written == 0 else PrinterDisconnected
        return kind(f"{self.address}: {what}", bytes_written=min(sub.written, size))

    async def _follow(self, job_id: int, size: int) -> None:
        """Poll the job until it leaves the queue (printed) or is deleted or fails."""
        started = False
        try:
            while True:
                try:
                    job = await self._blocking(self.timeouts.status, get_job, self.printer, job_id)
                except Exception as exc:
                    if isinstance(exc, TimeoutError) or winerror(exc) in SPOOLER_GONE:
                        # The spooler is down or hung; the job waits in its spool file and
                        # the monitor restarts the spooler.
                        await asyncio.sleep(self.poll_interval)
                        continue
                    raise await self._lost(job_id, started, size, exc) from exc
                if job is None:
                    await self._left_queue(job_id, started, size)
                    return
                if job.printed:  # kept in the queue after printing ("Keep printed documents")
                    return
                started = started or job.started
                if job.deleting:
                    raise PrinterDisconnected(
                        f"{self.address}: job {job_id} was deleted from the Windows queue",
                        bytes_written=size if started else 0,
                    )
                if job.failed:
                    raise await self._failed(job_id, started, size)
                await asyncio.sleep(self.poll_interval)
        finally:
            self._deleted.discard(job_id)

    async def _left_queue(self, job_id: int, started: bool, size: int) -> None:
        """The job is gone: printed, unless it is known or bound to have been deleted."""
        deleted = job_id in self._deleted
        if not deleted:
            try:
                deleted = await self._blocking(self.timeouts.status, queue_holding, self.printer)
            except Exception:  # cannot tell: it most likely printed, as jobs usually do
                deleted = False
        if deleted:
            raise PrinterDisconnected(
                f"{self.address}: job {job_id} was deleted from the Windows queue",
                bytes_written=size if started else 0,
            )

    async def _failed(self, job_id: int, started: bool, size: int) -> PrinterError:
        # Delete it even if it started: the spooler could resume it after the worker has
        # sent the ticket again, and half a ticket plus a reprint is worse than a reprint.
        gone = await self._withdraw(job_id, even_started=True)
        return PrinterNotReady(
            f"{self.address}: job {job_id} is in error in the Windows queue",
            bytes_written=size if started or not gone else 0,
        )

    async def _lost(self, job_id: int, started: bool, size: int, exc: Exception) -> PrinterError:
        if winerror(exc) == ERROR_INVALID_PRINTER_NAME:
            return PrinterOffline(
                f"{self.address}: the printer was removed from Windows with job {job_id}",
                bytes_written=size if started else 0,
            )
        gone = await self._withdraw(job_id, even_started=False)
        return PrinterDisconnected(
            f"{self.address}: lost track of job {job_id}: {describe(exc)}",
            bytes_written=0 if gone and not started else size,
        )

    async def _withdraw(self, job_id: int, *, even_started: bool) -> bool:
        """Delete our job (within the status timeout in all); True when it certainly will
        not print."""
        try:
            async with asyncio.timeout(self.timeouts.status):
                job = await self._blocking(self.timeouts.status, get_job, self.printer, job_id)
                if job is None or (job.started and not even_started):
                    return False
                await self._blocking(self.timeouts.status, delete_job, self.printer, job_id)
        except Exception:
            return False
        return not job.started

    async def _abandon(self, sub: Submission) -> bool:
        """Give up on a submission (timeout, cancellation); True when nothing will print."""
        sub.abandoned.set()  # the submitting thread aborts the job at its next step
        if sub.job_id is None:
            return True
        return await self._withdraw(sub.job_id, even_started=False)

    # -- health ---------------------------------------------------------------------------

    async def check_path(self, stuck_after: float) -> Health:
        """Queue state (paused, "Use Printer Offline"), what Windows says of the printer,
        spoonprint jobs that stopped moving, and whether the spooler answers at all."""
        try:
            state = await self._blocking(self.timeouts.status, read_queue, self.printer)
        except TimeoutError:
            return Health(
                (
                    Problem(
                        Fault.SPOOLER_DOWN,
                        f"the Windows print spooler did not answer within "
                        f"{self.timeouts.status:g} s",
                    ),
                )
            )
        except Exception as exc:
            return Health((await self._trouble(exc),))
        problems = list(state.problems)
        if self.mode == "raw":
            self._raw_checked = False  # ask again: someone may have changed the driver
            refusal = await self._raw_refusal()
            if refusal is not None:
                problems.append(Problem(Fault.WRONG_MODE, f"{self.printer!r}: {refusal}"))
        stuck = self._stuck(state.jobs, stuck_after)
        # A job waiting behind a paused queue or an empty paper roll is not stuck: the
        # fault is; deleting the job would not help.
        if stuck is not None and not problems:
            problems.append(stuck)
        return Health(tuple(problems))

    async def _trouble(self, exc: Exception) -> Problem:
        code = winerror(exc)
        if code in SPOOLER_GONE:
            try:
                service = await self._blocking(self.timeouts.status, spooler_state)
            except Exception as query_exc:
                service = f"unknown ({describe(query_exc)})"
            return Problem(
                Fault.SPOOLER_DOWN,
                f"the Windows print spooler does not answer ({describe(exc)}); "
                f"Spooler service: {service}",
            )
        if code == ERROR_INVALID_PRINTER_NAME:
            try:
                names = await self._blocking(self.timeouts.status, installed_printers)
                known = "; printers in Windows: " + (", ".join(map(repr, names)) or "none")
            except Exception:
                known = ""
            return Problem(
                Fault.NOT_FOUND,
                f"Windows has no printer named {self.printer!r}: check the name in "
                f"spoonprint's config against Windows' Printers list{known}",
            )
        return Problem(Fault.NOT_RESPONDING, f"the Windows spooler answered {describe(exc)}")

    def _stuck(self, jobs: tuple[Job, ...], stuck_after: float) -> Problem | None:
        """The job at the head of the queue if it made no progress for ``stuck_after``
        seconds (jobs behind it wait for it, they are not stuck), and any spoonprint job
        in error. Progress is PagesPrinted or the job starting to print."""
        now = time.monotonic()
        # Printed jobs a "Keep printed documents" queue still lists are done, not stuck.
        jobs = tuple(job for job in jobs if not job.printed)
        progress: dict[int, tuple[tuple[int, bool], float]] = {}
        for job in jobs:
            mark = (job.pages_printed, job.started)
            seen = self._progress.get(job.job_id)
            if seen is None:  # first sighting: assume no progress since it was submitted
                age = (datetime.now(UTC) - job.submitted).total_seconds()
                progress[job.job_id] = (mark, now - max(0.0, age))
            else:
                progress[job.job_id] = (mark, seen[1] if seen[0] == mark else now)
        self._progress = progress
        stuck = [job for job in jobs if job.ours and job.failed]
        if jobs and now - progress[jobs[0].job_id][1] >= stuck_after and jobs[0] not in stuck:
            stuck.insert(0, jobs[0])
        if not stuck:
            return None
        ours = tuple(job.job_id for job in stuck if job.ours)
        words = "; ".join(_job_words(job, stuck_after) for job in stuck)
        return Problem(Fault.STUCK_JOB, f"{self.printer!r}: {words}", jobs=ours)

    # -- recovery -------------------------------------------------------------------------

    def strategies(self) -> list[Strategy]:
        return [
            Strategy(
                "windows-online",
                frozenset({Fault.WORK_OFFLINE}),
                self._online,
                "clear 'Use Printer Offline' on the Windows queue (Administrator)",
            ),
            Strategy(
                "windows-resume",
                frozenset({Fault.QUEUE_DISABLED}),
                self._resume,
                "resume the paused Windows print queue (Administrator)",
            ),
            Strategy(
                "windows-delete-stuck",
                frozenset({Fault.STUCK_JOB}),
                self._delete_stuck,
                "delete spoonprint's stuck jobs from the Windows queue; they are sent again",
            ),
            Strategy(
                "windows-restart-spooler",
                frozenset({Fault.SPOOLER_DOWN, Fault.STUCK_JOB}),
                self._restart_spooler,
                "restart the Windows print spooler service (Administrator)",
            ),
        ]

    async def _control(
        self, what: str, call: Callable[..., T], *args: Any, seconds: float | None = None
    ) -> T:
        """Run one recovery call; access denied -> NeedsAdmin, other errors -> RecoveryFailed."""
        seconds = self.timeouts.status if seconds is None else seconds
        try:
            return await self._blocking(seconds, call, *args)
        except TimeoutError as exc:
            raise RecoveryFailed(
                f"{what}: the Windows spooler did not answer within {seconds:g} s"
            ) from exc
        except Exception as exc:
            if winerror(exc) == ERROR_ACCESS_DENIED:
                raise needs_admin(what) from exc
            raise RecoveryFailed(f"{what} failed: {describe(exc)}") from exc

    async def _online(self, problem: Problem) -> str:
        what = "taking the printer out of 'Use Printer Offline'"
        if await self._control(what, set_online, self.printer):
            return f"cleared 'Use Printer Offline' on {self.printer!r}"
        return f"'Use Printer Offline' was already clear on {self.printer!r}"

    async def _resume(self, problem: Problem) -> str:
        what = "resuming the paused print queue"
        if await self._control(what, resume, self.printer):
            return f"resumed the Windows queue {self.printer!r}"
        return f"the Windows queue {self.printer!r} was not paused"

    async def _delete_stuck(self, problem: Problem) -> str:
        if not problem.jobs:
            raise RecoveryFailed(
                "the stuck job is not spoonprint's: left it alone (restarting the print "
                "spooler, or cancelling it in the printer's queue window, clears it)"
            )
        deleted: list[int] = []
        for job_id in problem.jobs:
            job = await self._control("reading the stuck job", get_job, self.printer, job_id)
            if job is None or not job.ours:  # gone meanwhile, or not ours: leave it
                continue
            what = f"deleting stuck print job {job_id}"
            if await self._control(what, delete_job, self.printer, job_id):
                self._deleted.add(job_id)
                deleted.append(job_id)
        if not deleted:
            return f"job(s) {_ids(problem.jobs)} had already left the queue"
        remaining = await self._wait_gone(deleted)
        done = f"deleted stuck job(s) {_ids(deleted)} from {self.printer!r}"
        if remaining:
            done += f"; job(s) {_ids(remaining)} still in the queue, being deleted"
        return done

    async def _wait_gone(self, job_ids: list[int]) -> list[int]:
        """Wait (at most the status timeout) for jobs to leave the queue; those still in it."""
        deadline = time.monotonic() + self.timeouts.status
        remaining = list(job_ids)
        while remaining and time.monotonic() < deadline:
            await asyncio.sleep(self.poll_interval)
            try:
                state = await self._blocking(self.timeouts.status, read_queue, self.printer)
            except Exception:
                continue
            queued = {job.job_id for job in state.jobs}
            remaining = [job_id for job_id in remaining if job_id in queued]
        return remaining

    async def _restart_spooler(self, problem: Problem) -> str:
        what = "restarting the print spooler"
        if problem.fault is Fault.STUCK_JOB and problem.jobs:
            state = await self._control("reading the queue", read_queue, self.printer)
            if not {job.job_id for job in state.jobs} & set(problem.jobs):
                return "the stuck jobs have left the queue: the spooler was left running"
        admin = await self._admin()
        if admin is False:
            raise needs_admin(what)
        wait = max(1, round(self.restart_wait))
        # Each service stops and starts within `wait` (the dependents and the Spooler).
        budget = wait * 4 + self.timeouts.status
        dependents = await self._control(what, restart_spooler, wait, seconds=budget)
        done = "restarted the Windows print spooler"
        if not dependents:
            return done
        depend = "depends" if len(dependents) == 1 else "depend"
        return f"{done} and {', '.join(dependents)}, which {depend} on it"

    async def _admin(self) -> bool | None:
        """Whether spoonprint has administrator rights; None when it cannot tell."""
        try:
            return await self._blocking(self.timeouts.status, is_admin)
        except Exception:
            return None


def _ids(job_ids: tuple[int, ...] | list[int]) -> str:
    return ", ".join(str(job_id) for job_id in job_ids)


def _job_words(job: Job, stuck_after: float) -> str:
    owner = "spoonprint's" if job.ours else f"{job.user}'s"
    state = "in error" if job.failed else f"no progress for {stuck_after:g} s"
    return f"job {job.job_id} ({owner} {job.document!r}) {state}"


def usable() -> str | None:
    try:
        win32("win32print")
    except ImportError:
        return "needs Windows with pywin32 (pip install pywin32)"
    return None


def from_uri(uri: PrinterUri, timeouts: Timeouts) -> WindowsTransport:
    unknown = sorted(set(uri.options) - {"mode"})
    if unknown:
        raise ConfigError(
            f"printer {uri.raw!r}: unknown option(s) {', '.join(unknown)}; "
            "windows: printers take mode=gdi or mode=raw"
        )
    mode = uri.options.get("mode", "gdi")
    if mode not in MODES:
        raise ConfigError(f"printer {uri.raw!r}: mode must be gdi or raw, got {mode!r}")
    return WindowsTransport(uri.target, mode, timeouts)
