"""The renderer boundary: a pure function from a document and a printer profile to bytes."""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.errors import ConfigError


class Renderer(TypingProtocol):
    def __call__(self, document: Document, profile: PrinterProfile, copies: int = 1) -> bytes: ...


def renderer_for(protocol: Protocol) -> Renderer:
    """The renderer for a printer protocol; ConfigError when this version has none for it."""
    from spoonprint.render.escpos import render_escpos_text

    renderers: dict[Protocol, Renderer] = {Protocol.ESCPOS: render_escpos_text}
    try:
        return renderers[protocol]
    except KeyError:
        raise ConfigError(
            f"protocol {protocol.value!r} has no renderer in this version; use 'escpos'"
        ) from None
