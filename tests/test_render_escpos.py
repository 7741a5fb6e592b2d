"""The ESC/POS text renderer, checked byte by byte (golden values from PROTOCOLS.md)."""

from hypothesis import given
from hypothesis import strategies as st

from spoonprint.domain.document import document_for, text_document, with_banner
from spoonprint.domain.profile import PrinterProfile
from spoonprint.render.escpos import render_escpos_text


def test_plain_text_ticket_bytes() -> None:
    data = render_escpos_text(text_document("Hello World Test"), PrinterProfile())
    assert data == (
        b"\x1b@"  # initialise
        b"\x1ba\x00Hello World Test\n"  # left aligned line
        b"\x1bd\x04"  # feed 4 lines
        b"\x1dVB\x00"  # feed and cut
    )


def test_copies_repeat_the_whole_ticket() -> None:
    one = render_escpos_text(text_document("x"), PrinterProfile())
    assert render_escpos_text(text_document("x"), PrinterProfile(), copies=3) == one * 3


def test_no_cut_when_the_printer_has_no_cutter() -> None:
    data = render_escpos_text(text_document("x"), PrinterProfile(cut=False))
    assert not data.endswith(b"\x1dVB\x00")


def test_banner_is_bold_centred_and_large() -> None:
    data = render_escpos_text(with_banner(text_document("x"), "REPRINT"), PrinterProfile())
    assert b"\x1ba\x01\x1bE\x01\x1d!\x11REPRINT\x1d!\x00\x1bE\x00\n" in data


def test_chinese_in_a_double_byte_encoding_uses_fs_and() -> None:
    profile = PrinterProfile(text_encoding="big5hkscs")
    data = render_escpos_text(text_document("叉燒飯 x1"), profile)
    assert b"\x1c&" + "叉燒飯 x1".encode("big5hkscs") + b"\x1c." in data


@given(st.text(max_size=200))
def test_order_text_never_injects_commands(text: str) -> None:
    data = render_escpos_text(text_document(text), PrinterProfile())
    body = data[len(b"\x1b@") : -len(b"\x1bd\x04\x1dVB\x00")]
    for line in body.split(b"\n")[:-1]:
        content = line[len(b"\x1ba\x00") :]
        assert not any(byte < 0x20 for byte in content)


def test_receipt_payload_prints_its_lines() -> None:
    receipt = {
        "title": "HK Savor Spoon",
        "order_no": "A-1023",
        "items": [{"name": "BBQ Pork Rice", "qty": 2, "price": "48.00", "options": ["no ice"]}],
        "total": "96.00",
        "currency": "HK$",
    }
    data = render_escpos_text(document_for({"receipt": receipt}), PrinterProfile())
    for text in (
        b"HK Savor Spoon",
        b"Order: A-1023",
        b"2 x BBQ Pork Rice  48.00",
        b"- no ice",
        b"Total: HK$96.00",
    ):
        assert text in data
