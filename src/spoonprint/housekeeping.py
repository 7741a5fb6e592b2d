"""Housekeeping: old jobs out of the database, old logs out of the data folder.

``spoonprint cleanup`` runs :func:`run_cleanup` once; ``serve`` runs it every day at
``housekeeping.daily_at`` (:func:`run_daily_housekeeping`). Both are safe while the server runs:

- **Jobs**: printed, sent and cancelled jobs whose last change is older than ``keep_days`` are
  deleted with their ``job_events`` rows, newest first in small transactions, so orders arriving
  meanwhile wait milliseconds, not seconds. Failed and held jobs (a person still has to look at
  them) and waiting ones are never deleted, and neither is a job that a kept reprint points at.
  The webhook cursor is an event id and is left alone; ids are never reused (AUTOINCREMENT).
- **Database**: ``VACUUM`` when deleting freed pages, then a WAL checkpoint so the ``-wal`` file
  shrinks again. SQLite in WAL mode lets the server's readers carry on; its writers wait (busy
  timeout) for the few moments the vacuum holds the write lock.
- **Logs** (``<data_dir>/logs``): a live log whose first entry is older than
  ``log_rotate_days`` is rotated (``name`` -> ``name.1`` -> ... as the size-based rotation of
  the running server does), and rotated files last written more than ``log_keep_days`` ago are
  deleted. Only the process that writes a log may rotate it: inside ``serve`` that is the
  server's own handler; from the command line only while no server holds the data folder.
- **Virtual printer**: its saved tickets older than ``keep_days`` are deleted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from spoonprint.config import HousekeepingSettings, Settings
from spoonprint.db import DB_FILENAME, connect, transaction
from spoonprint.domain.job import JobState
from spoonprint.instance_lock import free_or_held
from spoonprint.logs import LOG_FILE
from spoonprint.security.events import SECURITY_LOG

log = logging.getLogger("spoonprint.housekeeping")

DAY = 86400.0
#: The jobs that may go: finished for good, nobody needs to act on them.
PRUNABLE_STATES = (JobState.PRINTED, JobState.SENT, JobState.CANCELLED)
#: The logs spoonprint writes in <data_dir>/logs, and how many rotated files their handlers keep
#: (spoonprint.logs and spoonprint.security.events use the same).
LIVE_LOGS = (LOG_FILE, SECURITY_LOG)
LOG_BACKUPS = 5
#: Jobs deleted per transaction: each one holds the write lock for milliseconds.
BATCH = 500
#: How long vacuum waits for the server's writes to finish before it gives up.
BUSY_TIMEOUT = 30.0
VIRTUAL_PRINTER_DIR = "virtual-printer"
_ROTATED = re.compile(r"^(?P<base>.+)\.(?P<n>\d+)$")
_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


@dataclass
class CleanupReport:
    dry_run: bool = False
    #: Jobs deleted (or that would be, in a dry run), by state.
    jobs_deleted: Counter[str] = field(default_factory=Counter)
    events_deleted: int = 0
    logs_rotated: list[Path] = field(default_factory=list)
    logs_removed: list[Path] = field(default_factory=list)
    #: Why logs were not rotated, when they were due but could not be.
    rotation_skipped: str = ""
    tickets_removed: int = 0
    vacuumed: bool = False
    db_bytes_before: int = 0
    db_bytes_after: int = 0

    @property
    def jobs_total(self) -> int:
        return sum(self.jobs_deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "jobs_deleted": dict(self.jobs_deleted),
            "jobs_total": self.jobs_total,
            "events_deleted": self.events_deleted,
            "logs_rotated": [str(p) for p in self.logs_rotated],
            "logs_removed": [str(p) for p in self.logs_removed],
            "rotation_skipped": self.rotation_skipped,
            "tickets_removed": self.tickets_removed,
            "vacuumed": self.vacuumed,
            "db_bytes_before": self.db_bytes_before,
            "db_bytes_after": self.db_bytes_after,
        }

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        parts = [f"{verb} {self.jobs_total} old job(s)"]
        if self.logs_rotated:
            parts.append(f"rotated {len(self.logs_rotated)} log(s)")
        if self.logs_removed:
            parts.append(f"{verb} {len(self.logs_removed)} old log file(s)")
        if self.tickets_removed:
            parts.append(f"{verb} {self.tickets_removed} virtual-printer file(s)")
        if self.vacuumed:
            parts.append(f"database {_mib(self.db_bytes_before)} -> {_mib(self.db_bytes_after)}")
        return "housekeeping: " + ", ".join(parts)


# -- jobs -------------------------------------------------------------------------------


def _doomed_ids_sql(limit: bool) -> str:
    marks = ",".join("?" * len(PRUNABLE_STATES))
    doomed = f"state IN ({marks}) AND updated_at < ?"
    # A job that a kept reprint points at stays (the reprint's history names it; the foreign
    # key demands it). Reprints have higher ids than their originals, so deleting from the
    # newest down removes a doomed reprint before the doomed original it points at.
    return (
        f"SELECT id, state FROM jobs WHERE {doomed} AND id < ?"
        " AND id NOT IN (SELECT reprint_of FROM jobs"
        f"  WHERE reprint_of IS NOT NULL AND NOT ({doomed}))"
        " ORDER BY id DESC" + (" LIMIT ?" if limit else "")
    )


def prune_jobs(
    conn: sqlite3.Connection, cutoff: float, *, dry_run: bool = False, batch: int = BATCH
) -> tuple[Counter[str], int]:
    """Delete prunable jobs last changed before ``cutoff`` (epoch seconds) and their events.
    Returns (jobs deleted by state, events deleted); a dry run counts without deleting."""
    states = tuple(str(s) for s in PRUNABLE_STATES)
    deleted: Counter[str] = Counter()
    events = 0
    below = 2**63 - 1
    if dry_run:
        found = conn.execute(_doomed_ids_sql(False), (*states, cutoff, below, *states, cutoff))
        ids = []
        for job_id, state in found:
            ids.append(job_id)
            deleted[state] += 1
        for chunk in _chunks(ids, batch):
            marks = ",".join("?" * len(chunk))
            row = conn.execute(f"SELECT COUNT(*) FROM job_events WHERE job_id IN ({marks})", chunk)
            events += int(row.fetchone()[0])
        return deleted, events
    select = _doomed_ids_sql(True)
    while True:
        with transaction(conn):
            rows = conn.execute(select, (*states, cutoff, below, *states, cutoff, batch)).fetchall()
            if not rows:
                break
            ids = [row[0] for row in rows]
            marks = ",".join("?" * len(ids))
            gone = conn.execute(f"DELETE FROM job_events WHERE job_id IN ({marks})", ids)
            events += gone.rowcount
            conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids)
        for _, state in rows:
            deleted[state] += 1
        below = min(ids)
    return deleted, events


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def database_bytes(db_path: Path) -> int:
    """The database's size on disk, its write-ahead log included."""
    return sum(
        p.stat().st_size for p in (db_path, db_path.with_name(db_path.name + "-wal")) if p.exists()
    )


