"""Drawing laid-out lines into a 1-bit ticket bitmap with a CJK font.

Characters sit on a fixed grid: a half-width cell is 12 dots wide at scale 1 and a wide (CJK)
character takes two, whatever the font's own advance widths, so columns line up with any font.
Pillow draws each glyph once per (character, scale, bold) and packs each word once into printer
bytes; after that a ticket is assembled from packed words, straight into printer raster rows.

Why words can be pasted as whole bytes: a word is packed with as many blank dots in front as
its position is past a byte boundary, and words on a line are separated by at least one blank
cell (12 dots or more), so two words never share a byte and pasting a word's bytes over blank
paper is the same as drawing its dots. Cells are ``12 * scale`` dots wide, so words start on a
byte or a half byte: each word is packed in at most two ways.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw

from spoonprint.render.bitimage import Bitmap
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import Laid, Line, QRLine, char_width

CELL_WIDTH = 12
FONT_PX = 24
LINE_HEIGHT = 30  # 24-dot glyphs plus 6 dots of spacing, like a printer's own font A
QR_MODULE = 6  # dots per QR module: about 0.75 mm at 203 dpi, easy for phone cameras
QUIET_MODULES = 2
_WORDS = re.compile(r" +|[^ ]+")
# Pillow raw mode packing a mode "1" image with 255 = ink as printer rows (bit 1 = ink, MSB
# first): the glyphs here are drawn white on black, so no inversion is needed.
_INK_PACKING = "1"
# segno's matrix holds 1 for a dark module: make that 255, ink in the band's sense.
_DARK_MODULES = bytes([0, 255]) + bytes(254)


def render_bitmap(lines: Sequence[Laid], width: int, typeface: Typeface) -> Bitmap:
    """The whole ticket, ``width`` dots wide."""
    heights = [_height(line, width) for line in lines]
    # One pixel per printer byte: pasting packed words and bands here builds the raster rows.
    paper = Image.new("L", (_stride(width), max(sum(heights), 1)), 0)
    y = 0
    for line, height in zip(lines, heights, strict=True):
        if isinstance(line, Line):
            _paint(paper, y, width, line.text, typeface, line.bold, line.scale)
        elif isinstance(line, QRLine):
            paper.paste(_qr(line.data, width), (0, y))
        y += height
    return Bitmap(width, paper.height, paper.tobytes())


def line_bitmap(
    text: str, width: int, typeface: Typeface, *, bold: bool = False, scale: int = 1
) -> Bitmap:
    """One line of text, ``LINE_HEIGHT * scale`` dots tall."""
    paper = Image.new("L", (_stride(width), LINE_HEIGHT * scale), 0)
    _paint(paper, 0, width, text, typeface, bold, scale)
    return Bitmap(width, paper.height, paper.tobytes())


def qr_bitmap(data: str, width: int) -> Bitmap:
    band = _qr(data, width)
    return Bitmap(width, band.height, band.tobytes())


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


def _stride(width: int) -> int:
    """Bytes per packed row (a width that is not a multiple of 8 ends in a padded byte)."""
    return (width + 7) // 8


def _height(line: Laid, width: int) -> int:
    if isinstance(line, Line):
        return LINE_HEIGHT * line.scale
    if isinstance(line, QRLine):
        return _qr(line.data, width).height
    return LINE_HEIGHT * line.lines


def _paint(
    paper: Image.Image, y: int, width: int, text: str, typeface: Typeface, bold: bool, scale: int
) -> None:
    """Paste the line's packed words at their grid positions; past the paper's edge is cut off
    (Pillow clips the paste at the last byte, which is the edge when ``width`` is a multiple
    of 8; otherwise the extra dots land in row padding, which no reader of the rows looks at)."""
    x = 0
    for word in _WORDS.findall(text):
        if word.isspace():
            x += len(word) * CELL_WIDTH * scale
            continue
        if x >= width:
            break
        packed, dots = _packed_word(typeface, word, scale, bold, x % 8)
        paper.paste(packed, (x // 8, y))
        x += dots


# About 2 KB a word: 2,048 words (a menu's dish names, labels and rules many times over) stay
# within 4 MB of the server's memory, however many different notes come in.
@lru_cache(maxsize=2048)
def _packed_word(
    typeface: Typeface, word: str, scale: int, bold: bool, shift: int
) -> tuple[Image.Image, int]:
    """A run of characters side by side, packed as printer bytes after ``shift`` blank dots
    (0 or 4), and its width in dots. Words recur (dish names, rules, labels): one paste per
    word instead of one per character is most of the drawing time saved."""
    glyphs = [_glyph(typeface, char, scale, bold) for char in word]
    dots = sum(glyph.width for glyph in glyphs)
    row = Image.new("1", (shift + dots, LINE_HEIGHT * scale), 0)
    x = shift
    for glyph in glyphs:
        row.paste(glyph, (x, 0))
        x += glyph.width
    packed = row.tobytes("raw", _INK_PACKING)
    return Image.frombytes("L", (_stride(row.width), row.height), packed), dots


@lru_cache(maxsize=8192)
def _glyph(typeface: Typeface, char: str, scale: int, bold: bool) -> Image.Image:
    """One character in its grid cell(s), thresholded from an anti-aliased rendering: a mode "1"
    image with 255 where a dot prints."""
    cells = char_width(char) or 1
    cell = (cells * CELL_WIDTH * scale, LINE_HEIGHT * scale)
    grey = Image.new("L", cell, 0)
    # Baseline so that ideographs (0.88 em above it) sit centred in the 30-dot line.
    baseline = round((LINE_HEIGHT - FONT_PX) / 2 * scale + 0.88 * FONT_PX * scale)
    font = typeface.font(FONT_PX * scale)
    ImageDraw.Draw(grey).text((cell[0] // 2, baseline), char, font=font, fill=255, anchor="ms")
    # Without dithering Pillow's L -> 1 conversion is the threshold "value >= 128".
    ink = grey.convert("1", dither=Image.Dither.NONE)
    if bold:  # one dot wider to the right, as printers embolden (clipped at the cell's edge)
        ink.paste(255, (1, 0), ink.copy())
    return ink


@lru_cache(maxsize=64)
def _qr(data: str, width: int) -> Image.Image:
    """A QR code (error correction M) centred in a white band with a quiet zone, packed: one
    "L" pixel per printer byte."""
    import segno  # here: start-up does not pay for it (13 ms, 1.2 MB) until a QR code prints

    matrix = segno.make_qr(data, error="m", boost_error=False).matrix
    size = len(matrix)
    module = max(min(QR_MODULE, width // (size + 2 * QUIET_MODULES)), 1)
    if size * module > width:
        raise ValueError(f"a {size}-module QR code does not fit on {width}-dot paper")
    modules = b"".join(matrix).translate(_DARK_MODULES)
    symbol = Image.frombytes("L", (size, size), modules).resize(
        (size * module, size * module), Image.Resampling.NEAREST
    )
    margin = QUIET_MODULES * module
    band = Image.new("1", (width, symbol.height + 2 * margin), 0)
    band.paste(symbol.convert("1", dither=Image.Dither.NONE), ((width - symbol.width) // 2, margin))
    return Image.frombytes("L", (_stride(width), band.height), band.tobytes("raw", _INK_PACKING))
