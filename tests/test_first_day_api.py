"""What a new owner and the shop's web developer meet first, over a real server: refused
orders, the status page, the front page, job numbers (issue 15, points 10-17)."""

from __future__ import annotations

import httpx
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


def test_front_page_sends_a_browser_to_the_dashboard(server: Server) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    answer = httpx.get(f"{server.url}/", headers=browser)
    assert answer.is_redirect and answer.headers["location"] == "/dashboard"
    page = httpx.get(f"{server.url}/", headers=browser, follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "spoonprint" in page.text.lower()


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_front_page_tells_a_program_where_things_are(server: Server, accept: str) -> None:
    answer = httpx.get(f"{server.url}/", headers={"Accept": accept})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    index = answer.json()
    assert index["service"] == "spoonprint"
    assert index["links"] == {
        "dashboard": "/dashboard",
        "status": "/status",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "print": "/print",
        "job": "/jobs/{id}",
        "queue": "/queue",
        "printers": "/printers",
    }
    # Public, like /status: it names no version, no printer, no address.
    assert server.key not in answer.text and "kitchen" not in answer.text
