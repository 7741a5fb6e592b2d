"""The security event log: one JSON object per line, rotated, in the data folder's logs."""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spoonprint.logs import LogFile, escape_controls

SECURITY_LOG = "security.jsonl"


class SecurityLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._logger = logging.getLogger(f"spoonprint.security.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = LogFile(path)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._logger.addHandler(handler)

    def record(self, ip: str, method: str, path: str, event: str, detail: str = "") -> None:
        # Escaped as values, not only by JSON: whoever reads the log gets them decoded.
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "ts": round(time.time(), 3),
            "ip": escape_controls(ip),
            "method": escape_controls(method[:16]),
            "path": escape_controls(path[:200]),
            "event": event,
            "detail": escape_controls(detail[:300]),
        }
        self._logger.info(json.dumps(entry, ensure_ascii=False))

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            self._logger.removeHandler(handler)
            handler.close()


@dataclass(frozen=True)
class Summary:
    events_last_hour: Counter[str]
    top_offenders: list[tuple[str, int]]
    total: int


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events from the log and its rotated files, oldest file first; bad lines skipped."""
    files = sorted(path.parent.glob(path.name + ".*"), reverse=True) + [path]
    for file in files:
        if not file.is_file():
            continue
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue


def recent_events(
    path: Path | None, limit: int, max_bytes: int = 64 * 1024
) -> list[dict[str, Any]]:
    """The newest ``limit`` events, newest first, reading only the live log's last
    ``max_bytes`` (for pages refreshed every second)."""
    if path is None or limit <= 0:
        return []
    try:
        with path.open("rb") as log_file:
            start = max(log_file.seek(0, 2) - max_bytes, 0)
            log_file.seek(start)
            lines = log_file.read().splitlines()
    except OSError:
        return []
    if start > 0:
        lines = lines[1:]  # probably cut in the middle
    events: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
            if len(events) == limit:
                break
    return events


def summarise(path: Path, now: float | None = None) -> Summary:
    now = time.time() if now is None else now
    last_hour: Counter[str] = Counter()
    offenders: Counter[str] = Counter()
    total = 0
    for event in read_events(path):
        total += 1
        if event.get("event") != "allowed":
            offenders[str(event.get("ip"))] += 1
        if now - float(event.get("ts", 0)) <= 3600:
            last_hour[str(event.get("event"))] += 1
    return Summary(last_hour, offenders.most_common(10), total)
