"""Running the server in the background: ``spoonprint start | stop | restart``.

``start`` launches ``spoonprint serve`` detached from the terminal (POSIX: a new session;
Windows: a new process group with no console), its console output appended to
``DATA_DIR/logs/console.log``, and writes its process id to ``DATA_DIR/spoonprint.pid``. It
returns once the server answers ``/status`` or, if it exits first, says why from that log.

Whether a server is running is asked of the data folder's instance lock (see
:mod:`spoonprint.instance_lock`), not of the PID file: the operating system drops the lock when
the process ends in any way, so a PID file left by a crash or a power cut is recognised as
stale (and removed) even if its number now belongs to another program.

``stop`` asks the server to stop as Ctrl+C would (POSIX: SIGTERM; Windows: a stop request in
its data folder, :mod:`spoonprint.stop_request`, since no signal reaches a detached process
there) and waits for the lock to be released: the server finishes the ticket it is writing and
gives back the others. ``--force`` kills a server that did not stop in time (the job store is
crash-safe; a ticket cut off half way prints again marked REPRINT). On Windows ``os.kill``
fails with a plain OSError (winerror 87) for a process that has ended and with
PermissionError for a server running as Administrator: the first means it is gone, the second
is said in words.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spoonprint import stop_request
from spoonprint.instance_lock import LOCK_FILENAME, free_or_held

PID_FILE = "spoonprint.pid"
CONSOLE_LOG = "console.log"
#: Seconds between looks at the lock or the server while waiting (no event to wait on: the
#: server is another process).
POLL = 0.1


@dataclass(frozen=True)
class ProcessState:
    #: A spoonprint holds the data folder's lock (it is running, or starting).
    running: bool
    #: The process id in the lock file (None when unreadable, e.g. locked on Windows).
    holder: int | None
    #: The process id in the PID file that ``start`` wrote, if there is one.
    pid_file: int | None

    @property
    def pid(self) -> int | None:
        return self.holder or self.pid_file

    @property
    def started_here(self) -> bool:
        """Running, and started by ``spoonprint start`` (its PID file names the lock holder)."""
        if not self.running or self.pid_file is None:
            return False
        return self.holder is None or self.holder == self.pid_file

    @property
    def stale_pid_file(self) -> bool:
        return self.pid_file is not None and not self.running


class ProcessProblem(Exception):
    """Start or stop could not be done; the message says why and what to do."""


def state(data_dir: Path) -> ProcessState:
    running, holder = _lock_state(data_dir / LOCK_FILENAME)
    return ProcessState(running, holder, _read_pid(data_dir / PID_FILE))


def _lock_state(path: Path) -> tuple[bool, int | None]:
    """(held by a process, that process's id as it wrote it) without disturbing the holder."""
    if not path.exists():
        return False, None
    try:
        with free_or_held(path.parent) as free:
            return (False, None) if free else (True, _read_pid(path))
    except OSError:
        return False, None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):  # missing, or locked (Windows)
        return None
    return int(text) if text.isdigit() else None


def _write_pid(path: Path, pid: int) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(f"{pid}\n", encoding="ascii")
    os.replace(temp, path)


def remove_pid_file(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PID_FILE).unlink()


def detach_options(platform: str = sys.platform) -> dict[str, Any]:
    """Popen options that let the server outlive the command that started it, and receive
    Ctrl+C or Ctrl+Break only when asked (not from the terminal it was started in)."""
    if platform == "win32":
        # The Windows API values, for when this runs elsewhere (subprocess has them on Windows).
        group = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200)
        detached = getattr(subprocess, "DETACHED_PROCESS", 0x00000008)
        return {"creationflags": group | detached}
    return {"start_new_session": True}


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "spoonprint", "serve", "--config", str(config.resolve())]


def start(
    config: Path, data_dir: Path, ready: Callable[[], bool], timeout: float = 30.0
) -> tuple[int, bool]:
    """Start the server in the background; (its pid, whether a stale PID file was removed).
    ProcessProblem when it is already running or does not come up within ``timeout``."""
    now = state(data_dir)
    if now.running:
        raise ProcessProblem(f"spoonprint is already running (pid {now.pid or 'unknown'})")
    stale = now.stale_pid_file
    remove_pid_file(data_dir)
    log_path = data_dir / "logs" / CONSOLE_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            serve_command(config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.resolve().parent,
            close_fds=True,
            **detach_options(),
        )
    _write_pid(data_dir / PID_FILE, proc.pid)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            remove_pid_file(data_dir)
            raise ProcessProblem(
                f"spoonprint stopped at once (exit code {code}):\n{_tail(log_path, offset)}"
            )
        if ready():
            return proc.pid, stale
        if time.monotonic() > deadline:
            raise ProcessProblem(
                f"spoonprint (pid {proc.pid}) did not answer within {timeout:g} s; it may still "
                f"be starting. Its output is in {log_path}"
            )
        time.sleep(POLL)


def stop(data_dir: Path, timeout: float = 30.0, *, force: bool = False) -> int | None:
    """Stop the server ``start`` started; its pid, or None when none was running (a stale PID
    file is removed). ProcessProblem when it runs but was not started here, or does not stop."""
    now = state(data_dir)
    if not now.running:
        remove_pid_file(data_dir)
        return None
    if not now.started_here or now.pid_file is None:
        raise ProcessProblem(
            f"spoonprint is running (pid {now.pid or 'unknown'}) but was not started with "
            "'spoonprint start': stop it where it was started (Ctrl+C in its window, or "
            "its service)"
        )
    pid = now.pid_file
    if not _ask_to_stop(pid, data_dir, timeout):
        if not force:
            raise ProcessProblem(
                f"spoonprint (pid {pid}) did not stop within {timeout:g} s; "
                "'spoonprint stop --force' ends it at once"
            )
        _kill(pid)
        if not _wait_released(data_dir, 10.0):
            raise ProcessProblem(f"spoonprint (pid {pid}) could not be stopped")
    remove_pid_file(data_dir)
    return pid


def _ask_to_stop(pid: int, data_dir: Path, timeout: float, platform: str = sys.platform) -> bool:
    if platform == "win32":
        stop_request.request(data_dir)
    else:
        _signal(pid, signal.SIGTERM)
    return _wait_released(data_dir, timeout)


def _kill(pid: int) -> None:
    _signal(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # TerminateProcess on Windows


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except PermissionError as exc:
        raise ProcessProblem(
            f"spoonprint (pid {pid}) runs with rights this command lacks (as Administrator, "
            "or as another user): run 'spoonprint stop' from a prompt opened the same way "
            "(right-click, Run as administrator)"
        ) from exc
    except OSError:
        # It ended meanwhile: that is what we wanted. POSIX says ProcessLookupError; Windows
        # a plain OSError (winerror 87, "The parameter is incorrect").
        pass


def _wait_released(data_dir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while state(data_dir).running:
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def _tail(path: Path, offset: int, lines: int = 15) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
