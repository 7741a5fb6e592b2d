"""USB and serial printers, with a pseudo-terminal standing in for the device.

The "device path" is a symlink in tmp_path to the pty's slave side (raw mode, so bytes pass
unchanged); a printer thread on the master side records what arrives and answers ESC/POS
DLE EOT 1 like a real printer. Unplugging is removing the symlink (and closing the pty); plugging
back in is a new pty behind the same symlink.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spoonprint.domain.status import STATUS_PRINTER, decode_printer_status
from spoonprint.errors import (
    ConfigError,
    PrinterDisconnected,
    PrinterNotReady,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import HEALTHY, Fault, Problem
from spoonprint.recovery.strategy import RecoveryFailed, Strategy
from spoonprint.transports import device
from spoonprint.transports.base import StatusQuery, Timeouts
from spoonprint.transports.device import SerialSettings, SerialTransport, UsbTransport
from spoonprint.transports.uri import parse_uri

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="device files are POSIX")

ONLINE = b"\x12"
OFFLINE = b"\x1a"  # DLE EOT 1 with bit 3 set: offline (paper out, cover open...)
QUERY = StatusQuery(STATUS_PRINTER)
FAST = Timeouts(connect=1.0, write=0.3, status=0.3)
WAIT = 5.0
#: Every byte value, DLE EOT 1 never among them: it must arrive unchanged.
TICKET = bytes(range(256)) * 64


class PtyPrinter:
    """A printer on the master side of a pty, reached through the symlink ``link``."""

    def __init__(self, link: Path, status: bytes | None = ONLINE, *, reading: bool = True):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.link = link
        link.symlink_to(os.ttyname(self.slave))
        #: The reply to DLE EOT 1; None for a printer that never answers.
        self.status = status
        #: Close the master (unplug) once this many bytes have arrived.
        self.hang_up_after: int | None = None
        self.received = bytearray()
        self._scanned = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.master_open = True
        if reading:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            with self._changed:
                self.received += data
                self._answer()
                self._changed.notify_all()
            if self.hang_up_after is not None and len(self.received) >= self.hang_up_after:
                self._close_master()
                return

    def _answer(self) -> None:
        while (found := self.received.find(STATUS_PRINTER, self._scanned)) >= 0:
            self._scanned = found + len(STATUS_PRINTER)
            if self.status is not None:
                os.write(self.master, self.status)
        self._scanned = max(self._scanned, len(self.received) - len(STATUS_PRINTER) + 1)

    def wait_for(self, size: int) -> bytes:
        """What arrived, once at least ``size`` bytes have."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= size, WAIT)
            return bytes(self.received)

    def _close_master(self) -> None:
        if self.master_open:
            self.master_open = False
            os.close(self.master)

    def unplug(self) -> None:
        self.stop()
        self.link.unlink()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WAIT)
        self._close_master()
        os.close(self.slave)
        self.slave = -1


@pytest.fixture
def printers(tmp_path: Path) -> Iterator[Callable[..., PtyPrinter]]:
    made: list[PtyPrinter] = []

    def make(status: bytes | None = ONLINE, *, reading: bool = True) -> PtyPrinter:
        printer = PtyPrinter(tmp_path / "lp0", status, reading=reading)
        made.append(printer)
        return printer

    yield make
    for printer in made:
        if printer.slave >= 0:
            printer.stop()


def act(strategy: Strategy, problem: Problem) -> str:
    """Run a recovery strategy's action, as the health monitor does."""

    async def run() -> str:
        return await strategy.action(problem)

    return asyncio.run(run())


def ready(reply: bytes) -> None:
    """What the worker checks before a ticket: the printer must say it is online."""
    status = decode_printer_status(reply[0])
    if not status.online:
        raise PrinterNotReady(f"printer not ready: {status.problem}")


def usb(printer: PtyPrinter, timeouts: Timeouts = FAST) -> UsbTransport:
    return UsbTransport(str(printer.link), timeouts)


