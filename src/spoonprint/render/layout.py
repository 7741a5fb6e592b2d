"""Layout (pure): document blocks -> lines that fit a paper width in character cells.

Widths are counted in half-width cells: East Asian wide and full-width characters take two
(``unicodedata.east_asian_width`` W or F), everything else one. A line at ``scale`` 2 has half as
many cells. Lines come out padded for their alignment, so renderers only print them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from spoonprint.domain.document import Align, Block, Document, Feed, QRCode, Row, Rule, Text
from spoonprint.domain.profile import Chinese, PrinterProfile


@dataclass(frozen=True)
class Line:
    text: str
    bold: bool = False
    scale: int = 1


@dataclass(frozen=True)
class QRLine:
    data: str


@dataclass(frozen=True)
class FeedLine:
    lines: int = 1


Laid = Line | QRLine | FeedLine

_TOKENS = re.compile(r"\s+|[^\s]")
_ASCII_TOKENS = re.compile(r"\s+|\S+")


@lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    if text.isascii():  # one cell each (no ASCII character is wide or combining): most text
        return len(text)
    return sum(map(char_width, text))


def layout(document: Document, columns: int) -> list[Laid]:
    """The document as lines of at most ``columns`` cells (at scale 1)."""
    lines: list[Laid] = []
    for banner in document.banners:
        lines.extend(_text(Text(banner, bold=True, align=Align.CENTER, scale=2), columns))
    for block in document.blocks:
        lines.extend(_block(block, columns))
    return lines


def _block(block: Block, columns: int) -> Iterator[Laid]:
    if isinstance(block, Text):
        yield from _text(block, columns)
    elif isinstance(block, Row):
        yield from _row(block, columns)
    elif isinstance(block, Rule):
        yield Line(block.char * (columns // display_width(block.char or "-")))
    elif isinstance(block, QRCode):
        yield QRLine(block.data)
    elif isinstance(block, Feed):
        yield FeedLine(block.lines)


def _text(block: Text, columns: int) -> Iterator[Line]:
    width = max(columns // block.scale, 1)
    for paragraph in block.text.splitlines() or [""]:
        body = paragraph.lstrip(" ")
        indent = min(len(paragraph) - len(body), width // 2)  # kept on every wrapped line
        for piece in wrap(body, width - indent):
            text = _align(" " * indent + piece, width, block.align)
            yield Line(text, block.bold, block.scale)


def _row(block: Row, columns: int) -> Iterator[Line]:
    width = max(columns // block.scale, 1)
    left = block.left + " " if block.left else ""
    right = " " + block.right if block.right else ""
    indent = display_width(left)
    middle_width = width - indent - display_width(right)
    if middle_width < 4:  # a very narrow paper or a huge price: stack the columns instead
        yield from _text(
            Text(
                f"{block.left} {block.middle} {block.right}".strip(), block.bold, scale=block.scale
            ),
            columns,
        )
        return
    # A field's own lines (see spoonprint.domain.text) start new lines under the first.
    pieces = [piece for part in block.middle.split("\n") for piece in wrap(part, middle_width)]
    first = left + _pad(pieces[0], middle_width) + right
    yield Line(first.rstrip(), block.bold, block.scale)
    for piece in pieces[1:]:
        yield Line((" " * indent + piece).rstrip(), block.bold, block.scale)


def wrap(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces; a wide (CJK) character may break anywhere; a word longer than
    the line is cut. Always at least one (possibly empty) line."""
    lines: list[str] = []
    current = ""
    for token in _tokens(text):
        if token.isspace():
            if current and display_width(current) + display_width(token) <= width:
                current += token
            elif current:
                lines.append(current.rstrip())
                current = ""
            continue
        if display_width(current) + display_width(token) <= width:
            current += token
            continue
        if current.strip():
            lines.append(current.rstrip())
        current = ""
        for piece in _cut(token, width):
            if display_width(current) + display_width(piece) > width:
                lines.append(current)
                current = ""
            current += piece
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return lines


def _tokens(text: str) -> Iterator[str]:
    """Spaces, Latin words (kept whole), and wide characters one by one."""
    if text.isascii():  # no wide characters: runs of spaces and words, found in one call
        yield from _ASCII_TOKENS.findall(text)
        return
    word = ""
    for match in _TOKENS.finditer(text):
        char = match.group()
        if char.isspace() or char_width(char) == 2:
            if word:
                yield word
                word = ""
            yield char
        else:
            word += char
    if word:
        yield word


def _cut(token: str, width: int) -> Iterator[str]:
    piece = ""
    for char in token:
        if piece and display_width(piece) + char_width(char) > width:
            yield piece
            piece = ""
        piece += char
    if piece:
        yield piece


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def _align(text: str, width: int, align: Align) -> str:
    spare = max(width - display_width(text), 0)
    if align is Align.CENTER:
        return " " * (spare // 2) + text
    if align is Align.RIGHT:
        return " " * spare + text
    return text


def encode_for_printer_font(line: Line, profile: PrinterProfile) -> bytes | None:
    """The line in the printer font's encoding, or None when it must be drawn as a raster band
    instead (the encoding cannot hold a character, or Chinese is set to print as raster)."""
    # Control characters in order text must never reach the printer as commands.
    text = line.text
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    if text.isascii():
        return text.encode("ascii")
    if profile.chinese is Chinese.RASTER:
        return None
    try:
        return text.encode(profile.text_encoding)
    except UnicodeEncodeError:
        return None


def lines_text(lines: Sequence[Laid]) -> str:
    """A plain-text view of laid-out lines (for logs and tests)."""
    out = []
    for line in lines:
        if isinstance(line, Line):
            out.append(line.text)
        elif isinstance(line, QRLine):
            out.append(f"[QR {line.data}]")
        else:
            out.extend([""] * line.lines)
    return "\n".join(out)
