"""Drawing laid-out lines into a 1-bit ticket bitmap with a CJK font.

Characters sit on a fixed grid: a half-width cell is 12 dots wide at scale 1 and a wide (CJK)
character takes two, whatever the font's own advance widths, so columns line up with any font.
Pillow draws each glyph once per (character, scale, bold); after that a ticket is assembled as
a numpy boolean array (True = ink) word by word, and packed into printer rows in one call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import segno
from PIL import Image, ImageDraw

from spoonprint.render.bitimage import Bitmap, Ink
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import Laid, Line, QRLine, char_width

CELL_WIDTH = 12
FONT_PX = 24
LINE_HEIGHT = 30  # 24-dot glyphs plus 6 dots of spacing, like a printer's own font A
QR_MODULE = 6  # dots per QR module: about 0.75 mm at 203 dpi, easy for phone cameras
QUIET_MODULES = 2
_WORDS = re.compile(r" +|[^ ]+")


def render_bitmap(lines: Sequence[Laid], width: int, typeface: Typeface) -> Bitmap:
    """The whole ticket, ``width`` dots wide."""
    heights = [_height(line, width) for line in lines]
    ink = np.zeros((max(sum(heights), 1), width), dtype=np.bool_)
    y = 0
    for line, height in zip(lines, heights, strict=True):
        if isinstance(line, Line):
            _paint(ink, y, line.text, typeface, line.bold, line.scale)
        elif isinstance(line, QRLine):
            ink[y : y + height] = _qr(line.data, width)
        y += height
    return Bitmap(ink)


def line_bitmap(
    text: str, width: int, typeface: Typeface, *, bold: bool = False, scale: int = 1
) -> Bitmap:
    """One line of text, ``LINE_HEIGHT * scale`` dots tall."""
    ink = np.zeros((LINE_HEIGHT * scale, width), dtype=np.bool_)
    _paint(ink, 0, text, typeface, bold, scale)
    return Bitmap(ink)


def qr_bitmap(data: str, width: int) -> Bitmap:
    return Bitmap(_qr(data, width))


def draw(lines: Sequence[Laid], width: int, typeface: Typeface) -> Image.Image:
    """The whole ticket as a Pillow mode "1" image (for previews and tests)."""
    return render_bitmap(lines, width, typeface).image()


def draw_text_line(
    text: str, width: int, typeface: Typeface, *, bold: bool = False, scale: int = 1
) -> Image.Image:
    """One line of text as a Pillow mode "1" image."""
    return line_bitmap(text, width, typeface, bold=bold, scale=scale).image()


def qr_image(data: str, width: int) -> Image.Image:
    """A QR code band as a Pillow mode "1" image."""
    return qr_bitmap(data, width).image()


def _height(line: Laid, width: int) -> int:
    if isinstance(line, Line):
        return LINE_HEIGHT * line.scale
    if isinstance(line, QRLine):
        return int(_qr(line.data, width).shape[0])
    return LINE_HEIGHT * line.lines


def _paint(ink: Ink, y: int, text: str, typeface: Typeface, bold: bool, scale: int) -> None:
    """OR the line's words into ``ink`` at their grid positions; past the edge is cut off."""
    width = ink.shape[1]
    x = 0
    for word in _WORDS.findall(text):
        if word.isspace():
            x += len(word) * CELL_WIDTH * scale
            continue
        if x >= width:
            break
        glyphs = _word(typeface, word, scale, bold)
        span = min(glyphs.shape[1], width - x)
        ink[y : y + glyphs.shape[0], x : x + span] |= glyphs[:, :span]
        x += glyphs.shape[1]


@lru_cache(maxsize=16384)
def _word(typeface: Typeface, word: str, scale: int, bold: bool) -> Ink:
    """A run of characters side by side: words recur (dish names, rules, labels), and one array
    operation per word instead of one per character is most of the drawing time saved."""
    return np.hstack([_glyph(typeface, char, scale, bold) for char in word])


@lru_cache(maxsize=8192)
def _glyph(typeface: Typeface, char: str, scale: int, bold: bool) -> Ink:
    """One character in its grid cell(s), thresholded from an anti-aliased rendering."""
    cells = char_width(char) or 1
    cell = (cells * CELL_WIDTH * scale, LINE_HEIGHT * scale)
    grey = Image.new("L", cell, 0)
    # Baseline so that ideographs (0.88 em above it) sit centred in the 30-dot line.
    baseline = round((LINE_HEIGHT - FONT_PX) / 2 * scale + 0.88 * FONT_PX * scale)
    font = typeface.font(FONT_PX * scale)
    ImageDraw.Draw(grey).text((cell[0] // 2, baseline), char, font=font, fill=255, anchor="ms")
    ink = np.asarray(grey) >= 128
    if bold:  # one dot wider to the right, as printers embolden
        ink = ink | np.pad(ink, ((0, 0), (1, 0)))[:, :-1]
    ink.setflags(write=False)
    return ink


@lru_cache(maxsize=64)
def _qr(data: str, width: int) -> Ink:
    """A QR code (error correction M) centred in a white band with a quiet zone."""
    matrix = np.array(segno.make_qr(data, error="m", boost_error=False).matrix, dtype=np.bool_)
    size = matrix.shape[0]
    module = max(min(QR_MODULE, width // (size + 2 * QUIET_MODULES)), 1)
    symbol = np.kron(matrix, np.ones((module, module), dtype=np.bool_))
    margin = QUIET_MODULES * module
    band = np.zeros((symbol.shape[0] + 2 * margin, width), dtype=np.bool_)
    left = (width - symbol.shape[1]) // 2
    band[margin : margin + symbol.shape[0], left : left + symbol.shape[1]] = symbol
    band.setflags(write=False)
    return band
