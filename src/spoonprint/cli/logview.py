"""Which lines of the server's log ``spoonprint logs`` shows.

An owner reads the log for what happened to orders, printers, recovery and security: the lines
of spoonprint's own loggers, and every warning or error whoever wrote it. uvicorn's access lines
(one per request: ``monitor`` and the dashboard ask every few seconds) and its start-up chatter
bury those, so they are left out unless asked for (``--access`` shows every line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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
