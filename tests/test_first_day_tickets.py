"""What the cook and the customer read (issue 15, point 12): a kitchen ticket's notes large and
marked, the table larger still, plain-text orders at the kitchen size; a receipt's fields
labelled. Through the real server, the real renderers and the virtual printer's bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spoonprint.domain.document import Document, Text
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import Receipt
from spoonprint.domain.ticket import Style, compose, document_for
from spoonprint.emulator.escpos_text import Kind, tokenize
from spoonprint.emulator.virtual_printer import VirtualPrinterThread
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import BUNDLED, find_typeface
from spoonprint.render.layout import Line, layout

from .conftest import Server, ServerFactory

ORDER = {
    "order_no": "A-1023",
    "table": "12",
    "order_type": "dine-in",
    "customer": {"name": "Chan Tai Man", "phone": "9123 4567", "address": "1 Nathan Road"},
    "items": [
        {
            "name": "BBQ Pork Rice",
            "name_zh": "叉燒飯",
            "qty": 2,
            "price": "96.00",
            "options": ["少甜"],
            "note": "no spring onion 走蔥",
        },
    ],
    "total": "96.00",
    "currency": "HK$",
    "payment": "paid online",
    "notes": "allergy: peanuts 花生敏感",
}


def printed_lines(data: bytes) -> list[tuple[int, str]]:
    """Each printed line of an ESC/POS text-mode ticket with its character size (``GS !``: 1
    normal, 2 double, 3 triple ...), as the printer prints it."""
    lines: list[tuple[int, str]] = []
    scale, double_byte, text, line_scale = 1, False, "", 1
    for token in tokenize(data):
        raw = data[token.start : token.end]
        if token.kind is Kind.COMMAND and raw[:2] == b"\x1d!":
            scale = max((raw[2] >> 4 & 0x07) + 1, (raw[2] & 0x07) + 1)
        elif token.kind in (Kind.DOUBLE_BYTE_ON, Kind.DOUBLE_BYTE_OFF):
            double_byte = token.kind is Kind.DOUBLE_BYTE_ON
        elif token.kind is Kind.TEXT:
            text += raw.decode("big5hkscs" if double_byte else "cp437")
            line_scale = max(line_scale, scale)
        elif token.kind is Kind.NEWLINE:
            if text.strip():
                lines.append((line_scale, text.strip()))
            text, line_scale = "", 1
    return lines


def scale_of(lines: list[tuple[int, str]], words: str) -> int:
    (scale,) = [scale for scale, text in lines if words in text]
    return scale


@pytest.fixture
def big5_printers(tmp_path: Path) -> Iterator[tuple[VirtualPrinterThread, VirtualPrinterThread]]:
    # Big5-HKSCS text mode: Chinese prints as text, so every line's size is in the bytes.
    with (
        VirtualPrinterThread(out_dir=tmp_path / "kitchen", encoding="big5hkscs") as kitchen,
        VirtualPrinterThread(out_dir=tmp_path / "front", encoding="big5hkscs") as front,
    ):
        yield kitchen, front


@pytest.fixture
def server(
    big5_printers: tuple[VirtualPrinterThread, VirtualPrinterThread], make_server: ServerFactory
) -> Server:
    kitchen, front = big5_printers
    return make_server(
        [
            {
                "name": "kitchen",
                "uri": f"tcp://127.0.0.1:{kitchen.port}",
                "style": "kitchen",
                "text_encoding": "big5hkscs",
            },
            {
                "name": "front",
                "uri": f"tcp://127.0.0.1:{front.port}",
                "style": "receipt",
                "text_encoding": "big5hkscs",
            },
        ]
    )


def print_order(server: Server, name: str, printer: VirtualPrinterThread) -> list[tuple[int, str]]:
    answer = server.client().post("/print", json={"receipt": ORDER, "printer": name})
    assert answer.status_code == 202, answer.text
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    return printed_lines(ticket.data)


def test_kitchen_ticket_prints_notes_large_and_marked_and_the_table_larger(
    server: Server, big5_printers: tuple[VirtualPrinterThread, VirtualPrinterThread]
) -> None:
    lines = print_order(server, "kitchen", big5_printers[0])
    item = scale_of(lines, "2 x BBQ Pork Rice")
    assert item == 2
    assert scale_of(lines, "!! no spring onion 走蔥") >= item
    assert scale_of(lines, "!! NOTE: allergy:") >= item
    assert scale_of(lines, "TABLE 12") > scale_of(lines, "#A-1023") >= item


def test_plain_text_order_on_a_kitchen_printer_prints_at_the_kitchen_size(
    server: Server, big5_printers: tuple[VirtualPrinterThread, VirtualPrinterThread]
) -> None:
    kitchen, front = big5_printers
    text = "T5: 2 x wonton noodles\n走蔥"
    for printer in ("kitchen", "front"):
        assert server.client().post("/print", json={"text": text, "printer": printer}).is_success
    (cooked,) = kitchen.wait_for_tickets(1, timeout=10)
    (kept,) = front.wait_for_tickets(1, timeout=10)
    assert printed_lines(cooked.data) == [(2, "T5: 2 x wonton noodles"), (2, "走蔥")]
    assert printed_lines(kept.data) == [(1, "T5: 2 x wonton noodles"), (1, "走蔥")]


def test_receipt_labels_payment_note_and_customer(
    server: Server, big5_printers: tuple[VirtualPrinterThread, VirtualPrinterThread]
) -> None:
    texts = [text for _, text in print_order(server, "front", big5_printers[1])]
    for label in (
        "Payment: paid online",
        "Note: allergy: peanuts 花生敏感",
        "Customer: Chan Tai Man",
        "Phone: 9123 4567",
        "Address: 1 Nathan Road",
    ):
        assert label in texts, texts


def test_the_preview_draws_the_same_sizes_as_the_document_says() -> None:
    """The Document model itself: what every renderer (raster, Star, preview) is given."""
    lines = [
        line
        for line in layout(compose(Receipt.model_validate(ORDER), Style.KITCHEN), 48)
        if isinstance(line, Line)
    ]
    size = {line.text.strip(): line.scale for line in lines}
    assert size["TABLE 12"] == 3 and size["#A-1023"] == 2 and size["2 x BBQ Pork Rice"] == 2
    assert size["!! no spring onion 走蔥"] == 2
    text_lines = layout(document_for({"text": "wonton"}, Style.KITCHEN), 48)
    assert [(line.text, line.scale) for line in text_lines if isinstance(line, Line)] == [
        ("wonton", 2)
    ]


@pytest.mark.parametrize(
    ("protocol", "size"),
    [(Protocol.ESCPOS, b"\x1d!\x22"), (Protocol.STAR_LINE, b"\x1bi\x02\x02")],
)
def test_text_mode_prints_a_triple_size_line_triple(protocol: Protocol, size: bytes) -> None:
    document = Document((Text("TABLE 12", bold=True, scale=3),))
    data = renderer_for(protocol, find_typeface(BUNDLED))(document, PrinterProfile(protocol), 1)
    assert size + b"TABLE 12" in data
