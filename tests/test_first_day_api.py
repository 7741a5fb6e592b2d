"""What a new owner and the shop's web developer meet first, over a real server: refused
orders, the status page, the front page, job numbers (issue 15, points 10-17)."""

from __future__ import annotations

import pytest

from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import Server


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_text_is_refused_naming_the_field(
    server: Server, printer: VirtualPrinterThread, text: str
) -> None:
    client = server.client()
    for route in ("/print", "/preview"):
        answer = client.post(route, json={"text": text})
        assert answer.status_code == 422, answer.text
        assert answer.json() == {
            "error": "invalid request",
            "detail": [{"field": "text", "message": "text is empty: send something to print"}],
        }
    assert client.get("/queue").json() == []
    # A refused order takes no job number: the next one is job 1.
    assert client.post("/print", json={"text": "x"}).json()["job_id"] == 1
    assert len(printer.wait_for_tickets(1, timeout=10)) == 1
