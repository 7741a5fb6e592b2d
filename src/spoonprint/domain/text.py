"""Order text as it may go on paper (pure): what the receipt model keeps of a field.

Point-of-sale systems send what their staff typed, and sometimes what their software added:
``"走冰\\r\\n少甜"``, record separators (0x1C-0x1E), NEL, U+2029. The font engine refuses
paragraph separators inside a line (``raqm_layout() failed``), and other control and format
characters either drive the printer or print as nothing. So a field is normalised once, where
the order is validated:

- Every line break Python knows (``str.splitlines``: CR, LF, CRLF, VT, FF, FS, GS, RS, NEL,
  U+2028, U+2029) becomes a line of its own on the ticket, "\\n" being the one separator kept.
  A new line rather than a space: a cook reads each line of a note as one instruction
  ("走冰" / "少甜"), which is what the person who pressed Enter meant; joined by a space, the
  two run together and a wrap can split one of them instead. Empty lines are dropped (paper
  is read, not scrolled) and so are spaces at a line's end.
- A tab becomes a space (it separates words; removed, it would join them).
- Every other control (Cc) and format (Cf) character is removed, the zero-width joiners (ZWJ,
  ZWNJ) included: tickets are drawn one character per grid cell, so a joiner can never join
  anything there and would only take a blank cell; bidirectional overrides and invisible
  characters would let the printed text differ from what the screen showed.
- Private-use (Co) and unassigned (Cn) characters stay: Hong Kong shops still have
  HKSCS characters mapped to the private-use area, and a newer emoji than this Python's tables
  is still text; the font draws what it has for them.
"""

from __future__ import annotations

import unicodedata

_REMOVED = frozenset({"Cc", "Cf"})


def _inline(line: str) -> str:
    if line.isprintable():
        return line
    return "".join(
        " " if char == "\t" else char
        for char in line
        if char == "\t" or unicodedata.category(char) not in _REMOVED
    )


def printable_text(value: str) -> str:
    """``value`` with its line breaks as "\\n" between non-empty lines and no other control or
    format characters."""
    # All of Cc, Cf, Zl and Zp are not "printable": most fields need no work at all.
    if value.isprintable():
        return value
    lines = (_inline(line).rstrip() for line in value.splitlines())
    return "\n".join(line for line in lines if line.strip()).strip()


def one_line(value: str) -> str:
    """``value`` as :func:`printable_text`, its lines joined by a space (for a field that
    sits inside a line, such as a currency before an amount)."""
    return " ".join(printable_text(value).split("\n"))
