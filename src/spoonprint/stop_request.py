"""A request to stop the server, left in its data folder by ``spoonprint stop``.

Windows has no signal one process can send another that a detached server receives:
``os.kill(pid, CTRL_BREAK_EVENT)`` only reaches processes on the caller's console
(GenerateConsoleCtrlEvent), and ``os.kill(pid, SIGTERM)`` is TerminateProcess, which cuts the
ticket being printed. So ``stop`` writes this file and the server, which looks for it a few
times a second, stops exactly as on Ctrl+C or SIGTERM: it finishes the ticket it is writing and
gives back the others. Whoever may write the data folder may stop the server, as whoever may
end its process could.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

STOP_FILE = "spoonprint.stop"


def request(data_dir: Path) -> None:
    """Ask the server using ``data_dir`` to stop."""
    temp = data_dir / (STOP_FILE + ".tmp")
    temp.write_text(f"stop requested by process {os.getpid()}\n", encoding="utf-8")
    os.replace(temp, data_dir / STOP_FILE)


def take(data_dir: Path) -> bool:
    """True (once) when a stop was requested; the request is used up."""
    try:
        (data_dir / STOP_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def clear(data_dir: Path) -> None:
    """Drop a request left from before this server started: it was not for this one."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / STOP_FILE).unlink()
