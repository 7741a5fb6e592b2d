"""The guard: allowlist, per-IP rate limits, strikes and blocks (blocks persist in SQLite).

Requests from ``allowed_networks`` are trusted to be the shop's own devices: never rate limited
and never blocked by strikes (strikes are still logged). Anyone else may still use a valid key,
within ``rate_limit_per_minute``, unless ``allowlist_only``. ``block_after`` strikes (scanner
probes, wrong keys, malformed requests) within ``strike_window`` block an address for
``block_seconds``; a block survives restarts and ``spoonprint security unblock IP`` lifts it.
A blocked address is told so (until when, and how the owner lifts it) at most
``BLOCK_ANSWERS_PER_MINUTE`` times a minute; past that its connections are dropped unanswered,
so that a blocked scanner costs next to nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spoonprint.db import transaction
from spoonprint.security.clients import Network, parse_address, within
from spoonprint.security.events import SecurityLog

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("spoonprint.security")

#: Answers a minute that tell one blocked address it is blocked (the rest are dropped).
BLOCK_ANSWERS_PER_MINUTE = 3
#: Addresses whose answers are counted at most: a scan from many addresses cannot grow it.
_MAX_COUNTED = 4096


@dataclass(frozen=True)
class SecurityPolicy:
    allowed_networks: tuple[Network, ...]
    trusted_proxies: tuple[Network, ...] = ()
    allowlist_only: bool = False
    rate_limit_per_minute: int = 10
    block_after: int = 5
    block_seconds: float = 300.0
    strike_window: float = 600.0


@dataclass(frozen=True)
class Block:
    ip: str
    until: float
    reason: str


class BlockStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def add(self, ip: str, until: float, reason: str) -> None:
        with self._lock, transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO blocks (ip, until, reason, created_at) VALUES (?, ?, ?, ?)",
                (ip, until, reason, time.time()),
            )

    def get(self, ip: str) -> Block | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT ip, until, reason FROM blocks WHERE ip = ?", (ip,)
            ).fetchone()
        return Block(*row) if row else None

    def remove(self, ip: str) -> bool:
        with self._lock, transaction(self._conn):
            return self._conn.execute("DELETE FROM blocks WHERE ip = ?", (ip,)).rowcount > 0

    def active(self, now: float) -> list[Block]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT ip, until, reason FROM blocks WHERE until > ? ORDER BY until", (now,)
            ).fetchall()
        return [Block(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Guard:
    def __init__(
        self,
        policy: SecurityPolicy,
        blocks: BlockStore,
        events: SecurityLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.blocks = blocks
        self.events = events
        self._clock = clock
        self._strikes: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        # Blocked addresses cached in memory so a blocked client costs one dict lookup.
        self._blocked = {b.ip: b.until for b in blocks.active(clock())}
        self._rate_limit: tuple[RateLimitItem, MovingWindowRateLimiter] | None = None
        self._block_answers: dict[str, tuple[float, int]] = {}
        #: Called with each address as it gets blocked (the server closes its connections).
        self.on_block: list[Callable[[str], None]] = []

    def allowlisted(self, ip: str) -> bool:
        return within(parse_address(ip), self.policy.allowed_networks)

    def blocked(self, ip: str) -> bool:
        return self.block_of(ip) is not None

    def block_of(self, ip: str) -> Block | None:
        """The block on ``ip`` now in force, or None."""
        until = self._blocked.get(ip)
        if until is None:
            return None
        if until <= self._clock():
            self._blocked.pop(ip, None)
            return None
        # Confirm with the database, so an unblock from the command line takes effect at once.
        block = self.blocks.get(ip)
        if block is None or block.until <= self._clock():
            self._blocked.pop(ip, None)
            return None
        return block

    def may_answer_blocked(self, ip: str) -> bool:
        """Whether a blocked ``ip`` may be told so once more this minute (counts the answer)."""
        now = self._clock()
        with self._lock:
            started, count = self._block_answers.get(ip, (now, 0))
            if now - started >= 60:
                started, count = now, 0
            if count >= BLOCK_ANSWERS_PER_MINUTE:
                return False
            if len(self._block_answers) >= _MAX_COUNTED:
                self._block_answers.clear()
            self._block_answers[ip] = (started, count + 1)
            return True

    def retry_after(self, ip: str) -> int | None:
        """None when the request may go; else seconds until it may (rate limited)."""
        if self.allowlisted(ip):
            return None
        limit, limiter = self._limiter()
        if limiter.hit(limit, ip):
            return None
        reset, _ = limiter.get_window_stats(limit, ip)
        return max(int(reset - time.time()) + 1, 1)

    def _limiter(self) -> tuple[RateLimitItem, MovingWindowRateLimiter]:
        """The rate limit and its limiter, made for the first client outside the allowed
        networks: a shop whose clients are all its own never loads ``limits`` (some 40 ms of
        start-up) nor runs its storage's expiry timer thread."""
        with self._lock:
            if self._rate_limit is None:
                from limits import RateLimitItemPerMinute
                from limits.storage import MemoryStorage
                from limits.strategies import MovingWindowRateLimiter

                limit = RateLimitItemPerMinute(max(self.policy.rate_limit_per_minute, 1))
                self._rate_limit = limit, MovingWindowRateLimiter(MemoryStorage())
            return self._rate_limit

    def strike(self, ip: str, method: str, path: str, reason: str) -> None:
        self.events.record(ip, method, path, "strike", reason)
        if self.allowlisted(ip):
            return
        now = self._clock()
        with self._lock:
            strikes = self._strikes[ip]
            strikes.append(now)
            while strikes and strikes[0] < now - self.policy.strike_window:
                strikes.popleft()
            if len(strikes) < self.policy.block_after:
                return
            strikes.clear()
        until = now + self.policy.block_seconds
        self._blocked[ip] = until
        self.blocks.add(ip, until, reason)
        self.events.record(
            ip, method, path, "blocked", f"{reason}; {self.policy.block_seconds:g} s"
        )
        log.warning(
            "blocked %s for %g s after %d strikes (last: %s)",
            ip,
            self.policy.block_seconds,
            self.policy.block_after,
            reason,
        )
        for listener in self.on_block:
            listener(ip)

    def unblock(self, ip: str) -> bool:
        self._blocked.pop(ip, None)
        return self.blocks.remove(ip)

    def close(self) -> None:
        self.blocks.close()
        self.events.close()
