"""From an order to a document, in the style a printer is set to (pure).

- ``kitchen``: what the cooks need, big: order and table numbers large, items and options
  prominent, notes; no prices.
- ``receipt``: what the customer keeps: shop title, items with aligned prices, totals,
  payment, footer and QR code.
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


def document_for(payload: Mapping[str, Any], style: Style = Style.RECEIPT) -> Document:
    """The document a stored job payload describes."""
    if payload.get("receipt") is not None:
        return compose(Receipt.model_validate(payload["receipt"]), style)
    return text_document(str(payload.get("text", "")))


def compose(receipt: Receipt, style: Style) -> Document:
    blocks = _kitchen(receipt) if style is Style.KITCHEN else _receipt(receipt)
    return Document(tuple(blocks))


def _kitchen(r: Receipt) -> Iterator[Block]:
    heading = " ".join(part for part in (f"#{r.order_no}" if r.order_no else "", _table(r)) if part)
    if heading:
        yield Text(heading, bold=True, align=Align.CENTER, scale=2)
    if r.order_type:
        yield Text(r.order_type.upper(), bold=True, align=Align.CENTER)
    if r.created_at:
        yield Text(f"{r.created_at:%Y-%m-%d %H:%M}", align=Align.CENTER)
    yield Rule("=")
    for item in r.items:
        yield Row(f"{item.qty} x", item.name, bold=True, scale=2)
        if item.name_zh:
            yield Row(" " * len(f"{item.qty} x"), item.name_zh, bold=True, scale=2)
        for option in item.options:
            yield Text(_hanging("  + ", option), bold=True, scale=2)
        if item.note:
            yield Text(_hanging("  ! ", item.note), bold=True)
        yield Rule()
    if r.notes:
        yield Text(f"NOTE: {r.notes}", bold=True)
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
        yield Text(r.payment)
    if r.notes:
        yield Text(r.notes)
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
    for value in (r.customer.name, r.customer.phone, r.customer.address):
        if value:
            yield Text(value)


def _hanging(prefix: str, text: str) -> str:
    """``text`` after ``prefix``, its further lines (a note typed on several) indented under
    its first rather than back at the paper's edge."""
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


def _table(r: Receipt) -> str:
    return f"T{r.table}" if r.table else ""
