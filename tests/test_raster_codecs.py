"""Raster encoders (bit packing, Star Graphic Mode jobs, ESC/POS GS v 0 bands) and the
emulator's decoders: golden bytes for a tiny image, and encode -> decode round trips."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from spoonprint.emulator.escpos_paper import render_escpos_paper
from spoonprint.emulator.star_raster import (
    StarKind,
    decode_star_raster,
    split_star_tickets,
    tokenize_star,
)
from spoonprint.render.bitimage import image_bytes, image_rows, rows_image
from spoonprint.render.escpos_raster import gs_v0_bands
from spoonprint.render.fonts import default_typeface
from spoonprint.render.raster import draw_text_line
from spoonprint.render.star_graphic import star_raster_job, star_raster_rows

# No example database: it would leave a .hypothesis folder in the project.
quick = settings(database=None, max_examples=150, deadline=None)

BLACK = 0
WHITE = 255
HEAD = b"\x1b@" + b"\x1b*rR" + b"\x1b*rA" + b"\x1b*rP0\x00"
TAIL = b"\x1b\x0c\x04" + b"\x1b*rB"


def tiny() -> Image.Image:
    """16 x 3: row 0 has the leftmost dot black, row 1 is white, row 2 has dot 9 black."""
    image = Image.new("1", (16, 3), WHITE)
    image.putpixel((0, 0), BLACK)
    image.putpixel((9, 2), BLACK)
    return image


def image_of(width: int, rows: list[bytes]) -> Image.Image:
    return Image.frombytes("1", (width, len(rows)), b"".join(rows), "raw", "1;I")


def same_pixels(a: Image.Image | None, b: Image.Image) -> bool:
    assert a is not None
    return a.mode == b.mode == "1" and a.size == b.size and a.tobytes() == b.tobytes()


@st.composite
def bit_images(draw: st.DrawFn, max_height: int = 40) -> Image.Image:
    """Mode "1" images of 8..576 dots, all white, all black, sparse or random."""
    width = 8 * draw(st.integers(1, 72))
    height = draw(st.integers(1, max_height))
    size = width // 8 * height
    kind = draw(st.sampled_from(["white", "black", "sparse", "random"]))
    if kind == "white":
        packed = bytes(size)
    elif kind == "black":
        packed = b"\xff" * size
    elif kind == "sparse":
        dots = draw(st.dictionaries(st.integers(0, size - 1), st.integers(1, 255), max_size=8))
        packed = bytes(dots.get(i, 0) for i in range(size))
    else:
        packed = draw(st.binary(min_size=size, max_size=size))
    return Image.frombytes("1", (width, height), packed, "raw", "1;I")


# --- bit packing ---------------------------------------------------------------------------


def test_image_rows_pack_black_as_one_msb_first() -> None:
    assert image_rows(tiny()) == [b"\x80\x00", b"\x00\x00", b"\x00\x40"]
    assert image_bytes(tiny()) == b"\x80\x00\x00\x00\x00\x40"


def test_rows_image_pads_short_rows_with_white() -> None:
    image = rows_image([b"\x80", b"", b"\x00\x40"], 16)
    assert same_pixels(image, tiny())


def test_packing_rejects_what_printers_cannot_take() -> None:
    with pytest.raises(ValueError, match="mode"):
        image_rows(Image.new("L", (16, 1)))
    with pytest.raises(ValueError, match="multiple of 8"):
        image_rows(Image.new("1", (12, 1)))
    with pytest.raises(ValueError, match="longer"):
        rows_image([b"\x00\x00\x00"], 16)


@quick
@given(bit_images())
def test_rows_round_trip(image: Image.Image) -> None:
    assert same_pixels(rows_image(image_rows(image), image.width), image)


def test_encoding_a_long_ticket_takes_milliseconds() -> None:
    # A guard against per-pixel Python loops, which take about a second at this size; the
    # bound is generous so that a busy machine does not fail it.
    image = Image.new("1", (576, 3000), WHITE)
    for y in range(0, 3000, 7):
        image.paste(BLACK, (y % 500, y, y % 500 + 60, y + 3))
    encoders: list[Callable[[Image.Image], object]] = [image_rows, star_raster_job, gs_v0_bands]
    for encode in encoders:
        best = min(_timed(encode, image) for _ in range(3))
        assert best < 0.05, f"{encode.__name__} took {best * 1000:.1f} ms"


def _timed(encode: Callable[[Image.Image], object], image: Image.Image) -> float:
    start = time.perf_counter()
    encode(image)
    return time.perf_counter() - start


# --- Star Graphic Mode ---------------------------------------------------------------------


def test_star_job_golden_bytes_with_cut() -> None:
    assert star_raster_job(tiny()) == (
        b"\x1b\x40"  # ESC @
        b"\x1b\x2a\x72\x52"  # ESC * r R
        b"\x1b\x2a\x72\x41"  # ESC * r A
        b"\x1b\x2a\x72\x50\x30\x00"  # ESC * r P 0 NUL
        b"\x1b\x2a\x72\x45\x31\x33\x00"  # ESC * r E 13 NUL
        b"\x62\x01\x00\x80"  # b: one byte, trailing zero trimmed
        b"\x1b\x2a\x72\x59\x31\x00"  # ESC * r Y 1 NUL: the white row
        b"\x62\x02\x00\x00\x40"  # b: two bytes
        b"\x1b\x0c\x04"  # ESC FF EOT
        b"\x1b\x2a\x72\x42"  # ESC * r B
    )


def test_star_job_golden_bytes_without_cut_with_drawer() -> None:
    rows = b"b\x01\x00\x80" + b"\x1b*rY1\x00" + b"b\x02\x00\x00\x40"
    assert star_raster_job(tiny(), cut=False) == HEAD + b"\x1b*rE1\x00" + rows + TAIL
    assert (
        star_raster_job(tiny(), cut=False, drawer=True)
        == HEAD + b"\x1b*rE1\x00" + b"\x1b*rD1\x00" + rows + TAIL
    )
    assert (
        star_raster_job(tiny(), drawer=True)
        == HEAD + b"\x1b*rE13\x00" + b"\x1b*rD1\x00" + rows + TAIL
    )


def test_blank_rows_are_compressed_into_vertical_moves() -> None:
    rows = [b"\x00" * 72] * 12 + [b"\xff" + b"\x00" * 71] + [b"\x00" * 72] * 300
    assert star_raster_rows(image_of(576, rows)) == (
        b"\x1b*rY12\x00" + b"b\x01\x00\xff" + b"\x1b*rY300\x00"
    )
    assert star_raster_rows(Image.new("1", (576, 5), WHITE)) == b"\x1b*rY5\x00"
    assert star_raster_rows(Image.new("1", (576, 0), WHITE)) == b""


def test_full_rows_are_sent_whole_and_trailing_zeros_trimmed() -> None:
    rows = [b"\xff" * 72, b"\x01" + b"\x00" * 70 + b"\x01", b"\x00\x80" + b"\x00" * 70]
    assert star_raster_rows(image_of(576, rows)) == (
        b"bH\x00" + b"\xff" * 72 + b"bH\x00" + rows[1] + b"b\x02\x00\x00\x80"
    )


def test_blank_runs_longer_than_the_maximum_page_are_split() -> None:
    image = Image.new("1", (8, 64001 + 2), WHITE)
    image.putpixel((0, 0), BLACK)
    image.putpixel((0, 64001 + 1), BLACK)
    row = b"b\x01\x00\x80"
    assert star_raster_rows(image) == row + b"\x1b*rY64000\x00" + b"\x1b*rY1\x00" + row
    assert same_pixels(decode_star_raster(star_raster_job(image), 8), image)


@quick
@given(bit_images(), st.booleans(), st.booleans())
@example(Image.new("1", (576, 1), WHITE), True, False)
@example(Image.new("1", (512, 9), BLACK), False, True)
def test_star_round_trip(image: Image.Image, cut: bool, drawer: bool) -> None:
    job = star_raster_job(image, cut=cut, drawer=drawer)
    assert same_pixels(decode_star_raster(job, image.width), image)


@quick
@given(st.lists(bit_images(max_height=12), min_size=1, max_size=4))
def test_star_stream_splits_into_whole_jobs(images: list[Image.Image]) -> None:
    width = images[0].width
    jobs = [star_raster_job(image.crop((0, 0, width, image.height))) for image in images]
    tickets, rest = split_star_tickets(b"".join(jobs) + b"\x1b*rA", width)
    assert tickets == jobs
    assert rest == b"\x1b*rA"


def test_command_bytes_inside_rows_are_row_data() -> None:
    # Each row holds EOT, quit-raster, ETB and status-request bytes: none may split or count.
    row = b"\x1b\x0c\x04\x1b*rB\x17\x1b\x06\x01"
    image = image_of(80, [row] * 3)
    job = star_raster_job(image)
    tickets, rest = split_star_tickets(job, 80)
    assert (tickets, rest) == ([job], b"")
    kinds = {t.kind for t in tokenize_star(job)}
    assert StarKind.ETB not in kinds and StarKind.STATUS_REQUEST not in kinds
    assert same_pixels(decode_star_raster(job, 80), image)


def test_star_cups_filter_stream_decodes() -> None:
    """The shape of what Star's rastertostar sends: setup commands, a NUL per page, rows, a
    final one-dot move, ESC FF, then EOT and quit."""
    stream = (
        b"\x1b@"
        + b"\x1b\x1eA\x00"  # printable width
        + b"\x1b\x07\x14\x14"  # drawer pulse width
        + b"\x1b*rR\x1b*rA"
        + b"\x1b*rQ2\x00\x1b*rP0\x00\x1b*rF13\x00\x1b*rE13\x00"
        + b"\x00"  # start page
        + b"\x1b*rY3\x00"
        + b"b\x02\x00\xf0\x0f"
        + b"\x1b*rY1\x00\x1b\x0c"  # end page, completed by the next byte
        + b"\x04\x1b*rB"  # EOT: end of job
    )
    expected = image_of(16, [b"\x00\x00"] * 3 + [b"\xf0\x0f", b"\x00\x00"])
    assert same_pixels(decode_star_raster(stream, 16), expected)
    assert split_star_tickets(stream, 16) == ([stream], b"")


def test_rows_without_feed_margins_and_cut_off() -> None:
    stream = (
        b"\x1b*rA"
        + b"\x1b*rml1\x00"  # left margin 8 dots
        + b"\x1b*rmr1\x00"  # right margin 8 dots: 2 bytes of print area at 32 dots
        + b"k\x01\x00\xf0"  # no feed
        + b"b\x03\x00\x0f\xaa\xff"  # ORed into the same dot line; the third byte is cut off
        + b"k\x01\x00\x01\x1b*rY2\x00"  # a line ended by a move: it and one blank row
        + b"\x1b*rX7\x00"  # an unknown setting is read to its NUL
        + b"\x1b\x0c\x04"
    )
    expected = image_of(32, [b"\x00\xff\xaa\x00", b"\x00\x01\x00\x00", b"\x00" * 4])
    assert same_pixels(decode_star_raster(stream, 32), expected)


def test_form_feed_cuts_only_in_a_cutting_ff_mode() -> None:
    row = b"b\x01\x00\x80"
    no_cut = b"\x1b*rA\x1b*rF1\x00" + row + b"\x1b\x0c\x00" + row + b"\x1b\x0c\x04"
    assert split_star_tickets(no_cut, 8) == ([no_cut], b"")
    cut = b"\x1b*rA" + row + b"\x1b\x0c\x00" + row + b"\x1b\x0c\x04\x1b*rB"
    first = b"\x1b*rA" + row + b"\x1b\x0c\x00"
    assert split_star_tickets(cut, 8) == ([first, cut[len(first) :]], b"")


def test_quit_raster_ends_a_job_without_eot_and_empty_executes_are_ignored() -> None:
    band = b"\x1b*rA" + b"b\x01\x00\x80" + b"\x1b*rB"
    assert split_star_tickets(band + b"\x1b\x0c\x04" + band, 8) == (
        [band, b"\x1b\x0c\x04" + band],
        b"",
    )


def test_rows_outside_raster_mode_and_text_print_nothing() -> None:
    assert decode_star_raster(b"\x1b@hello b\x01\x00\x80 world\n\x1dV\x00", 8) is None
    tokens = list(tokenize_star(b"ab\x1b*r"))
    assert [t.kind for t in tokens] == [StarKind.IGNORED, StarKind.INCOMPLETE]


# --- ESC/POS GS v 0 --------------------------------------------------------------------------


def test_gs_v0_golden_bytes() -> None:
    assert gs_v0_bands(tiny()) == (
        b"\x1d\x76\x30\x00" + b"\x02\x00" + b"\x03\x00" + b"\x80\x00" + b"\x00\x00" + b"\x00\x40"
    )


def test_gs_v0_bands_split_tall_images() -> None:
    image = image_of(16, [bytes([n, 255 - n]) for n in range(5)])
    assert gs_v0_bands(image, band_height=2) == (
        b"\x1dv0\x00\x02\x00\x02\x00" + b"\x00\xff\x01\xfe"
        b"\x1dv0\x00\x02\x00\x02\x00" + b"\x02\xfd\x03\xfc"
        b"\x1dv0\x00\x02\x00\x01\x00" + b"\x04\xfb"
    )
    assert gs_v0_bands(image, band_height=5) == gs_v0_bands(image)
    tall = Image.new("1", (576, 600), WHITE)
    assert gs_v0_bands(tall).count(b"\x1dv0\x00H\x00") == 3  # 256 + 256 + 88 rows
    assert gs_v0_bands(Image.new("1", (576, 0), WHITE)) == b""
    with pytest.raises(ValueError, match="band_height"):
        gs_v0_bands(image, band_height=0)


@quick
@given(bit_images(max_height=60), st.integers(1, 64))
@example(Image.new("1", (576, 3), BLACK), 1)
def test_gs_v0_round_trip(image: Image.Image, band_height: int) -> None:
    decoded = render_escpos_paper(gs_v0_bands(image, band_height), image.width)
    assert same_pixels(decoded, image)


def test_escpos_paper_is_as_wide_as_what_is_printed() -> None:
    bands = b"\x1b@" + gs_v0_bands(tiny())
    assert same_pixels(render_escpos_paper(bands + b"\x1bd\x03\x1dV\x00", 32), tiny())
    face = default_typeface()
    text = draw_text_line("x", 32, face)
    expected = Image.new("1", (32, 3 + 30 + text.height), WHITE)
    expected.paste(tiny(), (0, 0))
    expected.paste(text, (0, 3 + 30))
    decoded = render_escpos_paper(bands + b"\n" + b"x\n\n", 32, face)
    assert same_pixels(decoded, expected)
