"""Packing 1-bit ticket images into printer raster rows, and back (pure, no I/O).

Images are Pillow mode "1" images whose width is the printer width in dots, a multiple of 8;
pixel 0 is ink (black) and 255 is paper (white). Printers want the opposite sense: in raster
rows bit 1 is a black dot and the most significant bit is the leftmost dot. Pillow's "1;I" raw
mode is exactly that packing, so the conversion is one C call each way, never a Python loop
over pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

__all__ = [
    "Bitmap",
    "Picture",
    "image_bytes",
    "image_rows",
    "rows_image",
    "row_bytes",
]


@dataclass(frozen=True)
class Bitmap:
    """A 1-bit picture of paper already packed as printer raster rows.

    ``data`` is ``height`` rows of ``ceil(width / 8)`` bytes, bit 1 = ink, most significant bit
    = leftmost dot. The renderers draw straight into this form: Pillow packs a mode "1" image
    one pixel at a time (about 2 ms per 1,000 rows at 576 dots), which a long ticket cannot
    afford, so they assemble words that were packed once and cached instead.
    """

    width: int
    height: int
    data: bytes

    def image(self) -> Image.Image:
        """As a Pillow mode "1" image (0 = ink, 255 = paper)."""
        return Image.frombytes("1", (self.width, self.height), self.data, "raw", _PRINTER_PACKING)


#: What the raster encoders take: a Pillow mode "1" image or a Bitmap.
Picture = Image.Image | Bitmap

# Pillow raw mode for mode "1": one bit per pixel, MSB first, 1 = pixel value 0 (black).
_PRINTER_PACKING = "1;I"


def row_bytes(width: int) -> int:
    """Bytes in one raster row of ``width`` dots (ValueError unless a positive multiple of 8)."""
    if width <= 0 or width % 8:
        raise ValueError(f"raster width must be a positive multiple of 8 dots, not {width}")
    return width // 8


def image_bytes(image: Picture) -> bytes:
    """All rows of ``image`` packed back to back, ``width / 8`` bytes per row, 1 = black."""
    if isinstance(image, Bitmap):
        row_bytes(image.width)
        return image.data
    if image.mode != "1":
        raise ValueError(f'raster images must be mode "1", not {image.mode!r}')
    row_bytes(image.width)
    return image.tobytes("raw", _PRINTER_PACKING)


def image_rows(image: Picture) -> list[bytes]:
    """One packed row per image row (``width / 8`` bytes each, 1 = black, MSB = leftmost)."""
    packed = image_bytes(image)
    size = image.width // 8
    return [packed[start : start + size] for start in range(0, len(packed), size)]


def rows_image(rows: Sequence[bytes], width: int) -> Image.Image:
    """The mode "1" image of packed ``rows``; short rows are padded with white.

    The inverse of :func:`image_rows`. A row longer than ``width / 8`` bytes is a ValueError:
    callers decoding printer data decide themselves what falls outside the paper.
    """
    size = row_bytes(width)
    if any(len(row) > size for row in rows):
        raise ValueError(f"a raster row is longer than {size} bytes ({width} dots)")
    packed = b"".join(row if len(row) == size else row.ljust(size, b"\x00") for row in rows)
    return Image.frombytes("1", (width, len(rows)), packed, "raw", _PRINTER_PACKING)
