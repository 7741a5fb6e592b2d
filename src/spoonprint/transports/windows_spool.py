"""Blocking calls into the Windows print spooler through pywin32; run them in a thread.

pywin32 is imported inside the functions (:func:`win32`), never when this module is imported, so
it imports on any system. The calls are pywin32's ``win32print`` functions (OpenPrinter,
GetPrinter level 2, EnumJobs / GetJob level 1, SetPrinter, SetJob, StartDocPrinter ...) and
``win32serviceutil`` for the Spooler service; errors arrive as ``pywintypes.error`` with
``winerror``, ``funcname`` and ``strerror``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spoonprint.recovery.health import Fault, Problem

# Windows error codes (winerror.h) the transport tells apart.
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
#: GetJob / SetJob for a job id the queue does not hold (MS-RPRN 3.1.4.3.2).
ERROR_INVALID_PARAMETER = 87
RPC_S_SERVER_UNAVAILABLE = 1722
RPC_S_CALL_FAILED = 1726
ERROR_INVALID_PRINTER_NAME = 1801
#: StartDocPrinter with a datatype the print processor does not take.
ERROR_INVALID_DATATYPE = 1804
#: The spooler is not there to answer: stopped, crashed, or restarted under an open handle.
SPOOLER_GONE = frozenset({RPC_S_SERVER_UNAVAILABLE, RPC_S_CALL_FAILED, ERROR_INVALID_HANDLE})

SPOOLER_SERVICE = "Spooler"
#: Every job spoonprint submits is named so: how its jobs are told from other programs'.
DOCUMENT_PREFIX = "spoonprint "
#: More jobs than a receipt printer's queue ever holds (EnumJobs wants a count).
MAX_JOBS = 999
_WRITE_CHUNK = 16 * 1024
# SERVICE_* states (winsvc.h) as words.
_SERVICE_STATES = {
    1: "stopped",
    2: "starting",
    3: "stopping",
    4: "running",
    5: "resuming",
    6: "pausing",
    7: "paused",
}


def win32(name: str) -> Any:
    """A pywin32 module (``win32print``, ``win32ui`` ...), imported on first use."""
    return importlib.import_module(name)


def winerror(exc: BaseException) -> int | None:
    """The Windows error code of a ``pywintypes.error``; None for any other exception.

    ``pywintypes`` is imported here, not looked up in ``sys.modules``: importing
    ``win32print`` does not import it (pywin32 makes the error class in C, in
    PyWinGlobals_Ensure), so it is often not there although every error is one of its."""
    try:
        pywintypes = win32("pywintypes")
    except ImportError:
        return None
    if isinstance(exc, pywintypes.error) and exc.winerror is not None:
        return int(exc.winerror)
    return None


def describe(exc: BaseException) -> str:
    """An error in words: "EnumJobs: The RPC server is unavailable. (error 1722)"."""
    code = winerror(exc)
    if code is not None:
        return f"{getattr(exc, 'funcname', '?')}: {getattr(exc, 'strerror', '')} (error {code})"
    return str(exc) or type(exc).__name__


class Abandoned(Exception):
    """The caller gave up on this submission (timeout, cancellation): stop and abort it."""


@dataclass
class Submission:
    """One ticket on its way into the queue, shared between the submitting thread and the
    event loop: the thread fills in ``job_id`` and ``written``, the loop sets ``abandoned``."""

    title: str
    job_id: int | None = None
    #: Bytes (raw) or the share of pages (gdi) handed to the spooler: what may print.
    written: int = 0
    abandoned: threading.Event = field(default_factory=threading.Event)
    #: Told of ``job_id`` and ``written`` at every step (a helper process reports them).
    on_progress: Callable[[Submission], None] | None = None

    def check(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self)
        if self.abandoned.is_set():
            raise Abandoned(self.title)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a helper process: the event and the callback stay on this side.
        return {"title": self.title, "job_id": self.job_id, "written": self.written}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


@dataclass(frozen=True)
class Job:
    """One JOB_INFO_1 entry of the queue, read with its status flags."""

    job_id: int
    document: str
    user: str
    submitted: datetime
    pages_printed: int
    #: Printing, printed or handed to the printer: from here on it may be on paper.
    started: bool
    deleting: bool
    failed: bool
    #: JOB_STATUS_PRINTED: done. A queue set to "Keep printed documents" keeps listing it.
    printed: bool = False

    @property
    def ours(self) -> bool:
        return self.document.startswith(DOCUMENT_PREFIX)


@dataclass(frozen=True)
class QueueState:
    problems: tuple[Problem, ...]
    jobs: tuple[Job, ...]


def _job(win32print: Any, info: dict[str, Any]) -> Job:
    status = int(info["Status"])
    submitted = info["Submitted"]
    if submitted.tzinfo is None:  # pywin32 < 300 returned naive times; SYSTEMTIME is UTC
        submitted = submitted.replace(tzinfo=UTC)
    started = win32print.JOB_STATUS_PRINTING | win32print.JOB_STATUS_PRINTED
    started |= win32print.JOB_STATUS_COMPLETE
    deleting = win32print.JOB_STATUS_DELETING | win32print.JOB_STATUS_DELETED
    return Job(
        job_id=int(info["JobId"]),
        document=info["pDocument"] or "",
        user=info["pUserName"] or "",
        submitted=submitted,
        pages_printed=int(info["PagesPrinted"]),
        started=bool(status & started) or int(info["PagesPrinted"]) > 0,
        deleting=bool(status & deleting),
        failed=bool(status & win32print.JOB_STATUS_ERROR),
        printed=bool(status & win32print.JOB_STATUS_PRINTED),
    )


# (PRINTER_STATUS_* names, fault, what it means) in the order they are reported.
_STATUS_FAULTS = (
    (("PRINTER_STATUS_PAUSED",), Fault.QUEUE_DISABLED, "the Windows print queue is paused"),
    (("PRINTER_STATUS_PAPER_OUT",), Fault.PAPER_OUT, "the printer is out of paper"),
    (("PRINTER_STATUS_DOOR_OPEN",), Fault.COVER_OPEN, "the printer cover is open"),
    (
        ("PRINTER_STATUS_OFFLINE", "PRINTER_STATUS_NOT_AVAILABLE"),
        Fault.POWER_OFF,
        "Windows reports the printer offline or not available",
    ),
    (
        ("PRINTER_STATUS_PAPER_JAM", "PRINTER_STATUS_ERROR"),
        Fault.PRINTER_ERROR,
        "Windows reports a printer error",
    ),
)


def printer_problems(win32print: Any, name: str, status: int, attributes: int) -> list[Problem]:
    """What GetPrinter level 2's ``Status`` and ``Attributes`` say is wrong."""
    work_offline = bool(attributes & win32print.PRINTER_ATTRIBUTE_WORK_OFFLINE)
    found: list[Problem] = []
    if work_offline:
        found.append(Problem(Fault.WORK_OFFLINE, f"'Use Printer Offline' is set on {name!r}"))
    for flags, fault, words in _STATUS_FAULTS:
        hit = [flag for flag in flags if status & getattr(win32print, flag)]
        if not hit:
            continue
        # "Use Printer Offline" makes Windows say offline too: that is not the power.
        if fault is Fault.POWER_OFF and work_offline:
            continue
        # The generic error bit comes with paper out / cover open: those say it better.
        specific = {Fault.PAPER_OUT, Fault.COVER_OPEN} & {p.fault for p in found}
        if hit == ["PRINTER_STATUS_ERROR"] and specific:
            continue
        found.append(Problem(fault, f"{words} ({name!r}: {', '.join(hit)})"))
    return found


