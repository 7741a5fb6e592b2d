"""The transport boundary: plain bytes in and out, library errors mapped to errors.py once.

A transport never sees a document; it moves the bytes a renderer made, and can ask the printer a
status question on the same connection right after a ticket, which is how a ticket is confirmed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from spoonprint.recovery.health import Health
from spoonprint.recovery.strategy import Strategy


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every blocking step of a transport, in seconds."""

    connect: float = 3.0
    write: float = 3.0
    status: float = 3.0


@dataclass(frozen=True)
class StatusQuery:
    """Bytes to send and how many reply bytes to wait for: ``reply_size`` first, then, if
    ``total_size`` is given, as many as it computes from those first bytes."""

    request: bytes
    reply_size: int = 1
    total_size: Callable[[bytes], int] | None = None


#: A ticket's bytes, or an awaitable that makes them (claiming and rendering the job). A transport
#: awaits it once it has reached the printer and asked it whether it can print, so that
#: preparing the ticket and reaching the printer overlap. When the awaitable raises, nothing of
#: the ticket was sent: the transport closes its connection and lets the error through.
Ticket = bytes | Awaitable[bytes]


async def ticket_bytes(ticket: Ticket) -> bytes:
    return ticket if isinstance(ticket, bytes) else await ticket


class Transport(Protocol):
    """How bytes reach one printer.

    Two families: *direct* transports (TCP, USB, serial) talk to the printer itself, so
    ``reads_status`` is True and ``ask`` gets the printer's own status bytes; *spooler* and file
    transports (CUPS, Windows, file) hand the ticket to something else: ``reads_status`` is
    False, ``ask`` is never called, and ``send`` returns only once the spooler reports the job
    done (raising a PrinterError when it was cancelled or failed; ``bytes_written`` > 0 when it
    may have printed).
    """

    #: Where the printer is, for logs and status pages.
    address: str
    #: True when ``ask`` reaches the printer itself and tickets can be confirmed by status.
    reads_status: bool

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        """Write ``ticket`` in full; then, if ``query`` is given, ask it and return the reply.

        With ``check``, ``query`` is asked first on the same connection and ``check`` gets the
        reply: it raises (a PrinterError) to keep the ticket from being sent to a printer that
        cannot print it; only then is ``ticket`` awaited, when it is an awaitable. Raises
        PrinterError subclasses carrying how many bytes were written before the failure.
        """
        ...

    async def ask(self, query: StatusQuery) -> bytes:
        """Ask a status question on its own connection (no ticket)."""
        ...

    async def check_path(self, stuck_after: float) -> Health:
        """What is wrong on the way to the printer, beyond the printer's own status bytes:
        spooler queue state and reasons, jobs spoonprint submitted that made no progress for
        ``stuck_after`` seconds, a missing device file. Never raises for a fault it can name;
        TCP has nothing to add and returns a healthy result."""
        ...

    def strategies(self) -> Sequence[Strategy]:
        """Recovery strategies for this path, cheapest and least disruptive first."""
        ...
