"""Talking to CUPS: one small client interface, with pycups and the command-line tools behind it.

Both clients block (run them in a thread) and raise only the errors defined here, so the
transport maps them to spoonprint's errors in one place. Neither touches process-wide state:
the server (a socket path or ``host[:port]``) is passed per call, to pycups as the connection's
host and to the tools as ``CUPS_SERVER`` in their own environment; None means CUPS's own default
(``CUPS_SERVER``, ``client.conf``, the local socket).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol

#: IPP job-state values (RFC 8011 5.3.7).
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = range(3, 10)
FINISHED = frozenset({CANCELED, ABORTED, COMPLETED})
#: IPP printer-state "stopped": the queue is disabled (paused).
QUEUE_STOPPED = 5

#: Where the administration tools live when the service's PATH leaves out the sbin folders.
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class CupsError(Exception):
    """CUPS refused or failed a request; the message says what CUPS said."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: The IPP status code, when the request got that far (pycups only).
        self.status = status


class SpoolerDown(CupsError):
    """cupsd does not answer (not running, socket gone, or no reply in time)."""


class QueueUnknown(CupsError):
    """CUPS has no queue of that name."""


class NotAccepting(CupsError):
    """The queue rejects new jobs (``cupsreject``)."""


class NotPermitted(CupsError):
    """CUPS wants more privileges (an administrator) for this request."""


@dataclass(frozen=True)
class QueueState:
    #: IPP printer-state: 3 idle, 4 processing, 5 stopped.
    state: int
    accepting: bool
    message: str = ""
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobState:
    #: IPP job-state (PENDING ... COMPLETED above).
    state: int
    #: CUPS has started processing the job at some point (``time-at-processing`` is set).
    #: The command-line tools cannot tell this for a job that is not processing right now.
    started: bool = False
    #: Counters CUPS advances while a job prints; unchanged counters mean no progress.
    progress: tuple[int, ...] = ()


class CupsClient(Protocol):
    """The few CUPS requests the transport needs. Every method blocks."""

    #: "pycups" or "cli", for logs and tests.
    kind: str

    def submit(self, queue: str, data: bytes, title: str) -> int:
        """Queue ``data`` as one raw job; return its job id."""
        ...

    def job(self, queue: str, job_id: int) -> JobState | None:
        """The job's state, or None when CUPS no longer knows the job."""
        ...

    def queue(self, queue: str) -> QueueState: ...

    def cancel(self, queue: str, job_id: int) -> bool:
        """Cancel the job (keeping its history); False when it had already finished."""
        ...

    def enable(self, queue: str) -> None: ...

    def accept(self, queue: str) -> None: ...


def pycups_available() -> bool:
    try:
        module = import_module("cups")
    except ImportError:
        return False
    # A script folder holding its own cups.py (bench/ has one) would shadow pycups.
    return hasattr(module, "Connection")


def find_tool(name: str) -> str | None:
    """The path of a CUPS command-line tool, also looking in the sbin folders."""
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join((path, *_SBIN)))


def cli_available() -> bool:
    return shutil.which("lp") is not None


def make_client(
    kind: str | None, server: str | None, timeout: float, submit_timeout: float | None = None
) -> CupsClient:
    """``kind`` "pycups" or "cli"; None picks pycups when it imports, else the tools.

    The timeouts bound each tool run (pycups has no timeout to set)."""
    if kind is None:
        kind = "pycups" if pycups_available() else "cli"
    if kind == "pycups":
        return PycupsClient(server)
    if kind == "cli":
        return CliClient(server, timeout, submit_timeout)
    raise ValueError(f"unknown CUPS client {kind!r}: use pycups or cli")


# -- pycups ------------------------------------------------------------------------------------

_JOB_ATTRIBUTES = [
    "job-id",  # without it some CUPS versions answer an empty set
    "job-state",
    "time-at-processing",
    "job-impressions-completed",
    "job-media-sheets-completed",
]
_QUEUE_ATTRIBUTES = [
    "printer-state",
    "printer-state-message",
    "printer-state-reasons",
    "printer-is-accepting-jobs",
]


