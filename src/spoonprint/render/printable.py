"""Whether an order's text and QR code can be put on a printer's paper, asked before the
order is accepted (pure, given a typeface): what is acknowledged must print.

A ticket is drawn one character at a time (:mod:`spoonprint.render.raster`), so a field can be
drawn exactly when each of its characters can. The answers are the renderer's own caches: an
order checked here renders without drawing its glyphs or its QR code a second time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from spoonprint.domain.profile import PrinterProfile
from spoonprint.render.fonts import Typeface

# The renderer's own cached drawing: a check here is work the rendering does not repeat.
from spoonprint.render.raster import _glyph, _qr

#: Where a field is in the order, as a validation error locates it: ("receipt", "items", 0,
#: "note").
Location = tuple[str | int, ...]
#: Payload fields that are not drawn as they are (the order time prints in digits of its own).
_NOT_DRAWN = frozenset({"created_at"})


def problems(
    payload: Mapping[str, Any], profile: PrinterProfile, typeface: Typeface, source: str = ""
) -> list[tuple[Location, str]]:
    """Each field of a job ``payload`` that could not be printed, and why (none: it prints).

    ``source``: the JSON text the payload was read from, if at hand. When every character in
    it was seen drawn before and it has no escapes, no field can hold anything else, and the
    fields are not looked at one by one (walking them took as long as the rest of accepting
    an order)."""
    found: list[tuple[Location, str]] = []
    receipt = payload.get("receipt")
    qr = receipt.get("qr") if isinstance(receipt, Mapping) else None
    if isinstance(qr, str) and (reason := _qr_problem(qr, profile.width_dots)) is not None:
        found.append((("receipt", "qr"), reason))
    if source and "\\" not in source and _drawn(typeface).issuperset(source):
        return found
    for location, value in _strings(payload, ()):
        if location[-1] != "qr" and (reason := _text_problem(value, typeface)) is not None:
            found.append((location, reason))
    return found


def _strings(value: Any, location: Location) -> Iterator[tuple[Location, str]]:
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in _NOT_DRAWN:
                yield from _strings(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*location, index))


def _text_problem(text: str, typeface: Typeface) -> str | None:
    if text.isascii() and text.isprintable():  # what almost every field is: always drawn
        return None
    drawn = _drawn(typeface)
    if drawn.issuperset(text):  # characters seen before: one pass in C, the usual case
        return None
    # Line breaks are never drawn: text is laid out line by line.
    for char in set("".join(text.splitlines())) - drawn:
        try:
            _glyph(typeface, char, 1, False)
        except (RuntimeError, OSError, ValueError):  # e.g. "raqm_layout() failed"
            return f"the character U+{ord(char):04X} cannot be printed"
        drawn.add(char)
    return None


@lru_cache(maxsize=8)
def _drawn(typeface: Typeface) -> set[str]:
    """Characters ``typeface`` was seen to draw (a few thousand at most in a shop's life;
    adding to a set is atomic under the interpreter lock, so threads may share it)."""
    return {"\n", *map(chr, range(0x20, 0x7F))}  # printable ASCII: all drawn, every font


def _qr_problem(data: str, width: int) -> str | None:
    try:
        _qr(data, width)
    except ValueError as exc:  # too much data for any QR code, or too big for the paper
        return f"the QR code cannot be printed: {exc}"
    return None
