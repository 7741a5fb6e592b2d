"""Circuit breaker per printer (pure state machine, injected clock).

closed: jobs flow. After ``threshold`` consecutive failures it opens: no tickets are sent for
``reset_after`` seconds (doubling while probes keep failing, up to ``max_reset``). Then it is
half-open: one probe (a status request, not a ticket) decides: success closes it, failure opens
it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    threshold: int = 3
    reset_after: float = 5.0
    max_reset: float = 60.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float | None = None
    _delay: float = field(default=0.0, init=False)

    def ready_in(self) -> float:
        """Seconds until a ticket or probe may go: 0 when closed or half-open."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        remaining = self.opened_at + self._delay - self.clock()
        if remaining <= 0:
            self.state = BreakerState.HALF_OPEN
            return 0.0
        return remaining

    def retry_at(self, now: float) -> float | None:
        """While open, when the next probe may go, on the clock ``now`` is read from (e.g.
        wall time, for people); None when not open."""
        wait = self.ready_in()
        return now + wait if self.state is BreakerState.OPEN else None

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = None
        self._delay = 0.0

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._open(min(max(self._delay * 2, self.reset_after), self.max_reset))
        elif self.state is BreakerState.CLOSED and self.failures >= self.threshold:
            self._open(self.reset_after)

    def _open(self, delay: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
        self._delay = delay
