"""The SQLite database file: connection settings and versioned schema migrations.

Durability settings: WAL journal with ``synchronous=FULL``, so a committed transaction survives a
power cut, not only a crash of the process. Memory: a bounded page cache per connection
(:data:`CACHE_KIB`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spoonprint.errors import StoreUnavailable

DB_FILENAME = "spoonprint.db"
#: The write-ahead log is folded back into the database (checkpointed) once it holds this
#: many pages of 4 KiB, and cut back to JOURNAL_LIMIT bytes after: SQLite's defaults (1,000
#: pages, never cut back) let it fill a 3 MB disk by itself after about 54 small orders, and
#: a full log cannot be folded back without as much space again.
CHECKPOINT_PAGES = 64
JOURNAL_LIMIT = 512 * 1024
#: Room to leave beyond what folding the log back takes, when a full disk is reported.
SPARE_BYTES = 1024 * 1024
#: Page cache of each connection, in KiB (SQLite's default: 2,000 KiB each). Orders are written
#: at the right edge of each B-tree and read through indexes, so a few hundred hot pages serve
#: the order path; beyond them the default only held older pages already in the OS's file
#: cache, and grew the server by ~2 MB per busy connection after a rush of orders.
CACHE_KIB = 512

#: Migration N (1-based) takes the schema from version N-1 to N. Append only; never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        printer TEXT NOT NULL,
        state TEXT NOT NULL,
        payload TEXT NOT NULL,
        copies INTEGER NOT NULL DEFAULT 1,
        order_id TEXT,
        idempotency_key TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        printed_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        maybe_printed INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX jobs_order_id ON jobs(order_id) WHERE order_id IS NOT NULL;
    CREATE UNIQUE INDEX jobs_idempotency_key ON jobs(idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX jobs_pending ON jobs(printer, state, id);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        at REAL NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_events_job ON job_events(job_id, id);
    CREATE TABLE api_keys (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires REAL;
    ALTER TABLE jobs ADD COLUMN original_printer TEXT;
    ALTER TABLE jobs ADD COLUMN reprint_of INTEGER REFERENCES jobs(id);
    CREATE INDEX jobs_printing ON jobs(state, lease_expires);
    """,
    """
    ALTER TABLE jobs ADD COLUMN submitted_by TEXT;
    CREATE TABLE blocks (
        ip TEXT PRIMARY KEY,
        until REAL NOT NULL,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE webhook_cursor (
        url TEXT PRIMARY KEY,
        last_event_id INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE runtime_settings (
        section TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # A reprint's ticket says when the order was first accepted: its chain's first job.
    """
    ALTER TABLE jobs ADD COLUMN first_accepted_at REAL;
    WITH RECURSIVE chain(id, first_accepted_at) AS (
        SELECT id, created_at FROM jobs WHERE reprint_of IS NULL
        UNION ALL
        SELECT jobs.id, chain.first_accepted_at FROM jobs JOIN chain ON jobs.reprint_of = chain.id
    )
    UPDATE jobs SET first_accepted_at = chain.first_accepted_at
    FROM chain WHERE jobs.id = chain.id AND jobs.reprint_of IS NOT NULL;
    """,
    # 1 once the attempt leasing the job hands its first ticket byte over; a job found
    # printing from before this column may have printed.
    """
    ALTER TABLE jobs ADD COLUMN ticket_started INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET ticket_started = 1 WHERE state = 'printing';
    """,
)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}")
        migrate(conn)
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database has not had yet; returns the schema version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreUnavailable(
            f"database schema version {version} is newer than this spoonprint "
            f"({len(MIGRATIONS)}): upgrade spoonprint"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(conn):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
    return len(MIGRATIONS)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; write failures -> StoreUnavailable."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise cannot_write(conn, exc) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise cannot_write(conn, exc) from exc
        raise


def cannot_write(conn: sqlite3.Connection, exc: sqlite3.OperationalError) -> StoreUnavailable:
    """The error for a write the database refused; for a full disk, with how much space to
    free (the log folded back into the database may need as much again as it holds), after
    trying to fold it back at once."""
    if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
        return StoreUnavailable(f"job store cannot write: {exc}")
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(conn.execute("PRAGMA database_list").fetchone()[2])
    try:
        wal = os.stat(f"{path}-wal").st_size
    except OSError:
        wal = 0
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    needed = max(wal + SPARE_BYTES - free, SPARE_BYTES)
    return StoreUnavailable(
        f"job store cannot write: the disk holding {path.parent} is full "
        f"({free // 1024} KB free): free at least {-(-needed // (1024 * 1024))} MB there"
    )
