"""Renderers the server binds at start without loading the rendering code.

Rendering needs the imaging library and the layout and printer-language modules, about a
twentieth of a second of imports; the server needs none of it to answer its first request.
:func:`renderer_for` and :func:`preview_png` load it on their first call, and :func:`warm_up`,
run in the background once the server is up, loads it and renders a sample ticket for each
printer, so that the first order after a restart does not wait for imports or font loading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import EXAMPLE
from spoonprint.domain.ticket import document_for
from spoonprint.render.fonts import Typeface

log = logging.getLogger("spoonprint")

#: (document, profile, copies) -> bytes
Renderer = Callable[[Document, PrinterProfile, int], bytes]


def renderer_for(protocol: Protocol, typeface: Typeface) -> Renderer:
    """The renderer of ``protocol`` in ``typeface``; the rendering code loads at its first use."""

    def render(document: Document, profile: PrinterProfile, copies: int = 1) -> bytes:
        from spoonprint.render import base

        return base.renderer_for(protocol, typeface)(document, profile, copies)

    return render


def preview_png(document: Document, profile: PrinterProfile, typeface: Typeface) -> bytes:
    """See :func:`spoonprint.render.base.preview_png`."""
    from spoonprint.render import base

    return base.preview_png(document, profile, typeface)


def unprintable(
    payload: Mapping[str, Any], profile: PrinterProfile, typeface: Typeface, source: str = ""
) -> list[tuple[tuple[str | int, ...], str]]:
    """See :func:`spoonprint.render.printable.problems`."""
    from spoonprint.render import printable

    return printable.problems(payload, profile, typeface, source)


def warm_up(typeface: Typeface, profiles: Iterable[PrinterProfile]) -> None:
    """Load the rendering code and render the example order once for each printer profile
    (blocking: run it in a thread). A font that cannot be loaded, or anything else that stops
    the example from rendering, is logged here, at start, rather than first seen when an
    order fails to render."""
    try:
        for profile in profiles:
            document = document_for({"receipt": EXAMPLE}, profile.style)
            renderer_for(profile.protocol, typeface)(document, profile, 1)
        log.info("ticket font: %s (%s)", typeface.name, typeface.path)
    except Exception:
        log.exception(
            "the example ticket does not render with the font %s: tickets will fail to print",
            typeface.path,
        )
