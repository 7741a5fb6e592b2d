"""The virtual printer drawing what it receives: Star Graphic Mode jobs and ESC/POS raster and
text, saved as PNG; Star ASB status and the ETB counter. Real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from spoonprint.emulator.virtual_printer import (
    PrinterMode,
    Ticket,
    VirtualPrinter,
    VirtualPrinterThread,
    _StarStreamAssembler,
    star_asb,
)
from spoonprint.render.escpos_raster import gs_v0_bands
from spoonprint.render.fonts import default_typeface
from spoonprint.render.raster import draw_text_line
from spoonprint.render.star_graphic import star_raster_job

HOST = "127.0.0.1"
TIMEOUT = 5.0
ASB_REQUEST = b"\x1b\x06\x01"
ETB = b"\x17"
ASB_LENGTH = 9
BLACK = 0
WHITE = 255


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=TIMEOUT)


def send_and_close(port: int, data: bytes) -> None:
    with connect(port) as sock:
        sock.sendall(data)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def ask_asb(sock: socket.socket) -> bytes:
    sock.sendall(ASB_REQUEST)
    return receive(sock, ASB_LENGTH)


def etb_counter(asb: bytes) -> int:
    return (asb[7] >> 1 & 0x07) | (asb[7] >> 2 & 0x18)


def ticket_image(width: int = 576, height: int = 90) -> Image.Image:
    """Something ticket-like: bars, a frame, text, white gaps and a white bottom edge."""
    image = Image.new("1", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, 20), fill=BLACK)
    draw.rectangle((4, 30, width - 5, 60), outline=BLACK)
    draw.text((10, 35), "Table 7  2 x BBQ pork rice", fill=BLACK)
    draw.line((0, 70, width - 1, 75), fill=BLACK)
    return image


def same_pixels(a: Image.Image | None, b: Image.Image) -> bool:
    assert a is not None
    return a.mode == b.mode == "1" and a.size == b.size and a.tobytes() == b.tobytes()


def saved_png(ticket: Ticket) -> Image.Image:
    assert ticket.path is not None
    with Image.open(ticket.path.with_suffix(".png")) as png:
        png.load()
        return png.copy()


@pytest.fixture
def star(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    with VirtualPrinterThread(
        host=HOST, out_dir=tmp_path / "star", protocol="star-graphic"
    ) as running:
        yield running


@pytest.fixture
def escpos(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    with VirtualPrinterThread(host=HOST, out_dir=tmp_path / "escpos") as running:
        yield running


# --- Star Graphic Mode printer ----------------------------------------------------------------


def test_star_printer_saves_the_exact_image(star: VirtualPrinterThread, tmp_path: Path) -> None:
    image = ticket_image()
    job = star_raster_job(image)
    send_and_close(star.port, job)

    [ticket] = star.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == job
    assert ticket.text == "[raster 576x90]\n"
    assert same_pixels(ticket.image, image)
    assert ticket.path is not None and ticket.path.parent == tmp_path / "star"
    assert ticket.path.read_bytes() == job
    assert ticket.path.with_suffix(".txt").read_text(encoding="utf-8") == ticket.text
    assert same_pixels(saved_png(ticket), image)


def test_star_jobs_in_one_connection_are_separate_tickets(tmp_path: Path) -> None:
    images = [ticket_image(512, 40), ticket_image(512, 7).transpose(Image.Transpose.ROTATE_180)]
    jobs = [star_raster_job(images[0]), star_raster_job(images[1], cut=False, drawer=True)]
    printer = VirtualPrinterThread(host=HOST, protocol="star-graphic", width=512)
    with printer:
        send_and_close(printer.port, b"".join(jobs))
        tickets = printer.wait_for_tickets(2, TIMEOUT)

    assert [t.data for t in tickets] == jobs
    for ticket, image in zip(tickets, images, strict=True):
        assert same_pixels(ticket.image, image)
        assert ticket.path is None


def test_star_printer_ignores_text_and_escpos(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    printer = VirtualPrinterThread(host=HOST, out_dir=tmp_path, protocol="star-graphic")
    with printer, connect(printer.port) as sock:
        sock.sendall(b"\x1b@Table 7\n\x1dV\x00")
        assert ask_asb(sock)[2] == 0  # answered in order: the bytes before it were read
    # stop() has waited for the connection to close: nothing printed, and the log says why.
    assert printer.tickets == []
    assert list(tmp_path.iterdir()) == []
    # ESC @ is a Star command and NUL a no-op; "Table 7\n" and GS V are not understood.
    assert "ignored 10 bytes" in caplog.text


def test_ignored_bytes_in_a_raster_ticket_are_noted(star: VirtualPrinterThread) -> None:
    image = ticket_image(height=3)
    data = b"\x10\x04\x01" + star_raster_job(image)  # an ESC/POS status request first
    send_and_close(star.port, data)

    [ticket] = star.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == data
    assert ticket.text == "[raster 576x3]\n[ignored 3 bytes of non-raster data]\n"
    assert same_pixels(ticket.image, image)


def test_star_asb_replies_by_mode(star: VirtualPrinterThread) -> None:
    with connect(star.port) as sock:
        assert ask_asb(sock) == bytes.fromhex("23 06 00 00 00 00 00 00 00")
        star.set_mode(PrinterMode.PAPER_OUT)
        assert ask_asb(sock) == bytes.fromhex("23 06 08 00 00 08 00 00 00")
        star.set_mode(PrinterMode.COVER_OPEN)
        assert ask_asb(sock) == bytes.fromhex("23 06 28 00 00 00 00 00 00")
        star.set_mode(PrinterMode.ONLINE)
        assert ask_asb(sock)[2] == 0x00


def test_star_blackhole_never_answers(star: VirtualPrinterThread) -> None:
    star.set_mode(PrinterMode.BLACKHOLE)
    with connect(star.port) as sock:
        sock.settimeout(0.3)
        sock.sendall(ASB_REQUEST)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_etb_counter_counts_printed_jobs(star: VirtualPrinterThread) -> None:
    job = star_raster_job(ticket_image(height=12))
    with connect(star.port) as sock:
        assert etb_counter(ask_asb(sock)) == 0
        sock.sendall(job + ETB)
        asb = ask_asb(sock)
        assert etb_counter(asb) == 1
        assert asb[2] & 0x02  # "ETB executed", cleared once sent
        assert ask_asb(sock)[2] & 0x02 == 0
        sock.sendall((job + ETB) * 2)
        assert etb_counter(ask_asb(sock)) == 3
    assert len(star.wait_for_tickets(3, TIMEOUT)) == 3
    assert star.etb_counter == 3


def test_etb_is_not_counted_while_the_printer_is_stopped(star: VirtualPrinterThread) -> None:
    star.set_mode(PrinterMode.PAPER_OUT)
    with connect(star.port) as sock:
        sock.sendall(star_raster_job(ticket_image(height=5)) + ETB)
        asb = ask_asb(sock)
    assert etb_counter(asb) == 0 and asb[5] == 0x08
    assert star.tickets == []


def test_etb_and_status_bytes_inside_rows_are_image_data() -> None:
    row = (ETB + ASB_REQUEST) * 8  # 32 bytes: a 256-dot row
    image = Image.frombytes("1", (256, 2), row * 2, "raw", "1;I")
    job = star_raster_job(image)
    printer = VirtualPrinterThread(host=HOST, protocol="star-graphic", width=256)
    with printer, connect(printer.port) as sock:
        sock.sendall(job + b"\x1b\x1eE\x00")  # ESC RS E n: clear the counter, no effect here
        assert etb_counter(ask_asb(sock)) == 0
        [ticket] = printer.wait_for_tickets(1, TIMEOUT)
        sock.sendall(ETB + ETB + b"\x1b\x1eE0" + ETB)
        assert etb_counter(ask_asb(sock)) == 1
    assert same_pixels(ticket.image, image)


def test_star_asb_layout() -> None:
    assert star_asb(PrinterMode.ONLINE, 31, etb_executed=True) == bytes.fromhex(
        "23 06 02 00 00 00 00 6e 00"
    )
    assert star_asb(PrinterMode.ONLINE, 32) == star_asb(PrinterMode.ONLINE, 0)
    for counter in range(32):
        asb = star_asb(PrinterMode.ONLINE, counter)
        assert asb is not None and etb_counter(asb) == counter
        assert asb[7] & 0b1001_0001 == 0  # fixed-zero bits
    assert star_asb(PrinterMode.BLACKHOLE) is None
    assert star_asb(PrinterMode.OFFLINE) is None


def test_star_assembler_handles_jobs_split_across_chunks() -> None:
    image = ticket_image(576, 20)
    job = star_raster_job(image)
    stream = job + ASB_REQUEST + job[:-4] + ETB + b"\x00"
    assembler = _StarStreamAssembler()
    events = []
    for index, byte in enumerate(stream):
        events += assembler.feed(bytes([byte]), float(index))
    names = [type(event).__name__ for event in events]
    assert names == ["_RawTicket", "_AsbRequest", "_RawTicket", "_Etb"]
    first, second = events[0], events[2]
    assert getattr(first, "data", None) == job
    assert getattr(first, "completed_at", None) == float(len(job) - 1)
    # The second job has no quit: it is released by the ETB, completed when its EOT came.
    assert getattr(second, "data", None) == job[:-4]
    assert getattr(second, "completed_at", None) == float(len(job) + 3 + len(job) - 5)
    assert assembler.finish(999.0) is None  # the NUL left over prints nothing


def test_star_job_without_quit_is_a_ticket_when_the_connection_closes(
    star: VirtualPrinterThread,
) -> None:
    image = ticket_image(height=4)
    send_and_close(star.port, star_raster_job(image)[:-4])
    [ticket] = star.wait_for_tickets(1, TIMEOUT)
    assert same_pixels(ticket.image, image)


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        VirtualPrinter(protocol="star-line")
    with pytest.raises(ValueError, match="multiple of 8"):
        VirtualPrinter(width=100)


# --- ESC/POS printer ----------------------------------------------------------------------------


def test_escpos_printer_saves_gs_v0_bands_exactly(escpos: VirtualPrinterThread) -> None:
    image = ticket_image(576, 300)
    data = b"\x1b@" + gs_v0_bands(image, band_height=64) + b"\x1dVB\x00"
    send_and_close(escpos.port, data)

    [ticket] = escpos.wait_for_tickets(1, TIMEOUT)

    assert ticket.data == data
    assert ticket.text == "[raster 576x64]\n" * 4 + "[raster 576x44]\n"
    assert same_pixels(ticket.image, image)
    assert same_pixels(saved_png(ticket), image)


def test_escpos_text_lines_are_drawn_in_spoonprints_typeface(
    escpos: VirtualPrinterThread,
) -> None:
    face = default_typeface()
    chinese = "叉燒飯 餸"
    band = ticket_image(576, 10)
    data = (
        b"\x1b@\x1bt\x00"
        + b"\x1bE\x01\x1d!\x11Table 7\x1d!\x00\x1bE\x00\n"
        + b"\x1c&"
        + chinese.encode("big5hkscs")
        + b"\x1c.\n"
        + gs_v0_bands(band)
        + b"\x1bd\x02"
        + b"a\tb\n"
        + b"\x1bd\x04"  # the feed to the cutter: not drawn
        + b"\x1dVB\x00"
    )
    send_and_close(escpos.port, data)

    [ticket] = escpos.wait_for_tickets(1, TIMEOUT)

    parts = [
        draw_text_line("Table 7", 576, face, bold=True, scale=2),
        draw_text_line(chinese, 576, face),
        band,
        draw_text_line("", 576, face),
        draw_text_line("", 576, face),
        draw_text_line("a       b", 576, face),
    ]
    expected = Image.new("1", (576, sum(p.height for p in parts)), WHITE)
    top = 0
    for part in parts:
        expected.paste(part, (0, top))
        top += part.height
    assert same_pixels(ticket.image, expected)
    assert same_pixels(saved_png(ticket), expected)


def test_escpos_paper_is_as_wide_as_a_narrower_image(escpos: VirtualPrinterThread) -> None:
    image = ticket_image(512, 40)
    data = b"\x1b@" + gs_v0_bands(image) + b"\x1bd\x04" + b"\x1dVB\x00"
    send_and_close(escpos.port, data)

    [ticket] = escpos.wait_for_tickets(1, TIMEOUT)

    assert same_pixels(ticket.image, image)


def test_escpos_ticket_that_prints_nothing_has_no_png(escpos: VirtualPrinterThread) -> None:
    send_and_close(escpos.port, b"\x1b@\n\n  \n\x1bd\x05\x1dV\x00")
    [ticket] = escpos.wait_for_tickets(1, TIMEOUT)
    assert ticket.image is None
    assert ticket.path is not None and not ticket.path.with_suffix(".png").exists()
