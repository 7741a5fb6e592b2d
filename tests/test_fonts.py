"""The ticket font: found automatically, and able to draw all of Big5-HKSCS."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from fontTools import subset
from fontTools.ttLib import TTFont

from spoonprint.errors import ConfigError
from spoonprint.render.fonts import (
    BUNDLED,
    FontCandidate,
    default_typeface,
    draws_glyphs,
    find_typeface,
)


def big5hkscs_han() -> list[str]:
    found: set[str] = set()
    for lead in range(0x81, 0xFF):
        for trail in range(0x40, 0xFF):
            try:
                text = bytes([lead, trail]).decode("big5hkscs")
            except UnicodeDecodeError:
                continue
            found.update(c for c in text if unicodedata.name(c, "").startswith("CJK"))
    return sorted(found)


def test_every_big5hkscs_han_character_has_a_real_glyph() -> None:
    han = big5hkscs_han()
    assert len(han) > 17_000 and {"餸", "啱", "嘅", "叉"} <= set(han)
    font = default_typeface().font(24)
    if not draws_glyphs(font, "".join(han)):
        missing = [c for c in han if not draws_glyphs(font, c)]
        pytest.fail(f"{len(missing)} characters draw blank or as a box: {''.join(missing[:50])}")


def test_bundled_font_is_the_default() -> None:
    assert default_typeface().path == BUNDLED


def latin_only_font(tmp_path: Path) -> Path:
    font = TTFont(BUNDLED)
    subsetter = subset.Subsetter(subset.Options())
    subsetter.populate(text="ABCabc123")
    subsetter.subset(font)
    path = tmp_path / "latin.otf"
    font.save(path)
    return path


def test_a_font_without_chinese_is_passed_over(tmp_path: Path) -> None:
    latin = latin_only_font(tmp_path)
    found = find_typeface(candidates=[FontCandidate(latin), FontCandidate(BUNDLED)])
    assert found.path == BUNDLED
    with pytest.raises(ConfigError, match="render.font"):
        find_typeface(latin)


def test_no_font_at_all_says_how_to_install_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fonts-noto-cjk"):
        find_typeface(candidates=[FontCandidate(tmp_path / "missing.ttc")])


def test_a_face_in_a_collection_is_found_by_name(tmp_path: Path) -> None:
    found = find_typeface(candidates=[FontCandidate(BUNDLED, family="Noto Sans Mono CJK HK")])
    assert found.index == 0
    with pytest.raises(ConfigError):
        find_typeface(candidates=[FontCandidate(BUNDLED, family="No Such Face")])
