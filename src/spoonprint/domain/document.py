"""The printable document: what a ticket says, independent of paper width and printer bytes.

A document is a sequence of blocks; ``render.layout`` turns them into lines for one paper width.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Align(StrEnum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


@dataclass(frozen=True)
class Text:
    """A paragraph: wrapped to the paper width. ``scale`` 2 is double width and height."""

    text: str
    bold: bool = False
    align: Align = Align.LEFT
    scale: int = 1


@dataclass(frozen=True)
class Row:
    """Three columns: ``left`` (e.g. quantity) and ``right`` (e.g. price) keep their width;
    ``middle`` wraps, its continuation lines indented under itself."""

    left: str
    middle: str
    right: str = ""
    bold: bool = False
    scale: int = 1


@dataclass(frozen=True)
class Rule:
    """A separator line across the paper."""

    char: str = "-"


@dataclass(frozen=True)
class QRCode:
    data: str


@dataclass(frozen=True)
class Feed:
    lines: int = 1


Block = Text | Row | Rule | QRCode | Feed


@dataclass(frozen=True)
class Document:
    blocks: tuple[Block, ...]
    #: Printed above everything else, large: e.g. a REPRINT warning.
    banners: tuple[str, ...] = ()


def text_document(text: str, *, bold: bool = False, scale: int = 1) -> Document:
    return Document(tuple(Text(line, bold, scale=scale) for line in text.splitlines() or [""]))


def with_banner(document: Document, banner: str) -> Document:
    return Document(document.blocks, (*document.banners, banner))
