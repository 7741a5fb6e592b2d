"""The orders the benches send: bilingual (English and Chinese) receipts of any size."""

from __future__ import annotations

from typing import Any

from spoonprint.domain.document import Document
from spoonprint.domain.profile import PrinterProfile
from spoonprint.domain.receipt import Receipt
from spoonprint.domain.ticket import Style, compose
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface

DISHES = [
    ("BBQ Pork Rice", "叉燒飯"), ("Wonton Noodles", "雲吞麵"), ("Milk Tea", "奶茶"),
    ("Beef Brisket Noodles", "牛腩麵"), ("Pineapple Bun", "菠蘿包"), ("Steamed Fish", "蒸魚"),
    ("Fried Rice Yeung Chow", "揚州炒飯"), ("Choi Sum", "菜心"), ("Egg Tart", "蛋撻"),
    ("Curry Fish Balls", "咖喱魚蛋"),
]  # fmt: skip

#: Items on the receipt of the latency and acceptance benches: a table's typical order.
TYPICAL_ITEMS = 4


def bilingual_receipt(items: int = TYPICAL_ITEMS, order_no: str = "A-1023") -> dict[str, Any]:
    """A receipt as ``POST /print`` takes it: ``items`` dishes named in English and Chinese,
    some with options and notes, totals, a Chinese footer and a QR code."""
    lines: list[dict[str, Any]] = []
    subtotal = 0
    for i in range(items):
        name, name_zh = DISHES[i % len(DISHES)]
        qty = 1 + i % 3
        price = qty * (38 + i % 5 * 4)
        subtotal += price
        lines.append(
            {
                "name": name,
                "name_zh": name_zh,
                "qty": qty,
                "price": f"{price}.00",
                "options": ["少甜", "走冰"] if i % 4 == 0 else [],
                "note": "no spring onion 唔要蔥" if i % 5 == 0 else "",
            }
        )
    return {
        "title": "HK Savor Spoon 香港匙羹",
        "order_no": order_no,
        "table": "12",
        "order_type": "dine-in",
        "created_at": "2026-11-28T12:34:00+08:00",
        "items": lines,
        "subtotal": f"{subtotal:.2f}",
        "service_charge": f"{subtotal / 10:.2f}",
        "total": f"{subtotal * 1.1:.2f}",
        "currency": "HK$",
        "payment": "paid online",
        "notes": "allergy: peanuts 花生敏感",
        "footer": "多謝光臨 Thank you",
        "qr": f"https://example.com/o/{order_no}",
    }


def kitchen_ticket(items: int = 30) -> Receipt:
    """A kitchen order of ``items`` bilingual dishes (the render bench's ticket)."""
    return Receipt.model_validate(
        {
            "order_no": "A-1023",
            "table": "12",
            "order_type": "dine-in",
            "created_at": "2026-11-28T12:34:00+08:00",
            "items": [
                {
                    "name": DISHES[i % len(DISHES)][0],
                    "name_zh": DISHES[i % len(DISHES)][1],
                    "qty": 1 + i % 3,
                    "options": ["少甜", "走冰"] if i % 4 == 0 else [],
                    "note": "no spring onion 唔要蔥" if i % 5 == 0 else "",
                }
                for i in range(items)
            ],
            "notes": "allergy: peanuts 花生敏感",
        }
    )


def receipt_document(receipt: dict[str, Any], style: Style = Style.RECEIPT) -> Document:
    return compose(Receipt.model_validate(receipt), style)


def printed_bytes(receipt: dict[str, Any], profile: PrinterProfile | None = None) -> bytes:
    """What spoonprint sends a printer with ``profile`` (default: a printer configured with
    only a name and an address) for ``receipt``: the CUPS references send the same bytes."""
    profile = profile or PrinterProfile()
    render = renderer_for(profile.protocol, default_typeface())
    return render(receipt_document(receipt, profile.style), profile, 1)
