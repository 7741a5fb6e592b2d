"""The receipt document sent as ``receipt`` in ``POST /print``: validated, unknown fields refused.

Amounts are decimal strings (``"48.00"``), printed as sent, or JSON numbers read exactly from the
JSON text as :class:`~decimal.Decimal` (never through a float) and printed with at least two
decimals (``48.5`` prints ``48.50``), so what the shop sends is what prints.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from spoonprint.domain.text import one_line, printable_text

# [0-9], not \d: \d is every Unicode digit ("٤٨.٠٠" would pass and print in a script the
# kitchen may not read).
_AMOUNT_TEXT = r"-?[0-9]{1,9}(\.[0-9]{1,4})?"
_AMOUNT = re.compile(_AMOUNT_TEXT)
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
#: Quantizers by decimal places: 2 to 4.
_UNIT = {places: Decimal(10) ** -places for places in (2, 3, 4)}
#: The error of an amount that came as a float: the JSON parser that made it lost its digits,
#: so the intake reads the body again with numbers as decimals (see ``http.intake``).
AMOUNT_AS_FLOAT = "amount_as_float"


def _amount(value: object) -> object:
    """An amount as the text to print, or an error that says what an amount may be."""
    if isinstance(value, str):
        value = value.strip()
        if _AMOUNT.fullmatch(value):
            return value
        if _DECIMAL_TEXT.fullmatch(value):
            _places(Decimal(value))  # says which limit it is over
    elif isinstance(value, float):
        raise PydanticCustomError(AMOUNT_AS_FLOAT, "an amount as a JSON number must be exact")
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
        if number.is_finite():
            places = max(_places(number), 2)
            return "0.00" if number.is_zero() else format(number.quantize(_UNIT[places]), "f")
    raise PydanticCustomError(
        "amount", 'an amount is a decimal string such as "96.00", or a JSON number'
    )


def _places(number: Decimal) -> int:
    """Decimal places ``number`` needs (its trailing zeros need none), counted exactly: no
    rounding to the decimal context's precision, which could make a long number fit."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not number.is_zero() and number.adjusted() >= 9:
        raise PydanticCustomError(
            "amount", "an amount has at most 9 digits before the decimal point"
        )
    text = "".join(map(str, digits))
    zeros = len(text) - len(text.rstrip("0"))
    places = max(-exponent - zeros, 0)
    if places > 4:
        raise PydanticCustomError("amount", "an amount has at most 4 decimal places")
    return places


Amount = Annotated[
    str,
    BeforeValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": f"^{_AMOUNT_TEXT}$"}, {"type": "number"}],
            "examples": ["96.00"],
        }
    ),
]
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
            "price": "96.00",
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
    price: Amount | None = Field(
        None,
        description="The line's total (qty times the unit price), as POS systems send it: a "
        'decimal string ("96.00") or a JSON number (96.5, read exactly)',
    )
    options: list[Short] = Field(default_factory=list, max_length=50)
    note: Long = ""

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        # Checked after cleaning: a name of only control characters would print as nothing.
        if not name.strip():
            raise PydanticCustomError("empty_name", "an item needs a name that can be printed")
        return name


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