def vacuum(db_path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> bool:
    """Give the pages freed by deleting back to the disk. False when nothing was free."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=busy_timeout)
    try:
        if conn.execute("PRAGMA freelist_count").fetchone()[0] == 0:
            return False
        conn.execute("VACUUM")
        # VACUUM in WAL mode writes the whole database through the -wal file: fold it back.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return True
    finally:
        conn.close()


# -- logs -------------------------------------------------------------------------------


def first_entry_time(path: Path) -> float | None:
    """When the first entry of a log was written: the first "YYYY-MM-DD HH:MM:SS" (or ISO
    ``T``) stamp in its first line, read as local time; None for an empty or unstamped log."""
    try:
        with path.open("rb") as handle:
            head = handle.readline(4096).decode("utf-8", "replace")
    except OSError:
        return None
    match = _STAMP.search(head)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second).timestamp()
    except ValueError:
        return None


def _own_handlers(path: Path) -> list[logging.handlers.RotatingFileHandler]:
    """This process's rotating handlers writing ``path`` (the server's own logs)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        item
        for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    target = path.resolve()
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.handlers.RotatingFileHandler)
        and Path(handler.baseFilename).resolve() == target
    ]


def rotate_log(path: Path, *, exclusive: bool) -> bool:
    """Start a new ``path``, shifting the older files up one number. Done by this process's
    handler when it has one (under its lock, so no line is split or lost); else by renaming,
    only when ``exclusive`` (no server is writing it). Returns whether it rotated."""
    handlers = _own_handlers(path)
    if handlers:
        handler = handlers[0]
        handler.acquire()
        try:
            handler.doRollover()
        finally:
            handler.release()
        return True
    if not exclusive:
        return False
    shifter = logging.handlers.RotatingFileHandler(
        path, backupCount=LOG_BACKUPS, delay=True, encoding="utf-8"
    )
    try:
        shifter.doRollover()
    finally:
        shifter.close()
    return True


def rotate_logs(
    log_dir: Path, *, now: float, rotate_days: int, exclusive: bool, dry_run: bool = False
) -> tuple[list[Path], str]:
    """Rotate the live logs whose first entry is older than ``rotate_days``. Returns the
    rotated logs and, when some were due but left alone, why."""
    rotated: list[Path] = []
    skipped = ""
    for name in LIVE_LOGS:
        path = log_dir / name
        started = first_entry_time(path)
        if started is None or now - started < rotate_days * DAY:
            continue
        if dry_run:
            rotated.append(path)
            continue
        try:
            done = rotate_log(path, exclusive=exclusive)
        except OSError as exc:  # e.g. Windows: another process has the file open
            log.warning("housekeeping: cannot rotate %s: %s", path, exc)
            continue
        if done:
            rotated.append(path)
        else:
            skipped = "the running server rotates its own logs (daily, inside serve)"
    return rotated, skipped


