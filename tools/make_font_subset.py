"""Make the bundled ticket font: Noto Sans Mono CJK HK cut down to what tickets need.

Run on a machine with Debian's fonts-noto-cjk and fontTools installed:

    python tools/make_font_subset.py [/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc]

Kept: printable ASCII and Latin-1, general punctuation, currency signs, box drawing, CJK symbols
and punctuation, full-width forms, and every character Python's big5hkscs codec can encode (all
of Big5 plus the Hong Kong Supplementary Character Set). The font is under the SIL Open Font
License 1.1 (see OFL.txt beside it); its Reserved Font Name is "Source", which this subset does
not use.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FACE = "Noto Sans Mono CJK HK"
OUT = Path(__file__).resolve().parent.parent / "src/spoonprint/render/fonts/ticket-cjk.otf"
RANGES = [
    (0x20, 0x7E),
    (0xA0, 0xFF),
    (0x2000, 0x206F),
    (0x20A0, 0x20BF),
    (0x2190, 0x21FF),
    (0x2500, 0x257F),
    (0x25A0, 0x25FF),
    (0x3000, 0x303F),
    (0xFF00, 0xFFEF),
]


def big5hkscs_characters() -> set[str]:
    found: set[str] = set()
    for lead in range(0x81, 0xFF):
        for trail in range(0x40, 0xFF):
            try:
                text = bytes([lead, trail]).decode("big5hkscs")
            except UnicodeDecodeError:
                continue
            found.update(text)
    return found


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    collection = TTCollection(str(source))
    font = next(f for f in collection.fonts if f["name"].getDebugName(4) == FACE)
    characters = big5hkscs_characters()
    for low, high in RANGES:
        characters.update(chr(c) for c in range(low, high + 1))
    options = subset.Options()
    options.layout_features = []  # tickets need no vertical or alternate forms
    options.hinting = False  # thermal dots come from FreeType's own rendering
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(ord(c) for c in characters))
    subsetter.subset(font)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(OUT)
    print(f"{OUT}: {len(font.getGlyphOrder())} glyphs, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