class PycupsClient:
    """CUPS over IPP through pycups; a fresh connection per request, so a restarted cupsd is
    simply reconnected and no connection is shared between threads."""

    kind = "pycups"

    def __init__(self, server: str | None = None) -> None:
        self._cups: Any = import_module("cups")
        self._server = server

    def submit(self, queue: str, data: bytes, title: str) -> int:
        with tempfile.NamedTemporaryFile(prefix="spoonprint-", suffix=".prn") as file:
            file.write(data)
            file.flush()
            try:
                return int(self._call(queue, "printFile", queue, file.name, title, {"raw": "true"}))
            except (NotAccepting, SpoolerDown, NotPermitted):
                raise
            except CupsError:
                # printFile reports a missing queue as an internal error: ask about the queue.
                self.queue(queue)
                raise

    def job(self, queue: str, job_id: int) -> JobState | None:
        try:
            attrs = self._call(
                queue, "getJobAttributes", job_id, requested_attributes=_JOB_ATTRIBUTES
            )
        except QueueUnknown:  # for a job request "not found" is about the job
            return None
        return JobState(
            state=int(attrs["job-state"]),
            started=attrs.get("time-at-processing") is not None,
            progress=(
                int(attrs.get("job-impressions-completed") or 0),
                int(attrs.get("job-media-sheets-completed") or 0),
            ),
        )

    def queue(self, queue: str) -> QueueState:
        attrs = self._call(
            queue, "getPrinterAttributes", queue, requested_attributes=_QUEUE_ATTRIBUTES
        )
        reasons = attrs.get("printer-state-reasons") or ()
        if isinstance(reasons, str):  # pycups gives a single value as a plain string
            reasons = (reasons,)
        return QueueState(
            state=int(attrs["printer-state"]),
            accepting=bool(attrs["printer-is-accepting-jobs"]),
            message=str(attrs.get("printer-state-message") or ""),
            reasons=tuple(str(reason) for reason in reasons if reason != "none"),
        )

    def cancel(self, queue: str, job_id: int) -> bool:
        try:
            self._call(queue, "cancelJob", job_id, purge_job=False)
        except QueueUnknown:  # no longer in the history
            return False
        except CupsError as exc:
            if exc.status == self._cups.IPP_NOT_POSSIBLE:  # already finished
                return False
            raise
        return True

    def enable(self, queue: str) -> None:
        self._call(queue, "enablePrinter", queue)

    def accept(self, queue: str) -> None:
        self._call(queue, "acceptJobs", queue)

    def _call(self, queue: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One request on a fresh connection, its errors mapped to CupsError kinds."""
        conn = self._connect()
        try:
            return getattr(conn, method)(*args, **kwargs)
        except self._cups.IPPError as exc:
            raise self._ipp_error(exc, queue) from exc
        except self._cups.HTTPError as exc:
            raise self._http_error(exc) from exc

    def _connect(self) -> Any:
        try:
            if self._server is None:
                return self._cups.Connection()
            return self._cups.Connection(host=self._server)
        except RuntimeError as exc:  # pycups: "failed to connect to server"
            raise SpoolerDown(f"cupsd at {self._where()} does not answer: {exc}") from exc

    def _where(self) -> str:
        return self._server or "the default server"

    def _ipp_error(self, exc: Exception, queue: str) -> CupsError:
        cups = self._cups
        status, message = (*exc.args, None, "")[:2]
        if status == cups.IPP_NOT_ACCEPTING:
            return NotAccepting(f"queue {queue!r} is not accepting jobs: {message}", status)
        if status == cups.IPP_NOT_FOUND:
            return QueueUnknown(f"CUPS has no queue {queue!r}", status)
        if status in (cups.IPP_FORBIDDEN, cups.IPP_NOT_AUTHENTICATED, cups.IPP_NOT_AUTHORIZED):
            return NotPermitted(f"CUPS refused: {message}", status)
        if status == cups.IPP_SERVICE_UNAVAILABLE:
            return SpoolerDown(f"cupsd at {self._where()} is unavailable: {message}", status)
        return CupsError(f"CUPS error {status}: {message}", status)

    def _http_error(self, exc: Exception) -> CupsError:
        status = exc.args[0] if exc.args else None
        if status in (401, 403):
            return NotPermitted(f"CUPS refused (HTTP {status})")
        return SpoolerDown(f"cupsd at {self._where()} failed (HTTP {status})")


# -- command-line tools ------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"request id is \S+-(\d+)")
#: What ``cancel`` says about a job that has finished (cupsd's wording since CUPS 1.x).
_FINISHED_AS = {"canceled": CANCELED, "aborted": ABORTED, "completed": COMPLETED}
_ALREADY = re.compile(r"is already (canceled|aborted|completed)")
_NOT_PERMITTED = ("forbidden", "not authorized", "unauthorized", "not permitted")


class CliClient:
    """CUPS through ``lp``, ``lpstat``, ``cancel``, ``cupsenable`` and ``cupsaccept``.

    The tools run with the C locale, so their (otherwise translated) messages can be read.
    ``lpstat`` does not print a job's state; a job missing from the active list has finished,
    and ``cancel`` names how (completed, canceled or aborted) without changing it.
    """

    kind = "cli"

    def __init__(
        self, server: str | None = None, timeout: float = 5.0, submit_timeout: float | None = None
    ) -> None:
        self._server = server
        self._timeout = timeout
        self._submit_timeout = submit_timeout or timeout
        self._env = dict(os.environ, LC_ALL="C", LANG="C")
        if server is not None:
            self._env["CUPS_SERVER"] = server

    def submit(self, queue: str, data: bytes, title: str) -> int:
        args = ["lp", "-d", queue, "-o", "raw", "-t", title]
        result = self._run(args, data, self._submit_timeout)
        match = _REQUEST_ID.search(result.stdout)
        if result.returncode == 0 and match:
            return int(match.group(1))
        raise self._error(result, queue)

    def job(self, queue: str, job_id: int) -> JobState | None:
        # -l comes after -p: a short printer line ("now printing Q-N"), then the active jobs,
        # each with its state reasons ("Alerts:").
        result = self._run(["lpstat", "-p", queue, "-l", "-o", queue])
        if result.returncode != 0:
            raise self._error(result, queue)
        name = f"{queue}-{job_id}"
        alerts = _active_job_alerts(result.stdout, name)
        if alerts is None:
            return self._finished(queue, name)
        if f"now printing {name}." in result.stdout:
            return JobState(PROCESSING, started=True)
        return JobState(HELD if any("hold" in alert for alert in alerts) else PENDING)

    def _finished(self, queue: str, name: str) -> JobState | None:
        # The job is not active, so it has finished for good and cancel can only say how.
        result = self._run(["cancel", name])
        if result.returncode == 0:  # it was active after all (a race): now it is canceled
            return JobState(CANCELED)
        match = _ALREADY.search(result.stderr)
        if match:
            return JobState(_FINISHED_AS[match.group(1)])
        if "does not exist" in result.stderr:
            return None
        raise self._error(result, queue)

    def queue(self, queue: str) -> QueueState:
        result = self._run(["lpstat", "-l", "-p", queue, "-a", queue])
        if result.returncode != 0:
            raise self._error(result, queue)
        return _parse_queue(queue, result.stdout)

    def cancel(self, queue: str, job_id: int) -> bool:
        result = self._run(["cancel", f"{queue}-{job_id}"])
        if result.returncode == 0:
            return True
        if _ALREADY.search(result.stderr) or "does not exist" in result.stderr:
            return False
        raise self._error(result, queue)

    def enable(self, queue: str) -> None:
        self._admin("cupsenable", queue)

    def accept(self, queue: str) -> None:
        self._admin("cupsaccept", queue)

    def _admin(self, tool: str, queue: str) -> None:
        path = find_tool(tool)
        if path is None:
            raise CupsError(f"{tool} not found: apt-get install cups-client")
        result = self._run([path, queue])
        if result.returncode != 0:
            raise self._error(result, queue)

    def _run(
        self, args: list[str], data: bytes = b"", timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        timeout = timeout or self._timeout
        try:
            done = subprocess.run(
                args, input=data, env=self._env, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise SpoolerDown(f"{args[0]} got no answer within {timeout:g} s") from exc
        except OSError as exc:  # the tool is missing or cannot run
            raise CupsError(f"cannot run {args[0]}: {exc}") from exc
        return subprocess.CompletedProcess(
            args,
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def _error(self, result: subprocess.CompletedProcess[str], queue: str) -> CupsError:
        said = (result.stderr or result.stdout).strip()
        lowered = said.lower()
        if "not accepting" in lowered:
            return NotAccepting(said)
        if any(words in lowered for words in _NOT_PERMITTED):
            return NotPermitted(said)
        if "unable to connect" in lowered or "service-unavailable" in lowered:
            return SpoolerDown(said)
        if "does not exist" in lowered or "invalid destination" in lowered:
            # The tools say the same when cupsd is down: ask the scheduler itself.
            return SpoolerDown(said) if not self._scheduler_running() else QueueUnknown(said)
        return CupsError(said or f"{result.args[0]} failed with code {result.returncode}")

    def _scheduler_running(self) -> bool:
        result = self._run(["lpstat", "-r"])
        return "scheduler is running" in result.stdout


def _active_job_alerts(text: str, name: str) -> tuple[str, ...] | None:
    """The state reasons of job ``name`` in ``lpstat -l -o`` output; None when not listed."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.split()[:1] == [name]:
            break
    else:
        return None
    for line in lines:
        if not line.startswith("\t"):
            break
        if line.startswith("\tAlerts:"):
            return tuple(line.partition(":")[2].split())
    return ()


def _parse_queue(queue: str, text: str) -> QueueState:
    """Read ``lpstat -l -p QUEUE -a QUEUE`` (C locale)."""
    lines = text.splitlines()
    state, message = 3, ""
    reasons: tuple[str, ...] = ()
    for index, line in enumerate(lines):
        if line.startswith(f"printer {queue} "):
            if " disabled since " in line:
                state = QUEUE_STOPPED
            elif " now printing " in line:
                state = 4
            following = lines[index + 1] if index + 1 < len(lines) else ""
            # The state message, when there is one, is the first indented line.
            if following.startswith("\t") and not following.startswith("\tForm mounted:"):
                message = following.strip()
        elif line.startswith("\tAlerts:") and not reasons:
            found = line.partition(":")[2].split()
            reasons = tuple(reason for reason in found if reason != "none")
    accepting = any(line.startswith(f"{queue} accepting requests") for line in lines)
    if message == "reason unknown":  # lpstat's filler for a stopped queue with no message
        message = ""
    return QueueState(state, accepting, message, reasons)
