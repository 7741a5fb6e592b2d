"""The renderer boundary: document + printer profile -> the bytes that printer prints (pure,
given a typeface loaded once at start)."""

from __future__ import annotations

import io
from collections.abc import Callable

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.render.escpos import render_escpos_raster, render_escpos_text
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import layout
from spoonprint.render.raster import draw
from spoonprint.render.star import render_star_graphic, render_star_line

#: (document, profile, copies) -> bytes
Renderer = Callable[[Document, PrinterProfile, int], bytes]

_RENDERERS = {
    Protocol.ESCPOS: render_escpos_text,
    Protocol.ESCPOS_RASTER: render_escpos_raster,
    Protocol.STAR_LINE: render_star_line,
    Protocol.STAR_GRAPHIC: render_star_graphic,
}


def renderer_for(protocol: Protocol, typeface: Typeface) -> Renderer:
    render = _RENDERERS[protocol]

    def bound(document: Document, profile: PrinterProfile, copies: int = 1) -> bytes:
        return render(document, profile, typeface, copies)

    return bound


def preview_png(document: Document, profile: PrinterProfile, typeface: Typeface) -> bytes:
    """The ticket as the printer would print it, as PNG (for text-mode printers an
    approximation in spoonprint's font)."""
    image = draw(layout(document, profile.columns), profile.width_dots, typeface)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
