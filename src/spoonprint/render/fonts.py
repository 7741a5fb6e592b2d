"""Finding a font that can draw Traditional Chinese (with Hong Kong characters) on tickets.

Preference: a font file named in the config; then the bundled ``ticket-cjk.otf`` (a subset of
Noto Sans Mono CJK HK covering all of Big5-HKSCS, on an exact half/full-width grid); then fonts
the system has (Windows: Microsoft JhengHei, MingLiU; Linux: Noto Sans (Mono) CJK, AR PL UMing,
WenQuanYi Zen Hei). Loading a font reads a file, so it happens once per size.

The imaging library is imported when a font is first loaded, not with this module: a server
without a configured font starts on the bundled one (:func:`typeface_at_start`) and loads the
imaging library after it is up (:mod:`spoonprint.render.loader`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from spoonprint.errors import ConfigError

if TYPE_CHECKING:
    from PIL import ImageFont

BUNDLED = Path(__file__).resolve().parent / "fonts" / "ticket-cjk.otf"
#: A character every candidate must draw, to tell a CJK font from a Latin one.
PROBE = "叉燒飯餸"
INSTALL_HINT = (
    'no font that can draw Chinese was found. Set [render] font = "PATH" in spoonprint.toml, '
    "or install one: Debian/Ubuntu: sudo apt-get install fonts-noto-cjk; "
    "Windows: Microsoft JhengHei comes with Windows (C:\\Windows\\Fonts\\msjh.ttc)"
)


@dataclass(frozen=True)
class FontCandidate:
    path: Path
    #: Face inside a .ttc collection, chosen by family name when the index varies by version.
    family: str | None = None
    index: int = 0


def system_candidates() -> list[FontCandidate]:
    windir = Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts"
    noto = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    return [
        FontCandidate(windir / "msjh.ttc"),
        FontCandidate(windir / "mingliu.ttc"),
        FontCandidate(noto, family="Noto Sans Mono CJK HK"),
        FontCandidate(noto, family="Noto Sans Mono CJK TC"),
        FontCandidate(noto, family="Noto Sans CJK TC"),
        FontCandidate(
            Path("/usr/share/fonts/truetype/arphic/uming.ttc"), family="AR PL UMing TW MBE"
        ),
        FontCandidate(Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")),
    ]


@dataclass(frozen=True, eq=False)
class Typeface:
    """A loaded font file; ``font(px)`` gives it at a pixel size (cached)."""

    path: Path
    index: int = 0
    _cache: dict[int, ImageFont.FreeTypeFont] = field(default_factory=dict, repr=False)

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        if size not in self._cache:
            from PIL import ImageFont

            self._cache[size] = ImageFont.truetype(str(self.path), size, index=self.index)
        return self._cache[size]

    @property
    def name(self) -> str:
        family, style = self.font(24).getname()
        return f"{family} {style or ''}".strip()


def find_typeface(
    configured: Path | None = None,
    index: int = 0,
    candidates: Iterable[FontCandidate] | None = None,
) -> Typeface:
    """The first usable CJK font; ConfigError saying how to get one when there is none."""
    if configured is not None:
        typeface = _load(FontCandidate(configured, index=index))
        if typeface is None:
            raise ConfigError(f"render.font: {configured} cannot draw Chinese or is not a font")
        return typeface
    search: Sequence[FontCandidate] = (
        list(candidates)
        if candidates is not None
        else [FontCandidate(BUNDLED), *system_candidates()]
    )
    for candidate in search:
        typeface = _load(candidate)
        if typeface is not None:
            return typeface
    raise ConfigError(INSTALL_HINT)


def typeface_at_start(configured: Path | None = None, index: int = 0) -> Typeface:
    """The typeface a server starts with. A configured font is checked at once, so that a
    wrong one stops the start with a clear error. Without one, the bundled font is taken
    without loading it: it is spoonprint's own, checked by the test suite, and loading fonts
    means loading the imaging library, which then happens after the server is up instead of
    before its first answer. Without the bundled file (a broken install), the system's fonts
    are searched and checked."""
    if configured is None and BUNDLED.is_file():
        return Typeface(BUNDLED)
    return find_typeface(configured, index)


@lru_cache(maxsize=1)
def default_typeface() -> Typeface:
    """The typeface used when the config names none (shared, loaded once)."""
    return find_typeface()


def _load(candidate: FontCandidate) -> Typeface | None:
    if not candidate.path.is_file():
        return None
    for index in _indexes(candidate):
        try:
            typeface = Typeface(candidate.path, index)
            font = typeface.font(24)
        except OSError:
            return None
        if candidate.family is not None and font.getname()[0] != candidate.family:
            continue
        if draws_glyphs(font, PROBE):
            return typeface
    return None


def _indexes(candidate: FontCandidate) -> range:
    # A family name means "search the collection"; collections hold at most a few dozen faces.
    return (
        range(32) if candidate.family is not None else range(candidate.index, candidate.index + 1)
    )


def draws_glyphs(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """True when every character of ``text`` has a real glyph (not blank, not the
    missing-glyph box)."""
    missing = _glyph_pixels(font, "\U0010fffd")
    for char in text:
        pixels = _glyph_pixels(font, char)
        if not any(pixels) or pixels == missing:
            return False
    return True


def _glyph_pixels(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    from PIL import Image, ImageDraw

    size = int(font.size * 2)
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).text((0, 0), char, font=font, fill=255)
    return image.tobytes()
