"""A virtual ESC/POS network printer (raw TCP, like port 9100), for tests, demos and as the default
printer when none is configured.

It reads the byte stream of every connection, answers real-time status requests, cuts the stream
into tickets at each cut command, and keeps each ticket in :attr:`VirtualPrinter.tickets` and,
if ``out_dir`` is given, as ``NNNNNN-YYYYmmdd-HHMMSS.bin`` (raw bytes) and ``.txt``
(:func:`~spoonprint.emulator.escpos_text.decode_escpos` rendering) files. NNNNNN continues from
the highest number already in the folder; one printer per folder is assumed. Tickets are small,
so the files are written with plain blocking writes on the event loop thread.

Bytes left when a connection closes become a ticket too, unless they would print nothing (only
whitespace, feeds, ``ESC @`` or settings). ``DLE EOT`` status requests are answered at once and
are not part of ticket data. Requests are found with the same tokenizer as tickets, so ``10 04 n``
inside an image or QR payload is image data and gets no reply (a real Epson answers those unless
real-time commands are disabled with ``GS ( D``; answering would only confuse senders).

Modes (:class:`PrinterMode`):

* ``online``: prints; every status reply is ``0x12``.
* ``offline``: power off. The listening socket is closed, so connections are refused, and open
  connections are dropped; going back online listens again on the same port.
* ``paper-out`` and ``cover-open``: connections are accepted and read, status replies report the
  fault, and received tickets are discarded, as a stopped printer would not print them. Whether a
  ticket is kept is decided when it completes (at its cut, or when its connection closes).
* ``blackhole``: connections are accepted but never read (reading is paused, so the sender's
  writes block once the socket buffers fill) and nothing is answered.

``DLE EOT n`` replies. Every reply has the fixed pattern ``0xx1xx10`` (bit1 and bit4 set, bit0
and bit7 clear), hence the base ``0x12``. Checked against /work/shared/PROTOCOLS.md and, as a
second source, the Epson DLE EOT reference as implemented by the ``escpos`` Rust crate
(``src/domain/status.rs``: the pattern check; n=1 bit3 offline; n=2 bit2 cover open, bit5 stopped
by paper end; n=4 bits 5-6 paper end). The ``hardless-http-dialects`` crate documents 0x1A, 0x32
and 0x7E (paper end plus near end) as the n=1, 2, 4 replies of a printer out of paper.

=========== ====== ====== ====== ======
mode        n=1    n=2    n=3    n=4
=========== ====== ====== ====== ======
online      0x12   0x12   0x12   0x12
paper-out   0x1A   0x32   0x12   0x72
cover-open  0x1A   0x16   0x12   0x12
=========== ====== ====== ====== ======

* n=1 0x1A: bit3 offline.
* n=2 0x32: bit5 printing stopped by paper end; 0x16: bit2 cover open.
* n=4 0x72: bits 5-6 (0x60) roll paper end detected. Near-end bits (0x0C) stay clear, since the
  emulator has no near-end sensor state.

Other ``n`` (ink, peeler, interface status) get no reply, as on a printer without that hardware.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, cast

from spoonprint.emulator.escpos_text import Kind, decode_escpos, has_printable_content, tokenize

__all__ = ["PrinterMode", "Ticket", "VirtualPrinter", "VirtualPrinterThread", "status_reply"]

log = logging.getLogger(__name__)

_TICKET_FILE = re.compile(r"^(\d{6,})-\d{8}-\d{6}\.(?:bin|txt)$")
_THREAD_CALL_TIMEOUT = 30.0

_T = TypeVar("_T")


class PrinterMode(StrEnum):
    """What the virtual printer pretends to be doing (see the module docstring)."""

    ONLINE = "online"
    OFFLINE = "offline"
    PAPER_OUT = "paper-out"
    COVER_OPEN = "cover-open"
    BLACKHOLE = "blackhole"


_STATUS_REPLIES: dict[PrinterMode, dict[int, int]] = {
    PrinterMode.ONLINE: {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12},
    PrinterMode.PAPER_OUT: {1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x72},
    PrinterMode.COVER_OPEN: {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12},
}


def status_reply(mode: PrinterMode, n: int) -> int | None:
    """The byte a printer in ``mode`` sends for ``DLE EOT n``, or None when it stays silent."""
    return _STATUS_REPLIES.get(mode, {}).get(n)


@dataclass(frozen=True)
class Ticket:
    """One printed ticket. Times are ``time.perf_counter()`` values.

    ``path`` is the saved ``.bin`` file (its ``.txt`` rendering sits next to it), or None when
    there is no ``out_dir`` or saving failed.
    """

    data: bytes
    text: str
    first_byte_at: float
    completed_at: float
    path: Path | None


@dataclass(frozen=True)
class _RawTicket:
    data: bytes
    first_byte_at: float
    completed_at: float


@dataclass(frozen=True)
class _StatusRequest:
    n: int


@dataclass
class _StreamAssembler:
    """Per-connection parsing state, free of I/O: chunks in, status requests and tickets out.

    ``pending`` holds the start of a command whose remaining bytes have not arrived yet.
    """

    ticket: bytearray = field(default_factory=bytearray)
    ticket_since: float = 0.0
    pending: bytearray = field(default_factory=bytearray)
    pending_since: float = 0.0

    def feed(self, chunk: bytes, now: float) -> list[_StatusRequest | _RawTicket]:
        old_length = len(self.pending)
        if not old_length:
            self.pending_since = now
        self.pending += chunk
        events: list[_StatusRequest | _RawTicket] = []
        consumed = 0
        for token in tokenize(self.pending):
            if token.kind is Kind.INCOMPLETE:
                break
            consumed = token.end
            if token.kind is Kind.STATUS_REQUEST:
                events.append(_StatusRequest(token.args[0]))
                continue
            if not self.ticket:
                # A token that began in an earlier chunk arrived when that chunk did.
                self.ticket_since = self.pending_since if token.start < old_length else now
            self.ticket += self.pending[token.start : token.end]
            if token.kind is Kind.CUT:
                events.append(_RawTicket(bytes(self.ticket), self.ticket_since, now))
                self.ticket.clear()
        if consumed:
            if consumed >= old_length:
                self.pending_since = now
            del self.pending[:consumed]
        return events

    def finish(self, now: float) -> _RawTicket | None:
        """The ticket formed by whatever is left, if it would print anything."""
        since = self.ticket_since if self.ticket else self.pending_since
        data = bytes(self.ticket + self.pending)
        self.ticket.clear()
        self.pending.clear()
        if not has_printable_content(data):
            return None
        return _RawTicket(data, since, now)


class _PrinterConnection(asyncio.Protocol):
    def __init__(self, printer: VirtualPrinter) -> None:
        self._printer = printer
        self._assembler = _StreamAssembler()
        self._transport: asyncio.Transport | None = None
        self._peer: object = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server always hands over a full transport; uvloop's is not a subclass of
        # asyncio.Transport, so this is a cast, not an isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._peer = self._transport.get_extra_info("peername")
        self._printer._connections.add(self)
        if self._printer.mode is PrinterMode.BLACKHOLE:
            self._transport.pause_reading()
        log.debug("virtual printer: connection from %s", self._peer)

    def data_received(self, data: bytes) -> None:
        for event in self._assembler.feed(data, time.perf_counter()):
            if isinstance(event, _StatusRequest):
                self._answer(event.n)
            else:
                self._printer._ticket_received(event)

    def eof_received(self) -> bool | None:
        # Returning None closes our side too, which makes connection_lost save what is left.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("virtual printer: connection from %s lost: %s", self._peer, exc)
        leftover = self._assembler.finish(time.perf_counter())
        if leftover is not None:
            self._printer._ticket_received(leftover)
        self._printer._connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def set_reading(self, reading: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if reading:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _answer(self, n: int) -> None:
        reply = status_reply(self._printer.mode, n)
        # Writing to a transport the peer already reset only makes asyncio log warnings.
        if reply is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.write(bytes([reply]))


def _next_sequence(folder: Path) -> int:
    numbers = (int(m.group(1)) for p in folder.iterdir() if (m := _TICKET_FILE.match(p.name)))
    return max(numbers, default=0) + 1


class VirtualPrinter:
    """A virtual ESC/POS printer listening on ``host:port`` (port 0 picks a free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out_dir: Path | None = None,
        encoding: str = "cp437",
        cjk_encoding: str = "big5hkscs",
        mode: PrinterMode = PrinterMode.ONLINE,
    ) -> None:
        # Fail on a misspelt codec now rather than when the first ticket arrives.
        codecs.lookup(encoding)
        codecs.lookup(cjk_encoding)
        self.host = host
        self.out_dir = out_dir
        self.encoding = encoding
        self.cjk_encoding = cjk_encoding
        self.tickets: list[Ticket] = []
        self._requested_port = port
        self._bound_port: int | None = None
        self._mode = PrinterMode(mode)
        self._server: asyncio.Server | None = None
        self._connections: set[_PrinterConnection] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._next_seq = 1
        self._running = False

    @property
    def mode(self) -> PrinterMode:
        return self._mode

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the virtual printer has not been started")
        return self._bound_port

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("the virtual printer is already running")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._next_seq = _next_sequence(self.out_dir)
        # Bind even when starting offline, so that the port is known and stays the same.
        await self._listen()
        self._running = True
        if self._mode is PrinterMode.OFFLINE:
            self._close_listener()
        log.info("virtual printer on %s:%d (%s)", self.host, self.port, self._mode)

    async def stop(self) -> None:
        self._close_listener()
        await self._drop_connections()
        self._running = False

    async def set_mode(self, mode: PrinterMode) -> None:
        previous, self._mode = self._mode, PrinterMode(mode)
        if not self._running or previous is self._mode:
            return
        log.info("virtual printer on port %d: %s -> %s", self.port, previous, self._mode)
        if self._mode is PrinterMode.OFFLINE:
            self._close_listener()
            await self._drop_connections()
            return
        if previous is PrinterMode.OFFLINE:
            try:
                await self._listen()
            except OSError:
                self._mode = previous
                raise
        for connection in list(self._connections):
            connection.set_reading(self._mode is not PrinterMode.BLACKHOLE)

    async def wait_for_tickets(self, count: int, timeout: float) -> list[Ticket]:
        """Wait until at least ``count`` tickets arrived; return all received so far.

        Raises TimeoutError after ``timeout`` seconds.
        """
        if len(self.tickets) < count:
            await self._wait_for_count(count, timeout)
        return list(self.tickets)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _wait_for_count(self, count: int, timeout: float) -> None:
        waiter = (count, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[1]
        except TimeoutError:
            got = len(self.tickets)
            raise TimeoutError(f"{got} of {count} tickets arrived within {timeout} s") from None
        finally:
            self._waiters.remove(waiter)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        port = self._bound_port if self._bound_port is not None else self._requested_port
        self._server = await loop.create_server(
            lambda: _PrinterConnection(self), self.host, port, reuse_address=True
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]

    def _close_listener(self) -> None:
        # Server.wait_closed() is not awaited: from 3.12 it also waits for open connections.
        # close() has already closed the listening sockets, which is all that matters here.
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _drop_connections(self) -> None:
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        await asyncio.gather(*(connection.closed for connection in connections))

    def _ticket_received(self, raw: _RawTicket) -> None:
        if self._mode is not PrinterMode.ONLINE:
            log.info("virtual printer (%s): discarded a %d-byte ticket", self._mode, len(raw.data))
            return
        text = decode_escpos(raw.data, self.encoding, self.cjk_encoding)
        path = self._save(raw.data, text)
        self.tickets.append(Ticket(raw.data, text, raw.first_byte_at, raw.completed_at, path))
        for count, future in self._waiters:
            if len(self.tickets) >= count and not future.done():
                future.set_result(None)

    def _save(self, data: bytes, text: str) -> Path | None:
        if self.out_dir is None:
            return None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            path = self._create_unique(stamp, data)
            path.with_suffix(".txt").write_text(text, encoding="utf-8")
        except OSError as exc:
            log.error("virtual printer: could not save a ticket in %s: %s", self.out_dir, exc)
            return None
        return path

    def _create_unique(self, stamp: str, data: bytes) -> Path:
        assert self.out_dir is not None
        while True:
            path = self.out_dir / f"{self._next_seq:06d}-{stamp}.bin"
            self._next_seq += 1
            try:
                with path.open("xb") as file:
                    file.write(data)
            except FileExistsError:
                continue
            return path


class VirtualPrinterThread:
    """A :class:`VirtualPrinter` running on its own event loop in a daemon thread.

    For synchronous tests and for embedding in code without an event loop. Methods block until
    the printer's loop has done the work.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out_dir: Path | None = None,
        encoding: str = "cp437",
        cjk_encoding: str = "big5hkscs",
        mode: PrinterMode = PrinterMode.ONLINE,
    ) -> None:
        self.printer = VirtualPrinter(host, port, out_dir, encoding, cjk_encoding, mode)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.printer.port

    @property
    def mode(self) -> PrinterMode:
        return self.printer.mode

    @property
    def tickets(self) -> list[Ticket]:
        # Copying a list is atomic under the GIL, so no trip through the loop is needed.
        return list(self.printer.tickets)

    def start(self) -> None:
        """Start the thread; returns once the printer is listening (or raises its start error)."""
        if self._thread is not None:
            raise RuntimeError("the virtual printer thread is already running")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name="virtual-printer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error

    def stop(self) -> None:
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None or loop is None or stop_requested is None:
            return
        loop.call_soon_threadsafe(stop_requested.set)
        thread.join()
        self._thread = None

    def set_mode(self, mode: PrinterMode) -> None:
        self._call(self.printer.set_mode(mode), _THREAD_CALL_TIMEOUT)

    def wait_for_tickets(self, count: int, timeout: float) -> list[Ticket]:
        """Wait until at least ``count`` tickets arrived; return all. Raises TimeoutError."""
        # The printer enforces ``timeout``; the outer limit only guards against a stuck loop.
        return self._call(self.printer.wait_for_tickets(count, timeout), timeout + 5.0)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[object, object, _T], timeout: float) -> _T:
        loop = self._loop
        if self._thread is None or loop is None:
            coroutine.close()
            raise RuntimeError("the virtual printer thread is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        try:
            await self.printer.start()
        except BaseException as exc:  # handed to the thread that called start()
            self._startup_error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self.printer.stop()
