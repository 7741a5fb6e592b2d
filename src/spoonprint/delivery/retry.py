"""When to try a printer again: exponential backoff with a cap and jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    #: Fraction of the delay drawn at random, so printers that failed together do not retry
    #: in lockstep.
    jitter: float = 0.1

    def delay(self, failures: int, unit_random: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (failures >= 1)."""
        if failures < 1:
            return 0.0
        base = min(self.initial * self.factor ** min(failures - 1, 64), self.maximum)
        draw = random.random() if unit_random is None else unit_random
        return base * (1 - self.jitter + 2 * self.jitter * draw)
