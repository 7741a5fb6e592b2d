"""An in-memory transport: the test double for workers, shipped with the code.

It records what was sent, answers status queries from a script, and can be told to fail the
next sends with a given error, exactly where a real transport would raise.
"""

from __future__ import annotations

import asyncio
from collections import deque

from spoonprint.errors import PrinterError
from spoonprint.transports.base import StatusQuery

ONLINE = b"\x12"


class MemoryTransport:
    def __init__(self, address: str = "memory://printer", status: bytes = ONLINE) -> None:
        self.address = address
        self.status = status
        self.sent: list[bytes] = []
        self.queries: list[bytes] = []
        self._failures: deque[PrinterError] = deque()
        self._sent_event = asyncio.Event()

    def fail_next(self, *errors: PrinterError) -> None:
        """The next ``len(errors)`` sends raise these, in order."""
        self._failures.extend(errors)

    async def send(self, data: bytes, query: StatusQuery | None = None) -> bytes | None:
        if self._failures:
            raise self._failures.popleft()
        self.sent.append(data)
        self._sent_event.set()
        if query is None:
            return None
        return await self.ask(query)

    async def ask(self, query: StatusQuery) -> bytes:
        self.queries.append(query.request)
        return self.status[: query.reply_size]

    async def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.sent) < count:
                self._sent_event.clear()
                await self._sent_event.wait()
        return list(self.sent)
