"""``spoonprint logs``: the server's log on this machine, and which of its lines it shows.

An owner reads the log for what happened to orders, printers, recovery and security: the lines
of spoonprint's own loggers, and every warning or error whoever wrote it. uvicorn's access lines
(one per request: ``monitor`` and the dashboard ask every few seconds) and its start-up chatter
bury those, so they are left out unless asked for (``--access`` shows every line).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from spoonprint.cli.common import DEFAULT_CONFIG, NOT_RUNNING, ConfigOption, fail, settings_from
from spoonprint.logs import LOG_FILE
from spoonprint.security.events import SECURITY_LOG

#: The start of a log record as :data:`spoonprint.logs.FORMAT` writes it: time, level, logger.
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>\w+)\s+(?P<name>[\w.]+): ")
ALWAYS_SHOWN_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


def owner_line(level: str, logger: str) -> bool:
    """Whether a record of ``logger`` at ``level`` is shown without ``--access``."""
    return logger.split(".")[0] == "spoonprint" or level in ALWAYS_SHOWN_LEVELS


@dataclass
class LogFilter:
    """Lines in, the lines to show out. A line that starts no record (a traceback, a wrapped
    message) goes with the record it continues."""

    everything: bool = False
    _showing: bool = True
    _partial: str = ""

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            record = RECORD.match(line)
            if record is not None:
                self._showing = self.everything or owner_line(record["level"], record["name"])
            if self._showing:
                yield line

    def feed(self, text: str) -> str:
        """The part of newly appended ``text`` to show; an unfinished last line waits for the
        rest of it."""
        complete, newline, self._partial = (self._partial + text).rpartition("\n")
        if not newline:
            return ""
        return "".join(f"{line}\n" for line in self.lines(complete.split("\n")))


def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show.")] = 40,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing new lines.")] = False,
    security: Annotated[bool, typer.Option(help="The security log instead.")] = False,
    access: Annotated[
        bool, typer.Option(help="Also every HTTP request (uvicorn's access lines).")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """The server's log (in the data folder on this machine); --follow until Ctrl+C.

    Shows what happened to jobs and printers, recovery, security and every warning; the line
    for each HTTP request only with --access.
    """
    log_dir = settings_from(config).server.data_dir / "logs"
    path = log_dir / (SECURITY_LOG if security else LOG_FILE)
    if not path.exists() and not follow:
        fail(f"no log yet at {path}: has spoonprint run with this config?", NOT_RUNNING)
    shown = LogFilter(everything=access or security)
    position = _show_tail(path, lines, shown)
    if not follow:
        return
    try:
        for text in follow_file(path, position):
            typer.echo(shown.feed(text), nl=False)
    except KeyboardInterrupt:
        return


#: How far back from its end the log is read for the last lines: access lines can be most of
#: it, so a good deal more than the lines asked for.
TAIL_BYTES = 1024 * 1024


def _show_tail(path: Path, lines: int, keep: LogFilter) -> int:
    """Print the last ``lines`` lines that ``keep`` shows; the position after them."""
    try:
        with path.open("rb") as file:
            end = file.seek(0, 2)
            start = max(end - TAIL_BYTES, 0)
            file.seek(start)
            data = file.read()
    except OSError:
        return 0
    text = data.decode("utf-8", errors="replace")
    kept = list(keep.lines(text.splitlines()))
    shown = kept[-lines:] if lines > 0 else []
    for line in shown:
        typer.echo(line)
    return end


def follow_file(
    path: Path, position: int, poll: float = 0.25, until: Callable[[], bool] = lambda: False
) -> Iterator[str]:
    """New text appended to ``path`` from ``position`` on; after a rotation, the new file from
    its beginning. Polls (a file has no portable change event); stops when ``until()``."""
    identity = _identity(path)
    while not until():
        current = _identity(path)
        if current is None:
            time.sleep(poll)
            continue
        if identity is None or current[:2] != identity[:2] or current[2] < position:
            identity, position = current, 0  # rotated: a new file
        if current[2] > position:
            with path.open("rb") as file:
                file.seek(position)
                data = file.read(current[2] - position)
            position += len(data)
            yield data.decode("utf-8", errors="replace")
            continue
        time.sleep(poll)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size
