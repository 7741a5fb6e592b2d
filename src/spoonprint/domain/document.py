"""The printable document: what a ticket says, independent of any printer's bytes.

The foundation turns a plain ``text`` order or a ``receipt`` object into lines; the full receipt
model and layout build on the same :class:`Document`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Align(StrEnum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


@dataclass(frozen=True)
class Line:
    text: str
    bold: bool = False
    align: Align = Align.LEFT
    large: bool = False


@dataclass(frozen=True)
class Document:
    lines: tuple[Line, ...]
    #: Printed above everything else, e.g. a REPRINT warning.
    banners: tuple[str, ...] = field(default=())


def text_document(text: str) -> Document:
    return Document(tuple(Line(part) for part in text.splitlines() or [""]))


def receipt_document(receipt: Mapping[str, Any]) -> Document:
    """Plain lines for a receipt object: title, order, items, totals, footer."""
    lines: list[Line] = []
    if title := receipt.get("title"):
        lines.append(Line(str(title), bold=True, align=Align.CENTER, large=True))
    for key, label in (("order_no", "Order"), ("table", "Table"), ("order_type", "Type")):
        if value := receipt.get(key):
            lines.append(Line(f"{label}: {value}", bold=key == "order_no"))
    lines.extend(_item_lines(receipt.get("items") or []))
    for key in ("subtotal", "service_charge", "total"):
        if value := receipt.get(key):
            currency = receipt.get("currency", "")
            lines.append(Line(f"{key.replace('_', ' ').title()}: {currency}{value}"))
    for key in ("payment", "notes", "footer"):
        if value := receipt.get(key):
            lines.append(Line(str(value), align=Align.CENTER if key == "footer" else Align.LEFT))
    return Document(tuple(lines))


def _item_lines(items: Iterable[Any]) -> list[Line]:
    lines: list[Line] = []
    for item in items:
        if not isinstance(item, Mapping):
            lines.append(Line(str(item)))
            continue
        names = " ".join(str(item[k]) for k in ("name", "name_zh") if item.get(k))
        price = f"  {item['price']}" if item.get("price") else ""
        lines.append(Line(f"{item.get('qty', 1)} x {names}{price}", bold=True))
        lines.extend(Line(f"   - {option}") for option in item.get("options") or [])
        if note := item.get("note"):
            lines.append(Line(f"   * {note}"))
    return lines


def document_for(payload: Mapping[str, Any]) -> Document:
    """The document a stored job payload describes."""
    if "receipt" in payload and payload["receipt"] is not None:
        return receipt_document(payload["receipt"])
    return text_document(str(payload.get("text", "")))


def with_banner(document: Document, banner: str) -> Document:
    return Document(document.lines, (*document.banners, banner))
