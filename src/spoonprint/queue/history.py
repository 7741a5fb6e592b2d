"""Job history for the dashboard: recent jobs, search by order number, the oldest waiting job.

Reads go through a connection of their own to the database file (WAL: readers never wait for
the job store's writer, and the store's lock is never taken for a screen refresh).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from spoonprint.db import DB_FILENAME, connect
from spoonprint.domain.job import PENDING_STATES, Job

# The store's own column list and row decoder: one definition of what a job row is.
from spoonprint.queue.sqlite import JOB_COLUMNS, job_from_row

#: The order number is the API's ``order_id`` or, for a receipt, its printed ``order_no``.
_RECEIPT_ORDER_NO = "json_extract(payload, '$.receipt.order_no')"


def _like_pattern(text: str) -> str:
    """``%text%`` for LIKE ... ESCAPE '\\', with the user's own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class JobHistory:
    """Thread-safe: one connection, one lock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> JobHistory:
        return cls(connect(data_dir / DB_FILENAME))

    def recent(self, limit: int = 20) -> list[Job]:
        """The newest jobs, newest first."""
        return self._jobs(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,))

    def search(self, text: str, limit: int = 50) -> list[Job]:
        """Jobs whose order number contains ``text`` (case-insensitive for ASCII letters), and
        the job with that id when ``text`` is a number; exact order numbers first, then the
        newest first."""
        text = text.strip()
        if not text:
            return []
        pattern = _like_pattern(text)
        job_id = int(text) if text.isdigit() and len(text) < 19 else -1
        query = (
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
            f" OR order_id LIKE ? ESCAPE '\\' OR {_RECEIPT_ORDER_NO} LIKE ? ESCAPE '\\'"
            f" ORDER BY (id = ? OR order_id = ? OR {_RECEIPT_ORDER_NO} = ?) DESC, id DESC"
            " LIMIT ?"
        )
        return self._jobs(query, (job_id, pattern, pattern, job_id, text, text, limit))

    def oldest_waiting(self) -> Job | None:
        """The job that has waited longest to print (queued or printing), if any."""
        states = sorted(PENDING_STATES)
        rows = self._jobs(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?, ?) ORDER BY id LIMIT 1",
            tuple(states),
        )
        return rows[0] if rows else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _jobs(self, query: str, params: tuple[object, ...]) -> list[Job]:
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [job_from_row(row) for row in rows]
