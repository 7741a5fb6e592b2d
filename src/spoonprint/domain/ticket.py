"""From an order to a document, in the style a printer is set to (pure).

- ``kitchen``: what the cooks need, big: the table number largest, the order number, items
  and options large, and notes as large as the items and marked ``!!`` (what a cook must not
  miss); no prices. A plain-text order prints at the items' size too.
- ``receipt``: what the customer keeps: shop title, items with aligned prices, totals,
  labelled payment, note and customer, footer and QR code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

from spoonprint.domain.document import (
    Align,
    Block,
    Document,
    Feed,
    QRCode,
    Row,
    Rule,
    Text,
    text_document,
)
from spoonprint.domain.receipt import Item, Receipt


class Style(StrEnum):
    KITCHEN = "kitchen"
    RECEIPT = "receipt"


#: The size of a kitchen ticket's items (double width and height): what a cook reads first.
ITEM_SCALE = 2


def document_for(payload: Mapping[str, Any], style: Style = Style.RECEIPT) -> Document:
    """The document a stored job payload describes."""
    if payload.get("receipt") is not None:
        return compose(Receipt.model_validate(payload["receipt"]), style)
    if style is Style.KITCHEN:
        return text_document(str(payload.get("text", "")), bold=True, scale=ITEM_SCALE)
    return text_document(str(payload.get("text", "")))


def compose(receipt: Receipt, style: Style) -> Document:
    blocks = _kitchen(receipt) if style is Style.KITCHEN else _receipt(receipt)
    return Document(tuple(blocks))


def _kitchen(r: Receipt) -> Iterator[Block]:
    if r.table:  # where the dish goes: read across the pass
        yield Text(f"TABLE {r.table}", bold=True, align=Align.CENTER, scale=ITEM_SCALE + 1)
    if r.order_no:
        yield Text(f"#{r.order_no}", bold=True, align=Align.CENTER, scale=ITEM_SCALE)
    if r.order_type:
        yield Text(r.order_type.upper(), bold=True, align=Align.CENTER)
    if r.created_at:
        yield Text(f"{r.created_at:%Y-%m-%d %H:%M}", align=Align.CENTER)
    yield Rule("=")
    for item in r.items:
        yield Row(f"{item.qty} x", item.name, bold=True, scale=ITEM_SCALE)
        if item.name_zh:
            yield Row(" " * len(f"{item.qty} x"), item.name_zh, bold=True, scale=ITEM_SCALE)
        for option in item.options:
            yield Text(_hanging("  + ", option), bold=True, scale=ITEM_SCALE)
        if item.note:  # not indented: one line more often fits at this size
            yield Text(_hanging("!! ", item.note), bold=True, scale=ITEM_SCALE)
        yield Rule()
    if r.notes:
        yield Text(f"!! NOTE: {r.notes}", bold=True, scale=ITEM_SCALE)
    yield from _customer(r)


def _receipt(r: Receipt) -> Iterator[Block]:
    if r.title:
        yield Text(r.title, bold=True, align=Align.CENTER, scale=2)
    for label, value in (("Order", r.order_no), ("Table", r.table), ("Type", r.order_type)):
        if value:
            yield Text(f"{label}: {value}", bold=label == "Order")
    if r.created_at:
        yield Text(f"{r.created_at:%Y-%m-%d %H:%M}")
    yield Rule()
    for item in r.items:
        yield from _priced_item(item, r.currency)
    yield Rule()
    for label, amount, bold in (
        ("Subtotal", r.subtotal, False),
        ("Service charge", r.service_charge, False),
        ("TOTAL", r.total, True),
    ):
        if amount is not None:
            yield Row("", label, f"{r.currency}{amount}", bold=bold)
    if r.payment:
        yield Text(f"Payment: {r.payment}")
    if r.notes:
        yield Text(f"Note: {r.notes}")
    yield from _customer(r)
    if r.footer:
        yield Feed()
        yield Text(r.footer, align=Align.CENTER)
    if r.qr:
        yield Feed()
        yield QRCode(r.qr)


def _priced_item(item: Item, currency: str) -> Iterator[Block]:
    names = " ".join(n for n in (item.name, item.name_zh) if n)
    price = f"{currency}{item.price}" if item.price is not None else ""
    qty = f"{item.qty}"
    yield Row(qty, names, price)
    under = " " * len(qty)  # options and notes line up under the item name
    for option in item.options:
        yield Row(under, f"+ {option}")
    if item.note:
        yield Row(under, f"! {item.note}")


def _customer(r: Receipt) -> Iterator[Block]:
    if r.customer is None:
        return
    customer = r.customer
    for label, value in (
        ("Customer", customer.name),
        ("Phone", customer.phone),
        ("Address", customer.address),
    ):
        if value:
            yield Text(_hanging(f"{label}: ", value))


def _hanging(prefix: str, text: str) -> str:
    """``text`` after ``prefix``, its further lines (a note typed on several) indented under
    its first rather than back at the paper's edge."""
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


def _table(r: Receipt) -> str:
    return f"T{r.table}" if r.table else ""