@contextmanager
def open_printer(name: str, access: int | None = None) -> Iterator[Any]:
    """An OpenPrinter handle, closed on exit; ``access`` is the PRINTER_DEFAULTS
    DesiredAccess (None: the default, PRINTER_ACCESS_USE)."""
    win32print = win32("win32print")
    defaults = None if access is None else {"DesiredAccess": access}
    handle = win32print.OpenPrinter(name, defaults)
    try:
        yield handle
    finally:
        # A spooler that died meanwhile cannot close it; the handle dies with it.
        with suppress(Exception):
            win32print.ClosePrinter(handle)


def read_queue(name: str) -> QueueState:
    """The queue's faults (GetPrinter level 2) and its jobs (EnumJobs level 1)."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        info = win32print.GetPrinter(handle, 2)
        jobs = win32print.EnumJobs(handle, 0, MAX_JOBS, 1)
    problems = printer_problems(win32print, name, int(info["Status"]), int(info["Attributes"]))
    return QueueState(tuple(problems), tuple(_job(win32print, job) for job in jobs))


def queue_holding(name: str) -> bool:
    """True when the queue keeps every job from the printer (paused or "Use Printer
    Offline"): a job that leaves it then was deleted, not printed."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        info = win32print.GetPrinter(handle, 2)
    held = win32print.PRINTER_STATUS_PAUSED & int(info["Status"])
    return bool(held or win32print.PRINTER_ATTRIBUTE_WORK_OFFLINE & int(info["Attributes"]))


def get_job(name: str, job_id: int) -> Job | None:
    """The job (GetJob level 1), None when it is no longer in the queue."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        try:
            return _job(win32print, win32print.GetJob(handle, job_id, 1))
        except Exception as exc:
            if winerror(exc) == ERROR_INVALID_PARAMETER:
                return None
            raise


def delete_job(name: str, job_id: int) -> bool:
    """SetJob(JOB_CONTROL_DELETE); False when the job had already left the queue. The job's
    owner may delete it with a plain handle; anyone else needs administrator rights."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        try:
            win32print.SetJob(handle, job_id, 0, None, win32print.JOB_CONTROL_DELETE)
        except Exception as exc:
            if winerror(exc) == ERROR_INVALID_PARAMETER:
                return False
            raise
    return True


def set_online(name: str) -> bool:
    """Clear "Use Printer Offline"; False when it was not set. Needs PRINTER_ALL_ACCESS,
    i.e. administrator rights.

    Through PRINTER_INFO_5 (name, port, attributes, two timeouts): level 2 would write back
    the DEVMODE and the security descriptor too, and pywin32 refuses it outright when the
    printer has no DEVMODE (GetPrinter gives pDevMode None)."""
    win32print = win32("win32print")
    with open_printer(name, win32print.PRINTER_ALL_ACCESS) as handle:
        info = win32print.GetPrinter(handle, 5)
        if not info["Attributes"] & win32print.PRINTER_ATTRIBUTE_WORK_OFFLINE:
            return False
        info["Attributes"] &= ~win32print.PRINTER_ATTRIBUTE_WORK_OFFLINE
        win32print.SetPrinter(handle, 5, info, 0)
    return True


def resume(name: str) -> bool:
    """SetPrinter(PRINTER_CONTROL_RESUME); False when the queue was not paused."""
    win32print = win32("win32print")
    with open_printer(name, win32print.PRINTER_ALL_ACCESS) as handle:
        if not win32print.GetPrinter(handle, 2)["Status"] & win32print.PRINTER_STATUS_PAUSED:
            return False
        win32print.SetPrinter(handle, 0, None, win32print.PRINTER_CONTROL_RESUME)
    return True


def installed_printers() -> list[str]:
    """Names of the printers this Windows has (EnumPrinters level 4: local and connected)."""
    win32print = win32("win32print")
    flags = win32print.PRINTER_ENUM_LOCAL | win32print.PRINTER_ENUM_CONNECTIONS
    return [info["pPrinterName"] for info in win32print.EnumPrinters(flags, None, 4)]


def spooler_state() -> str:
    """The Spooler service's state in words ("running", "stopped" ...)."""
    state = win32("win32serviceutil").QueryServiceStatus(SPOOLER_SERVICE)[1]
    return _SERVICE_STATES.get(int(state), f"state {state}")


def restart_spooler(wait_seconds: int) -> list[str]:
    """Stop the Spooler service and the services that depend on it, then start them all
    again, each within ``wait_seconds``; the dependents restarted. Needs administrator rights.

    Not pywin32's RestartService: when the spooler does not stop in time that only prints
    "Gave up waiting for the old service to stop!" and returns as if it had worked. Here a
    step that fails or times out raises ``pywintypes.error`` (1053 for a timeout)."""
    util, service = win32("win32serviceutil"), win32("win32service")
    manager = service.OpenSCManager(None, None, service.SC_MANAGER_CONNECT)
    try:
        handle = service.OpenService(manager, SPOOLER_SERVICE, service.SERVICE_ENUMERATE_DEPENDENTS)
        try:
            active = service.EnumDependentServices(handle, service.SERVICE_ACTIVE)
        finally:
            service.CloseServiceHandle(handle)
    finally:
        service.CloseServiceHandle(manager)
    dependents = [str(entry[0]) for entry in active]
    util.StopServiceWithDeps(SPOOLER_SERVICE, None, wait_seconds)
    for name in (SPOOLER_SERVICE, *dependents):
        util.StartService(name)
        util.WaitForServiceStatus(name, service.SERVICE_RUNNING, wait_seconds)
    return dependents


def is_admin() -> bool:
    """Whether this process runs with administrator rights (shell32 IsUserAnAdmin: true for
    an elevated administrator and for services running as LocalSystem)."""
    return bool(win32("win32com.shell.shell").IsUserAnAdmin())


def submit_raw(name: str, data: bytes, sub: Submission) -> None:
    """Spool ``data`` untouched as one RAW job; fills in ``sub.job_id`` and ``sub.written``.

    StartDocPrinter -> StartPagePrinter -> WritePrinter (in chunks, so an abandoned
    submission stops early) -> EndPagePrinter -> EndDocPrinter; on any failure the job is
    aborted (AbortPrinter) so no half ticket stays queued.
    """
    win32print = win32("win32print")
    sub.check()
    with open_printer(name) as handle:
        sub.job_id = int(win32print.StartDocPrinter(handle, 1, (sub.title, None, "RAW")))
        try:
            sub.check()
            win32print.StartPagePrinter(handle)
            view = memoryview(data)
            while sub.written < len(data):
                sub.check()
                chunk = view[sub.written : sub.written + _WRITE_CHUNK]
                taken = int(win32print.WritePrinter(handle, chunk))
                if taken <= 0:
                    raise OSError(f"WritePrinter took no bytes of {len(chunk)}")
                sub.written += taken
            win32print.EndPagePrinter(handle)
            sub.check()
            win32print.EndDocPrinter(handle)
        except BaseException:
            with suppress(Exception):
                win32print.AbortPrinter(handle)
            raise
