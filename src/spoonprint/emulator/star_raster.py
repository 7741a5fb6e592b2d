"""What a graphics-only Star printer (TSP100 / TSP143) makes of a byte stream (pure, no I/O).

Source: Star's "STAR Graphic Mode Command Specifications" Rev. 2.31 (command list, section 3),
checked against the stream Star's own CUPS filter ``rastertostar.c`` sends. One tokenizer
(:func:`tokenize_star`) knows the length of every command, so row data is never read as
commands: ``1B 0C 04`` or ``17`` inside a ``b`` row is image data, not a cut or an ETB.
Whether ``b`` and ``k`` are row commands depends on being in raster mode (``ESC * r A`` ..
``ESC * r B``), so the tokenizer follows that state.

Raster commands understood by :class:`StarPaper`:

* ``b n1 n2 d..`` row then one-dot feed; ``k n1 n2 d..`` row without feed. Rows are ORed into
  the current dot line at the left margin; bytes beyond the print area are cut off.
* ``ESC * r Y n NUL`` move down n dots (blank rows), at most 64000 (the maximum page length).
* ``ESC * r m l n NUL`` / ``ESC * r m r n NUL`` left / right margin of n x 8 dots.
* ``ESC * r E n NUL`` / ``ESC * r F n NUL`` EOT / FF mode; ``ESC * r C`` clear the image
  buffer; ``ESC * r R`` and ``ESC * r A`` initialize raster mode. Any other
  ``ESC * r x n.. NUL`` (page length P, quality Q, drawer D, colour K, top margin T/t, EM mode
  e ...) is read to its NUL and changes nothing on paper. As in the spec, the settings are
  ignored while the image buffer holds data.
* Tickets end where the printer cuts or ends the job: ``ESC FF EOT`` (execute EOT mode) and
  ``ESC FF EM``, ``ESC FF NUL`` (execute FF mode) when the FF mode cuts (8, 9, 12, 13; 0 and the
  initial value mean 13 on a cutter model), and ``ESC * r B`` (quit raster), which executes EOT
  mode itself when data is left. Executes with an empty image buffer are ignored, as specified;
  a vertical move counts as data here, so an all-white image still makes a ticket. An
  ``ESC * r B`` right after the execute that ended a ticket belongs to that ticket: it ends the
  same job (:func:`split_star_tickets`).

Non-raster commands are read with their lengths where the spec gives them (``ESC @``,
``ESC ACK SOH`` status, ``ETB``, ``ESC RS E n``, drawer ``BEL``/``FS``/``SUB``/``EM``,
``ESC BEL n1 n2``, ``ESC RS x n``, ``ESC GS ...``); NUL is a no-op (the CUPS filter sends one
per page). Everything else (text, ESC/POS commands) prints nothing on these printers and is
counted as ignored bytes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image

from spoonprint.render.bitimage import row_bytes, rows_image

__all__ = [
    "MAX_TICKET_ROWS",
    "StarKind",
    "StarPage",
    "StarPaper",
    "StarToken",
    "decode_star_raster",
    "ends_job",
    "split_star_tickets",
    "tokenize_star",
]

ESC = 0x1B
NUL = 0x00
ETB = 0x17
#: Maximum page length in continuous mode: the furthest one vertical move goes.
MAX_MOVE = 64000
#: A guard against runaway memory (about 33 m of paper, a 19 MB image at 576 dots): rows past
#: this many in one ticket are dropped.
MAX_TICKET_ROWS = 1 << 18
#: ``ESC * r x n.. NUL``: up to 255 ASCII digits.
_MAX_DIGITS = 255
#: EOT / FF / EM modes that end with a cut (0 is "set to default", which is 13 on a cutter).
_CUTTING_MODES = frozenset({0, 8, 9, 12, 13})
_DEFAULT_MODE = 13

# Bytes that start a command; anything else is a run of ignored bytes. In raster mode b and k
# start rows too.
_IGNORED_RUN = re.compile(rb"[^\x00\x07\x17\x19\x1a\x1b\x1c]+")
_IGNORED_RUN_RASTER = re.compile(rb"[^\x00\x07\x17\x19\x1a\x1b\x1cbk]+")


class StarKind(enum.Enum):
    """What a token is, as far as paper, tickets and status care."""

    ROW = enum.auto()
    ROW_NO_FEED = enum.auto()
    MOVE = enum.auto()
    SETTING = enum.auto()
    MARGIN = enum.auto()
    INIT_RASTER = enum.auto()
    ENTER_RASTER = enum.auto()
    QUIT_RASTER = enum.auto()
    CLEAR_RASTER = enum.auto()
    EXECUTE_FF = enum.auto()
    EXECUTE_EOT = enum.auto()
    EXECUTE_EM = enum.auto()
    STATUS_REQUEST = enum.auto()
    ETB = enum.auto()
    CLEAR_ETB = enum.auto()
    COMMAND = enum.auto()
    IGNORED = enum.auto()
    INCOMPLETE = enum.auto()


@dataclass(frozen=True, slots=True)
class StarToken:
    """One command or ignored run, as ``data[start:end]``.

    ``name`` is the setting letter (``E``, ``F``, ``Y`` ...) or margin side (``l``, ``r``);
    ``value`` its number (-1 when the digits are malformed); ``payload`` row data.
    """

    kind: StarKind
    start: int
    end: int
    name: str = ""
    value: int = 0
    payload: bytes = b""


def tokenize_star(
    data: bytes | bytearray, start: int = 0, *, raster: bool = False
) -> Iterator[StarToken]:
    """Yield the tokens of ``data[start:]``, covering every byte once; ``raster`` is the mode
    at ``start``. If the data ends inside a command, the last token is INCOMPLETE."""
    raw = bytes(data)
    pos = start
    while pos < len(raw):
        token = _next_token(raw, pos, raster)
        if token is None:
            yield StarToken(StarKind.INCOMPLETE, pos, len(raw))
            return
        if token.kind is StarKind.ENTER_RASTER:
            raster = True
        elif token.kind is StarKind.QUIT_RASTER:
            raster = False
        yield token
        pos = token.end


def _next_token(raw: bytes, pos: int, raster: bool) -> StarToken | None:
    byte = raw[pos]
    if byte == ESC:
        return _esc(raw, pos)
    if raster and byte in b"bk":
        return _row(raw, pos)
    if byte == ETB:
        return StarToken(StarKind.ETB, pos, pos + 1)
    if byte in b"\x00\x07\x19\x1a\x1c":
        # NUL is a no-op; BEL / FS drive external device 1, SUB / EM device 2 (the drawer).
        return StarToken(StarKind.COMMAND, pos, pos + 1)
    run = (_IGNORED_RUN_RASTER if raster else _IGNORED_RUN).match(raw, pos)
    assert run is not None  # every byte not handled above is in the run's class
    return StarToken(StarKind.IGNORED, pos, run.end())


def _row(raw: bytes, pos: int) -> StarToken | None:
    if pos + 3 > len(raw):
        return None
    end = pos + 3 + raw[pos + 1] + 256 * raw[pos + 2]
    if end > len(raw):
        return None
    kind = StarKind.ROW if raw[pos] == ord("b") else StarKind.ROW_NO_FEED
    return StarToken(kind, pos, end, payload=raw[pos + 3 : end])


_RASTER_ONLY = frozenset(
    {
        StarKind.ROW,
        StarKind.ROW_NO_FEED,
        StarKind.MOVE,
        StarKind.SETTING,
        StarKind.MARGIN,
        StarKind.CLEAR_RASTER,
    }
)
_ESC_FF = {0x00: StarKind.EXECUTE_FF, 0x04: StarKind.EXECUTE_EOT, 0x19: StarKind.EXECUTE_EM}
_RASTER_FIXED = {
    ord("R"): StarKind.INIT_RASTER,
    ord("A"): StarKind.ENTER_RASTER,
    ord("B"): StarKind.QUIT_RASTER,
    ord("C"): StarKind.CLEAR_RASTER,
    ord("a"): StarKind.COMMAND,  # start block (command emulator)
    ord("b"): StarKind.COMMAND,  # end block
}
# Total lengths of fixed-length ESC RS x and ESC GS x commands from the spec's command list.
_ESC_RS_LENGTH = 4  # ESC RS A/d/r/a/E/C/S n, ESC RS B A
_ESC_GS_LENGTHS = {0x07: 6, 0x19: 7, ord("c"): 5, 0x03: 6, ord("L"): 7, ord(")"): 7}


def _esc(raw: bytes, pos: int) -> StarToken | None:
    if pos + 2 > len(raw):
        return None
    command = raw[pos + 1]
    if command == ord("*"):
        return _esc_star(raw, pos)
    if command == ord("@"):
        return StarToken(StarKind.COMMAND, pos, pos + 2)
    if command == 0x07:  # ESC BEL n1 n2: drawer pulse width
        return _fixed(raw, pos, 4, StarKind.COMMAND)
    if command in (0x0C, 0x06):
        return _esc_three(raw, pos)
    if command == 0x1E:
        return _esc_rs(raw, pos)
    if command == 0x1D:
        return _esc_gs(raw, pos)
    if command in (ord("?"), ord("#")):  # ESC ? LF NUL, ESC # * LF NUL, ESC # # W .. LF NUL
        return _to_terminator(raw, pos, b"\n\x00")
    return StarToken(StarKind.IGNORED, pos, pos + 2)


def _fixed(raw: bytes, pos: int, length: int, kind: StarKind) -> StarToken | None:
    return StarToken(kind, pos, pos + length) if pos + length <= len(raw) else None


def _esc_three(raw: bytes, pos: int) -> StarToken | None:
    """ESC FF NUL / EOT / EM / LF (execute modes) and ESC ACK SOH (status request)."""
    if pos + 3 > len(raw):
        return None
    command, argument = raw[pos + 1], raw[pos + 2]
    if command == 0x06:
        if argument == 0x01:
            return StarToken(StarKind.STATUS_REQUEST, pos, pos + 3)
        return StarToken(StarKind.IGNORED, pos, pos + 2)
    if argument == 0x0A:  # ESC FF LF: execute LF mode, which feeds nothing in continuous mode
        return StarToken(StarKind.COMMAND, pos, pos + 3)
    execute = _ESC_FF.get(argument)
    if execute is None:
        return StarToken(StarKind.IGNORED, pos, pos + 2)
    return StarToken(execute, pos, pos + 3)


def _esc_rs(raw: bytes, pos: int) -> StarToken | None:
    if pos + _ESC_RS_LENGTH > len(raw):
        return None
    kind = StarKind.CLEAR_ETB if raw[pos + 2] == ord("E") else StarKind.COMMAND
    return StarToken(kind, pos, pos + _ESC_RS_LENGTH)


def _esc_gs(raw: bytes, pos: int) -> StarToken | None:
    if pos + 3 > len(raw):
        return None
    command = raw[pos + 2]
    if command == ord("#"):  # ESC GS # m N n1 n2 n3 n4 LF NUL: memory switch
        return _to_terminator(raw, pos, b"\n\x00")
    if command == ord("B"):  # customer display: ESC GS B @ n1 n2 d.., ESC GS B B / C
        return _esc_gs_display(raw, pos)
    length = _ESC_GS_LENGTHS.get(command)
    if length is None:
        return StarToken(StarKind.IGNORED, pos, pos + 3)
    return _fixed(raw, pos, length, StarKind.COMMAND)


def _esc_gs_display(raw: bytes, pos: int) -> StarToken | None:
    if pos + 4 > len(raw):
        return None
    if raw[pos + 3] != ord("@"):
        return StarToken(StarKind.COMMAND, pos, pos + 4)
    if pos + 6 > len(raw):
        return None
    return _fixed(raw, pos, 6 + raw[pos + 4] + 256 * raw[pos + 5], StarKind.COMMAND)


def _to_terminator(raw: bytes, pos: int, terminator: bytes) -> StarToken | None:
    limit = pos + 2 + _MAX_DIGITS + len(terminator)
    found = raw.find(terminator, pos + 2, limit)
    if found >= 0:
        return StarToken(StarKind.COMMAND, pos, found + len(terminator))
    if len(raw) < limit:
        return None
    return StarToken(StarKind.IGNORED, pos, pos + 2)


def _esc_star(raw: bytes, pos: int) -> StarToken | None:
    """ESC * r x [n.. NUL]: raster mode commands."""
    if pos + 3 > len(raw):
        return None
    if raw[pos + 2] != ord("r"):
        return StarToken(StarKind.IGNORED, pos, pos + 2)
    if pos + 4 > len(raw):
        return None
    letter = raw[pos + 3]
    fixed = _RASTER_FIXED.get(letter)
    if fixed is not None:
        return StarToken(fixed, pos, pos + 4)
    if letter == ord("m"):  # ESC * r m l n NUL / ESC * r m r n NUL
        if pos + 5 > len(raw):
            return None
        return _numeric(raw, pos, pos + 5, StarKind.MARGIN, chr(raw[pos + 4]))
    kind = StarKind.MOVE if letter == ord("Y") else StarKind.SETTING
    return _numeric(raw, pos, pos + 4, kind, chr(letter))


def _numeric(raw: bytes, pos: int, digits_at: int, kind: StarKind, name: str) -> StarToken | None:
    nul = raw.find(b"\x00", digits_at, digits_at + _MAX_DIGITS + 1)
    if nul < 0:
        if len(raw) <= digits_at + _MAX_DIGITS:
            return None
        return StarToken(StarKind.IGNORED, pos, digits_at)
    digits = raw[digits_at:nul]
    # Some senders write the value as a binary 0 (``ESC * r P NUL NUL``): read empty as 0.
    value = int(digits) if digits.isdigit() else (0 if not digits else -1)
    return StarToken(kind, pos, nul + 1, name=name, value=value)


@dataclass(frozen=True)
class StarPage:
    """One printed ticket: its dot rows (packed, 1 = black, short rows are white on the right)
    and how many received bytes the printer ignored."""

    rows: tuple[bytes, ...]
    ignored: int


@dataclass
class StarPaper:
    """The printer's raster state, fed one token at a time; collects each ticket's rows.

    :meth:`apply` returns True when the token completed a ticket; :meth:`take` then hands it
    over. State (raster mode, margins, modes) carries on to the next ticket, as on a printer.
    """

    width: int
    raster: bool = False
    rows: list[bytes] = field(default_factory=list)
    ignored: int = 0
    _current: bytes | None = None
    _printed: int = 0  # rows of this ticket already printed by a form feed that did not cut
    _left: int = 0
    _right: int = 0
    _eot_mode: int = _DEFAULT_MODE
    _ff_mode: int = _DEFAULT_MODE

    def __post_init__(self) -> None:
        self._row_bytes = row_bytes(self.width)

    @property
    def has_paper(self) -> bool:
        """Whether this ticket has any rows, printed or still in the image buffer."""
        return bool(self.rows) or self._current is not None

    @property
    def buffered(self) -> bool:
        """Whether the image buffer holds data (rows or moves not printed yet)."""
        return len(self.rows) > self._printed or self._current is not None

    def apply(self, token: StarToken) -> bool:
        kind = token.kind
        if kind is StarKind.IGNORED:
            self.ignored += token.end - token.start
        elif kind in _RASTER_ONLY and not self.raster:
            pass  # prohibited outside raster mode; a graphics-only printer prints nothing
        elif kind in (StarKind.ROW, StarKind.ROW_NO_FEED):
            self._put(token.payload, feed=kind is StarKind.ROW)
        elif kind is StarKind.MOVE:
            self._move(min(max(token.value, 0), MAX_MOVE))
        elif kind in (StarKind.SETTING, StarKind.MARGIN):
            self._set(token)
        elif kind in (StarKind.INIT_RASTER, StarKind.ENTER_RASTER):
            self._enter(kind)
        elif kind is StarKind.CLEAR_RASTER:
            self._clear()
        else:
            return self._execute(kind)
        return False

    def take(self) -> StarPage:
        """The ticket so far; the next one starts empty."""
        self._flush_current()
        page = StarPage(tuple(self.rows), self.ignored)
        self.rows = []
        self.ignored = 0
        self._printed = 0
        return page

    def _execute(self, kind: StarKind) -> bool:
        if kind is StarKind.QUIT_RASTER:
            was_raster, self.raster = self.raster, False
            return was_raster and self.buffered
        if kind not in (StarKind.EXECUTE_EOT, StarKind.EXECUTE_EM, StarKind.EXECUTE_FF):
            return False
        if not self.buffered:
            return False  # the spec ignores an execute with an empty image buffer
        if kind is StarKind.EXECUTE_FF and self._ff_mode not in _CUTTING_MODES:
            self._flush_current()
            self._printed = len(self.rows)
            return False
        return True

    def _put(self, payload: bytes, *, feed: bool) -> None:
        area = self._row_bytes - self._left - self._right
        row = bytes(self._left) + payload[:area]
        if self._current is not None:
            row = _or_rows(self._current, row)
        if feed:
            self._current = None
            self._append([row])
        else:
            self._current = row

    def _move(self, dots: int) -> None:
        if dots <= 0:
            return
        first = self._current if self._current is not None else b""
        self._current = None
        self._append([first] + [b""] * min(dots - 1, MAX_TICKET_ROWS))

    def _append(self, rows: list[bytes]) -> None:
        room = MAX_TICKET_ROWS - len(self.rows)
        self.rows.extend(rows[:room] if room < len(rows) else rows)

    def _flush_current(self) -> None:
        if self._current is not None:
            self._append([self._current])
            self._current = None

    def _set(self, token: StarToken) -> None:
        if self.buffered or token.value < 0:
            return
        if token.kind is StarKind.MARGIN:
            self._set_margin(token.name, token.value)
        elif token.name == "E":
            self._eot_mode = token.value
        elif token.name == "F":
            self._ff_mode = token.value

    def _set_margin(self, side: str, value: int) -> None:
        if side not in ("l", "r"):
            return
        left, right = (value, self._right) if side == "l" else (self._left, value)
        # The spec ignores a margin that leaves no print area.
        if left + right < self._row_bytes:
            self._left, self._right = left, right

    def _enter(self, kind: StarKind) -> None:
        if kind is StarKind.ENTER_RASTER and self.raster:
            return  # ignored in raster mode
        self._clear()
        self._left = self._right = 0
        self._eot_mode = self._ff_mode = _DEFAULT_MODE
        if kind is StarKind.ENTER_RASTER:
            self.raster = True

    def _clear(self) -> None:
        del self.rows[self._printed :]
        self._current = None


def _or_rows(first: bytes, second: bytes) -> bytes:
    size = max(len(first), len(second))
    merged = int.from_bytes(first.ljust(size, b"\x00")) | int.from_bytes(
        second.ljust(size, b"\x00")
    )
    return merged.to_bytes(size)


def split_star_tickets(data: bytes, width: int = 576) -> tuple[list[bytes], bytes]:
    """Split a stream into complete tickets and the rest.

    A ticket ends right after the command that ended its paper (``ESC FF EOT``, a cutting
    ``ESC FF NUL``, ``ESC FF EM``, or ``ESC * r B`` with rows left), or after the ``ESC * r B``
    that directly follows such an execute command, since that quit ends the same job.
    ``b"".join(tickets) + remainder == data`` always holds.
    """
    raw = bytes(data)
    paper = StarPaper(width)
    tickets: list[bytes] = []
    start = 0
    held_end: int | None = None  # the paper ended here; a quit may still join the ticket
    for token in tokenize_star(raw):
        if token.kind is StarKind.INCOMPLETE:
            break
        completes = paper.apply(token)
        if held_end is not None:
            end = token.end if ends_job(token) else held_end
            tickets.append(raw[start:end])
            start, held_end = end, None
            if end == token.end:
                continue
        if completes:
            paper.take()
            if ends_job(token):
                tickets.append(raw[start : token.end])
                start = token.end
            else:
                held_end = token.end
    if held_end is not None:
        tickets.append(raw[start:held_end])
        start = held_end
    return tickets, raw[start:]


def ends_job(token: StarToken) -> bool:
    """Whether ``token`` ends a raster job (``ESC * r B``), so nothing after it joins it."""
    return token.kind is StarKind.QUIT_RASTER


def decode_star_raster(data: bytes, width: int = 576) -> Image.Image | None:
    """The paper a ``width``-dot graphics-only Star printer prints for ``data``, all tickets
    one after the other (without the feed and cut), or None when it prints nothing."""
    raw = bytes(data)
    paper = StarPaper(width)
    rows: list[bytes] = []
    for token in tokenize_star(raw):
        if token.kind is StarKind.INCOMPLETE:
            break
        if paper.apply(token):
            rows.extend(paper.take().rows)
    rows.extend(paper.take().rows)
    return rows_image(rows, width) if rows else None
