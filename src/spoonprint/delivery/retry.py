"""When to try a printer again, and when to give a job up (pure).

Keyed on the error type: a printer that is not ready (paper out, cover open) waits for a person,
so those waits are polled often and never count against ``max_attempts``; a job is never given up
silently: it becomes ``failed`` with the reason, and stays visible for a reprint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from spoonprint.errors import PrinterNotReady, SpoonprintError


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    #: Fraction of the delay drawn at random, so printers that failed together do not retry
    #: in lockstep.
    jitter: float = 0.1
    #: None: unlimited.
    max_attempts: int | None = None
    #: Seconds after acceptance when a job that still has not printed is given up.
    max_age: float = 24 * 3600.0
    #: How often to look again at a printer waiting for a person (paper, cover).
    not_ready_poll: float = 2.0

    def delay(
        self, failures: int, unit_random: float | None = None, error: BaseException | None = None
    ) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (failures >= 1)."""
        if failures < 1:
            return 0.0
        base = min(self.initial * self.factor ** min(failures - 1, 64), self.maximum)
        if isinstance(error, PrinterNotReady):
            base = min(base, self.not_ready_poll)
        draw = random.random() if unit_random is None else unit_random
        return base * (1 - self.jitter + 2 * self.jitter * draw)

    @staticmethod
    def counts(error: BaseException) -> bool:
        """Whether this failure counts as an attempt against ``max_attempts``."""
        return not isinstance(error, PrinterNotReady)

    def give_up(self, attempts: int, age: float, error: BaseException) -> str | None:
        """The reason to stop trying, or None to keep going. ``attempts`` includes this one."""
        if isinstance(error, SpoonprintError) and not error.retryable:
            return f"cannot print: {error}"
        if self.max_attempts is not None and attempts >= self.max_attempts and self.counts(error):
            return f"gave up after {attempts} attempts; last error: {error}"
        if age >= self.max_age:
            hours = self.max_age / 3600
            return f"not printed within {hours:g} h of the order; last error: {error}"
        return None
