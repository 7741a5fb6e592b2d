"""Star renderers: Star Graphic Mode raster (TSP100/TSP143) and Star Line Mode text.

Line mode facts (PROTOCOLS.md): ESC @ initialise, ESC E / ESC F bold on / off, ESC i n1 n2
character height / width expansion, ESC d 3 feed and partial cut, BEL drawer 1. No command is
confirmed to select Big5 on Star (the memory switch decides), so a line the configured encoding
cannot hold goes as a raster band: ESC * r A (enter raster), rows, ESC * r B (leave raster).
"""

from __future__ import annotations

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile
from spoonprint.render.bitimage import Bitmap
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import FeedLine, Laid, QRLine, encode_for_printer_font, layout
from spoonprint.render.raster import line_bitmap, qr_bitmap, render_bitmap
from spoonprint.render.star_graphic import star_raster_job, star_raster_rows

ESC = b"\x1b"
INIT = ESC + b"@"
ENTER_RASTER = ESC + b"*rA"
LEAVE_RASTER = ESC + b"*rB"
CUT = ESC + b"d\x03"  # feed to the cutter, partial cut
DRAWER = b"\x07"


def render_star_graphic(
    document: Document, profile: PrinterProfile, typeface: Typeface, copies: int = 1
) -> bytes:
    """The whole ticket as one 1-bit image, cut at the end: all a TSP143 can print."""
    bitmap = render_bitmap(layout(document, profile.columns), profile.width_dots, typeface)
    return star_raster_job(bitmap, cut=profile.cut, drawer=profile.drawer) * copies


def render_star_line(
    document: Document, profile: PrinterProfile, typeface: Typeface, copies: int = 1
) -> bytes:
    body = b"".join(_part(line, profile, typeface) for line in layout(document, profile.columns))
    end = b"\n" * profile.feed_lines
    if profile.drawer:
        end += DRAWER
    if profile.cut:
        end += CUT
    return (INIT + body + end) * copies


def _part(line: Laid, profile: PrinterProfile, typeface: Typeface) -> bytes:
    if isinstance(line, FeedLine):
        return b"\n" * line.lines
    if isinstance(line, QRLine):
        return _band(qr_bitmap(line.data, profile.width_dots))
    encoded = encode_for_printer_font(line, profile)
    if encoded is None:
        return _band(
            line_bitmap(line.text, profile.width_dots, typeface, bold=line.bold, scale=line.scale)
        )
    times = min(line.scale, 6) - 1  # ESC i n1 n2: height and width times, 0 to 5
    size = ESC + b"i" + bytes([times, times]) if line.scale > 1 else b""
    normal = ESC + b"i\x00\x00" if line.scale > 1 else b""
    bold, plain = (ESC + b"E", ESC + b"F") if line.bold else (b"", b"")
    return bold + size + encoded + normal + plain + b"\n"


def _band(bitmap: Bitmap) -> bytes:
    return ENTER_RASTER + star_raster_rows(bitmap) + LEAVE_RASTER
