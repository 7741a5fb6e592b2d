"""Recovery strategies: one named action that can fix certain faults.

A transport offers its strategies in the order they should be tried (cheapest and least
disruptive first). The monitor runs those whose ``fixes`` include a current fault, probes again
after each, and records every outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spoonprint.errors import SpoonprintError
from spoonprint.recovery.health import Fault, Problem


class RecoveryFailed(SpoonprintError):
    """A strategy ran but could not fix the fault; the message says why, plainly."""


class NeedsAdmin(RecoveryFailed):
    """A strategy needs administrator (root) rights that spoonprint does not have."""


@dataclass(frozen=True)
class Strategy:
    #: Stable name, used in config (enable/disable) and in /recovery/status, e.g. "cups-enable".
    name: str
    fixes: frozenset[Fault]
    #: Runs the action for one problem; returns what it did, in words. Raises RecoveryFailed
    #: (or NeedsAdmin) when it could not act; must not raise anything else on purpose.
    action: Callable[[Problem], Awaitable[str]]
    #: One line for the docs and the config API.
    description: str = ""
