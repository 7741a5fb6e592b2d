"""What a renderer needs to know about a printer (no I/O, no addresses)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spoonprint.domain.ticket import Style


class Protocol(StrEnum):
    ESCPOS = "escpos"
    #: ESC/POS with every ticket sent as one raster image (printers without a Chinese font).
    ESCPOS_RASTER = "escpos-raster"
    STAR_LINE = "star-line"
    #: Star Graphic Mode raster: the only thing TSP100/TSP143 print.
    STAR_GRAPHIC = "star-graphic"
    #: A PNG picture of the ticket: for printers driven through a Windows driver (GDI) and for
    #: files.
    IMAGE = "image"


class Chinese(StrEnum):
    #: Use the printer's own font for lines its text_encoding can hold; raster the rest.
    TEXT = "text"
    #: Draw every line that is not plain ASCII as a raster band.
    RASTER = "raster"


CELL_DOTS = 12  # width of a half-width character in the standard 12x24 font


@dataclass(frozen=True)
class PrinterProfile:
    protocol: Protocol = Protocol.ESCPOS
    width_dots: int = 576
    text_encoding: str = "cp437"
    chinese: Chinese = Chinese.TEXT
    style: Style = Style.RECEIPT
    cut: bool = True
    drawer: bool = False
    #: Blank lines fed before the cut, so the last line clears the cutter.
    feed_lines: int = 4

    @property
    def columns(self) -> int:
        """Half-width characters per line."""
        return self.width_dots // CELL_DOTS
