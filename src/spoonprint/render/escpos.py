"""ESC/POS text-mode renderer: initialise, styled text lines, feed, cut.

Byte facts (see PROTOCOLS.md): ESC @ initialise, ESC E n bold, ESC a n alignment, GS ! n size,
ESC d n feed, GS V 66 0 feed-and-cut, FS & / FS . double-byte (Chinese) mode on / off.
"""

from __future__ import annotations

import codecs

from spoonprint.domain.document import Align, Document, Line
from spoonprint.domain.profile import PrinterProfile

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"

INIT = ESC + b"@"
CUT = GS + b"V\x42\x00"
CJK_ON = FS + b"&"
CJK_OFF = FS + b"."
_ALIGN = {Align.LEFT: 0, Align.CENTER: 1, Align.RIGHT: 2}
#: Encodings whose printers read non-ASCII bytes only in FS & double-byte mode.
_DOUBLE_BYTE = frozenset({"big5", "big5hkscs", "gb18030", "gbk", "gb2312"})


def render_escpos_text(document: Document, profile: PrinterProfile, copies: int = 1) -> bytes:
    """The bytes of ``copies`` identical tickets, each ending with a cut."""
    ticket = _ticket(document, profile)
    return ticket * copies


def _ticket(document: Document, profile: PrinterProfile) -> bytes:
    out = bytearray(INIT)
    for banner in document.banners:
        out += _line(Line(banner, bold=True, align=Align.CENTER, large=True), profile)
    for line in document.lines:
        out += _line(line, profile)
    out += ESC + b"d" + bytes([profile.feed_lines])
    if profile.cut:
        out += CUT
    return bytes(out)


def _line(line: Line, profile: PrinterProfile) -> bytes:
    out = bytearray()
    out += ESC + b"a" + bytes([_ALIGN[line.align]])
    if line.bold:
        out += ESC + b"E\x01"
    if line.large:
        out += GS + b"!\x11"
    out += _encode(line.text, profile.text_encoding)
    if line.large:
        out += GS + b"!\x00"
    if line.bold:
        out += ESC + b"E\x00"
    out += b"\n"
    return bytes(out)


def _encode(text: str, encoding: str) -> bytes:
    # Control characters in order text must never reach the printer as commands.
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    data = clean.encode(encoding, errors="replace")
    if codecs.lookup(encoding).name in _DOUBLE_BYTE and not clean.isascii():
        return CJK_ON + data + CJK_OFF
    return data
