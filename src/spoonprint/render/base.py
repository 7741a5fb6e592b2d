"""The renderer boundary: document + printer profile -> the bytes that printer prints (pure,
given a typeface; the server binds these through :mod:`spoonprint.render.loader`)."""

from __future__ import annotations

import io

from PIL import Image

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.render.escpos import render_escpos_raster, render_escpos_text
from spoonprint.render.fonts import Typeface
from spoonprint.render.layout import layout
from spoonprint.render.loader import Renderer
from spoonprint.render.raster import draw
from spoonprint.render.star import render_star_graphic, render_star_line


def render_image(
    document: Document, profile: PrinterProfile, typeface: Typeface, copies: int = 1
) -> bytes:
    """The ticket as a PNG picture of the paper, ``copies`` times one under the other."""
    picture = draw(layout(document, profile.columns), profile.width_dots, typeface)
    if copies > 1:
        gap = 48  # 6 mm of white between copies at 203 dpi
        stacked = Image.new("1", (picture.width, copies * (picture.height + gap) - gap), 1)
        for copy in range(copies):
            stacked.paste(picture, (0, copy * (picture.height + gap)))
        picture = stacked
    return _png(picture)


_RENDERERS = {
    Protocol.ESCPOS: render_escpos_text,
    Protocol.ESCPOS_RASTER: render_escpos_raster,
    Protocol.STAR_LINE: render_star_line,
    Protocol.STAR_GRAPHIC: render_star_graphic,
    Protocol.IMAGE: render_image,
}


def renderer_for(protocol: Protocol, typeface: Typeface) -> Renderer:
    render = _RENDERERS[protocol]

    def bound(document: Document, profile: PrinterProfile, copies: int = 1) -> bytes:
        return render(document, profile, typeface, copies)

    return bound


def preview_png(document: Document, profile: PrinterProfile, typeface: Typeface) -> bytes:
    """The ticket as the printer would print it, as PNG (for text-mode printers an
    approximation in spoonprint's font)."""
    return _png(draw(layout(document, profile.columns), profile.width_dots, typeface))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
