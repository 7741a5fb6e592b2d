"""TcpTransport against the virtual printer on 127.0.0.1: a ticket still being made (claimed,
rendered) is taken only once the printer has said it can print, and one that cannot be made
leaves nothing on paper."""

from __future__ import annotations

import asyncio

import pytest

from spoonprint.domain.status import ESCPOS_DIALECT
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinter
from spoonprint.errors import PrinterNotReady
from spoonprint.transports.base import StatusQuery, Timeouts
from spoonprint.transports.tcp import TcpTransport

TICKET = b"\x1b@Table 7\n\x1dV\x00"
QUERY = StatusQuery(ESCPOS_DIALECT.request, ESCPOS_DIALECT.first, ESCPOS_DIALECT.total)
TIMEOUTS = Timeouts(connect=5, write=5, status=5)


def can_print(reply: bytes) -> None:
    if not ESCPOS_DIALECT.decode(reply).online:
        raise PrinterNotReady("printer not ready")


def test_a_ticket_in_the_making_is_taken_after_the_printer_says_it_can_print() -> None:
    async def scenario() -> None:
        async with VirtualPrinter("127.0.0.1", 0) as printer:
            transport = TcpTransport("127.0.0.1", printer.port, TIMEOUTS)
            replies: list[bytes] = []
            asked = asyncio.Event()
            made: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            def check(reply: bytes) -> None:
                replies.append(reply)
                asked.set()
                can_print(reply)

            sending = asyncio.create_task(transport.send(made, QUERY, check))
            await asyncio.wait_for(asked.wait(), 5)  # connected and answered, no ticket yet
            assert not sending.done() and printer.tickets == []
            made.set_result(TICKET)
            reply = await asyncio.wait_for(sending, 5)
            assert reply is not None and ESCPOS_DIALECT.decode(reply).online
            (ticket,) = await printer.wait_for_tickets(1, 5)
            assert ticket.data == TICKET and len(replies) == 1

    asyncio.run(scenario())


def test_a_ticket_that_cannot_be_made_sends_nothing_and_its_error_comes_through() -> None:
    class Unavailable(Exception):
        pass

    async def nothing() -> bytes:
        raise Unavailable("no job after all")

    async def scenario() -> None:
        async with VirtualPrinter("127.0.0.1", 0) as printer:
            transport = TcpTransport("127.0.0.1", printer.port, TIMEOUTS)
            with pytest.raises(Unavailable):
                await transport.send(nothing(), QUERY, can_print)
            # The printer is fine and the next ticket prints alone: nothing came before it.
            await transport.send(TICKET, QUERY, can_print)
            tickets = await printer.wait_for_tickets(1, 5)
            assert [t.data for t in tickets] == [TICKET]

    asyncio.run(scenario())


def test_a_printer_without_paper_is_refused_before_the_ticket_is_waited_for() -> None:
    async def scenario() -> None:
        async with VirtualPrinter("127.0.0.1", 0, mode=PrinterMode.PAPER_OUT) as printer:
            transport = TcpTransport("127.0.0.1", printer.port, TIMEOUTS)
            # Never made: had the transport waited for it first, this would time out.
            never: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            with pytest.raises(PrinterNotReady) as refused:
                await asyncio.wait_for(transport.send(never, QUERY, can_print), 5)
            assert refused.value.bytes_written == 0 and printer.tickets == []

    asyncio.run(scenario())
