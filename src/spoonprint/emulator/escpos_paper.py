"""A picture of the paper an ESC/POS printer prints for a byte stream (pure, no I/O).

Walks the same tokens as :func:`~spoonprint.emulator.escpos_text.decode_escpos`, so text,
images and codes are read identically, and stacks what each prints from the top:

* ``GS v 0`` raster bands are pasted exactly as sent, each at its own height, at the left edge.
  The paper is as wide as the widest thing printed on it: the printer's ``width`` for text and
  codes, a band's own width for a band. A ticket of bands alone (plus settings, feeds and the
  cut) decodes to the very image they were made from.
* Text lines (everything between line feeds, in single- or double-byte mode) are drawn with
  :func:`spoonprint.render.raster.draw_text_line` in spoonprint's own typeface: an
  approximation of the printer's font. A line is bold if any of it was (``ESC E``, ``ESC G``,
  ``ESC !`` bit 3) and takes its largest size (``GS !``, ``ESC !`` bits 4-5); ``HT`` moves to the
  next multiple of 8 columns. ``ESC d n`` ends the line and feeds n - 1 blank lines (as n line
  feeds), ``ESC J n`` ends a line with text and feeds n dots.
* A stored QR code (``GS ( k`` fn 80) is drawn with :func:`spoonprint.render.raster.qr_image`;
  ``GS k`` barcodes as a ``[barcode: data]`` text line.

Cuts, drawer pulses and settings print nothing. Blank paper after the last thing printed
(feeds, empty lines: the feed to the cutter) is not drawn, as the picture shows what was
printed; blank lines between printed things are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from spoonprint.emulator.escpos_text import Kind, Token, tokenize
from spoonprint.render.bitimage import row_bytes
from spoonprint.render.fonts import Typeface, default_typeface
from spoonprint.render.layout import char_width
from spoonprint.render.raster import LINE_HEIGHT, draw_text_line, qr_image

__all__ = ["render_escpos_paper"]

WHITE = 255
TAB_COLUMNS = 8
_IMAGE_KINDS = (Kind.RASTER, Kind.QR, Kind.BARCODE)


@dataclass
class _Style:
    bold: bool = False
    emphasized: bool = False  # ESC ! bit 3, separate so ESC E 0 does not undo it
    width: int = 1
    height: int = 1

    @property
    def heavy(self) -> bool:
        return self.bold or self.emphasized

    @property
    def scale(self) -> int:
        return max(self.width, self.height)

    def apply(self, command: bytes) -> None:
        """Follow ``ESC E n``, ``ESC G n``, ``ESC ! n`` and ``GS ! n``."""
        if len(command) < 3:
            return
        prefix, n = command[:2], command[2]
        if prefix in (b"\x1bE", b"\x1bG"):
            self.bold = bool(n & 1)
        elif prefix == b"\x1b!":
            self.emphasized = bool(n & 0x08)
            self.height = 2 if n & 0x10 else 1
            self.width = 2 if n & 0x20 else 1
        elif prefix == b"\x1d!":
            self.width = (n >> 4 & 0x07) + 1
            self.height = (n & 0x07) + 1


@dataclass
class _Paper:
    width: int
    typeface: Typeface | None
    encoding: str
    cjk_encoding: str
    #: Printed images, and heights of blank paper (drawn only when something follows).
    parts: list[Image.Image | int] = field(default_factory=list)
    style: _Style = field(default_factory=_Style)
    double_byte: bool = False
    line: str = ""
    line_bold: bool = False
    line_scale: int = 1

    def font(self) -> Typeface:
        # Loading a font reads a file: only tickets with text pay for it.
        if self.typeface is None:
            self.typeface = default_typeface()
        return self.typeface

    def text(self, chunk: bytes) -> None:
        text = chunk.decode(self.cjk_encoding if self.double_byte else self.encoding, "replace")
        self.line += text
        self.line_bold = self.line_bold or self.style.heavy
        self.line_scale = max(self.line_scale, self.style.scale)

    def tab(self) -> None:
        columns = sum(char_width(c) for c in self.line)
        self.line += " " * (TAB_COLUMNS - columns % TAB_COLUMNS)

    def end_line(self) -> None:
        if self.line.strip():
            self.parts.append(
                draw_text_line(
                    self.line, self.width, self.font(), bold=self.line_bold, scale=self.line_scale
                )
            )
        else:
            self.parts.append(LINE_HEIGHT * self.line_scale)
        self.line, self.line_bold, self.line_scale = "", False, 1

    def end_text(self) -> None:
        """End the line if it has text: images and codes start on a line of their own."""
        if self.line:
            self.end_line()

    def feed_dots(self, dots: int) -> None:
        self.end_text()
        self.parts.append(dots)

    def raster(self, data: bytes, token: Token) -> None:
        width_dots, height = token.args
        if not width_dots or not height:
            return
        # The command's bits are 1 = black; Pillow's plain "1" packing is 1 = white.
        band = Image.frombytes(
            "1", (width_dots, height), data[token.start + 8 : token.end], "raw", "1;I"
        )
        self.parts.append(band)

    def image(self) -> Image.Image | None:
        while self.parts and isinstance(self.parts[-1], int):
            self.parts.pop()
        printed = [part for part in self.parts if isinstance(part, Image.Image)]
        if not printed:
            return None
        heights = [part if isinstance(part, int) else part.height for part in self.parts]
        paper = Image.new("1", (max(p.width for p in printed), sum(heights)), WHITE)
        top = 0
        for part, height in zip(self.parts, heights, strict=True):
            if isinstance(part, Image.Image):
                paper.paste(part, (0, top))
            top += height
        return paper


def render_escpos_paper(
    data: bytes,
    width: int = 576,
    typeface: Typeface | None = None,
    encoding: str = "cp437",
    cjk_encoding: str = "big5hkscs",
) -> Image.Image | None:
    """The paper a ``width``-dot ESC/POS printer prints for ``data`` as a mode "1" image, or
    None when it prints nothing. ``typeface`` defaults to spoonprint's default typeface (loaded
    only when there is text to draw)."""
    row_bytes(width)
    raw = bytes(data)
    paper = _Paper(width, typeface, encoding, cjk_encoding)
    for token in tokenize(raw):
        _print(paper, token, raw)
    paper.end_text()
    return paper.image()


def _print(paper: _Paper, token: Token, raw: bytes) -> None:
    kind = token.kind
    if kind in _IMAGE_KINDS:
        paper.end_text()
        _print_image(paper, token, raw)
    elif kind is Kind.TEXT:
        paper.text(raw[token.start : token.end])
    elif kind is Kind.NEWLINE:
        paper.end_line()
    elif kind is Kind.FEED:
        _feed(paper, token, raw)
    elif kind is Kind.TAB:
        paper.tab()
    elif kind in (Kind.DOUBLE_BYTE_ON, Kind.DOUBLE_BYTE_OFF):
        paper.double_byte = kind is Kind.DOUBLE_BYTE_ON
    elif kind is Kind.INIT:
        paper.style = _Style()
        paper.double_byte = False
    elif kind is Kind.COMMAND:
        paper.style.apply(raw[token.start : token.end])


def _print_image(paper: _Paper, token: Token, raw: bytes) -> None:
    if token.kind is Kind.RASTER:
        paper.raster(raw, token)
    elif token.kind is Kind.QR:
        paper.parts.append(qr_image(token.payload.decode("utf-8", "replace"), paper.width))
    else:
        paper.line = f"[barcode: {token.payload.decode('ascii', 'replace')}]"
        paper.end_line()


def _feed(paper: _Paper, token: Token, raw: bytes) -> None:
    if raw[token.start + 1] == ord("J"):  # ESC J n: print and feed n dots
        paper.feed_dots(raw[token.start + 2])
        return
    for _ in range(token.args[0]):
        paper.end_line()
