"""ESC/POS renderers: text mode (with raster bands for what the printer font cannot print) and
whole-ticket raster.

Byte facts (PROTOCOLS.md): ESC @ initialise, ESC t n code page, ESC E n bold, GS ! n size,
FS & / FS . double-byte (Chinese) mode on / off, ESC d n feed, GS V 66 0 feed and cut,
ESC p m t1 t2 drawer pulse, GS ( k QR code, GS v 0 raster.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile
from spoonprint.render.escpos_raster import gs_v0_bands
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import (
    FeedLine,
    Laid,
    Line,
    QRLine,
    encode_for_printer_font,
    layout,
)
from spoonprint.render.raster import line_bitmap, qr_bitmap, render_bitmap

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"

INIT = ESC + b"@"
CUT = GS + b"V\x42\x00"
CJK_ON = FS + b"&"
CJK_OFF = FS + b"."
DRAWER = ESC + b"p\x00\x19\xfa"  # pin 2, 50 ms on, 500 ms off
#: Encodings whose printers read non-ASCII bytes only in FS & double-byte mode.
DOUBLE_BYTE = frozenset({"big5", "big5hkscs", "gb18030", "gbk", "gb2312"})
#: ESC t n for single-byte code pages (Epson's numbering).
CODE_PAGES = {
    "cp437": 0, "cp850": 2, "cp860": 3, "cp863": 4, "cp865": 5,
    "cp1252": 16, "cp866": 17, "cp852": 18, "cp858": 19,
}  # fmt: skip


def render_escpos_text(
    document: Document, profile: PrinterProfile, typeface: Typeface, copies: int = 1
) -> bytes:
    """Text mode: fast and crisp in the printer's font; any line the configured encoding cannot
    hold (or any non-ASCII line with ``chinese = "raster"``) goes as a raster band instead,
    never as ``?``."""
    body = b"".join(
        _text_part(line, profile, typeface) for line in layout(document, profile.columns)
    )
    return _ticket(_start(profile) + body, profile) * copies


def render_escpos_raster(
    document: Document, profile: PrinterProfile, typeface: Typeface, copies: int = 1
) -> bytes:
    """The whole ticket as one image in GS v 0 bands."""
    bitmap = render_bitmap(layout(document, profile.columns), profile.width_dots, typeface)
    return _ticket(INIT + gs_v0_bands(bitmap), profile) * copies


def _start(profile: PrinterProfile) -> bytes:
    page = CODE_PAGES.get(codecs.lookup(profile.text_encoding).name)
    return INIT + (ESC + b"t" + bytes([page]) if page is not None else b"")


def _ticket(body: bytes, profile: PrinterProfile) -> bytes:
    end = ESC + b"d" + bytes([profile.feed_lines])
    if profile.drawer:
        end += DRAWER
    if profile.cut:
        end += CUT
    return body + end


def _text_part(line: Laid, profile: PrinterProfile, typeface: Typeface) -> bytes:
    if isinstance(line, FeedLine):
        return ESC + b"d" + bytes([min(line.lines, 255)])
    if isinstance(line, QRLine):
        return _qr(line.data, profile)
    encoded = _encode(line, profile)
    if encoded is None:
        bitmap = line_bitmap(
            line.text, profile.width_dots, typeface, bold=line.bold, scale=line.scale
        )
        return gs_v0_bands(bitmap)
    return b"".join(_styled(line, encoded))


def _styled(line: Line, encoded: bytes) -> Iterator[bytes]:
    if line.bold:
        yield ESC + b"E\x01"
    if line.scale > 1:
        times = min(line.scale, 8) - 1  # GS ! n: width times in the high nibble, height in the low
        yield GS + b"!" + bytes([times << 4 | times])
    yield encoded
    if line.scale > 1:
        yield GS + b"!\x00"
    if line.bold:
        yield ESC + b"E\x00"
    yield b"\n"


def _encode(line: Line, profile: PrinterProfile) -> bytes | None:
    """The line's bytes, in FS & double-byte mode when it needs it; None: draw it instead."""
    data = encode_for_printer_font(line, profile)
    if data is None or data.isascii():
        return data
    if codecs.lookup(profile.text_encoding).name in DOUBLE_BYTE:
        return CJK_ON + data + CJK_OFF
    return data


def _qr(data: str, profile: PrinterProfile) -> bytes:
    payload = data.encode("utf-8")
    if len(payload) > 700:  # beyond what the store command reliably takes: draw it instead
        return gs_v0_bands(qr_bitmap(data, profile.width_dots))
    store = len(payload) + 3
    return b"".join(
        [
            ESC + b"a\x01",  # centre
            GS + b"(k\x04\x00\x31\x41\x32\x00",  # model 2
            GS + b"(k\x03\x00\x31\x43\x06",  # module size 6 dots
            GS + b"(k\x03\x00\x31\x45\x31",  # error correction M
            GS + b"(k" + bytes([store & 0xFF, store >> 8]) + b"\x31\x50\x30" + payload,
            GS + b"(k\x03\x00\x31\x51\x30",  # print the stored symbol
            b"\n",
            ESC + b"a\x00",
        ]
    )
