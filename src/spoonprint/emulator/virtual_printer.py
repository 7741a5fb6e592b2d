"""A virtual network printer (raw TCP, like port 9100) speaking ESC/POS or, as a graphics-only
Star TSP100/TSP143, Star Graphic Mode; for tests, demos and as the default printer when none is
configured.

It reads the byte stream of every connection, answers status requests, cuts the stream into
tickets, and keeps each ticket in :attr:`VirtualPrinter.tickets` and, if ``out_dir`` is given, as
``NNNNNN-YYYYmmdd-HHMMSS.bin`` (raw bytes), ``.txt`` (readable text) and ``.png`` (a picture of
the paper, when anything was printed) files. NNNNNN continues from the highest number already in
the folder; one printer per folder is assumed. Given ``job_of`` (the server's built-in printer),
NNNNNN is instead the id of the job being printed, with ``-2``, ``-3`` ... for its further
tickets (copies, another attempt), and ``no-job`` for a ticket that came with none. Tickets are
small, so they are drawn and saved with plain blocking calls on the event loop thread.

Protocols (``protocol``, with ``width`` the printable width in dots, 576 by default):

* ``escpos``: tickets end at each cut command (see :mod:`~spoonprint.emulator.escpos_text`).
  The ``.txt`` is :func:`~spoonprint.emulator.escpos_text.decode_escpos`; the picture is
  :func:`~spoonprint.emulator.escpos_paper.render_escpos_paper` (``GS v 0`` images exact, text in
  spoonprint's typeface as an approximation of the printer font).
* ``star-graphic``: tickets end where the printer cuts or ends the raster job (``ESC FF EOT``,
  ``ESC * r B``, ...; see :mod:`~spoonprint.emulator.star_raster`). The picture is the raster rows
  exactly; the ``.txt`` says ``[raster WxH]``. Text and ESC/POS bytes print nothing on these
  printers: they are counted, and the ``.txt`` of the ticket they arrived in adds
  ``[ignored N bytes of non-raster data]``; if they make no ticket (no rows), a warning is
  logged instead, since they usually mean a sender speaking the wrong protocol.

Bytes left when a connection closes become a ticket too, unless they would print nothing (ESC/POS:
only whitespace, feeds, ``ESC @`` or settings; Star: no rows). Status
requests are answered at once and are not part of ticket data. They are found with the same
tokenizer as tickets, so ``10 04 n`` or ``1B 06 01`` inside image data is image data and gets no
reply (a real Epson answers those unless real-time commands are disabled with ``GS ( D``;
answering would only confuse senders).

Modes (:class:`PrinterMode`):

* ``online``: prints; status replies report no fault.
* ``offline``: power off. The listening socket is closed, so connections are refused, and open
  connections are dropped; going back online listens again on the same port.
* ``paper-out`` and ``cover-open``: connections are accepted and read, status replies report the
  fault, and received tickets are discarded, as a stopped printer would not print them. Whether a
  ticket is kept is decided when it completes (at its cut, or when its connection closes).
* ``blackhole``: connections are accepted but never read (reading is paused, so the sender's
  writes block once the socket buffers fill) and nothing is answered.

Print speed (``speed_mm_s``, None by default: as fast as the data arrives). A real thermal
printer takes in data only as fast as it prints it: once its small receive buffer is full the
sender's writes wait for the paper. With a speed the virtual printer does the same, with a simple
model of the print mechanism:

* At 203 dpi the head prints 8 dot rows per mm, so the printer prints ``speed_mm_s * 8`` dot rows
  a second.
* What costs paper: ESC/POS line feed ``0A``: 30 rows (a 24-dot font plus line spacing);
  ``ESC d n``: 30 * n rows; every row of a ``GS v 0`` raster image: 1 row. Star: every raster row
  (``b`` or ``k``): 1 row. Paper fed by dots (ESC/POS ``ESC J n``, Star ``ESC * r Y n``, which
  is how blank rows of a Star image are sent): n rows. Every other byte (text, settings, cuts)
  costs nothing.
* There is one print mechanism: data from all connections is printed one after the other, in
  the order it was read, and no connection is read while there are rows left to print.
* What has been read is printed at that rate. Whatever it completes (a ticket, at its cut or at
  the end of its connection; a Star ``ETB``) happens when the printing of the rows before it is
  done, so a ticket's ``completed_at`` minus ``first_byte_at`` is at least its rows divided by
  the rate.
* While the printer still has rows to print, it reads nothing more (``pause_reading``, resumed
  by a timer when the rows are done), so the rest waits in the socket buffers and a sender
  that writes faster than the paper moves blocks, as on a real printer. One read takes whatever
  has arrived, so the "receive buffer" is one read of the socket.
* Status requests (``DLE EOT n``, ``ESC ACK SOH``) are answered as soon as they are read, even
  when ticket data read before them is still printing; one that arrives while reading is paused
  waits, like a real-time command behind a full receive buffer.
* Going offline or stopping the printer loses what was read but not yet printed, like switching
  a real printer off; paper-out and cover-open decide, as always, when a ticket completes.

:meth:`VirtualPrinter.set_speed` changes the speed for data read from then on.

ESC/POS ``DLE EOT n`` replies. Every reply has the fixed pattern ``0xx1xx10`` (bit1 and bit4 set,
bit0 and bit7 clear), hence the base ``0x12``. Checked against /work/shared/PROTOCOLS.md and, as a
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

Star ``ESC ACK SOH`` (``1B 06 01``) replies: the 9-byte automatic status (ASB) of the TSP100
family, from Star's "STAR Graphic Mode Command Specifications" Rev. 2.31, Appendix 1, checked
against an open-source ASB parser (``parse_asb``: length from header bits 1-3 and 5-6, the same
status bits and ETB counter packing) and PROTOCOLS.md:

* byte 1, header 1 ``0x23``: bit0 = 1 and bit4 = 0 mark a header; bits 1-3 and 5-6 hold the total
  length, ``0b0100001`` -> 9 bytes.
* byte 2, header 2 ``0x06``: status version 3 (bits 1-3 and 5); bit7 clear, so no Ethernet
  "extended status" length follows (Appendix 2; not emulated).
* byte 3: bit5 cover open, bit3 offline, bit1 ETB executed since the last status sent (cleared
  by sending it), bit2 drawer (compulsion) switch, left 0.
* byte 4: bit6 head too hot, bit5 unrecoverable error, bit3 auto-cutter error: always 0 here.
* byte 6: bit3 paper end (the TSP100 has no near-end sensor).
* byte 8: the 5-bit ETB counter in bits 1-3 (counter bits 0-2) and 5-6 (bits 3-4); bits 0, 4 and
  7 are fixed 0. ``ETB`` (``17``) adds one, wrapping 31 -> 0, but only while online (an offline
  printer does not process data); ``ESC RS E n`` clears it.
* bytes 5, 7 and 9 are 0.

=========== =========================================
mode        ASB (ETB counter 0)
=========== =========================================
online      ``23 06 00 00 00 00 00 00 00``
paper-out   ``23 06 08 00 00 08 00 00 00``
cover-open  ``23 06 28 00 00 00 00 00 00``
=========== =========================================
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, cast

from PIL import Image

from spoonprint.emulator.escpos_paper import render_escpos_paper
from spoonprint.emulator.escpos_text import (
    Kind,
    Token,
    decode_escpos,
    has_printable_content,
    tokenize,
)
from spoonprint.emulator.star_raster import (
    MAX_MOVE,
    StarKind,
    StarPage,
    StarPaper,
    StarToken,
    ends_job,
    tokenize_star,
)
from spoonprint.render.bitimage import row_bytes, rows_image

__all__ = [
    "PROTOCOLS",
    "PrinterMode",
    "Ticket",
    "VirtualPrinter",
    "VirtualPrinterThread",
    "star_asb",
    "status_reply",
]

log = logging.getLogger(__name__)

#: What the virtual printer can be: an ESC/POS printer or a graphics-only Star TSP100/TSP143.
PROTOCOLS = ("escpos", "star-graphic")
DEFAULT_WIDTH = 576

#: The print speed model (see the module docstring): dot rows per mm of paper at 203 dpi, and
#: the rows one ESC/POS text line takes.
DOTS_PER_MM = 8
ROWS_PER_LINE = 30

_TICKET_FILE = re.compile(r"^(\d{6,})-\d{8}-\d{6}\.(?:bin|txt|png)$")
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


_ASB_HEADER = bytes([0x23, 0x06])
_ASB_ETB_EXECUTED = 0x02
# Byte 3 (printer state) and byte 6 (paper) of the ASB by mode.
_ASB_FAULTS: dict[PrinterMode, tuple[int, int]] = {
    PrinterMode.ONLINE: (0x00, 0x00),
    PrinterMode.PAPER_OUT: (0x08, 0x08),  # offline, paper end
    PrinterMode.COVER_OPEN: (0x28, 0x00),  # cover open, offline
}


def star_asb(mode: PrinterMode, etb_counter: int = 0, etb_executed: bool = False) -> bytes | None:
    """The ASB a Star TSP100 in ``mode`` sends for ``ESC ACK SOH``, or None when it is silent."""
    faults = _ASB_FAULTS.get(mode)
    if faults is None:
        return None
    state, paper = faults
    if etb_executed:
        state |= _ASB_ETB_EXECUTED
    counter = etb_counter % 32
    etb_bits = (counter & 0x07) << 1 | (counter & 0x18) << 2
    return _ASB_HEADER + bytes([state, 0, 0, paper, 0, etb_bits, 0])


def _checked_speed(speed_mm_s: float | None) -> float | None:
    if speed_mm_s is None:
        return None
    speed = float(speed_mm_s)
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed_mm_s must be a positive number of mm/s or None, not {speed_mm_s}")
    return speed


def _escpos_rows(token: Token, data: bytes | bytearray) -> int:
    """Dot rows of paper an ESC/POS token takes in the print speed model."""
    if token.kind is Kind.NEWLINE:
        return ROWS_PER_LINE
    if token.kind is Kind.FEED:  # ESC d n: n lines; ESC J n: n dots
        n = data[token.start + 2]
        return ROWS_PER_LINE * n if data[token.start + 1] == ord("d") else n
    if token.kind is Kind.RASTER:
        return token.args[1]
    return 0


def _star_rows(token: StarToken, raster: bool) -> int:
    """Dot rows of paper a Star token takes in the print speed model (rows and moves count
    only in raster mode)."""
    if not raster:
        return 0
    if token.kind in (StarKind.ROW, StarKind.ROW_NO_FEED):
        return 1
    if token.kind is StarKind.MOVE:
        return min(max(token.value, 0), MAX_MOVE)
    return 0


@dataclass(frozen=True)
class Ticket:
    """One printed ticket. Times are ``time.perf_counter()`` values; with a print speed,
    ``completed_at`` is when its last row is on paper.

    ``path`` is the saved ``.bin`` file (its ``.txt`` and ``.png`` sit next to it), or None when
    there is no ``out_dir`` or saving failed. ``image`` is the picture of the paper (mode "1",
    0 = ink; the printer's width, or on ESC/POS the widest image printed if that differs), or
    None when nothing was printed or it could not be drawn.
    """

    data: bytes
    text: str
    first_byte_at: float
    completed_at: float
    path: Path | None
    image: Image.Image | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _RawTicket:
    data: bytes
    first_byte_at: float
    completed_at: float
    #: What a Star printer made of the data; None for ESC/POS, drawn when the ticket is kept.
    page: StarPage | None = None


@dataclass(frozen=True)
class _StatusRequest:
    n: int


@dataclass(frozen=True)
class _AsbRequest:
    """Star ``ESC ACK SOH``."""


@dataclass(frozen=True)
class _Etb:
    """Star ``ETB``: count one more (when online)."""


@dataclass(frozen=True)
class _EtbClear:
    """Star ``ESC RS E n``: clear the ETB counter and status."""


_Event = _StatusRequest | _AsbRequest | _Etb | _EtbClear | _RawTicket


@dataclass
class _ChunkBuffer:
    """Bytes received but not yet read as whole commands, and the ticket they go into.

    ``pending`` holds the start of a command whose remaining bytes have not arrived yet.
    ``rows`` counts the dot rows of paper that the commands read so far take (see "Print speed"
    in the module docstring).
    """

    ticket: bytearray = field(default_factory=bytearray)
    ticket_since: float = 0.0
    pending: bytearray = field(default_factory=bytearray)
    pending_since: float = 0.0
    rows: int = 0

    def feed(self, chunk: bytes, now: float) -> list[_Event]:
        """The events that ``chunk``, received at ``now``, completes."""
        return [event for _, event in self.feed_rows(chunk, now)]

    def feed_rows(self, chunk: bytes, now: float) -> list[tuple[int, _Event]]:
        """Like :meth:`feed`, each event with :attr:`rows` as it was when the event happened."""
        raise NotImplementedError

    def _receive(self, chunk: bytes, now: float) -> int:
        """Append ``chunk``; return how many pending bytes came from earlier chunks."""
        old_length = len(self.pending)
        if not old_length:
            self.pending_since = now
        self.pending += chunk
        return old_length

    def _keep(self, start: int, end: int, old_length: int, now: float) -> None:
        if not self.ticket:
            # A token that began in an earlier chunk arrived when that chunk did.
            self.ticket_since = self.pending_since if start < old_length else now
        self.ticket += self.pending[start:end]

    def _consume(self, consumed: int, old_length: int, now: float) -> None:
        if consumed:
            if consumed >= old_length:
                self.pending_since = now
            del self.pending[:consumed]

    def _leftover(self) -> tuple[bytes, float]:
        since = self.ticket_since if self.ticket else self.pending_since
        data = bytes(self.ticket + self.pending)
        self.ticket.clear()
        self.pending.clear()
        return data, since


@dataclass
class _StreamAssembler(_ChunkBuffer):
    """Per-connection ESC/POS parsing state, free of I/O: chunks in, status requests and
    tickets out."""

    def feed_rows(self, chunk: bytes, now: float) -> list[tuple[int, _Event]]:
        old_length = self._receive(chunk, now)
        events: list[tuple[int, _Event]] = []
        consumed = 0
        for token in tokenize(self.pending):
            if token.kind is Kind.INCOMPLETE:
                break
            consumed = token.end
            if token.kind is Kind.STATUS_REQUEST:
                events.append((self.rows, _StatusRequest(token.args[0])))
                continue
            self.rows += _escpos_rows(token, self.pending)
            self._keep(token.start, token.end, old_length, now)
            if token.kind is Kind.CUT:
                events.append((self.rows, _RawTicket(bytes(self.ticket), self.ticket_since, now)))
                self.ticket.clear()
        self._consume(consumed, old_length, now)
        return events

    def finish(self, now: float) -> _RawTicket | None:
        """The ticket formed by whatever is left, if it would print anything."""
        data, since = self._leftover()
        if not has_printable_content(data):
            return None
        return _RawTicket(data, since, now)


@dataclass
class _StarStreamAssembler(_ChunkBuffer):
    """Per-connection Star Graphic Mode parsing state, free of I/O: chunks in; status
    requests, ETB counter updates and tickets (with their rows) out.

    A ticket whose paper ended at an execute command (``ESC FF EOT`` ...) is held until the
    next token arrives, so that an ``ESC * r B`` ending the same job joins it (see
    :func:`~spoonprint.emulator.star_raster.split_star_tickets`); any other token, a status
    request included, or the end of the connection releases it first.
    """

    paper: StarPaper = field(default_factory=lambda: StarPaper(DEFAULT_WIDTH))
    held: StarPage | None = None
    held_at: float = 0.0

    def feed_rows(self, chunk: bytes, now: float) -> list[tuple[int, _Event]]:
        old_length = self._receive(chunk, now)
        events: list[tuple[int, _Event]] = []
        consumed = 0
        for token in tokenize_star(self.pending, raster=self.paper.raster):
            if token.kind is StarKind.INCOMPLETE:
                break
            consumed = token.end
            if self.held is not None:
                joins = ends_job(token)
                if joins:
                    self._keep(token.start, token.end, old_length, now)
                    self.paper.apply(token)
                events.append((self.rows, self._release(now if joins else self.held_at)))
                if joins:
                    continue
            handled = self._handle(token, old_length, now)
            events.extend((self.rows, event) for event in handled)
        self._consume(consumed, old_length, now)
        return events

    def finish(self, now: float) -> _RawTicket | None:
        """The held ticket (with any incomplete command bytes), else the ticket formed by
        whatever is left if it has rows."""
        if self.held is not None:
            self.ticket += self.pending
            self.pending.clear()
            return self._release(self.held_at)
        data, since = self._leftover()
        page = self.paper.take()
        if page.rows:
            return _RawTicket(data, since, now, page)
        if page.ignored:
            log.warning(
                "virtual printer (star-graphic): ignored %d bytes that are not Star raster "
                "commands (text or ESC/POS?); they print nothing",
                page.ignored,
            )
        return None

    def _handle(self, token: StarToken, old_length: int, now: float) -> list[_Event]:
        if token.kind is StarKind.STATUS_REQUEST:
            return [_AsbRequest()]
        events: list[_Event] = []
        if token.kind is StarKind.ETB:
            events.append(_Etb())
        elif token.kind is StarKind.CLEAR_ETB:
            events.append(_EtbClear())
        self._keep(token.start, token.end, old_length, now)
        self.rows += _star_rows(token, self.paper.raster)
        if self.paper.apply(token):
            self.held, self.held_at = self.paper.take(), now
            if ends_job(token):
                events.append(self._release(now))
        return events

    def _release(self, completed_at: float) -> _RawTicket:
        ticket = _RawTicket(bytes(self.ticket), self.ticket_since, completed_at, self.held)
        self.ticket.clear()
        self.held = None
        return ticket


@dataclass(frozen=True)
class _Scheduled:
    """An event waiting for the rows read before it to be printed."""

    due: float
    event: _RawTicket | _Etb | _EtbClear


class _PrinterConnection(asyncio.Protocol):
    def __init__(self, printer: VirtualPrinter) -> None:
        self._printer = printer
        self._assembler = printer._new_assembler()
        self._transport: asyncio.Transport | None = None
        self._peer: object = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Print speed: rows of this connection already handed to the print mechanism, events
        # waiting for their rows to be printed, and the timer that delivers them.
        self._rows_printed = 0
        self._backlog: deque[_Scheduled] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._throttled = False
        self._paused = False
        self._lost = False
        self._power_off = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server always hands over a full transport; uvloop's is not a subclass of
        # asyncio.Transport, so this is a cast, not an isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._peer = self._transport.get_extra_info("peername")
        self._printer._connections.add(self)
        if self._printer._server is None:
            # Accepted just as the printer was switched off (or stopped): it goes with the
            # others, instead of staying open behind a closed listener.
            self.abort()
            return
        self._pump()  # reads nothing while the printer is busy
        log.debug("virtual printer: connection from %s", self._peer)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        for rows, event in self._assembler.feed_rows(data, now):
            if isinstance(event, _StatusRequest | _AsbRequest):
                # Answered now, but after what is printed by now (all of it at full speed).
                self._complete_due(now)
                if isinstance(event, _StatusRequest):
                    self._reply(status_reply(self._printer.mode, event.n))
                else:
                    self._reply_asb()
            else:
                self._schedule(rows, event, now)
        self._print_rows(self._assembler.rows, now)
        self._pump()

    def eof_received(self) -> bool | None:
        # Returning None closes our side too, which makes connection_lost save what is left.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("virtual printer: connection from %s lost: %s", self._peer, exc)
        self._lost = True
        now = time.perf_counter()
        leftover = self._assembler.finish(now)
        if leftover is not None:
            self._schedule(self._assembler.rows, leftover, now)
        self._pump()

    def refresh_reading(self) -> None:
        """Read unless the printer is a black hole or still printing what it read."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = self._printer.mode is PrinterMode.BLACKHOLE or self._throttled
        if pause and not self._paused:
            transport.pause_reading()
        elif self._paused and not pause:
            transport.resume_reading()
        self._paused = pause

    def hold(self, until: float, now: float) -> None:
        """Read nothing more until ``until``, when the printer will have printed its rows."""
        if self._lost or self._throttled:
            return  # not reading, and a timer is set to look again
        self._throttled = True
        self.refresh_reading()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(until - now, self._pump)

    def abort(self) -> None:
        """Power off: drop the connection and whatever it read that is not printed yet."""
        self._power_off = True
        if self._lost:
            self._pump()  # already closed, maybe still printing: drop the rest now
        elif self._transport is not None:
            self._transport.abort()

    def _print_rows(self, rows: int, now: float) -> float:
        """Hand the rows up to the assembler's count ``rows`` to the print mechanism; return
        when it will have printed them."""
        new_rows, self._rows_printed = rows - self._rows_printed, rows
        return self._printer._print(new_rows, now)

    def _schedule(self, rows: int, event: _RawTicket | _Etb | _EtbClear, now: float) -> None:
        due = self._print_rows(rows, now)
        if isinstance(event, _RawTicket) and due > now:
            event = replace(event, completed_at=due)  # done when its last row is on paper
        self._backlog.append(_Scheduled(due, event))

    def _pump(self) -> None:
        """Complete the events whose rows are printed, read again once everything read is
        printed, and set the timer for whichever comes next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.perf_counter()
        self._complete_due(now)
        if self._power_off and self._backlog:
            log.info(
                "virtual printer: switched off with %d unprinted events; they are lost",
                len(self._backlog),
            )
            self._backlog.clear()
        if self._lost:
            if not self._backlog:
                self._finished()
                return
            wake = self._backlog[0].due
        else:
            busy_until = self._printer._busy_until
            self._throttled = busy_until > now
            self.refresh_reading()
            wake = self._backlog[0].due if self._backlog else busy_until
        if wake > now:
            self._timer = asyncio.get_running_loop().call_later(wake - now, self._pump)

    def _complete_due(self, now: float) -> None:
        while self._backlog and self._backlog[0].due <= now:
            event = self._backlog.popleft().event
            if isinstance(event, _RawTicket):
                self._printer._ticket_received(event)
            else:
                self._printer._etb_event(event)

    def _finished(self) -> None:
        self._printer._connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def _reply(self, reply: int | bytes | None) -> bool:
        # Writing to a transport the peer already reset only makes asyncio log warnings.
        if reply is None or self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(bytes([reply]) if isinstance(reply, int) else reply)
        return True

    def _reply_asb(self) -> None:
        printer = self._printer
        asb = star_asb(printer.mode, printer.etb_counter, printer._etb_executed)
        if self._reply(asb):
            # The spec clears the "ETB executed" bit once it has been sent to the host.
            printer._etb_executed = False


def _next_sequence(folder: Path) -> int:
    numbers = (int(m.group(1)) for p in folder.iterdir() if (m := _TICKET_FILE.match(p.name)))
    return max(numbers, default=0) + 1


class VirtualPrinter:
    """A virtual printer listening on ``host:port`` (port 0 picks a free port).

    ``protocol`` is ``"escpos"`` or ``"star-graphic"``; ``width`` the printable width in dots
    (576 for 80 mm paper, 512, 384 ...), used for the pictures of the paper. ``speed_mm_s`` is
    the print speed in mm of paper a second, None for as fast as data arrives (see "Print
    speed" in the module docstring).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out_dir: Path | None = None,
        encoding: str = "cp437",
        cjk_encoding: str = "big5hkscs",
        mode: PrinterMode = PrinterMode.ONLINE,
        protocol: str = "escpos",
        width: int = DEFAULT_WIDTH,
        speed_mm_s: float | None = None,
        job_of: Callable[[], int | None] | None = None,
    ) -> None:
        # Fail on a misspelt codec, protocol, width or speed now rather than at the first ticket.
        self._speed = _checked_speed(speed_mm_s)
        codecs.lookup(encoding)
        codecs.lookup(cjk_encoding)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        row_bytes(width)
        self.protocol = protocol
        self.width = width
        self.host = host
        self.out_dir = out_dir
        self.encoding = encoding
        self.cjk_encoding = cjk_encoding
        self.tickets: list[Ticket] = []
        #: The job whose ticket is arriving, asked as it is saved (see the module docstring).
        self.job_of = job_of
        self._requested_port = port
        self._bound_port: int | None = None
        self._mode = PrinterMode(mode)
        self._server: asyncio.Server | None = None
        self._connections: set[_PrinterConnection] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._next_seq = 1
        self._running = False
        self._etb_counter = 0
        self._etb_executed = False
        #: When the print mechanism will have printed every row handed to it (perf_counter).
        self._busy_until = 0.0

    @property
    def mode(self) -> PrinterMode:
        return self._mode

    @property
    def speed_mm_s(self) -> float | None:
        """The print speed in mm/s, or None for as fast as data arrives."""
        return self._speed

    @property
    def etb_counter(self) -> int:
        """Star: ETB commands processed while online, modulo 32 (as the ASB reports it)."""
        return self._etb_counter

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

    async def set_speed(self, speed_mm_s: float | None) -> None:
        """Print at ``speed_mm_s`` mm/s (None: as fast as data arrives) from now on.

        Data already read is printed at the speed it was read at.
        """
        self._speed = _checked_speed(speed_mm_s)

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
            connection.refresh_reading()

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
        # Connections the closed listener had already accepted get their connection_made a
        # loop turn or two later (and drop themselves there): let that happen first, so none
        # is left open behind a stopped printer.
        for _ in range(3):
            await asyncio.sleep(0)
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        await asyncio.gather(*(connection.closed for connection in connections))
        self._busy_until = 0.0  # switched off: what it had not printed is lost

    def _print(self, rows: int, now: float) -> float:
        """Queue ``rows`` dot rows on the print mechanism; return when they will be printed."""
        self._busy_until = max(self._busy_until, now)
        if rows > 0 and self._speed is not None:
            self._busy_until += rows / (self._speed * DOTS_PER_MM)
            for connection in self._connections:
                connection.hold(self._busy_until, now)
        return self._busy_until

    def _new_assembler(self) -> _StreamAssembler | _StarStreamAssembler:
        if self.protocol == "star-graphic":
            return _StarStreamAssembler(paper=StarPaper(self.width))
        return _StreamAssembler()

    def _etb_event(self, event: _Etb | _EtbClear) -> None:
        if isinstance(event, _EtbClear):
            self._etb_counter, self._etb_executed = 0, False
        elif self._mode is PrinterMode.ONLINE:
            self._etb_counter = (self._etb_counter + 1) % 32
            self._etb_executed = True

    def _ticket_received(self, raw: _RawTicket) -> None:
        if self._mode is not PrinterMode.ONLINE:
            log.info("virtual printer (%s): discarded a %d-byte ticket", self._mode, len(raw.data))
            return
        text, image = self._draw(raw)
        path = self._save(raw.data, text, image)
        ticket = Ticket(raw.data, text, raw.first_byte_at, raw.completed_at, path, image)
        self.tickets.append(ticket)
        for count, future in self._waiters:
            if len(self.tickets) >= count and not future.done():
                future.set_result(None)

    def _draw(self, raw: _RawTicket) -> tuple[str, Image.Image | None]:
        if raw.page is not None:
            return _star_text(raw.page, self.width), _star_image(raw.page, self.width)
        text = decode_escpos(raw.data, self.encoding, self.cjk_encoding)
        try:
            image = render_escpos_paper(
                raw.data, self.width, encoding=self.encoding, cjk_encoding=self.cjk_encoding
            )
        except Exception:  # a drawing problem (e.g. no font) must not lose the ticket
            log.exception("virtual printer: could not draw a ticket")
            image = None
        return text, image

    def _save(self, data: bytes, text: str, image: Image.Image | None) -> Path | None:
        if self.out_dir is None:
            return None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            path = self._create_unique(stamp, data)
            path.with_suffix(".txt").write_text(text, encoding="utf-8")
            if image is not None:
                image.save(path.with_suffix(".png"), format="PNG")
        except OSError as exc:
            log.error("virtual printer: could not save a ticket in %s: %s", self.out_dir, exc)
            return None
        return path

    def _create_unique(self, stamp: str, data: bytes) -> Path:
        assert self.out_dir is not None
        job = None if self.job_of is None else self.job_of()
        further = 0
        while True:
            further += 1
            if self.job_of is None:
                name = f"{self._next_seq:06d}-{stamp}"
                self._next_seq += 1
            else:
                name = f"{'no-job' if job is None else f'{job:06d}'}-{stamp}"
                name += f"-{further}" if further > 1 else ""
            path = self.out_dir / f"{name}.bin"
            try:
                with path.open("xb") as file:
                    file.write(data)
            except FileExistsError:
                continue
            return path


def _star_text(page: StarPage, width: int) -> str:
    lines = []
    if page.rows:
        lines.append(f"[raster {width}x{len(page.rows)}]\n")
    if page.ignored:
        lines.append(f"[ignored {page.ignored} bytes of non-raster data]\n")
    return "".join(lines)


def _star_image(page: StarPage, width: int) -> Image.Image | None:
    return rows_image(page.rows, width) if page.rows else None


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
        protocol: str = "escpos",
        width: int = DEFAULT_WIDTH,
        speed_mm_s: float | None = None,
    ) -> None:
        self.printer = VirtualPrinter(
            host, port, out_dir, encoding, cjk_encoding, mode, protocol, width, speed_mm_s
        )
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

    @property
    def etb_counter(self) -> int:
        return self.printer.etb_counter

    @property
    def speed_mm_s(self) -> float | None:
        return self.printer.speed_mm_s

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

    def set_speed(self, speed_mm_s: float | None) -> None:
        """See :meth:`VirtualPrinter.set_speed`."""
        self._call(self.printer.set_speed(speed_mm_s), _THREAD_CALL_TIMEOUT)

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
        with asyncio.Runner() as runner:
            runner.run(self._serve())
            # A connection dropped as the printer stopped closes its socket a loop turn or two
            # later: give it those turns here, or the closing loop leaves it open (and Python
            # warns of an unclosed transport when it is collected).
            runner.run(_turns(5))

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


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)
