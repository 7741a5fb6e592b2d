"""Layout: widths in cells (CJK counts double), wrapping, columns, alignment."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spoonprint.domain.document import Align, Document, Feed, QRCode, Row, Rule, Text
from spoonprint.render.layout import FeedLine, Line, QRLine, display_width, layout, wrap


def texts(lines: list[object]) -> list[str]:
    return [line.text for line in lines if isinstance(line, Line)]


def test_wide_characters_count_double() -> None:
    assert display_width("abc") == 3
    assert display_width("叉燒飯") == 6
    assert display_width("2 x 叉燒飯") == 10
    assert display_width("ＡＢ") == 4  # full-width forms


def test_wrap_at_word_boundaries_and_anywhere_in_chinese() -> None:
    assert wrap("BBQ Pork Rice with egg", 10) == ["BBQ Pork", "Rice with", "egg"]
    assert wrap("叉燒飯叉燒飯", 7) == ["叉燒飯", "叉燒飯"]
    assert wrap("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]
    assert wrap("", 5) == [""]


@given(st.text(alphabet=st.sampled_from("ab 叉燒飯,.-"), max_size=80), st.integers(2, 48))
def test_wrapped_lines_fit_and_keep_every_character(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert all(display_width(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_row_columns_align_prices_right() -> None:
    doc = Document((Row("2", "BBQ Pork Rice 叉燒飯", "HK$48.00"), Row("10", "Tea", "HK$5.00")))
    first, second = texts(layout(doc, 32))
    assert first == "2 BBQ Pork Rice 叉燒飯  HK$48.00"
    assert display_width(first) == display_width(second) == 32
    assert second.endswith(" HK$5.00") and second.startswith("10 Tea")


def test_long_row_name_wraps_under_itself() -> None:
    doc = Document((Row("2", "Braised beef brisket noodles in soup 清湯牛腩河", "HK$58.00"),))
    lines = texts(layout(doc, 32))
    assert lines[0].endswith("HK$58.00")
    assert all(line.startswith("  ") for line in lines[1:])
    assert all(display_width(line) <= 32 for line in lines)


def test_centred_large_text_uses_half_the_columns() -> None:
    (line,) = layout(Document((Text("#A-1023", bold=True, align=Align.CENTER, scale=2),)), 48)
    assert isinstance(line, Line) and line.scale == 2 and line.bold
    assert line.text == "        #A-1023"  # (24 - 7) // 2 spaces


def test_rules_qr_feeds_and_banners() -> None:
    doc = Document((Rule("="), QRCode("https://x"), Feed(2)), banners=("REPRINT 重印",))
    banner, rule, qr, feed = layout(doc, 48)
    assert isinstance(banner, Line) and "REPRINT 重印" in banner.text and banner.scale == 2
    assert isinstance(rule, Line) and rule.text == "=" * 48
    assert qr == QRLine("https://x") and feed == FeedLine(2)


def test_indented_text_keeps_its_indent_when_wrapped() -> None:
    lines = texts(layout(Document((Text("  + extra crispy pork belly please"),)), 16))
    assert all(line.startswith("  ") for line in lines)
