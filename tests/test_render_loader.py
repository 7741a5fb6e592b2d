"""Rendering bound at start, loaded at first use or by the warm-up once the server listens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import EXAMPLE
from spoonprint.domain.ticket import Style, document_for
from spoonprint.errors import ConfigError
from spoonprint.render import base, fonts, loader
from spoonprint.render.fonts import BUNDLED, Typeface, typeface_at_start

from .test_fonts import latin_only_font


@pytest.mark.parametrize("protocol", list(Protocol))
def test_a_renderer_bound_before_loading_renders_what_the_renderer_does(
    protocol: Protocol,
) -> None:
    typeface = Typeface(BUNDLED)
    profile = PrinterProfile(protocol=protocol, style=Style.KITCHEN)
    document = document_for({"receipt": EXAMPLE}, profile.style)
    expected = base.renderer_for(protocol, typeface)(document, profile, 2)
    assert loader.renderer_for(protocol, typeface)(document, profile, 2) == expected
    assert loader.preview_png(document, profile, typeface) == base.preview_png(
        document, profile, typeface
    )


def test_the_warm_up_renders_for_each_printer_and_names_the_font(
    caplog: pytest.LogCaptureFixture,
) -> None:
    typeface = Typeface(BUNDLED)
    profiles = [PrinterProfile(Protocol.STAR_GRAPHIC), PrinterProfile(Protocol.ESCPOS_RASTER)]
    with caplog.at_level(logging.INFO, logger="spoonprint"):
        loader.warm_up(typeface, profiles)
    assert [r.getMessage() for r in caplog.records] == [
        f"ticket font: Noto Sans Mono CJK HK Regular ({BUNDLED})"
    ]


def test_a_font_that_cannot_load_is_logged_by_the_warm_up_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.otf"
    broken.write_bytes(b"not a font")
    with caplog.at_level(logging.INFO, logger="spoonprint"):
        loader.warm_up(Typeface(broken), [PrinterProfile()])
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"the example ticket does not render with the font {broken}: tickets will fail to print"
    )


def test_the_start_takes_the_bundled_font_as_it_is_and_checks_a_configured_one(
    tmp_path: Path,
) -> None:
    started = typeface_at_start()
    assert (started.path, started.index) == (BUNDLED, 0)
    with pytest.raises(ConfigError, match="render.font"):
        typeface_at_start(latin_only_font(tmp_path))


def test_without_the_bundled_font_the_start_searches_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fonts, "BUNDLED", tmp_path / "missing.otf")
    monkeypatch.setattr(fonts, "system_candidates", lambda: [])
    with pytest.raises(ConfigError, match="fonts-noto-cjk"):
        typeface_at_start()
