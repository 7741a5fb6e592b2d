"""The virtual printer's print speed: data is taken in only as fast as the paper moves.

Timing assertions are lower bounds only (the machine may be slow, never faster than the model).
Where a test needs "nothing printed yet", the printer is made so slow that printing would take
minutes.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from spoonprint.emulator.virtual_printer import (
    DOTS_PER_MM,
    ROWS_PER_LINE,
    VirtualPrinter,
    VirtualPrinterThread,
    _StarStreamAssembler,
    _StreamAssembler,
)
from spoonprint.render.escpos_raster import gs_v0_bands
from spoonprint.render.star_graphic import star_raster_job

HOST = "127.0.0.1"
TIMEOUT = 10.0
INIT = b"\x1b@"
CUT = b"\x1dV\x00"
STATUS = b"\x10\x04\x01"
#: Printing would take minutes at this speed: long enough to see what is still unprinted.
CRAWL = 0.5


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=TIMEOUT)


def text_ticket(lines: int, label: str = "line") -> bytes:
    body = b"".join(f"{label} {n:03d} BBQ pork rice\n".encode() for n in range(lines))
    return INIT + body + CUT


def seconds_for(rows: int, speed_mm_s: float) -> float:
    """The print time of ``rows`` in the model, less a hair for float rounding."""
    return rows / (speed_mm_s * DOTS_PER_MM) - 1e-6


PrinterFactory = Callable[[float | None], VirtualPrinterThread]


@pytest.fixture
def make_printer() -> Iterator[PrinterFactory]:
    started: list[VirtualPrinterThread] = []

    def make(speed_mm_s: float | None) -> VirtualPrinterThread:
        printer = VirtualPrinterThread(host=HOST, speed_mm_s=speed_mm_s)
        printer.start()
        started.append(printer)
        return printer

    yield make
    for printer in started:
        printer.stop()


def test_the_model_counts_lines_feeds_and_raster_rows() -> None:
    image = Image.new("1", (64, 7), 255)
    stream = (
        INIT
        + b"hello\n"  # one line
        + b"\x1bd\x03"  # ESC d 3: three lines
        + b"\x1bJ\x50"  # ESC J 80: 80 dot rows
        + gs_v0_bands(image)  # 7 raster rows
        + b"\x1b!\x30big text"  # settings and text: free
        + STATUS
        + CUT
    )
    assembler = _StreamAssembler()
    events: list[tuple[int, object]] = []
    for index, byte in enumerate(stream):  # split anywhere: the same count
        events += assembler.feed_rows(bytes([byte]), float(index))
    total = ROWS_PER_LINE * 4 + 80 + 7
    assert assembler.rows == total
    names = [(rows, type(event).__name__) for rows, event in events]
    assert names == [(total, "_StatusRequest"), (total, "_RawTicket")]

    for colour in (0, 255):  # black rows are sent as rows, white ones as paper moves
        star = _StarStreamAssembler()
        job = star_raster_job(Image.new("1", (576, 12), colour))
        [(rows, ticket)] = star.feed_rows(job, 0.0)
        assert rows == star.rows == 12 and type(ticket).__name__ == "_RawTicket"


def test_a_ticket_takes_as_long_as_its_paper(make_printer: PrinterFactory) -> None:
    speed = 500.0
    printer = make_printer(speed)
    data = text_ticket(100)
    with connect(printer.port) as sock:
        sock.sendall(data)
    [ticket] = printer.wait_for_tickets(1, TIMEOUT)
    assert ticket.data == data and "line 099" in ticket.text
    # 100 lines of 30 rows at 500 mm/s * 8 rows/mm = 0.75 s.
    assert ticket.completed_at - ticket.first_byte_at >= seconds_for(100 * ROWS_PER_LINE, speed)
    assert printer.speed_mm_s == speed


def test_a_fast_printer_has_printed_a_ticket_before_answering_the_status_after_it(
    make_printer: PrinterFactory,
) -> None:
    printer = make_printer(None)
    with connect(printer.port) as sock:
        sock.sendall(text_ticket(100) + STATUS)
        assert sock.recv(1) == b"\x12"
        # No print time: the ticket was complete before the status request after it was read.
        [ticket] = printer.tickets
    assert "line 099" in ticket.text


def test_status_is_answered_at_once_while_the_ticket_still_prints(
    make_printer: PrinterFactory,
) -> None:
    printer = make_printer(CRAWL)  # 100 lines take 750 s
    with connect(printer.port) as sock:
        sock.sendall(text_ticket(100) + STATUS)
        assert sock.recv(1) == b"\x12"
        assert printer.tickets == []
    # The connection is closed but the paper still moves: switching off loses the ticket.
    printer.stop()
    assert printer.tickets == []


def test_a_slow_printer_makes_a_fast_sender_wait(
    make_printer: PrinterFactory,
) -> None:
    printer = make_printer(CRAWL)
    line = b"x" * 63 + b"\n"
    chunk = line * 1024  # 64 KiB, 1024 lines: over half an hour of paper at this speed
    sent = 0
    limit = 256 * 1024 * 1024
    with connect(printer.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            while sent < limit:
                sent += sock.send(chunk)
    assert sent < limit


def test_a_busy_printer_reads_no_other_connection(make_printer: PrinterFactory) -> None:
    printer = make_printer(CRAWL)
    with connect(printer.port) as busy, connect(printer.port) as other:
        busy.sendall(text_ticket(100) + STATUS)
        assert busy.recv(1) == b"\x12"  # read, and printing for the next 750 s
        other.sendall(STATUS)
        other.settimeout(0.3)
        with pytest.raises(TimeoutError):
            other.recv(1)


def test_one_paper_for_all_connections(make_printer: PrinterFactory) -> None:
    speed = 200.0
    printer = make_printer(speed)
    tickets = [text_ticket(20, "first"), text_ticket(20, "second")]
    socks = [connect(printer.port) for _ in tickets]
    try:
        for sock, data in zip(socks, tickets, strict=True):
            sock.sendall(data)
    finally:
        for sock in socks:
            sock.close()
    first, second = printer.wait_for_tickets(2, TIMEOUT)
    one_ticket = seconds_for(20 * ROWS_PER_LINE, speed)  # 0.375 s
    # Printed one after the other, not side by side: the second waited for the first.
    assert "first 019" in first.text and "second 019" in second.text
    assert first.completed_at - first.first_byte_at >= one_ticket
    assert second.completed_at - first.first_byte_at >= 2 * one_ticket


def test_star_raster_rows_take_paper_time(make_printer: PrinterFactory) -> None:
    speed = 100.0
    printer = VirtualPrinterThread(host=HOST, protocol="star-graphic", speed_mm_s=speed)
    with printer:
        job = star_raster_job(Image.new("1", (576, 400), 255))
        with connect(printer.port) as sock:
            sock.sendall(job)
        [ticket] = printer.wait_for_tickets(1, TIMEOUT)
    assert ticket.text == "[raster 576x400]\n"
    assert ticket.completed_at - ticket.first_byte_at >= seconds_for(400, speed)  # 0.5 s


def test_set_speed_applies_to_what_is_read_next(make_printer: PrinterFactory) -> None:
    printer = make_printer(None)
    printer.set_speed(400.0)
    with connect(printer.port) as sock:
        sock.sendall(text_ticket(64))
    [slow] = printer.wait_for_tickets(1, TIMEOUT)
    assert slow.completed_at - slow.first_byte_at >= seconds_for(64 * ROWS_PER_LINE, 400.0)
    printer.set_speed(None)
    assert printer.speed_mm_s is None
    with connect(printer.port) as sock:
        sock.sendall(text_ticket(64) + STATUS)
        assert sock.recv(1) == b"\x12"
        assert len(printer.tickets) == 2  # at full speed again: printed before the reply


@pytest.mark.parametrize("speed", [0, -1.0, math.nan, math.inf])
def test_speed_must_be_positive(speed: float, make_printer: PrinterFactory) -> None:
    with pytest.raises(ValueError, match="speed_mm_s"):
        VirtualPrinter(speed_mm_s=speed)
    printer = make_printer(None)
    with pytest.raises(ValueError, match="speed_mm_s"):
        printer.set_speed(speed)
    assert printer.speed_mm_s is None
