"""An in-memory transport: the test double for workers, shipped with the code.

It records what was sent, answers status queries from a script, and can be told to fail the
next sends with a given error, exactly where a real transport would raise.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from spoonprint.errors import PrinterError, PrinterOffline
from spoonprint.recovery.health import Health
from spoonprint.recovery.strategy import Strategy
from spoonprint.transports.base import StatusQuery, Ticket, ticket_bytes

ONLINE = b"\x12"


class MemoryTransport:
    def __init__(self, address: str = "memory://printer", status: bytes = ONLINE) -> None:
        self.address = address
        self.reads_status = True
        self.status = status
        #: Answers for particular status requests (e.g. DLE EOT 2), instead of ``status``.
        self.replies: dict[bytes, bytes] = {}
        #: What check_path() reports; tests set it to stage spooler-like faults.
        self.path_health = Health()
        #: Strategies offered to the monitor; tests add their own.
        self.recovery: list[Strategy] = []
        self.sent: list[bytes] = []
        #: While True every send and ask fails as an unreachable printer would.
        self.offline = False
        self.queries: list[bytes] = []
        self._failures: deque[PrinterError] = deque()

    def fail_next(self, *errors: PrinterError) -> None:
        """The next ``len(errors)`` sends raise these, in order."""
        self._failures.extend(errors)

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        if self._failures:
            raise self._failures.popleft()
        self._reachable()
        if check is not None and query is not None:
            check(await self.ask(query))
        self.sent.append(await ticket_bytes(ticket))
        if query is None:
            return None
        return await self.ask(query)

    async def ask(self, query: StatusQuery) -> bytes:
        self._reachable()
        self.queries.append(query.request)
        status = self.replies.get(query.request, self.status)
        size = query.reply_size
        if query.total_size is not None:
            size = query.total_size(status[: query.reply_size])
        return status[:size]

    def _reachable(self) -> None:
        if self.offline:
            raise PrinterOffline(f"{self.address} refused the connection")

    async def check_path(self, stuck_after: float) -> Health:
        return self.path_health

    def strategies(self) -> list[Strategy]:
        return list(self.recovery)
