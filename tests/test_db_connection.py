"""Every connection to the database keeps the durability settings and a bounded page cache."""

from __future__ import annotations

from pathlib import Path

from spoonprint.db import CACHE_KIB, DB_FILENAME, connect

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL


def test_connections_are_durable_with_a_bounded_page_cache(tmp_path: Path) -> None:
    first, second = connect(tmp_path / DB_FILENAME), connect(tmp_path / DB_FILENAME)
    try:
        for conn in (first, second):
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
            # Negative: a size in KiB, not in pages (so it does not depend on the page size).
            assert conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        assert 0 < CACHE_KIB < 2000  # below SQLite's default of 2,000 KiB per connection
    finally:
        first.close()
        second.close()
