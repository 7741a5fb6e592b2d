"""Receipt model validation and the kitchen / receipt styles."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from spoonprint.domain.receipt import EXAMPLE, Receipt
from spoonprint.domain.ticket import Style, compose, document_for
from spoonprint.render.layout import layout, lines_text


def test_example_is_valid_and_amounts_stay_strings() -> None:
    receipt = Receipt.model_validate(EXAMPLE)
    assert receipt.total == "105.60" and receipt.items[0].price == "96.00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, ("colour",)),
        ({"total": 105.6}, ("total",)),
        ({"total": "1,000"}, ("total",)),
        ({"total": "\u0661\u0660\u0665.\u0666\u0660"}, ("total",)),  # Arabic-Indic digits
        ({"subtotal": "\uff19\uff16"}, ("subtotal",)),  # full-width digits
        ({"items": [{"name": "x", "qty": 0}]}, ("items", 0, "qty")),
        ({"items": [{"name": "x", "spicy": True}]}, ("items", 0, "spicy")),
        ({"customer": {"email": "a@b"}}, ("customer", "email")),
    ],
)
def test_invalid_receipts_name_the_field(
    change: dict[str, object], field: tuple[object, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Receipt.model_validate({**EXAMPLE, **change})
    assert field in [e["loc"] for e in caught.value.errors()]


def test_receipt_style_has_prices_totals_footer_and_qr() -> None:
    text = lines_text(layout(compose(Receipt.model_validate(EXAMPLE), Style.RECEIPT), 48))
    for expected in ("HK Savor Spoon", "BBQ Pork Rice 叉燒飯", "HK$96.00", "少甜", "走冰",
                     "no spring onion", "HK$105.60", "paid online", "多謝光臨 Thank you",
                     "[QR https://example.com/o/A-1023]"):  # fmt: skip
        assert expected in text


def test_kitchen_style_is_big_and_has_no_prices() -> None:
    lines = layout(compose(Receipt.model_validate(EXAMPLE), Style.KITCHEN), 48)
    text = lines_text(lines)
    assert "TABLE 12" in text and "#A-1023" in text and "DINE-IN" in text and "叉燒飯" in text
    assert "$" not in text and "QR" not in text
    big = [line.text.strip() for line in lines if getattr(line, "scale", 1) == 2]
    assert "#A-1023" in big and "2 x BBQ Pork Rice" in big and "+ 少甜" in big
    assert "!! no spring onion" in big  # the note as large as the items, and marked


def test_plain_text_payload_still_works() -> None:
    assert "Hello World Test" in lines_text(layout(document_for({"text": "Hello World Test"}), 48))
