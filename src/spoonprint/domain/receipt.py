"""The receipt document sent as ``receipt`` in ``POST /print``: validated, unknown fields refused.

Amounts are decimal strings (``"48.00"``), never floats, so what the shop sends is what prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from spoonprint.domain.text import one_line, printable_text

# [0-9], not \d: the pattern runs in pydantic-core's Rust regex engine, where \d is every
# Unicode digit ("٤٨.٠٠" would pass and print in a script the kitchen may not read), and its
# table of Unicode digits takes milliseconds to compile for each model that uses it.
Amount = Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,9}(\.[0-9]{1,4})?$")]
# Text fields are normalised for paper (see spoonprint.domain.text): line breaks become lines,
# control and format characters go, so what is accepted can be drawn.
Short = Annotated[str, StringConstraints(max_length=200), AfterValidator(printable_text)]
Long = Annotated[str, StringConstraints(max_length=2000), AfterValidator(printable_text)]

EXAMPLE: dict[str, Any] = {
    "title": "HK Savor Spoon",
    "order_no": "A-1023",
    "table": "12",
    "order_type": "dine-in",
    "created_at": "2026-11-28T12:34:00+08:00",
    "customer": {"name": "", "phone": "", "address": ""},
    "items": [
        {
            "name": "BBQ Pork Rice",
            "name_zh": "叉燒飯",
            "qty": 2,
            "price": "48.00",
            "options": ["少甜", "走冰"],
            "note": "no spring onion",
        }
    ],
    "subtotal": "96.00",
    "service_charge": "9.60",
    "total": "105.60",
    "currency": "HK$",
    "payment": "paid online",
    "notes": "",
    "footer": "多謝光臨 Thank you",
    "qr": "https://example.com/o/A-1023",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Customer(_Strict):
    name: Short = ""
    phone: Short = ""
    address: Long = ""


class Item(_Strict):
    name: Short = Field(min_length=1)
    name_zh: Short = ""
    qty: int = Field(1, ge=1, le=9999)
    price: Amount | None = Field(None, description="Line price as a decimal string")
    options: list[Short] = Field(default_factory=list, max_length=50)
    note: Long = ""


class Receipt(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [dict(EXAMPLE)]})

    title: Short = ""
    order_no: Short = ""
    table: Short = ""
    order_type: Short = ""
    created_at: datetime | None = None
    customer: Customer | None = None
    items: list[Item] = Field(default_factory=list, max_length=500)
    subtotal: Amount | None = None
    service_charge: Amount | None = None
    total: Amount | None = None
    currency: Annotated[str, StringConstraints(max_length=8), AfterValidator(one_line)] = ""
    payment: Short = ""
    notes: Long = ""
    footer: Long = ""
    qr: Annotated[str, StringConstraints(max_length=500)] | None = None
