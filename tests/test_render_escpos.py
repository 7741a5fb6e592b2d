"""Renderers, byte by byte (golden values from PROTOCOLS.md) and as pictures."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spoonprint.domain.document import Document, QRCode, Text, text_document, with_banner
from spoonprint.domain.profile import Chinese, PrinterProfile, Protocol
from spoonprint.domain.receipt import EXAMPLE, Receipt
from spoonprint.domain.ticket import Style, compose
from spoonprint.render.base import renderer_for
from spoonprint.render.escpos import render_escpos_raster, render_escpos_text
from spoonprint.render.escpos_raster import gs_v0_bands
from spoonprint.render.fonts import default_typeface
from spoonprint.render.layout import Line, layout
from spoonprint.render.raster import draw, draw_text_line
from spoonprint.render.star import render_star_graphic, render_star_line
from spoonprint.render.star_graphic import star_raster_job, star_raster_rows

FACE = default_typeface()
ESCPOS = PrinterProfile()
TAIL = b"\x1bd\x04\x1dVB\x00"  # feed 4 lines, feed and cut


def test_plain_text_ticket_bytes() -> None:
    data = render_escpos_text(text_document("Hello World Test"), ESCPOS, FACE)
    assert data == b"\x1b@\x1bt\x00" + b"Hello World Test\n" + TAIL


def test_styles_copies_drawer_and_no_cut() -> None:
    doc = Document((Text("Big", bold=True, scale=2),))
    data = render_escpos_text(doc, ESCPOS, FACE)
    assert b"\x1bE\x01\x1d!\x11Big\x1d!\x00\x1bE\x00\n" in data
    assert render_escpos_text(doc, ESCPOS, FACE, copies=3) == data * 3
    drawer = PrinterProfile(drawer=True, cut=False)
    assert render_escpos_text(doc, drawer, FACE).endswith(b"\x1bd\x04\x1bp\x00\x19\xfa")


def test_chinese_in_big5hkscs_uses_fs_and() -> None:
    profile = PrinterProfile(text_encoding="big5hkscs")
    data = render_escpos_text(text_document("叉燒飯 餸 x1"), profile, FACE)
    assert data == b"\x1b@" + b"\x1c&" + "叉燒飯 餸 x1".encode("big5hkscs") + b"\x1c.\n" + TAIL


def test_line_the_encoding_cannot_hold_is_a_raster_band_never_question_marks() -> None:
    profile = PrinterProfile(text_encoding="big5")  # plain Big5 has no 餸
    data = render_escpos_text(text_document("Rice 叉燒飯\n白飯餸菜"), profile, FACE)
    assert b"\x1c&" + "Rice 叉燒飯".encode("big5") + b"\x1c.\n" in data
    band = gs_v0_bands(draw_text_line("白飯餸菜", 576, FACE))
    assert band in data
    assert b"?" not in data[: data.index(band)]  # no replacement characters in the text part


def test_cp437_printer_gets_chinese_as_raster() -> None:
    data = render_escpos_text(text_document("走冰"), ESCPOS, FACE)
    assert data == b"\x1b@\x1bt\x00" + gs_v0_bands(draw_text_line("走冰", 576, FACE)) + TAIL


def test_chinese_raster_setting_rasters_even_encodable_lines() -> None:
    profile = PrinterProfile(text_encoding="big5hkscs", chinese=Chinese.RASTER)
    data = render_escpos_text(text_document("走冰\nplain"), profile, FACE)
    assert b"\x1c&" not in data and b"plain\n" in data and b"\x1dv0\x00" in data


def test_qr_uses_the_native_command() -> None:
    data = render_escpos_text(Document((QRCode("https://x.hk"),)), ESCPOS, FACE)
    payload = b"https://x.hk"
    assert (
        b"\x1d(k\x04\x001A2\x00"
        b"\x1d(k\x03\x001C\x06"
        b"\x1d(k\x03\x001E1"
        + b"\x1d(k"
        + bytes([len(payload) + 3, 0])
        + b"1P0"
        + payload
        + b"\x1d(k\x03\x001Q0"
    ) in data


def text_parts(body: bytes) -> list[bytes]:
    """The text lines of an ESC/POS body, each ``GS v 0`` raster band skipped by the size its
    header declares (its pixel bytes may be anything, newlines included)."""
    parts: list[bytes] = []
    at = 0
    while at < len(body):
        if body.startswith(b"\x1dv0", at):
            width = body[at + 4] | body[at + 5] << 8
            height = body[at + 6] | body[at + 7] << 8
            at += 8 + width * height
            continue
        end = body.find(b"\n", at)
        end = len(body) if end < 0 else end
        parts.append(body[at:end])
        at = end + 1
    return parts


def test_raster_bands_are_skipped_whatever_their_bytes() -> None:
    band = b"\x1dv0\x00\x02\x00\x02\x00" + b"\n\x1b\x00\n"
    assert text_parts(b"one\n" + band + b"two\n") == [b"one", b"two"]


@given(st.text(max_size=200))
@example("醹")  # found by this test: the character's raster band holds 0x0a bytes
@settings(deadline=None)
def test_order_text_never_injects_commands(text: str) -> None:
    data = render_escpos_text(text_document(text), PrinterProfile(chinese=Chinese.RASTER), FACE)
    body = data[len(b"\x1b@\x1bt\x00") : -len(TAIL)]
    for part in text_parts(body):
        assert not any(byte < 0x20 for byte in part)


def test_escpos_raster_is_the_drawn_ticket_in_bands() -> None:
    doc = compose(Receipt.model_validate(EXAMPLE), Style.RECEIPT)
    image = draw(layout(doc, 48), 576, FACE)
    assert render_escpos_raster(doc, ESCPOS, FACE) == b"\x1b@" + gs_v0_bands(image) + TAIL


def test_star_graphic_is_one_raster_job_with_cut() -> None:
    doc = compose(Receipt.model_validate(EXAMPLE), Style.KITCHEN)
    profile = PrinterProfile(protocol=Protocol.STAR_GRAPHIC)
    image = draw(layout(doc, 48), 576, FACE)
    data = render_star_graphic(doc, profile, FACE)
    assert data == star_raster_job(image, cut=True, drawer=False)
    assert data.startswith(b"\x1b@\x1b*rR\x1b*rA") and data.endswith(b"\x1b\x0c\x04\x1b*rB")


def test_star_graphic_at_512_dots_uses_64_byte_rows() -> None:
    profile = PrinterProfile(protocol=Protocol.STAR_GRAPHIC, width_dots=512)
    data = render_star_graphic(text_document("=" * 42), profile, FACE)
    rows = [data[i + 1 : i + 3] for i in range(len(data) - 2) if data[i : i + 1] == b"b"]
    assert rows and all(int.from_bytes(r, "little") <= 64 for r in rows)


def test_star_line_text_bytes() -> None:
    profile = PrinterProfile(protocol=Protocol.STAR_LINE)
    doc = Document((Text("Hi"), Text("Big", bold=True, scale=2)))
    assert render_star_line(doc, profile, FACE) == (
        b"\x1b@" + b"Hi\n" + b"\x1bE\x1bi\x01\x01Big\x1bi\x00\x00\x1bF\n" + b"\n" * 4 + b"\x1bd\x03"
    )


def test_star_line_rasters_chinese_between_raster_mode_commands() -> None:
    profile = PrinterProfile(protocol=Protocol.STAR_LINE)
    data = render_star_line(text_document("叉燒飯"), profile, FACE)
    band = star_raster_rows(draw_text_line("叉燒飯", 576, FACE))
    assert b"\x1b*rA" + band + b"\x1b*rB" in data


@pytest.mark.parametrize("protocol", list(Protocol))
def test_every_protocol_renders_the_reprint_banner(protocol: Protocol) -> None:
    doc = with_banner(compose(Receipt.model_validate(EXAMPLE), Style.RECEIPT), "REPRINT 重印")
    profile = PrinterProfile(protocol=protocol)
    assert renderer_for(protocol, FACE)(doc, profile, 1)
    (banner, *_) = layout(doc, profile.columns)
    assert isinstance(banner, Line) and "REPRINT" in banner.text
