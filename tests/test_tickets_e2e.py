"""Tickets end to end over HTTP: a bilingual receipt to a Star TSP100-like raster printer and to
an ESC/POS printer in Big5 text mode; previews equal what the printer receives."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops

from spoonprint.domain.receipt import EXAMPLE
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import Server, ServerFactory

ORDER = {"order_id": "A-1023", "receipt": EXAMPLE}


@pytest.fixture
def star_printer(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    with VirtualPrinterThread(out_dir=tmp_path / "star", protocol="star-graphic") as printer:
        yield printer


@pytest.fixture
def big5_printer(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    with VirtualPrinterThread(out_dir=tmp_path / "big5", encoding="big5hkscs") as printer:
        yield printer


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("1")


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return (
        a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None
    )


def printed_image(printer: VirtualPrinterThread) -> Image.Image:
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    assert ticket.image is not None and ticket.path is not None
    saved = Image.open(ticket.path.with_suffix(".png"))
    saved.load()
    assert same_pixels(saved, ticket.image)
    return ticket.image


def test_star_graphic_printer_prints_the_preview_exactly(
    make_server: ServerFactory, star_printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [
            {
                "name": "kitchen",
                "uri": f"tcp://127.0.0.1:{star_printer.port}",
                "protocol": "star-graphic",
                "style": "kitchen",
            }
        ]
    )
    client = server.client()
    preview = client.post("/preview", json=ORDER)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    answer = client.post("/print", json=ORDER)
    assert answer.status_code == 202
    paper = printed_image(star_printer)
    assert same_pixels(paper, png(preview.content))
    assert paper.width == 576 and paper.height > 400
    server.wait_for_state(answer.json()["job_id"], "printed")


def test_escpos_raster_printer_prints_the_preview_exactly(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [
            {
                "name": "bar",
                "uri": f"tcp://127.0.0.1:{printer.port}",
                "protocol": "escpos-raster",
                "width": 512,
            }
        ]
    )
    client = server.client()
    preview = png(client.post("/preview", json=ORDER).content)
    assert client.post("/print", json=ORDER).status_code == 202
    paper = printed_image(printer)
    assert paper.width == 512 and same_pixels(paper, preview)


def test_big5_text_mode_prints_english_and_chinese_as_text(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [
            {
                "name": "counter",
                "uri": f"tcp://127.0.0.1:{big5_printer.port}",
                "text_encoding": "big5hkscs",
            }
        ]
    )
    assert server.client().post("/print", json=ORDER).status_code == 202
    (ticket,) = big5_printer.wait_for_tickets(1, timeout=10)
    for text in ("HK Savor Spoon", "BBQ Pork Rice 叉燒飯", "少甜", "走冰", "HK$105.60",
                 "多謝光臨 Thank you", "[QR: https://example.com/o/A-1023]"):  # fmt: skip
        assert text in ticket.text, text
    assert b"\x1c&" in ticket.data and b"\x1dv0" not in ticket.data  # all as text, no raster


def test_plain_big5_printer_gets_hong_kong_characters_as_raster(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [
            {
                "name": "counter",
                "uri": f"tcp://127.0.0.1:{big5_printer.port}",
                "text_encoding": "big5",
            }
        ]
    )
    order = {"receipt": {"items": [{"name": "Rice", "name_zh": "白飯", "note": "多啲餸"}]}}
    assert server.client().post("/print", json=order).status_code == 202
    (ticket,) = big5_printer.wait_for_tickets(1, timeout=10)
    assert "Rice 白飯" in ticket.text  # Big5 can hold these: text
    assert b"\x1dv0" in ticket.data and "?" not in ticket.text  # 啲餸 are not in Big5: raster


def test_preview_errors(server: Server) -> None:
    client = server.client()
    bad = client.post("/preview", json={"receipt": {**EXAMPLE, "colour": "red"}})
    assert bad.status_code == 422
    assert any(p["field"] == "receipt.colour" for p in bad.json()["detail"])
    assert client.post("/preview", json={**ORDER, "printer": "nope"}).status_code == 404
    assert httpx.post(f"{server.url}/preview", json=ORDER).status_code == 401
    assert client.get("/queue").json() == []  # a preview prints and stores nothing
