"""The raster drawing against plain references: ticket lines assembled from cached packed words
must be the picture of each glyph pasted at its grid position, and QR bands the picture of
their modules, at any alignment, scale and paper width."""

from __future__ import annotations

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from spoonprint.render.fonts import default_typeface
from spoonprint.render.raster import (
    CELL_WIDTH,
    LINE_HEIGHT,
    QR_MODULE,
    QUIET_MODULES,
    _glyph,
    draw_text_line,
    qr_image,
)

FACE = default_typeface()
# No example database: it would leave a .hypothesis folder in the project.
quick = settings(database=None, max_examples=120, deadline=None)
# Half-width letters shift the next wide character by half a byte; combining marks, emoji and
# full-width forms exercise the one- and two-cell glyphs.
CHARACTERS = "aW1 .-=叉燒飯走冰ＡＢé\u0301🍜"


def reference_line(text: str, width: int, bold: bool, scale: int) -> bytes:
    """Each character's glyph pasted one by one onto paper ``width`` dots wide, packed with
    bit 1 = ink (Pillow clips what falls past the edge)."""
    paper = Image.new("1", (width, LINE_HEIGHT * scale), 0)
    x = 0
    for char in text:
        if char == " ":
            x += CELL_WIDTH * scale
            continue
        glyph = _glyph(FACE, char, scale, bold)
        paper.paste(glyph, (x, 0))
        x += glyph.width
    return paper.tobytes("raw", "1")


@quick
@given(
    text=st.text(st.sampled_from(CHARACTERS), max_size=60),
    width=st.sampled_from([96, 384, 512, 576, 580]),
    bold=st.booleans(),
    scale=st.integers(1, 3),
)
def test_text_line_is_its_glyphs_side_by_side(
    text: str, width: int, bold: bool, scale: int
) -> None:
    line = draw_text_line(text, width, FACE, bold=bold, scale=scale)
    assert line.size == (width, LINE_HEIGHT * scale)
    assert line.tobytes("raw", "1;I") == reference_line(text, width, bold, scale)


def test_a_line_past_the_paper_edge_is_cut_not_wrapped() -> None:
    line = draw_text_line("W" * 100, 96, FACE)
    assert line.tobytes("raw", "1;I") == reference_line("W" * 8, 96, False, 1)


def reference_qr(data: str, width: int) -> Image.Image:
    """The QR band module by module: white paper, a black square per dark module."""
    matrix = segno.make_qr(data, error="m", boost_error=False).matrix
    size = len(matrix)
    module = max(min(QR_MODULE, width // (size + 2 * QUIET_MODULES)), 1)
    margin = QUIET_MODULES * module
    left = (width - size * module) // 2
    band = Image.new("1", (width, size * module + 2 * margin), 255)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                top_left = (left + x * module, margin + y * module)
                band.paste(0, (*top_left, top_left[0] + module, top_left[1] + module))
    return band


@pytest.mark.parametrize(
    ("data", "width"),
    [
        ("https://x.hk", 576),
        ("https://example.com/o/A-1023", 512),
        ("漢字" * 30, 384),
        ("Z" * 100, 96),  # too wide for 6-dot modules: they shrink
        ("q" * 300, 580),
    ],
)
def test_qr_band_is_its_modules(data: str, width: int) -> None:
    band = qr_image(data, width)
    expected = reference_qr(data, width)
    assert band.size == expected.size and band.tobytes() == expected.tobytes()


def test_qr_code_wider_than_the_paper_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        qr_image("q" * 2000, 96)
