"""Tests for the ESC/POS text rendering and ticket splitting of the virtual printer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spoonprint.emulator.escpos_text import (
    Kind,
    decode_escpos,
    has_printable_content,
    split_tickets,
    tokenize,
)

INIT = b"\x1b@"
CUT = b"\x1dV\x00"
FEED_CUT = b"\x1dVB\x00"
CANTONESE = "叉燒飯 餸 啱 嘅"

# No example database: it would leave a .hypothesis folder in the project.
quick = settings(database=None, max_examples=300, deadline=None)


def raster(width_bytes: int, payload: bytes) -> bytes:
    height = len(payload) // width_bytes
    header = b"\x1dv0\x00" + width_bytes.to_bytes(2, "little") + height.to_bytes(2, "little")
    return header + payload


def qr_store(data: bytes) -> bytes:
    return b"\x1d(k" + (len(data) + 3).to_bytes(2, "little") + b"\x31\x50\x30" + data


def test_plain_text_and_newlines() -> None:
    assert decode_escpos(INIT + b"Table 4\nNo onions\r\n" + CUT) == "Table 4\nNo onions\n"


def test_formatting_commands_leave_no_trace() -> None:
    data = (
        INIT
        + b"\x1ba\x01\x1b!\x30BIG\x1b!\x00\n"
        + b"\x1bE\x01bold\x1bE\x00 \x1b-\x01under\x1b-\x00\n"
        + b"\x1dB\x01inv\x1dB\x00\x1d!\x11x\n"
        + b"\x1bt\x10\x1b2\x1b3\x18\x1bp\x00\x19\xfa"
    )
    assert decode_escpos(data) == "BIG\nbold under\ninvx\n"


def test_feed_lines_and_tab() -> None:
    assert decode_escpos(b"a\x1bd\x03b\tc") == "a\n\n\nb\tc"


def test_cuts_render_nothing_and_take_their_length() -> None:
    data = b"one\n\x1dV\x01two\n\x1dVA\x05three\n\x1dV\x31four\n\x1dVB\x00"
    assert decode_escpos(data) == "one\ntwo\nthree\nfour\n"


def test_cp437_is_the_default_text_encoding() -> None:
    assert decode_escpos(b"caf\x82 \x9c3") == "café £3"
    assert decode_escpos(b"caf\xe9", encoding="cp1252") == "café"


def test_double_byte_mode_uses_big5hkscs() -> None:
    chinese = CANTONESE.encode("big5hkscs")
    data = b"\x1c&" + chinese + b"\x1c.\n" + b"\x82\n"
    assert decode_escpos(data) == CANTONESE + "\né\n"


def test_double_byte_mode_encoding_is_configurable() -> None:
    data = b"\x1c&" + "叉烧饭".encode("gb18030") + b"\x1c."
    assert decode_escpos(data, cjk_encoding="gb18030") == "叉烧饭"


def test_undecodable_bytes_become_replacement_characters() -> None:
    assert decode_escpos(b"\x1c&\xff\xfe\x1c.ok", cjk_encoding="big5hkscs") == "\ufffd\ufffdok"
    assert decode_escpos(b"ok\xff", encoding="ascii") == "ok\ufffd"


def test_raster_payload_is_skipped_even_if_it_looks_like_a_cut() -> None:
    image = raster(3, b"\x1dV\x00" * 4)
    data = b"Logo\n" + image + b"after\n" + CUT + b"next"
    assert decode_escpos(data) == "Logo\n[raster 24x4]\nafter\nnext"
    tickets, rest = split_tickets(data)
    assert tickets == [b"Logo\n" + image + b"after\n" + CUT]
    assert rest == b"next"


def test_raster_starts_on_its_own_line() -> None:
    assert decode_escpos(b"total" + raster(1, b"\xff")) == "total\n[raster 8x1]\n"


def test_qr_store_is_shown_and_its_payload_never_splits() -> None:
    code = b"https://example.test/o/42?x=\x1dV\x00"
    data = b"\x1d(k\x04\x00\x31\x41\x32\x00" + qr_store(code) + b"\x1d(k\x03\x00\x31\x51\x30"
    assert decode_escpos(data + CUT) == "[QR: https://example.test/o/42?x=\x1dV\x00]\n"
    tickets, rest = split_tickets(data + CUT)
    assert tickets == [data + CUT]
    assert rest == b""


def test_graphics_commands_are_skipped_by_length() -> None:
    gs_l = b"\x1d(L\x06\x00\x30\x70\x1dV\x00\x00"
    gs_8l = b"\x1d8L\x03\x00\x00\x00\x1dV\x00"
    tickets, rest = split_tickets(gs_l + gs_8l + b"ok" + CUT)
    assert len(tickets) == 1
    assert decode_escpos(tickets[0]) == "ok"
    assert rest == b""


def test_realtime_commands_produce_no_text() -> None:
    assert decode_escpos(b"\x10\x04\x01a\x10\x05\x02b\x10\x04\x07\x01c") == "abc"


def test_unknown_sequences_skip_command_and_one_byte() -> None:
    assert decode_escpos(b"\x1b\x01Xok\x1d\x7fYok\x1c\x7fZok") == "okokok"


def test_barcode_is_shown() -> None:
    assert decode_escpos(b"\x1dkE\x0412AB") == "[barcode: 12AB]\n"
    assert decode_escpos(b"\x1dk\x0412345\x00") == "[barcode: 12345]\n"


def test_truncated_command_at_the_end_is_dropped() -> None:
    assert decode_escpos(b"done\n" + raster(10, b"\x00" * 20)[:-5]) == "done\n"
    assert decode_escpos(b"x\x1b") == "x"


def test_split_tickets_on_every_cut_form() -> None:
    first = INIT + b"A\n" + CUT
    second = b"B\n" + FEED_CUT
    third = b"C\n\x1dV\x01"
    tickets, rest = split_tickets(first + second + third + b"\x1b@partial")
    assert tickets == [first, second, third]
    assert rest == b"\x1b@partial"


def test_split_waits_for_the_feed_byte_of_gs_v_66() -> None:
    tickets, rest = split_tickets(b"A\n\x1dVB")
    assert tickets == []
    assert rest == b"A\n\x1dVB"


def test_printable_content() -> None:
    assert not has_printable_content(INIT + b"  \n\r\n\x1bd\x05\x1bE\x01")
    assert has_printable_content(b"x")
    assert has_printable_content(raster(1, b"\x00"))


@quick
@given(st.binary(max_size=400))
def test_garbage_never_raises_and_split_is_lossless(data: bytes) -> None:
    decode_escpos(data)
    decode_escpos(data, encoding="ascii", cjk_encoding="gb18030")
    tickets, rest = split_tickets(data)
    assert b"".join(tickets) + rest == data


@quick
@given(
    st.lists(
        st.sampled_from(
            [
                b"\x1b",
                b"\x1d",
                b"\x1c",
                b"\x10",
                b"V",
                b"v0",
                b"(k",
                b"\x00",
                b"\x41",
                b"\xff",
                b"\n",
                b"\x04",
                b"&",
                b".",
            ]
        ),
        max_size=60,
    )
)
def test_command_heavy_garbage_never_raises(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    decode_escpos(data)
    tickets, rest = split_tickets(data)
    assert b"".join(tickets) + rest == data


@quick
@given(st.binary(max_size=300))
def test_tokens_cover_every_byte_in_order(data: bytes) -> None:
    position = 0
    for token in tokenize(data):
        assert token.start == position
        assert token.end > token.start
        position = token.end
    assert position == len(data)


@quick
@given(st.integers(min_value=1, max_value=8), st.binary(min_size=1, max_size=200), st.binary())
def test_any_raster_payload_stays_inside_its_ticket(width: int, pixels: bytes, tail: bytes) -> None:
    ticket = b"order\n" + raster(width, pixels * width) + CUT
    tickets, _ = split_tickets(ticket + tail)
    assert tickets[0] == ticket
    assert [t.kind for t in tokenize(ticket)][-2:] == [Kind.RASTER, Kind.CUT]
