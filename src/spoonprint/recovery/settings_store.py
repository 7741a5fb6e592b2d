"""Settings changed at run time (``POST /recovery/config``), kept in the database so they
survive a restart; they override the config file's values for the same section."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

from spoonprint.db import transaction


class RuntimeSettings:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def load(self, section: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM runtime_settings WHERE section = ?", (section,)
            ).fetchone()
        value = json.loads(row[0]) if row else {}
        return value if isinstance(value, dict) else {}

    def save(self, section: str, values: dict[str, Any]) -> None:
        with self._lock, transaction(self._conn):
            self._conn.execute(
                "INSERT INTO runtime_settings (section, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(section) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (section, json.dumps(values, sort_keys=True), time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