def test_usb_ticket_arrives_byte_for_byte_with_status_before_and_after(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers()
    transport = usb(printer)
    assert transport.reads_status and transport.address == f"usb:{printer.link}"
    reply = asyncio.run(transport.send(TICKET, QUERY, check=ready))
    assert reply == ONLINE
    expected = STATUS_PRINTER + TICKET + STATUS_PRINTER
    assert printer.wait_for(len(expected)) == expected
    assert asyncio.run(transport.ask(QUERY)) == ONLINE
    assert asyncio.run(transport.check_path(60)) == HEALTHY


def test_usb_paper_out_stops_the_ticket_before_any_of_it_is_written(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers(OFFLINE)
    transport = usb(printer)
    with pytest.raises(PrinterNotReady) as caught:
        asyncio.run(transport.send(TICKET, QUERY, check=ready))
    assert caught.value.bytes_written == 0
    # Bytes keep their order: had any of the ticket gone out, it would come before this marker.
    asyncio.run(transport.send(b"marker"))
    expected = STATUS_PRINTER + b"marker"
    assert printer.wait_for(len(expected)) == expected


def test_usb_unplugged_then_plugged_back_in_heals_by_itself(
    printers: Callable[..., PtyPrinter],
) -> None:
    first = printers()
    transport = usb(first)
    asyncio.run(transport.send(b"one"))
    first.unplug()
    with pytest.raises(PrinterOffline, match="not found: unplugged or switched off") as caught:
        asyncio.run(transport.send(b"two", QUERY, check=ready))
    assert caught.value.bytes_written == 0
    health = asyncio.run(transport.check_path(60))
    assert health.faults() == {Fault.DEVICE_MISSING}
    [reopen] = transport.strategies()
    assert reopen.name == "reopen" and Fault.DEVICE_MISSING in reopen.fixes
    with pytest.raises(RecoveryFailed, match="not found"):
        act(reopen, health.problems[0])

    second = printers()  # a new device node behind the same name
    assert act(reopen, health.problems[0]).startswith("opened ")
    assert asyncio.run(transport.check_path(60)) == HEALTHY
    assert asyncio.run(transport.send(b"three", QUERY, check=ready)) == ONLINE
    expected = STATUS_PRINTER + b"three" + STATUS_PRINTER
    assert second.wait_for(len(expected)) == expected


def test_usb_printer_vanishing_mid_ticket_says_how_much_was_written(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers()
    printer.hang_up_after = 16384
    data = b"x" * (4 << 20)  # far more than the pty buffers: the writer must wait for reads
    with pytest.raises(PrinterDisconnected) as caught:
        asyncio.run(usb(printer).send(data))
    assert 16384 <= caught.value.bytes_written < len(data)


def test_usb_printer_that_stops_taking_data_times_out_on_progress(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers(reading=False)  # nobody reads the master: the pty buffer fills up
    started = time.monotonic()
    with pytest.raises(PrinterTimeout, match="took no data for 0.3 s") as caught:
        asyncio.run(usb(printer).send(b"x" * (4 << 20)))
    elapsed = time.monotonic() - started
    assert 0 < caught.value.bytes_written < 4 << 20
    assert FAST.write <= elapsed < FAST.write + 2.0


def test_usb_silent_printer_times_out_on_status(printers: Callable[..., PtyPrinter]) -> None:
    printer = printers(status=None)
    transport = usb(printer)
    started = time.monotonic()
    with pytest.raises(PrinterTimeout, match="no status reply within 0.3 s"):
        asyncio.run(transport.ask(QUERY))
    assert FAST.status <= time.monotonic() - started < FAST.status + 2.0
    # After the ticket, the timeout says the ticket went out in full.
    with pytest.raises(PrinterTimeout) as caught:
        asyncio.run(transport.send(b"ticket", QUERY))
    assert caught.value.bytes_written == len(b"ticket")
    expected = STATUS_PRINTER + b"ticket" + STATUS_PRINTER
    assert printer.wait_for(len(expected)) == expected


def test_usb_late_reply_is_not_taken_for_the_next_answer(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers(status=None)
    transport = usb(printer)
    with pytest.raises(PrinterTimeout):
        asyncio.run(transport.ask(QUERY))
    os.write(printer.master, OFFLINE)  # the answer to the question that timed out, too late
    printer.wait_for(len(STATUS_PRINTER))
    printer.status = ONLINE
    assert asyncio.run(transport.ask(QUERY)) == ONLINE


def test_usb_reads_the_whole_reply_a_status_query_asks_for(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers(status=b"\x05abcde")  # a length byte, then that many bytes
    query = StatusQuery(STATUS_PRINTER, reply_size=1, total_size=lambda head: 1 + head[0])
    assert asyncio.run(usb(printer).ask(query)) == b"\x05abcde"


def test_usb_without_status_reading(printers: Callable[..., PtyPrinter]) -> None:
    printer = printers()
    transport = device.from_uri(parse_uri(f"usb:{printer.link}?status=0"), FAST)
    assert isinstance(transport, UsbTransport) and not transport.reads_status
    assert asyncio.run(transport.send(b"plain")) is None
    assert printer.wait_for(5) == b"plain"
    with pytest.raises(PrinterTimeout, match="status=0"):
        asyncio.run(transport.ask(QUERY))


def test_missing_device_is_offline_and_reported(tmp_path: Path) -> None:
    transport = UsbTransport(str(tmp_path / "lp9"), FAST)
    with pytest.raises(PrinterOffline, match="not found: unplugged or switched off"):
        asyncio.run(transport.ask(QUERY))
    [problem] = asyncio.run(transport.check_path(60)).problems
    assert problem.fault is Fault.DEVICE_MISSING and "lp9" in problem.detail


@pytest.mark.parametrize(
    ("uri", "option"),
    [
        ("usb:/dev/usb/lp0?status=maybe", "status"),
        ("usb:/dev/usb/lp0?baud=9600", "baud"),
        ("serial:/dev/ttyUSB0?baud=fast", "baud"),
        ("serial:/dev/ttyUSB0?baud=0", "baud"),
        ("serial:/dev/ttyUSB0?bytesize=9", "bytesize"),
        ("serial:/dev/ttyUSB0?parity=purple", "parity"),
        ("serial:/dev/ttyUSB0?stopbits=3", "stopbits"),
        ("serial:/dev/ttyUSB0?flow=dsrdtr", "flow"),
        ("serial:/dev/ttyUSB0?speed=9600", "speed"),
    ],
)
def test_bad_options_are_named(uri: str, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        device.from_uri(parse_uri(uri), FAST)


def test_serial_options_are_read() -> None:
    uri = "serial:/dev/ttyUSB0?baud=115200&bytesize=7&parity=even&stopbits=2&flow=rtscts"
    transport = device.from_uri(parse_uri(uri), FAST)
    assert isinstance(transport, SerialTransport)
    assert transport.settings == SerialSettings(115200, 7, "E", 2.0, "rtscts")
    assert transport.address == "serial:/dev/ttyUSB0" and transport.reads_status
    default = device.from_uri(parse_uri("serial:/dev/ttyS0"), FAST)
    assert isinstance(default, SerialTransport) and default.settings == SerialSettings()


def test_usable_here() -> None:
    assert device.usable() is None


def serial(printer: PtyPrinter, options: str = "baud=19200") -> SerialTransport:
    transport = device.from_uri(parse_uri(f"serial:{printer.link}?{options}"), FAST)
    assert isinstance(transport, SerialTransport)
    return transport


def test_serial_ticket_through_pyserial_at_the_given_baud(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers()
    transport = serial(printer)
    assert asyncio.run(transport.send(TICKET, QUERY, check=ready)) == ONLINE
    expected = STATUS_PRINTER + TICKET + STATUS_PRINTER
    assert printer.wait_for(len(expected)) == expected
    # pyserial set the line up as asked: the slave's settings are shared with our descriptor.
    attributes = termios.tcgetattr(printer.slave)
    assert attributes[4] == attributes[5] == termios.B19200
    assert asyncio.run(transport.check_path(60)) == HEALTHY


def test_serial_paper_out_and_silent_printer(printers: Callable[..., PtyPrinter]) -> None:
    printer = printers(OFFLINE)
    transport = serial(printer)
    with pytest.raises(PrinterNotReady):
        asyncio.run(transport.send(TICKET, QUERY, check=ready))
    printer.status = None
    started = time.monotonic()
    with pytest.raises(PrinterTimeout, match="no status reply"):
        asyncio.run(transport.ask(QUERY))
    assert FAST.status <= time.monotonic() - started < FAST.status + 2.0
    expected = STATUS_PRINTER * 2
    assert printer.wait_for(len(expected)) == expected


def test_serial_printer_that_stops_taking_data_times_out(
    printers: Callable[..., PtyPrinter],
) -> None:
    printer = printers(reading=False)
    started = time.monotonic()
    with pytest.raises(PrinterTimeout) as caught:
        asyncio.run(serial(printer).send(b"x" * (4 << 20)))
    assert 0 < caught.value.bytes_written < 4 << 20
    assert time.monotonic() - started < FAST.write + 2.0


def test_serial_printer_vanishing_mid_ticket(printers: Callable[..., PtyPrinter]) -> None:
    printer = printers()
    printer.hang_up_after = 16384
    with pytest.raises(PrinterDisconnected) as caught:
        asyncio.run(serial(printer).send(b"x" * (4 << 20)))
    assert 16384 <= caught.value.bytes_written < 4 << 20


def test_serial_port_held_by_another_program(printers: Callable[..., PtyPrinter]) -> None:
    printer = printers()
    transport = serial(printer)
    other = os.open(printer.link, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as pyserial's exclusive mode does
        with pytest.raises(PrinterOffline, match="in use by another program"):
            asyncio.run(transport.send(b"ticket"))
        [problem] = asyncio.run(transport.check_path(60)).problems
        assert problem.fault is Fault.UNREACHABLE and "in use" in problem.detail
    finally:
        os.close(other)
    assert asyncio.run(transport.send(b"ticket")) is None
    assert printer.wait_for(6) == b"ticket"


def test_serial_unplugged_and_back(printers: Callable[..., PtyPrinter]) -> None:
    first = printers()
    transport = serial(first)
    first.unplug()
    with pytest.raises(PrinterOffline, match="not found"):
        asyncio.run(transport.send(b"ticket"))
    assert asyncio.run(transport.check_path(60)).faults() == {Fault.DEVICE_MISSING}
    second = printers()
    [reopen] = transport.strategies()
    act(reopen, Problem(Fault.DEVICE_MISSING))
    assert asyncio.run(transport.send(b"ticket", QUERY, check=ready)) == ONLINE
    expected = STATUS_PRINTER + b"ticket" + STATUS_PRINTER
    assert second.wait_for(len(expected)) == expected
