"""Printers on a device file: USB (``usb:/dev/usb/lp0``) and serial
(``serial:/dev/ttyUSB0?baud=19200``).

The device is opened afresh for every ticket, so a printer that was unplugged and plugged in
again (a new device node behind the same name) prints again on the next ticket by itself.

All device I/O of one ticket runs in one thread, from open to close: a caller that gives up
never closes a descriptor under a thread still using it, and every wait inside that thread is
bounded by the :class:`Timeouts`. The ``check`` callback of :meth:`send` is called from that
thread, so it must be a plain function (the worker's decodes a status byte and raises).

USB options: ``status=0`` for a printer whose device cannot be read (``reads_status`` False).
Serial options: ``baud`` (9600), ``bytesize`` (5-8, 8), ``parity`` (none|even|odd|mark|space),
``stopbits`` (1, 1.5, 2), ``flow`` (none|rtscts|xonxoff), ``status`` as for USB.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import selectors
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Protocol

from spoonprint.errors import (
    ConfigError,
    PrinterDisconnected,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery, Ticket, Timeouts, ticket_bytes
from spoonprint.transports.uri import PrinterUri

__all__ = ["SerialSettings", "SerialTransport", "UsbTransport", "from_uri", "usable"]

_CHUNK = 4096
#: The device node is gone, or nothing is behind it any more.
_MISSING_ERRNOS = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
#: EAGAIN: pyserial's exclusive lock on the port is held by another program.
_BUSY_ERRNOS = {errno.EBUSY, errno.EAGAIN}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"0": False, "false": False, "no": False, "off": False}
_PARITIES = {"n": "N", "none": "N", "e": "E", "even": "E", "o": "O", "odd": "O"}
_PARITIES |= {"m": "M", "mark": "M", "s": "S", "space": "S"}
_STOPBITS = {"1": 1.0, "1.5": 1.5, "2": 2.0}
_FLOWS = ("none", "rtscts", "xonxoff")
_SERIAL_OPTIONS = ("baud", "bytesize", "parity", "stopbits", "flow", "status")


class _Channel(Protocol):
    """One open device, for the duration of one ticket or question."""

    def write_all(self, data: bytes) -> None:
        """Write every byte; PrinterTimeout/PrinterDisconnected with bytes_written."""
        ...

    def ask(self, query: StatusQuery, written: int) -> bytes:
        """Ask ``query`` and read its reply; errors carry ``written`` (the ticket's bytes)."""
        ...

    def close(self, *, ok: bool) -> None: ...


class _DeviceTransport:
    """What USB and serial share: one session per ticket, the health probe and `reopen`."""

    def __init__(self, scheme: str, path: str, timeouts: Timeouts, reads_status: bool) -> None:
        self.path = path
        self.timeouts = timeouts
        self.address = f"{scheme}:{path}"
        self.reads_status = reads_status
        # One user of the device at a time in this process: the health probe must not open
        # it in the middle of a ticket (a USB printer's device file opens only once at a time,
        # so the ticket's own open would fail with EBUSY).
        self._lock = threading.Lock()

    def _open(self) -> _Channel:
        """Open the device; OSError (pyserial's SerialException is one) when it cannot."""
        raise NotImplementedError

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        if query is not None and not self.reads_status:
            raise self._cannot_ask()
        return await asyncio.to_thread(self._session, await ticket_bytes(ticket), query, check)

    async def ask(self, query: StatusQuery) -> bytes:
        if not self.reads_status:
            raise self._cannot_ask()
        reply = await asyncio.to_thread(self._session, b"", query, None)
        assert reply is not None
        return reply

    def _session(
        self, data: bytes, query: StatusQuery | None, check: Callable[[bytes], None] | None
    ) -> bytes | None:
        with self._held():
            channel = self._opened()
            ok = False
            try:
                if check is not None and query is not None:
                    check(channel.ask(query, 0))
                channel.write_all(data)
                reply = None if query is None else channel.ask(query, len(data))
                ok = True
                return reply
            finally:
                channel.close(ok=ok)

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        # The probe holds the lock for one open and close: waiting the connect timeout is ample.
        if not self._lock.acquire(timeout=self.timeouts.connect):
            raise PrinterTimeout(
                f"{self.address} stayed busy for {self.timeouts.connect:g} s in this process"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _opened(self) -> _Channel:
        try:
            return self._open()
        except (OSError, ValueError) as exc:
            raise PrinterOffline(self._open_failure(exc)[1]) from exc

    def _open_failure(self, exc: Exception) -> tuple[Fault, str]:
        """The fault and the words for a device that would not open."""
        code = exc.errno if isinstance(exc, OSError) else None
        if code in _MISSING_ERRNOS:
            return Fault.DEVICE_MISSING, (
                f"{self.address}: {self.path} not found: unplugged or switched off"
            )
        if code in _BUSY_ERRNOS:
            return Fault.UNREACHABLE, (
                f"{self.address}: {self.path} is in use by another program: stop it "
                "(or the print queue that uses the same printer)"
            )
        if code in _DENIED_ERRNOS:
            return Fault.UNREACHABLE, (
                f"{self.address}: permission denied on {self.path}: add the user spoonprint "
                "runs as to the group that owns it (usually lp for USB printers, dialout for "
                "serial ports: usermod -aG lp USER) and restart spoonprint"
            )
        return Fault.UNREACHABLE, f"{self.address}: cannot open {self.path}: {exc}"

    def _cannot_ask(self) -> PrinterTimeout:
        return PrinterTimeout(f"{self.address} is set up with status=0: it cannot answer status")

    # -- health and recovery --------------------------------------------------------------

    async def check_path(self, stuck_after: float) -> Health:
        return await asyncio.to_thread(self._probe)

    def _probe(self) -> Health:
        if not os.path.exists(self.path):
            detail = f"{self.path} not found: unplugged or switched off"
            return Health((Problem(Fault.DEVICE_MISSING, detail),))
        if not self._lock.acquire(blocking=False):
            return HEALTHY  # a ticket is going through it right now: it is there and opens
        try:
            self._open().close(ok=True)
        except (OSError, ValueError) as exc:
            fault, detail = self._open_failure(exc)
            return Health((Problem(fault, detail),))
        finally:
            self._lock.release()
        return HEALTHY

    def strategies(self) -> list[Strategy]:
        return [
            Strategy(
                "reopen",
                frozenset({Fault.DEVICE_MISSING, Fault.UNREACHABLE, Fault.NOT_RESPONDING}),
                self._reopen,
                "open and close the printer's device file to see that it is back",
            )
        ]

    async def _reopen(self, problem: Problem) -> str:
        try:
            await asyncio.to_thread(self._open_and_close)
        except (PrinterOffline, PrinterTimeout) as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno in _DENIED_ERRNOS:
                raise NeedsAdmin(str(exc)) from exc
            raise RecoveryFailed(str(exc)) from exc
        return f"opened {self.path}: the printer is connected"

    def _open_and_close(self) -> None:
        with self._held():
            self._opened().close(ok=True)


# -- USB ----------------------------------------------------------------------------------


class UsbTransport(_DeviceTransport):
    """A printer behind a device file read and written directly (``/dev/usb/lp0``)."""

    def __init__(self, path: str, timeouts: Timeouts = Timeouts(), reads_status: bool = True):
        super().__init__("usb", path, timeouts, reads_status)

    def _open(self) -> _Channel:
        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return _FdChannel(fd, self.address, self.timeouts)


def _ready(fd: int, event: int, timeout: float) -> bool:
    """Whether ``fd`` becomes ready for ``event`` within ``timeout`` seconds (errors count as
    ready: the read or write that follows reports them)."""
    # poll, not select: select() cannot watch descriptors above 1023, which a busy server
    # reaches. macOS's poll() does not support device files, so select() there.
    selector: selectors.BaseSelector
    if sys.platform == "darwin":
        selector = selectors.SelectSelector()
    else:
        selector = selectors.PollSelector()
    with selector:
        selector.register(fd, event)
        return bool(selector.select(max(timeout, 0.0)))


class _FdChannel:
    """A non-blocking descriptor with readiness waits; every wait bounded by the Timeouts."""

    def __init__(self, fd: int, address: str, timeouts: Timeouts) -> None:
        self.fd = fd
        self.address = address
        self.timeouts = timeouts

    def write_all(self, data: bytes) -> None:
        self._write(data, lambda done: done)

    def ask(self, query: StatusQuery, written: int) -> bytes:
        self._discard_input()
        self._write(query.request, lambda done: written)
        deadline = time.monotonic() + self.timeouts.status
        reply = self._read(query.reply_size, deadline, written)
        if query.total_size is not None:
            rest = query.total_size(reply) - len(reply)
            if rest > 0:
                reply += self._read(rest, deadline, written)
        return reply

    def _write(self, data: bytes, counted: Callable[[int], int]) -> None:
        """Write ``data``; the timeout bounds each wait for progress, not the whole write.
        ``counted`` turns bytes of ``data`` written into the ticket bytes errors report."""
        view = memoryview(data)
        done = 0
        deadline = time.monotonic() + self.timeouts.write
        while done < len(data):
            left = deadline - time.monotonic()
            if left <= 0 or not _ready(self.fd, selectors.EVENT_WRITE, left):
                raise PrinterTimeout(
                    f"{self.address}: the printer took no data for {self.timeouts.write:g} s",
                    bytes_written=counted(done),
                )
            try:
                done += os.write(self.fd, view[done : done + _CHUNK])
            except BlockingIOError:
                continue  # ready, then not after all: wait again, within the same deadline
            except OSError as exc:
                raise PrinterDisconnected(
                    f"{self.address}: the printer went away while writing: {exc.strerror}",
                    bytes_written=counted(done),
                ) from exc
            deadline = time.monotonic() + self.timeouts.write

    def _read(self, size: int, deadline: float, written: int) -> bytes:
        got = bytearray()
        while len(got) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not _ready(self.fd, selectors.EVENT_READ, left):
                raise PrinterTimeout(
                    f"{self.address}: no status reply within {self.timeouts.status:g} s",
                    bytes_written=written,
                )
            try:
                chunk = os.read(self.fd, size - len(got))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise PrinterDisconnected(
                    f"{self.address}: the printer went away while answering: {exc.strerror}",
                    bytes_written=written,
                ) from exc
            if not chunk:
                raise PrinterDisconnected(
                    f"{self.address}: the device closed before answering status",
                    bytes_written=written,
                )
            got += chunk
        return bytes(got)

    def _discard_input(self) -> None:
        """Drop bytes that arrived unasked (a late reply to an earlier question), so they are
        not taken for the answer to this one."""
        if os.isatty(self.fd):
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcflush(self.fd, termios.TCIFLUSH)
            return
        for _ in range(64):
            if not _ready(self.fd, selectors.EVENT_READ, 0):
                return
            try:
                if not os.read(self.fd, _CHUNK):
                    return
            except OSError:
                return  # the read that matters reports it

    def close(self, *, ok: bool) -> None:
        if not ok and os.isatty(self.fd):
            # Drop the unsent rest of a failed ticket, so close() does not wait to drain it.
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcflush(self.fd, termios.TCOFLUSH)
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- serial -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SerialSettings:
    baud: int = 9600
    bytesize: int = 8
    #: pyserial's letters: N, E, O, M, S.
    parity: str = "N"
    stopbits: float = 1.0
    #: none, rtscts or xonxoff.
    flow: str = "none"

    @classmethod
    def from_options(cls, uri: PrinterUri) -> SerialSettings:
        """Settings from the address's options; ConfigError naming a bad one."""
        options = uri.options
        baud = _whole(uri, "baud", options.get("baud", "9600"))
        bytesize = _whole(uri, "bytesize", options.get("bytesize", "8"))
        if bytesize not in (5, 6, 7, 8):
            raise _bad(uri, "bytesize", "5, 6, 7 or 8", str(bytesize))
        parity = _PARITIES.get(options.get("parity", "none").lower())
        if parity is None:
            raise _bad(uri, "parity", "none, even, odd, mark or space", options["parity"])
        stopbits = _STOPBITS.get(options.get("stopbits", "1"))
        if stopbits is None:
            raise _bad(uri, "stopbits", "1, 1.5 or 2", options["stopbits"])
        flow = options.get("flow", "none").lower()
        if flow not in _FLOWS:
            raise _bad(uri, "flow", "none, rtscts or xonxoff", options["flow"])
        return cls(baud, bytesize, parity, stopbits, flow)

    def chunk_size(self, write_timeout: float) -> int:
        """Bytes per write: half of what the line carries in the write timeout, so the
        timeout bounds progress (each write) rather than the whole ticket."""
        per_second = self.baud / 10  # a start bit, 8 data bits and a stop bit per byte
        return max(16, min(_CHUNK, int(per_second * write_timeout / 2)))


class SerialTransport(_DeviceTransport):
    """A printer on a serial port, through pyserial (imported when the port is first opened)."""

    def __init__(
        self,
        path: str,
        settings: SerialSettings = SerialSettings(),
        timeouts: Timeouts = Timeouts(),
        reads_status: bool = True,
    ) -> None:
        super().__init__("serial", path, timeouts, reads_status)
        self.settings = settings

    def _open(self) -> _Channel:
        import serial  # type: ignore[import-untyped]

        settings = self.settings
        port = serial.Serial(
            port=self.path,
            baudrate=settings.baud,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            xonxoff=settings.flow == "xonxoff",
            rtscts=settings.flow == "rtscts",
            timeout=self.timeouts.status,
            write_timeout=self.timeouts.write,
            # Another program writing to the port would interleave with tickets.
            exclusive=True,
        )
        return _SerialChannel(
            port,
            self.address,
            self.timeouts,
            settings.chunk_size(self.timeouts.write),
            (serial.SerialTimeoutException, serial.SerialException),
        )


class _SerialChannel:
    """An open pyserial port; its errors mapped to the printer errors."""

    def __init__(
        self,
        port: Any,
        address: str,
        timeouts: Timeouts,
        chunk: int,
        errors: tuple[type[Exception], type[Exception]],
    ) -> None:
        self.port = port
        self.address = address
        self.timeouts = timeouts
        self.chunk = chunk
        #: pyserial's SerialTimeoutException and SerialException (the first is a kind of the
        #: second, so it is caught first).
        self.timeout_error, self.serial_error = errors

    def write_all(self, data: bytes) -> None:
        written = 0
        for start in range(0, len(data), self.chunk):
            piece = data[start : start + self.chunk]
            # Counted before the write: when it times out, part of the piece may already be
            # on its way, and "may have printed" must err on that side.
            written += len(piece)
            self._write(piece, written)

    def _write(self, data: bytes, written: int) -> None:
        try:
            self.port.write(data)
        except self.timeout_error as exc:
            raise PrinterTimeout(
                f"{self.address}: the printer took no data for {self.timeouts.write:g} s",
                bytes_written=written,
            ) from exc
        except (self.serial_error, OSError) as exc:
            raise PrinterDisconnected(
                f"{self.address}: the printer went away while writing: {exc}",
                bytes_written=written,
            ) from exc

    def ask(self, query: StatusQuery, written: int) -> bytes:
        # A late reply to an earlier question must not pass for the answer to this one; a
        # failure here shows again in the write or read that follows.
        with contextlib.suppress(Exception):
            self.port.reset_input_buffer()
        self._write(query.request, written)
        deadline = time.monotonic() + self.timeouts.status
        reply = self._read(query.reply_size, deadline, written)
        if query.total_size is not None:
            rest = query.total_size(reply) - len(reply)
            if rest > 0:
                reply += self._read(rest, deadline, written)
        return reply

    def _read(self, size: int, deadline: float, written: int) -> bytes:
        try:
            self.port.timeout = max(0.0, deadline - time.monotonic())
            got = bytes(self.port.read(size))
        except (self.serial_error, OSError) as exc:
            raise PrinterDisconnected(
                f"{self.address}: the printer went away while answering: {exc}",
                bytes_written=written,
            ) from exc
        if len(got) < size:
            raise PrinterTimeout(
                f"{self.address}: no status reply within {self.timeouts.status:g} s",
                bytes_written=written,
            )
        return got

    def close(self, *, ok: bool) -> None:
        if not ok:
            # Drop the unsent rest of a failed ticket, so close() does not wait to drain it.
            with contextlib.suppress(Exception):
                self.port.reset_output_buffer()
        with contextlib.suppress(Exception):
            self.port.close()


# -- module interface ---------------------------------------------------------------------


def usable() -> str | None:
    # Serial ports (COM3 ...) work everywhere through pyserial; usb: is refused per address
    # on Windows, in from_uri.
    return None


def from_uri(uri: PrinterUri, timeouts: Timeouts) -> UsbTransport | SerialTransport:
    if uri.scheme == "usb":
        if sys.platform == "win32":
            raise ConfigError(
                f"printer {uri.raw!r}: on Windows, USB printers go through the Windows print "
                "queue: use windows:PRINTER NAME"
            )
        _only(uri, ("status",))
        return UsbTransport(uri.target, timeouts, _reads_status(uri))
    if uri.scheme == "serial":
        _only(uri, _SERIAL_OPTIONS)
        settings = SerialSettings.from_options(uri)
        if find_spec("serial") is None:
            raise ConfigError(f"printer {uri.raw!r} needs pyserial: pip install pyserial")
        return SerialTransport(uri.target, settings, timeouts, _reads_status(uri))
    raise ConfigError(f"printer {uri.raw!r} is not a usb: or serial: address")


def _only(uri: PrinterUri, known: tuple[str, ...]) -> None:
    unknown = sorted(set(uri.options) - set(known))
    if unknown:
        raise ConfigError(
            f"printer {uri.raw!r}: unknown option {unknown[0]!r} "
            f"({uri.scheme}: printers take {', '.join(known)})"
        )


def _reads_status(uri: PrinterUri) -> bool:
    value = uri.options.get("status", "1")
    flag = _FLAGS.get(value.lower())
    if flag is None:
        raise _bad(uri, "status", "1 or 0", value)
    return flag


def _whole(uri: PrinterUri, option: str, value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise _bad(uri, option, "a positive whole number", value)
    return int(value)


def _bad(uri: PrinterUri, option: str, expected: str, value: str) -> ConfigError:
    return ConfigError(f"printer {uri.raw!r}: option {option} must be {expected}, got {value!r}")
