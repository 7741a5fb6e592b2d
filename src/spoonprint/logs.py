"""Logging: one format, to the console and to a rotating file in the data folder."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
import unicodedata
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FILE = "spoonprint.log"
#: Characters a log line never holds raw: controls (ESC would drive the terminal of whoever
#: reads the log with ``spoonprint logs``; CR and LF would forge lines), format characters
#: (direction overrides would reorder what is read) and line and paragraph separators.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def escape_controls(text: str) -> str:
    """``text`` with each unsafe character written as its Python escape (``\x1b``,
    ``\u202e``): order ids, paths and headers come from outside and are logged as values."""
    if text.isprintable():  # every unsafe character is not printable: most text is done here
        return text
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _UNSAFE else char for char in text
    )


class LogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that, when it cannot be written (a full disk), says so on stderr
    once a minute, not with a traceback for every line as logging does: the server goes on
    (refusing orders it cannot store with a 503) and its console stays readable."""

    #: Seconds between two reports of the same trouble.
    report_every = 60.0

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=5 * 1024 * 1024, backupCount=5, encoding="utf-8")
        self._reported_at = -self.report_every

    def handleError(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if now - self._reported_at < self.report_every:
            return
        self._reported_at = now
        error = sys.exc_info()[1]
        sys.stderr.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING spoonprint.logs: cannot write "
            f"{self.baseFilename} ({error}); its lines are lost until it can be written "
            f"(said at most once every {self.report_every:g} s)\n"
        )


class SafeFormatter(logging.Formatter):
    """Escapes unsafe characters in the message, whatever put them into its arguments; the
    traceback of an exception keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def setup_logging(data_dir: Path, level: str = "info") -> Path:
    """Send spoonprint's and uvicorn's logs to stderr and ``data_dir/logs/spoonprint.log``."""
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LOG_FILE
    formatter = SafeFormatter(FORMAT)
    file_handler = LogFile(path)
    console = logging.StreamHandler()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    return path
