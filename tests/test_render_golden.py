"""Golden output of every renderer: SHA-256 of the bytes each dialect sends for a few tickets.

The other render tests compare renderers with each other (raster bytes against the picture
``draw`` makes), so a change in how pictures are drawn or packed would pass them unnoticed;
these pin the bytes themselves. They were recorded from the numpy raster code that the Pillow
code replaced, and it matched them exactly.

The bytes depend on the bundled font and on the FreeType inside Pillow. If a Pillow upgrade
changes them, look at the pictures (``spoonprint test-print`` to the emulator) before taking
the new digests: ``python -m tests.test_render_golden`` prints them.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from spoonprint.domain.document import (
    Align,
    Document,
    Feed,
    QRCode,
    Row,
    Rule,
    Text,
    with_banner,
)
from spoonprint.domain.profile import Chinese, PrinterProfile, Protocol
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import BUNDLED, find_typeface

FACE = find_typeface(BUNDLED)

RECEIPT = Document(
    (
        Text("HK Savor Spoon 香港匙羹", bold=True, align=Align.CENTER, scale=2),
        Text("Order: A-1023", bold=True),
        Text("Table: 12"),
        Rule(),
        Row("2", "BBQ Pork Rice 叉燒飯", "HK$96.00"),
        Row(" ", "+ 少甜"),
        Row(" ", "! no spring onion 唔要蔥"),
        Row("1", "Yeung Chow Fried Rice with a name long enough to wrap 揚州炒飯", "HK$58.00"),
        Rule(),
        Row("", "TOTAL", "HK$169.40", bold=True),
        Feed(),
        Text("多謝光臨 Thank you", align=Align.CENTER),
        Feed(),
        QRCode("https://example.com/o/A-1023"),
    )
)
KITCHEN = Document(
    (
        Text("#A-1023 T12", bold=True, align=Align.CENTER, scale=2),
        Rule("="),
        Row("2 x", "BBQ Pork Rice", bold=True, scale=2),
        Row("   ", "叉燒飯", bold=True, scale=2),
        Text("  + 走冰", bold=True, scale=2),
        Text("  ! no spring onion 唔要蔥", bold=True),
        Rule(),
        # Odd half-width runs before wide characters put words on half-byte boundaries, and the
        # long word runs off the paper.
        Text("a叉b x 燒 xyz 飯 " + "W" * 60, scale=1),
        Text("é\u0301 ＡＢＣ 한국 🍜", bold=True, align=Align.RIGHT, scale=3),
    )
)
REPRINT = with_banner(RECEIPT, "REPRINT 重印")
DOCUMENTS = {"receipt": RECEIPT, "kitchen": KITCHEN, "reprint": REPRINT}
PROFILES = {
    # cp437: every Chinese line of the text dialects is a raster band.
    "576": lambda protocol: PrinterProfile(protocol=protocol),
    "512-big5": lambda protocol: PrinterProfile(
        protocol=protocol, width_dots=512, text_encoding="big5", chinese=Chinese.TEXT, drawer=True
    ),
}

GOLDEN = {
    "escpos/576/receipt": "597f0bd8c36cfa76",
    "escpos/576/kitchen": "9eb21544771e520f",
    "escpos/576/reprint": "0d4e26b9e6acd53a",
    "escpos/512-big5/receipt": "0c978c083f2ad0f8",
    "escpos/512-big5/kitchen": "461bbdad88375d4f",
    "escpos/512-big5/reprint": "7c3ce7deff7a82e8",
    "escpos-raster/576/receipt": "98d33851fe4232c4",
    "escpos-raster/576/kitchen": "c43a4248459b23ac",
    "escpos-raster/576/reprint": "25e53cbec96aba4a",
    "escpos-raster/512-big5/receipt": "333e201b3da300ce",
    "escpos-raster/512-big5/kitchen": "2731696d458453a7",
    "escpos-raster/512-big5/reprint": "628146f5093c7a3f",
    "star-line/576/receipt": "02ba8393f2476725",
    "star-line/576/kitchen": "47f536cd67e8e239",
    "star-line/576/reprint": "7a9bb188f3329e1e",
    "star-line/512-big5/receipt": "186be43ef5d09da5",
    "star-line/512-big5/kitchen": "dc4e0f46274e9362",
    "star-line/512-big5/reprint": "1d252c3346a6e5c2",
    "star-graphic/576/receipt": "e77e50d168ee46c1",
    "star-graphic/576/kitchen": "099be40834e2a5d2",
    "star-graphic/576/reprint": "84e6bb6c0cec97a9",
    "star-graphic/512-big5/receipt": "9e577ba107801d43",
    "star-graphic/512-big5/kitchen": "0596f387324e9fc9",
    "star-graphic/512-big5/reprint": "af042246ee62ed87",
    "image/576/receipt": "a6be5e3fab936eb6",
    "image/576/kitchen": "fbcdd83c65d26aa1",
    "image/576/reprint": "1b4c7f2639827f66",
    "image/512-big5/receipt": "e4e698cb5848ee09",
    "image/512-big5/kitchen": "ab550e42570fc184",
    "image/512-big5/reprint": "79a0d7a8af02a6b4",
}


def output(protocol: Protocol, profile_name: str, document_name: str) -> bytes:
    """What the renderer sends; for the PNG dialect its pixels (PNG bytes vary with zlib)."""
    profile = PROFILES[profile_name](protocol)
    data = renderer_for(protocol, FACE)(DOCUMENTS[document_name], profile, 1)
    if protocol is Protocol.IMAGE:
        with Image.open(io.BytesIO(data)) as picture:
            return f"{picture.mode} {picture.size}".encode() + picture.tobytes()
    return data


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


CASES = [
    (protocol, profile_name, document_name)
    for protocol in Protocol
    for profile_name in PROFILES
    for document_name in DOCUMENTS
]


def case_id(protocol: Protocol, profile_name: str, document_name: str) -> str:
    return f"{protocol.value}/{profile_name}/{document_name}"


@pytest.mark.parametrize(
    ("protocol", "profile_name", "document_name"),
    [pytest.param(*case, id=case_id(*case)) for case in CASES],
)
def test_renderer_output_is_unchanged(
    protocol: Protocol, profile_name: str, document_name: str
) -> None:
    key = case_id(protocol, profile_name, document_name)
    assert digest(output(protocol, profile_name, document_name)) == GOLDEN[key], key


def test_every_case_has_a_golden_digest() -> None:
    assert sorted(GOLDEN) == sorted(case_id(*case) for case in CASES)


if __name__ == "__main__":
    for case in CASES:
        print(f'    "{case_id(*case)}": "{digest(output(*case))}",')
