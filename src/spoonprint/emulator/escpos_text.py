"""Readable text rendering of ESC/POS byte streams, and splitting of streams into tickets.

Pure functions, no I/O. One tokenizer (:func:`tokenize`) walks the stream and knows the length of
every command it understands, so :func:`decode_escpos` and :func:`split_tickets` agree on where
commands start and end: the bytes ``1D 56 00`` inside a raster image or a ``GS ( k`` payload are
image or QR data, never a cut.

Cuts, where :func:`split_tickets` ends a ticket: ``GS V m`` (m = 0, 1, 48, 49), ``GS V m n``
(m = 65, 66, 97, 98, 103, 104) and the older one-byte partial cuts ``ESC i`` and ``ESC m``.

Rendering rules of :func:`decode_escpos`:

* text outside double-byte mode is decoded with ``encoding`` (default cp437); between ``FS &``
  and ``FS .`` it is decoded with ``cjk_encoding`` (default big5hkscs), which also decodes ASCII.
  Bytes that do not decode become U+FFFD; decoding never raises.
* ``LF`` is a newline, ``ESC d n`` is ``n`` newlines, ``ESC J n`` (print and feed dots) is one
  newline, ``HT`` is a tab; ``CR`` and other stray C0 control bytes are dropped.
* ``GS v 0`` raster images render as a line ``[raster WxH]`` (W in dots, i.e. 8 x the byte width,
  H in rows); the QR store function ``GS ( k`` cn=49 fn=80 renders as ``[QR: data]`` (data read
  as UTF-8, which is what phones assume when scanning); ``GS k`` barcodes as ``[barcode: data]``.
* Formatting (bold, underline, size, alignment, code page ``ESC t``), cuts, drawer kicks and
  real-time commands (``DLE EOT``, ``DLE ENQ``, ``DLE DC4``) produce no text.
* A command cut short by the end of the data is dropped silently.

Unknown ``ESC``/``GS``/``FS`` sequences are skipped as the prefix, the command byte and one more
byte, because most ESC/POS commands take exactly one parameter byte; a command that really takes
more leaks its extra parameter bytes into the text, which is the least harmful guess.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "Kind",
    "Token",
    "decode_escpos",
    "has_printable_content",
    "split_tickets",
    "tokenize",
]

ESC = 0x1B
GS = 0x1D
FS = 0x1C
DLE = 0x10
LF = 0x0A
HT = 0x09

_TEXT_RUN = re.compile(rb"[\x20-\xff]+")

# A user-defined 24x24 Kanji glyph (FS 2 c1 c2) is always 72 bytes.
_FS_2_GLYPH_BYTES = 72
# GS k barcodes of function A end with NUL; cap the scan so a lost NUL cannot swallow a ticket.
_MAX_BARCODE_A_BYTES = 255
_MAX_TAB_STOPS = 32


class Kind(enum.Enum):
    """What a token is, as far as rendering and ticket splitting care."""

    TEXT = enum.auto()
    NEWLINE = enum.auto()
    FEED = enum.auto()
    TAB = enum.auto()
    INIT = enum.auto()
    CUT = enum.auto()
    STATUS_REQUEST = enum.auto()
    REALTIME = enum.auto()
    RASTER = enum.auto()
    QR = enum.auto()
    BARCODE = enum.auto()
    DOUBLE_BYTE_ON = enum.auto()
    DOUBLE_BYTE_OFF = enum.auto()
    COMMAND = enum.auto()
    CONTROL = enum.auto()
    INCOMPLETE = enum.auto()


@dataclass(frozen=True, slots=True)
class Token:
    """A run of text or one command, as the byte range ``data[start:end]``.

    ``args`` holds the numbers a consumer needs: lines for FEED, ``(n,)`` or ``(n, a)`` for
    STATUS_REQUEST, ``(width_dots, height)`` for RASTER. ``payload`` holds QR and barcode data.
    An INCOMPLETE token covers a command that the data ends in the middle of.
    """

    kind: Kind
    start: int
    end: int
    args: tuple[int, ...] = ()
    payload: bytes = b""


_Parser = Callable[[bytes, int], Token | None]


def _fixed(kind: Kind, params: int) -> _Parser:
    """Parser for a prefix + command byte followed by a fixed number of parameter bytes."""

    def parse(data: bytes, pos: int) -> Token | None:
        end = pos + 2 + params
        return Token(kind, pos, end) if end <= len(data) else None

    return parse


def _u16(data: bytes, pos: int) -> int:
    return data[pos] + 256 * data[pos + 1]


def _unknown(data: bytes, pos: int) -> Token | None:
    return _fixed(Kind.COMMAND, 1)(data, pos)


def _esc_feed(data: bytes, pos: int) -> Token | None:
    if pos + 3 > len(data):
        return None
    return Token(Kind.FEED, pos, pos + 3, (data[pos + 2],))


def _esc_feed_dots(data: bytes, pos: int) -> Token | None:
    # ESC J prints the line buffer, so the rendering ends the line once, whatever the dot count.
    return Token(Kind.FEED, pos, pos + 3, (1,)) if pos + 3 <= len(data) else None


def _esc_tabs(data: bytes, pos: int) -> Token | None:
    limit = pos + 2 + _MAX_TAB_STOPS
    nul = data.find(b"\x00", pos + 2, limit + 1)
    if nul >= 0:
        return Token(Kind.COMMAND, pos, nul + 1)
    if len(data) <= limit:
        return None
    return Token(Kind.COMMAND, pos, limit)


def _esc_bit_image(data: bytes, pos: int) -> Token | None:
    if pos + 5 > len(data):
        return None
    mode = data[pos + 2]
    columns = _u16(data, pos + 3)
    if mode in (0, 1):
        end = pos + 5 + columns
    elif mode in (32, 33):
        end = pos + 5 + 3 * columns
    else:
        return _unknown(data, pos)
    return Token(Kind.COMMAND, pos, end) if end <= len(data) else None


def _esc_user_chars(data: bytes, pos: int) -> Token | None:
    """ESC & y c1 c2 followed by, per character, a width x and y*x bytes."""
    if pos + 5 > len(data):
        return None
    height, first, last = data[pos + 2], data[pos + 3], data[pos + 4]
    cursor = pos + 5
    for _ in range(max(0, last - first + 1)):
        if cursor >= len(data):
            return None
        cursor += 1 + height * data[cursor]
    return Token(Kind.COMMAND, pos, cursor) if cursor <= len(data) else None


def _length_prefixed(data: bytes, pos: int) -> Token | None:
    """ESC ( / GS ( / FS ( fn pL pH + (pL + 256 pH) bytes; GS ( k cn=49 fn=80 stores a QR."""
    if pos + 5 > len(data):
        return None
    end = pos + 5 + _u16(data, pos + 3)
    if end > len(data):
        return None
    body = data[pos + 5 : end]
    is_qr_store = data[pos] == GS and data[pos + 2] == ord("k") and body[:2] == b"\x31\x50"
    if is_qr_store:
        return Token(Kind.QR, pos, end, payload=bytes(body[3:]))
    return Token(Kind.COMMAND, pos, end)


def _gs_cut(data: bytes, pos: int) -> Token | None:
    if pos + 3 > len(data):
        return None
    mode = data[pos + 2]
    if mode in (0, 1, 48, 49):
        return Token(Kind.CUT, pos, pos + 3)
    if mode in (65, 66, 97, 98, 103, 104):
        return Token(Kind.CUT, pos, pos + 4) if pos + 4 <= len(data) else None
    return Token(Kind.COMMAND, pos, pos + 3)


def _gs_raster(data: bytes, pos: int) -> Token | None:
    """GS v 0 m xL xH yL yH + (x * y) bytes, x counted in bytes of 8 dots."""
    if pos + 3 > len(data):
        return None
    if data[pos + 2] != ord("0"):
        return _unknown(data, pos)
    if pos + 8 > len(data):
        return None
    width_bytes, height = _u16(data, pos + 4), _u16(data, pos + 6)
    end = pos + 8 + width_bytes * height
    if end > len(data):
        return None
    return Token(Kind.RASTER, pos, end, (8 * width_bytes, height))


def _gs_8(data: bytes, pos: int) -> Token | None:
    """GS 8 L p1 p2 p3 p4 + (p1 + p2<<8 + p3<<16 + p4<<24) bytes."""
    if pos + 3 > len(data):
        return None
    if data[pos + 2] != ord("L"):
        return _unknown(data, pos)
    if pos + 7 > len(data):
        return None
    end = pos + 7 + int.from_bytes(data[pos + 3 : pos + 7], "little")
    return Token(Kind.COMMAND, pos, end) if end <= len(data) else None


def _gs_download_image(data: bytes, pos: int) -> Token | None:
    if pos + 4 > len(data):
        return None
    end = pos + 4 + data[pos + 2] * data[pos + 3] * 8
    return Token(Kind.COMMAND, pos, end) if end <= len(data) else None


def _gs_barcode(data: bytes, pos: int) -> Token | None:
    if pos + 3 > len(data):
        return None
    system = data[pos + 2]
    if system <= 6:
        limit = pos + 3 + _MAX_BARCODE_A_BYTES
        nul = data.find(b"\x00", pos + 3, limit)
        if nul < 0 and len(data) < limit:
            return None
        stop = nul if nul >= 0 else limit
        end = stop + 1 if nul >= 0 else limit
        return Token(Kind.BARCODE, pos, end, payload=bytes(data[pos + 3 : stop]))
    if 65 <= system <= 79:
        if pos + 4 > len(data):
            return None
        end = pos + 4 + data[pos + 3]
        if end > len(data):
            return None
        return Token(Kind.BARCODE, pos, end, payload=bytes(data[pos + 4 : end]))
    return _unknown(data, pos)


def _fs_nv_images(data: bytes, pos: int) -> Token | None:
    """FS q n, then n images of xL xH yL yH + (x * y * 8) bytes."""
    if pos + 3 > len(data):
        return None
    cursor = pos + 3
    for _ in range(data[pos + 2]):
        if cursor + 4 > len(data):
            return None
        cursor += 4 + _u16(data, cursor) * _u16(data, cursor + 2) * 8
    return Token(Kind.COMMAND, pos, cursor) if cursor <= len(data) else None


_ESC_PARSERS: dict[int, _Parser] = {
    **{ord(c): _fixed(Kind.COMMAND, 0) for c in "\x0c2<LSv"},
    **{ord(c): _fixed(Kind.COMMAND, 1) for c in " !%-3=?EGKMRTUVaertu{"},
    **{ord(c): _fixed(Kind.COMMAND, 2) for c in "$\\c"},
    ord("p"): _fixed(Kind.COMMAND, 3),
    ord("W"): _fixed(Kind.COMMAND, 8),
    ord("@"): _fixed(Kind.INIT, 0),
    # ESC i / ESC m are the older one-byte partial cut commands.
    ord("i"): _fixed(Kind.CUT, 0),
    ord("m"): _fixed(Kind.CUT, 0),
    ord("d"): _esc_feed,
    ord("J"): _esc_feed_dots,
    ord("D"): _esc_tabs,
    ord("*"): _esc_bit_image,
    ord("&"): _esc_user_chars,
    ord("("): _length_prefixed,
}

_GS_PARSERS: dict[int, _Parser] = {
    ord(":"): _fixed(Kind.COMMAND, 0),
    **{ord(c): _fixed(Kind.COMMAND, 1) for c in "!/BHITabfhjrw"},
    **{ord(c): _fixed(Kind.COMMAND, 2) for c in "$LPW\\"},
    ord("^"): _fixed(Kind.COMMAND, 3),
    ord("V"): _gs_cut,
    ord("v"): _gs_raster,
    ord("("): _length_prefixed,
    ord("8"): _gs_8,
    ord("*"): _gs_download_image,
    ord("k"): _gs_barcode,
}

_FS_PARSERS: dict[int, _Parser] = {
    ord("&"): _fixed(Kind.DOUBLE_BYTE_ON, 0),
    ord("."): _fixed(Kind.DOUBLE_BYTE_OFF, 0),
    **{ord(c): _fixed(Kind.COMMAND, 1) for c in "!-CW"},
    **{ord(c): _fixed(Kind.COMMAND, 2) for c in "S?p"},
    ord("2"): _fixed(Kind.COMMAND, 2 + _FS_2_GLYPH_BYTES),
    ord("q"): _fs_nv_images,
    ord("("): _length_prefixed,
}

_PREFIX_PARSERS = {ESC: _ESC_PARSERS, GS: _GS_PARSERS, FS: _FS_PARSERS}

# Total length of DLE DC4 fn ... by fn; other fn values are taken as three bytes.
_DLE_DC4_LENGTHS = {1: 5, 2: 5, 3: 5, 7: 4, 8: 10}
# DLE EOT n for these n carries one more byte (ink, peeler, interface/DM-D status).
_DLE_EOT_WITH_EXTRA_BYTE = (7, 8, 18)


def _dle(data: bytes, pos: int) -> Token | None:
    if pos + 2 > len(data):
        return None
    command = data[pos + 1]
    if command not in (0x04, 0x05, 0x14):
        return Token(Kind.CONTROL, pos, pos + 1)
    if pos + 3 > len(data):
        return None
    fn = data[pos + 2]
    if command == 0x04:
        extra = 1 if fn in _DLE_EOT_WITH_EXTRA_BYTE else 0
        end = pos + 3 + extra
        args = tuple(data[pos + 2 : end])
        return Token(Kind.STATUS_REQUEST, pos, end, args) if end <= len(data) else None
    end = pos + (_DLE_DC4_LENGTHS.get(fn, 3) if command == 0x14 else 3)
    return Token(Kind.REALTIME, pos, end) if end <= len(data) else None


def _control(data: bytes, pos: int) -> Token | None:
    byte = data[pos]
    if byte in _PREFIX_PARSERS:
        if pos + 2 > len(data):
            return None
        parser = _PREFIX_PARSERS[byte].get(data[pos + 1], _unknown)
        return parser(data, pos)
    if byte == DLE:
        return _dle(data, pos)
    if byte == LF:
        return Token(Kind.NEWLINE, pos, pos + 1)
    if byte == HT:
        return Token(Kind.TAB, pos, pos + 1)
    return Token(Kind.CONTROL, pos, pos + 1)


def tokenize(data: bytes | bytearray, start: int = 0) -> Iterator[Token]:
    """Yield the tokens of ``data[start:]`` in order, covering every byte exactly once.

    If the data ends inside a command, the last token is INCOMPLETE and covers the rest.
    """
    raw = bytes(data)
    pos = start
    while pos < len(raw):
        text = _TEXT_RUN.match(raw, pos)
        token = Token(Kind.TEXT, pos, text.end()) if text else _control(raw, pos)
        if token is None:
            yield Token(Kind.INCOMPLETE, pos, len(raw))
            return
        yield token
        pos = token.end


_PRINTABLE_KINDS = (Kind.RASTER, Kind.QR, Kind.BARCODE)


def _render(token: Token, data: bytes, codec: str) -> str:
    match token.kind:
        case Kind.TEXT:
            return data[token.start : token.end].decode(codec, errors="replace")
        case Kind.NEWLINE:
            return "\n"
        case Kind.FEED:
            return "\n" * token.args[0]
        case Kind.TAB:
            return "\t"
        case Kind.RASTER:
            width, height = token.args
            return f"[raster {width}x{height}]\n"
        case Kind.QR:
            return f"[QR: {token.payload.decode('utf-8', errors='replace')}]\n"
        case Kind.BARCODE:
            return f"[barcode: {token.payload.decode('ascii', errors='replace')}]\n"
        case _:
            return ""


def decode_escpos(data: bytes, encoding: str = "cp437", cjk_encoding: str = "big5hkscs") -> str:
    """Render an ESC/POS byte stream as readable text (see the module docstring for the rules)."""
    raw = bytes(data)
    parts: list[str] = []
    double_byte = False
    for token in tokenize(raw):
        if token.kind is Kind.DOUBLE_BYTE_ON:
            double_byte = True
        elif token.kind is Kind.DOUBLE_BYTE_OFF:
            double_byte = False
        rendered = _render(token, raw, cjk_encoding if double_byte else encoding)
        if not rendered:
            continue
        if token.kind in _PRINTABLE_KINDS and parts and not parts[-1].endswith("\n"):
            # Images and codes print on their own lines, so keep them off the text line before.
            parts.append("\n")
        parts.append(rendered)
    return "".join(parts)


def split_tickets(data: bytes) -> tuple[list[bytes], bytes]:
    """Split a stream into complete tickets, each ending right after a cut, and the remainder.

    ``b"".join(tickets) + remainder == data`` always holds.
    """
    raw = bytes(data)
    tickets: list[bytes] = []
    ticket_start = 0
    for token in tokenize(raw):
        if token.kind is Kind.CUT:
            tickets.append(raw[ticket_start : token.end])
            ticket_start = token.end
    return tickets, raw[ticket_start:]


def has_printable_content(data: bytes) -> bool:
    """Whether the stream would put anything on paper beyond whitespace, feeds and settings."""
    raw = bytes(data)
    for token in tokenize(raw):
        if token.kind in _PRINTABLE_KINDS:
            return True
        if token.kind is Kind.TEXT and raw[token.start : token.end].strip(b" "):
            return True
    return False
