"""Open connections by client address, within caps, so that one address (or many) outside the
shop's network cannot take up the connections the shop's own devices need.

Two pools: addresses in ``allowed_networks`` share ``allowlisted`` connections, everyone else
shares ``outside``, and each outside address may hold at most ``per_address`` of those. A
trusted proxy speaks for many clients, so it has no cap of its own (only its pool's). What is
refused gets a :class:`Refusal` to answer with; past ``per_address`` refusals still being
answered for one address, its further connections are dropped unanswered (:data:`DROP`).
Used from the event loop only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

C = TypeVar("C")


@dataclass(frozen=True)
class ConnectionLimits:
    per_address: int = 10
    outside: int = 150
    allowlisted: int = 100


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    detail: str
    retry_after: int


DROP: Final = "drop"
Admission = Refusal | Literal["drop"] | None


class ConnectionTable(Generic[C]):
    def __init__(
        self,
        limits: ConnectionLimits,
        allowlisted: Callable[[str], bool],
        uncapped: Callable[[str], bool],
    ) -> None:
        self.limits = limits
        self._allowlisted = allowlisted
        self._uncapped = uncapped
        self._open: dict[str, set[C]] = {}
        self._pools: Counter[bool] = Counter()
        self._refusing: dict[str, set[C]] = {}

    def admit(self, ip: str, connection: C) -> Admission:
        """None when ``connection`` from ``ip`` may go on (it is counted until
        :meth:`release`), else how to refuse it."""
        allowlisted = self._allowlisted(ip)
        refusal = self._refusal(ip, allowlisted)
        if refusal is None:
            self._open.setdefault(ip, set()).add(connection)
            self._pools[allowlisted] += 1
            return None
        refusing = self._refusing.setdefault(ip, set())
        if len(refusing) >= self.limits.per_address:
            return DROP
        refusing.add(connection)
        return refusal

    def _refusal(self, ip: str, allowlisted: bool) -> Refusal | None:
        if allowlisted:
            if self._pools[True] < self.limits.allowlisted:
                return None
            return Refusal(
                503,
                "server busy",
                f"all {self.limits.allowlisted} connections kept for the shop's own network are "
                "open: try again in a moment",
                2,
            )
        held = len(self._open.get(ip, ()))
        if held >= self.limits.per_address and not self._uncapped(ip):
            return Refusal(
                429,
                "too many connections",
                f"at most {self.limits.per_address} open connections from one address: close "
                "some (or reuse them) and try again",
                1,
            )
        if self._pools[False] >= self.limits.outside:
            return Refusal(
                503,
                "server busy",
                "too many open connections from outside the shop's network: try again in a moment",
                5,
            )
        return None

    def release(self, ip: str, connection: C) -> None:
        """``connection`` is closed (whether it was admitted, refused or neither)."""
        for table in (self._open, self._refusing):
            held = table.get(ip)
            if held is None or connection not in held:
                continue
            held.discard(connection)
            if table is self._open:
                self._pools[self._allowlisted(ip)] -= 1
            if not held:
                del table[ip]

    def of(self, ip: str) -> list[C]:
        """The connections ``ip`` has open (admitted ones)."""
        return list(self._open.get(ip, ()))

    def count(self, ip: str) -> int:
        return len(self._open.get(ip, ()))
