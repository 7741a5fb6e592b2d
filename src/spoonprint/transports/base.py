"""The transport boundary: plain bytes in and out, library errors mapped to errors.py once.

A transport never sees a document; it moves the bytes a renderer made, and can ask the printer a
status question on the same connection right after a ticket, which is how a ticket is confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StatusQuery:
    """Bytes to send and how many reply bytes to wait for: ``reply_size`` first, then, if
    ``total_size`` is given, as many as it computes from those first bytes."""

    request: bytes
    reply_size: int = 1
    total_size: Callable[[bytes], int] | None = None


class Transport(Protocol):
    #: Where the printer is, for logs and status pages.
    address: str

    async def send(
        self,
        data: bytes,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        """Write ``data`` in full; then, if ``query`` is given, ask it and return the reply.

        With ``check``, ``query`` is asked first on the same connection and ``check`` gets the
        reply: it raises (a PrinterError) to keep the ticket from being sent to a printer that
        cannot print it. Raises PrinterError subclasses carrying how many bytes were written
        before the failure.
        """
        ...

    async def ask(self, query: StatusQuery) -> bytes:
        """Ask a status question on its own connection (no ticket)."""
        ...
