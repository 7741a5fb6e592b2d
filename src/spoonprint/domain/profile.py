"""What a renderer needs to know about a printer (no I/O, no addresses)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Protocol(StrEnum):
    ESCPOS = "escpos"
    STAR_LINE = "star-line"
    STAR_GRAPHIC = "star-graphic"


@dataclass(frozen=True)
class PrinterProfile:
    protocol: Protocol = Protocol.ESCPOS
    width_dots: int = 576
    text_encoding: str = "cp437"
    cut: bool = True
    #: Blank lines fed before the cut, so the last line clears the cutter.
    feed_lines: int = 4

    @property
    def columns(self) -> int:
        """Characters of the standard 12-dot-wide font per line."""
        return self.width_dots // 12