def prune_logs(log_dir: Path, *, now: float, keep_days: int, dry_run: bool = False) -> list[Path]:
    """Delete rotated logs (``name.N``) last written more than ``keep_days`` ago, and any
    numbered beyond what the handlers keep."""
    if not log_dir.is_dir():
        return []
    removed = []
    for path in sorted(log_dir.iterdir()):
        match = _ROTATED.match(path.name)
        if match is None or not path.is_file():
            continue
        try:
            old = now - path.stat().st_mtime > keep_days * DAY
            if old or int(match["n"]) > LOG_BACKUPS:
                if not dry_run:
                    path.unlink()
                removed.append(path)
        except FileNotFoundError:  # rotated away meanwhile by the running server
            continue
    return removed


def prune_tickets(folder: Path, *, cutoff: float, dry_run: bool = False) -> int:
    """Delete the virtual printer's saved tickets (.bin, .txt, .png) older than ``cutoff``."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                if not dry_run:
                    path.unlink()
                removed += 1
    return removed


# -- all of it --------------------------------------------------------------------------


def data_folder_free(data_dir: Path) -> contextlib.AbstractContextManager[bool]:
    """True, and no server can start meanwhile, when no spoonprint holds the data folder."""
    return free_or_held(data_dir)


@contextlib.contextmanager
def _exclusive(data_dir: Path, known: bool | None) -> Iterator[bool]:
    if known is not None:
        yield known
        return
    with data_folder_free(data_dir) as free:
        yield free


def run_cleanup(
    settings: Settings,
    *,
    exclusive: bool | None = None,
    now: float | None = None,
    keep_days: int | None = None,
    do_vacuum: bool = True,
    dry_run: bool = False,
) -> CleanupReport:
    """One housekeeping round. ``exclusive``: True when no other process writes the logs (the
    caller is the server itself); None: find out from the data folder's instance lock, held
    while the logs are rotated (the command line)."""
    now = time.time() if now is None else now
    hk: HousekeepingSettings = settings.housekeeping
    keep = keep_days if keep_days is not None else hk.keep_days
    data_dir = settings.server.data_dir
    report = CleanupReport(dry_run=dry_run)
    db_path = data_dir / DB_FILENAME
    if db_path.exists():  # a fresh install has nothing to clean (and gets no database from us)
        report.db_bytes_before = report.db_bytes_after = database_bytes(db_path)
        conn = connect(db_path)
        try:
            report.jobs_deleted, report.events_deleted = prune_jobs(
                conn, now - keep * DAY, dry_run=dry_run
            )
        finally:
            conn.close()
        if do_vacuum and not dry_run:
            report.vacuumed = vacuum(db_path)
            report.db_bytes_after = database_bytes(db_path)
    log_dir = data_dir / "logs"
    with _exclusive(data_dir, exclusive) as alone:
        report.logs_rotated, report.rotation_skipped = rotate_logs(
            log_dir, now=now, rotate_days=hk.log_rotate_days, exclusive=alone, dry_run=dry_run
        )
    report.logs_removed = prune_logs(log_dir, now=now, keep_days=hk.log_keep_days, dry_run=dry_run)
    report.tickets_removed = prune_tickets(
        data_dir / VIRTUAL_PRINTER_DIR, cutoff=now - keep * DAY, dry_run=dry_run
    )
    return report


def seconds_until(daily_at: str, now: datetime) -> float:
    """Seconds from ``now`` to the next ``HH:MM`` (local, naive datetimes)."""
    hour, minute = (int(part) for part in daily_at.split(":"))
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


async def run_daily_housekeeping(
    settings: Settings,
    stop_event: asyncio.Event,
    *,
    clock: Callable[[], datetime] = datetime.now,
) -> None:
    """Run :func:`run_cleanup` every day at ``housekeeping.daily_at`` until ``stop_event``.
    Runs inside ``serve``, which holds the data folder: its own log handlers are rotated."""
    hk = settings.housekeeping
    if not hk.enabled:
        return
    while not stop_event.is_set():
        delay = seconds_until(hk.daily_at, clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), delay)
            return
        try:
            report = await asyncio.to_thread(run_cleanup, settings, exclusive=True)
        except Exception:  # the server must not stop over housekeeping: try again tomorrow
            log.exception("housekeeping failed; it runs again tomorrow")
            continue
        log.info("%s", report.summary())


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
