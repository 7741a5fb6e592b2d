"""Tests for the virtual network printer, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoonprint.emulator.virtual_printer import (
    PrinterMode,
    VirtualPrinter,
    VirtualPrinterThread,
    _StreamAssembler,
    status_reply,
)

HOST = "127.0.0.1"
INIT = b"\x1b@"
CUT = b"\x1dV\x00"
TIMEOUT = 5.0
CANTONESE = "叉燒飯 餸 啱 嘅"


def status_request(n: int) -> bytes:
    return bytes([0x10, 0x04, n])


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=TIMEOUT)


def ask_status(sock: socket.socket, n: int) -> int:
    sock.sendall(status_request(n))
    reply = sock.recv(1)
    assert len(reply) == 1
    return reply[0]


def send_and_close(port: int, data: bytes) -> None:
    with connect(port) as sock:
        sock.sendall(data)


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    with VirtualPrinterThread(host=HOST, out_dir=tmp_path / "tickets") as running:
        yield running


def test_ticket_is_received_decoded_and_saved(
    printer: VirtualPrinterThread, tmp_path: Path
) -> None:
    chinese = b"\x1c&" + CANTONESE.encode("big5hkscs") + b"\x1c."
    data = INIT + b"\x1bE\x01Table 7\x1bE\x00\n" + chinese + b"\n\x1bd\x02" + CUT
    send_and_close(printer.port, data)

    [ticket] = printer.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == data
    assert ticket.text == f"Table 7\n{CANTONESE}\n\n\n"
    assert ticket.first_byte_at <= ticket.completed_at
    assert ticket.path is not None
    assert ticket.path.parent == tmp_path / "tickets"
    assert ticket.path.name.startswith("000001-")
    assert ticket.path.suffix == ".bin"
    assert ticket.path.read_bytes() == data
    assert ticket.path.with_suffix(".txt").read_text(encoding="utf-8") == ticket.text


def test_two_tickets_in_one_connection(printer: VirtualPrinterThread) -> None:
    first = INIT + b"first\n" + CUT
    second = b"second\n\x1dVB\x03"
    send_and_close(printer.port, first + second)

    tickets = printer.wait_for_tickets(2, TIMEOUT)

    assert [t.data for t in tickets] == [first, second]
    assert [t.text for t in tickets] == ["first\n", "second\n"]
    assert [t.path.name[:6] for t in tickets if t.path] == ["000001", "000002"]


def test_raster_containing_cut_bytes_is_one_ticket(printer: VirtualPrinterThread) -> None:
    image = b"\x1dv0\x00\x03\x00\x02\x00" + b"\x1dV\x00" * 2
    data = b"logo\n" + image + b"end\n" + CUT
    send_and_close(printer.port, data)

    [ticket] = printer.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == data
    assert ticket.text == "logo\n[raster 24x2]\nend\n"


def test_leftover_bytes_become_a_ticket_when_the_connection_closes(
    printer: VirtualPrinterThread,
) -> None:
    send_and_close(printer.port, INIT + b"no cut here\n")

    [ticket] = printer.wait_for_tickets(1, TIMEOUT)

    assert ticket.text == "no cut here\n"


def test_blank_leftovers_are_not_tickets(tmp_path: Path) -> None:
    printer = VirtualPrinterThread(host=HOST, out_dir=tmp_path)
    with printer, connect(printer.port) as sock:
        sock.sendall(INIT + b" \r\n\t\x1bd\x04\x1bE\x01")
        assert ask_status(sock, 1) == 0x12
    # stop() has waited for every connection to close, so nothing more can arrive.
    assert printer.tickets == []
    assert list(tmp_path.iterdir()) == []


def test_online_status_replies_and_requests_are_not_ticket_data(
    printer: VirtualPrinterThread,
) -> None:
    with connect(printer.port) as sock:
        sock.sendall(b"A\n")
        assert [ask_status(sock, n) for n in (1, 2, 3, 4)] == [0x12] * 4
        sock.sendall(b"B\n" + CUT)

    [ticket] = printer.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == b"A\nB\n" + CUT


def test_paper_out_replies_and_discards_tickets(printer: VirtualPrinterThread) -> None:
    printer.set_mode(PrinterMode.PAPER_OUT)
    with connect(printer.port) as sock:
        sock.sendall(b"lost\n" + CUT)
        assert [ask_status(sock, n) for n in (1, 2, 3, 4)] == [0x1A, 0x32, 0x12, 0x72]
    assert printer.tickets == []

    printer.set_mode(PrinterMode.ONLINE)
    send_and_close(printer.port, b"printed\n" + CUT)

    [ticket] = printer.wait_for_tickets(1, TIMEOUT)
    assert ticket.text == "printed\n"


def test_cover_open_replies(printer: VirtualPrinterThread) -> None:
    printer.set_mode(PrinterMode.COVER_OPEN)
    with connect(printer.port) as sock:
        assert [ask_status(sock, n) for n in (1, 2, 3, 4)] == [0x1A, 0x16, 0x12, 0x12]


def test_status_replies_keep_the_fixed_bits() -> None:
    for mode in (PrinterMode.ONLINE, PrinterMode.PAPER_OUT, PrinterMode.COVER_OPEN):
        for n in (1, 2, 3, 4):
            reply = status_reply(mode, n)
            assert reply is not None
            assert reply & 0b1001_0011 == 0b0001_0010


def test_offline_refuses_then_online_accepts_on_the_same_port(
    printer: VirtualPrinterThread,
) -> None:
    port = printer.port
    printer.set_mode(PrinterMode.OFFLINE)
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()

    printer.set_mode(PrinterMode.ONLINE)

    assert printer.port == port
    with connect(port) as sock:
        assert ask_status(sock, 1) == 0x12


def test_going_offline_drops_open_connections(printer: VirtualPrinterThread) -> None:
    with connect(printer.port) as sock:
        sock.sendall(b"half a ticket\n")
        assert ask_status(sock, 1) == 0x12
        printer.set_mode(PrinterMode.OFFLINE)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
    assert printer.tickets == []


def test_blackhole_never_answers(printer: VirtualPrinterThread) -> None:
    printer.set_mode(PrinterMode.BLACKHOLE)
    with connect(printer.port) as sock:
        sock.settimeout(0.3)
        sock.sendall(status_request(1))
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_blackhole_eventually_blocks_the_sender(printer: VirtualPrinterThread) -> None:
    printer.set_mode(PrinterMode.BLACKHOLE)
    chunk = b"x" * 65536
    sent = 0
    with connect(printer.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            while sent < 256 * 1024 * 1024:
                sent += sock.send(chunk)
    assert sent < 256 * 1024 * 1024


def test_blackhole_then_online_reads_what_was_held_back(printer: VirtualPrinterThread) -> None:
    printer.set_mode(PrinterMode.BLACKHOLE)
    with connect(printer.port) as sock:
        sock.sendall(b"held\n" + CUT + status_request(1))
        printer.set_mode(PrinterMode.ONLINE)
        assert sock.recv(1) == b"\x12"
    [ticket] = printer.wait_for_tickets(1, TIMEOUT)
    assert ticket.text == "held\n"


def test_concurrent_connections(printer: VirtualPrinterThread) -> None:
    socks = [connect(printer.port) for _ in range(3)]
    try:
        for index, sock in enumerate(socks):
            sock.sendall(f"order {index}\n".encode())
        for index, sock in enumerate(reversed(socks)):
            sock.sendall(CUT)
            assert ask_status(sock, 1) == 0x12
            assert len(printer.tickets) == index + 1
    finally:
        for sock in socks:
            sock.close()
    assert [t.text for t in printer.tickets] == ["order 2\n", "order 1\n", "order 0\n"]


def test_client_reset_is_handled_quietly(
    printer: VirtualPrinterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with connect(printer.port) as sock:
        sock.sendall(b"partial")
        assert ask_status(sock, 1) == 0x12
        # Linger 0 makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    send_and_close(printer.port, b"after reset\n" + CUT)

    tickets = printer.wait_for_tickets(2, TIMEOUT)

    # The reset connection's bytes were read before the reset, so they are a ticket too.
    assert sorted(t.text for t in tickets) == ["after reset\n", "partial"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_wait_for_tickets_times_out(printer: VirtualPrinterThread) -> None:
    with pytest.raises(TimeoutError):
        printer.wait_for_tickets(1, 0.05)


def test_sequence_continues_across_restarts(tmp_path: Path) -> None:
    (tmp_path / "000041-20240101-120000.bin").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not a ticket")
    for text in (b"one\n", b"two\n"):
        with VirtualPrinterThread(host=HOST, out_dir=tmp_path) as printer:
            send_and_close(printer.port, text + CUT)
            printer.wait_for_tickets(1, TIMEOUT)

    numbers = sorted(p.name[:6] for p in tmp_path.glob("*.bin"))
    assert numbers == ["000041", "000042", "000043"]
    assert len(list(tmp_path.glob("00004[23]-*.txt"))) == 2


def test_restarting_one_instance_keeps_its_port(tmp_path: Path) -> None:
    printer = VirtualPrinterThread(host=HOST, out_dir=tmp_path)
    with printer:
        port = printer.port
    with printer:
        assert printer.port == port
        send_and_close(port, b"again\n" + CUT)
        [ticket] = printer.wait_for_tickets(1, TIMEOUT)
    assert ticket.path is not None
    assert ticket.path.name.startswith("000001-")


def test_async_printer_without_out_dir() -> None:
    async def scenario() -> None:
        async with VirtualPrinter(host=HOST) as printer:
            reader, writer = await asyncio.open_connection(HOST, printer.port)
            writer.write(b"async\n" + CUT + status_request(1))
            assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"\x12"
            writer.close()
            await writer.wait_closed()
            [ticket] = await printer.wait_for_tickets(1, TIMEOUT)
            assert ticket.text == "async\n"
            assert ticket.path is None

    asyncio.run(scenario())


def test_async_printer_started_offline_goes_online() -> None:
    async def scenario() -> None:
        async with VirtualPrinter(host=HOST, mode=PrinterMode.OFFLINE) as printer:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(HOST, printer.port)
            await printer.set_mode(PrinterMode.ONLINE)
            reader, writer = await asyncio.open_connection(HOST, printer.port)
            writer.write(status_request(2))
            assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"\x12"
            writer.close()
            await writer.wait_closed()

    asyncio.run(scenario())


def test_assembler_handles_commands_split_across_chunks() -> None:
    stream = b"hi\n\x1dv0\x00\x01\x00\x03\x00\x1dV\x00" + b"\x10\x04\x01" + CUT + b"tail"
    assembler = _StreamAssembler()
    events = []
    for index, byte in enumerate(stream):
        events += assembler.feed(bytes([byte]), float(index))

    [status, ticket] = events
    assert getattr(status, "n", None) == 1
    assert getattr(ticket, "data", None) == stream[:14] + CUT
    assert getattr(ticket, "first_byte_at", None) == 0.0
    leftover = assembler.finish(99.0)
    assert leftover is not None
    assert (leftover.data, leftover.first_byte_at) == (b"tail", float(len(stream) - 4))
