"""The renderers run without numpy: it is the largest import the server could carry (about
11.5 MB resident and 0.15 s to import), and nothing on the printing path needs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

# In a fresh interpreter: other tests in this process may have imported numpy already.
SCRIPT = """
import sys

from spoonprint.domain.document import with_banner
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import EXAMPLE, Receipt
from spoonprint.domain.ticket import Style, compose
from spoonprint.render import escpos, escpos_raster, star, star_graphic
from spoonprint.render.fonts import default_typeface
from spoonprint.render.raster import draw

face = default_typeface()
# Chinese lines, a QR code and a bold double-size banner: on a cp437 printer every kind of
# raster band the text dialects send, besides the whole-ticket raster dialects.
document = with_banner(compose(Receipt.model_validate(EXAMPLE), Style.RECEIPT), "REPRINT 重印")
outputs = [
    escpos.render_escpos_text(document, PrinterProfile(), face),
    escpos.render_escpos_raster(document, PrinterProfile(protocol=Protocol.ESCPOS_RASTER), face),
    star.render_star_line(document, PrinterProfile(protocol=Protocol.STAR_LINE), face),
    star.render_star_graphic(document, PrinterProfile(protocol=Protocol.STAR_GRAPHIC), face),
]
picture = draw([], 576, face)
outputs += [escpos_raster.gs_v0_bands(picture), star_graphic.star_raster_job(picture)]
assert all(outputs), [len(output) for output in outputs]
assert b"\\x1dv0" in outputs[0] and b"\\x1b*rA" in outputs[2], "no raster band was drawn"
print("numpy" in sys.modules)
"""


def test_rendering_every_dialect_does_not_import_numpy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "rendering imported numpy"
