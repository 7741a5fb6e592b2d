"""What is acknowledged prints: order text with line breaks and control characters, and
fields the printer could not print at all (issue 16, part 2).

The model's normalisation is property-tested over all of Unicode through every renderer and
both styles; the server answers are checked on a real server and a real virtual printer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import Receipt
from spoonprint.domain.text import printable_text
from spoonprint.domain.ticket import Style, document_for
from spoonprint.emulator.virtual_printer import VirtualPrinterThread
from spoonprint.http.schemas import PrintRequest
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import Typeface, typeface_at_start
from spoonprint.render.printable import problems

from .conftest import ServerFactory

ENCODING = "big5hkscs"
#: What the chaos run sent: every one of these was acknowledged and then failed to render.
HOSTILE = [f"走冰{sep}少甜" for sep in ("\r\n", "\x1c", "\x1d", "\x1e", "\x85", "\u2029")]
#: No example database: it would leave a .hypothesis folder in the project.
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def typeface() -> Typeface:
    return typeface_at_start(None, 0)


def receipt_with(text: str) -> dict[str, Any]:
    """A receipt with ``text`` in every kind of text field it has."""
    return {
        "title": text,
        "order_no": text,
        "table": text,
        "order_type": text,
        "customer": {"name": text, "phone": text, "address": text},
        "items": [{"name": f"x{text}", "name_zh": text, "options": [text], "note": text}],
        "currency": text[:8],
        "payment": text,
        "notes": text,
        "footer": text,
    }


def text_fields(receipt: Receipt) -> Iterator[str]:
    yield from (receipt.title, receipt.order_no, receipt.table, receipt.order_type)
    yield from (receipt.currency, receipt.payment, receipt.notes, receipt.footer)
    if receipt.customer is not None:
        yield from (receipt.customer.name, receipt.customer.phone, receipt.customer.address)
    for item in receipt.items:
        yield from (item.name, item.name_zh, item.note, *item.options)


# -- the model ----------------------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=60))  # every code point but surrogates, which JSON cannot carry
@example("走冰\r\n少甜")
@example("a\u200db\u202ec\ufeffd\x00e\x1bf\tg\u2028h")
def test_model_keeps_no_control_or_format_character(text: str) -> None:
    receipt = Receipt.model_validate(receipt_with(text))
    for value in text_fields(receipt):
        assert value == value.strip()
        for char in value:
            category = unicodedata.category(char)
            assert char == "\n" or category not in ("Cc", "Cf", "Zl", "Zp"), (value, char)
        assert not value or "" not in value.split("\n"), f"an empty line in {value!r}"
    assert "\n" not in receipt.currency


def test_a_dish_named_only_in_control_characters_is_refused() -> None:
    for name in ("\x1b", "\u200b\r\n", " \x00 "):
        with pytest.raises(ValidationError, match="an item needs a name that can be printed"):
            Receipt.model_validate({"items": [{"name": name}]})


def test_line_breaks_become_lines_and_controls_go() -> None:
    for hostile in HOSTILE:
        assert printable_text(hostile) == "走冰\n少甜"
    assert printable_text("a\tb") == "a b"
    assert printable_text("走\u200d冰\u202e!\x1bp\x00") == "走冰!p"
    assert printable_text("a\n\n\r\n  b  \n") == "a\n  b"
    assert printable_text("\U000f0001 HKSCS") == "\U000f0001 HKSCS"  # private use stays


@PROPERTY
@given(st.text(max_size=40), st.sampled_from(list(Protocol)), st.sampled_from(list(Style)))
@example("走冰\r\n少甜", Protocol.ESCPOS, Style.KITCHEN)
@example("走冰\u2029少甜", Protocol.IMAGE, Style.RECEIPT)
@example("a\x1cb\x85c", Protocol.STAR_GRAPHIC, Style.KITCHEN)
def test_whatever_the_model_accepts_renders_on_every_printer(
    typeface: Typeface, text: str, protocol: Protocol, style: Style
) -> None:
    for order in (
        {"receipt": receipt_with(text)},
        {"receipt": {"items": [{"name": "x", "name_zh": text, "note": text}]}},
        {"text": text},
    ):
        try:
            payload = PrintRequest.model_validate(order).payload()
        except ValidationError:
            continue  # refused (e.g. nothing left to print): the property is about what is accepted
        profile = PrinterProfile(protocol=protocol, style=style, text_encoding=ENCODING)
        assert problems(payload, profile, typeface) == []
        ticket = renderer_for(protocol, typeface)(document_for(payload, style), profile, 1)
        assert ticket


# -- a real server --------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE, ids=["crlf", "fs", "gs", "rs", "nel", "u2029"])
def test_a_note_with_line_breaks_prints_on_two_lines(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread, hostile: str
) -> None:
    uri = f"tcp://127.0.0.1:{big5_printer.port}"
    server = make_server(
        [{"name": "kitchen", "uri": uri, "text_encoding": ENCODING, "style": "kitchen"}]
    )
    client = server.client()
    order = {"receipt": {"items": [{"name": "Iced tea", "name_zh": hostile, "note": hostile}]}}

    preview = client.post("/preview", json=order)
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-type"] == "image/png"

    answer = client.post("/print", json=order)
    assert answer.status_code == 202, answer.text
    job = server.wait_for_job(answer.json()["job_id"], lambda j: j["state"] != "printing")
    assert job["state"] == "printed", job
    ticket = big5_printer.wait_for_tickets(1, 10)[0].text
    lines = [line.strip() for line in ticket.splitlines()]
    assert "!! 走冰" in lines and "少甜" in lines, ticket


def test_a_qr_code_too_big_for_the_paper_is_refused_naming_the_field(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread
) -> None:
    """A narrow printer cannot hold a QR code of 500 emoji (2,000 bytes): that is refused
    with 422 before anything is stored, not acknowledged and then failed."""
    uri = f"tcp://127.0.0.1:{big5_printer.port}"
    server = make_server([{"name": "labels", "uri": uri, "width": 128}])
    client = server.client()
    order = {"order_id": "qr-1", "receipt": {"items": [{"name": "x"}], "qr": "🍜" * 500}}

    for path in ("/print", "/preview"):
        answer = client.post(path, json=order)
        assert answer.status_code == 422, answer.text
        (problem,) = answer.json()["detail"]
        assert problem["field"] == "receipt.qr"
        assert "QR code cannot be printed" in problem["message"]
        assert "does not fit on 128-dot paper" in problem["message"]
    # Nothing was stored: the same order id with a QR code that fits is a new order.
    order["receipt"]["qr"] = "https://example.com/o/1"
    accepted = client.post("/print", json=order)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["duplicate"] is False
