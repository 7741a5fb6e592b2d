"""End to end: a real server process, real HTTP, a real SQLite file, a real TCP printer."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory


def test_status_is_public_and_reveals_no_secrets(
    server: Server, printer: VirtualPrinterThread
) -> None:
    answer = httpx.get(f"{server.url}/status")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["queue_depth"] == 0
    assert [p["name"] for p in body["printers"]] == ["kitchen"]
    assert str(printer.port) not in answer.text and server.key not in answer.text


def test_order_is_accepted_and_printed(server: Server, printer: VirtualPrinterThread) -> None:
    answer = server.client().post("/print", json={"text": "Hello World Test"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    # An idle printer's worker takes the order with its commit: it is printing already.
    assert body["state"] in ("queued", "printing") and body["printer"] == "kitchen"
    assert not body["duplicate"]
    assert answer.headers["location"] == f"/jobs/{body['job_id']}"
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    assert "Hello World Test" in ticket.text
    assert ticket.data.startswith(b"\x1b@") and ticket.data.endswith(b"\x1dVB\x00")
    job = server.wait_for_state(body["job_id"], "printed")
    assert [e["to_state"] for e in job["events"]] == ["queued", "printing", "printed"]
    assert job["printed_at"] is not None and not job["maybe_printed"]


def test_receipt_and_copies(server: Server, printer: VirtualPrinterThread) -> None:
    receipt = {
        "title": "HK Savor Spoon",
        "order_no": "A-1023",
        "items": [{"name": "BBQ Pork Rice", "qty": 2, "price": "96.00"}],
    }
    answer = server.client().post("/print", json={"receipt": receipt, "copies": 2})
    assert answer.status_code == 202
    tickets = printer.wait_for_tickets(2, timeout=10)
    assert all("2 BBQ Pork Rice" in t.text and "A-1023" in t.text for t in tickets)


def test_same_order_id_prints_once(server: Server, printer: VirtualPrinterThread) -> None:
    client = server.client()
    first = client.post("/print", json={"text": "one", "order_id": "A-1"})
    again = client.post("/print", json={"text": "one", "order_id": "A-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["duplicate"]
    keyed = client.post("/print", json={"text": "two"}, headers={"Idempotency-Key": "k-9"})
    keyed_again = client.post("/print", json={"text": "two"}, headers={"Idempotency-Key": "k-9"})
    assert keyed.status_code == 202 and keyed_again.status_code == 200
    assert keyed_again.json()["job_id"] == keyed.json()["job_id"]
    marker = client.post("/print", json={"text": "marker"}).json()["job_id"]
    server.wait_for_state(marker, "printed")  # jobs print in order: the others are done too
    texts = [t.text for t in printer.tickets]
    assert len(texts) == 3
    assert "one" in texts[0] and "two" in texts[1] and "marker" in texts[2]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [({}, "send your API key"), ({"X-API-Key": "sp_wrong_key_wrong_key"}, "wrong API key")],
)
def test_missing_or_wrong_key_is_401(server: Server, headers: dict[str, str], detail: str) -> None:
    for method, path in [
        ("POST", "/print"),
        ("GET", "/jobs/1"),
        ("GET", "/queue"),
        ("GET", "/printers"),
        ("POST", "/test-print"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    ]:
        answer = httpx.request(method, server.url + path, headers=headers, json={"text": "x"})
        assert answer.status_code == 401, path
        assert answer.json() == {
            "error": "missing or wrong API key",
            "detail": detail
            + (" in the X-API-Key header" if detail == "send your API key" else ""),
        }


def test_key_as_basic_auth_password_opens_the_docs(server: Server) -> None:
    answer = httpx.get(f"{server.url}/docs", auth=("staff", server.key))
    assert answer.status_code == 200 and "swagger" in answer.text.lower()
    spec = httpx.get(f"{server.url}/openapi.json", auth=("staff", server.key)).json()
    assert "/print" in spec["paths"] and "X-API-Key" in json.dumps(spec)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    yield server.client()


def test_unknown_printer_and_job_are_404(client: httpx.Client) -> None:
    answer = client.post("/print", json={"text": "x", "printer": "bar"})
    assert answer.status_code == 404 and answer.json()["error"] == "unknown printer"
    answer = client.get("/jobs/424242")
    assert answer.status_code == 404 and answer.json()["error"] == "job not found"
    answer = client.get("/nowhere")
    assert answer.status_code == 404 and answer.json()["error"] == "not found"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = json.dumps({"text": "x" * (1024 * 1024 + 10)})
    answer = client.post("/print", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "request body too large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"text": "'
        for _ in range(300):
            yield b"y" * 4096
        yield b'"}'

    answer = client.post("/print", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert client.get("/queue").json() == []


JSON = {"Content-Type": "application/json"}


def test_not_json_is_415_and_bad_json_is_400(client: httpx.Client) -> None:
    answer = client.post("/print", content=b"text=hello", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json()["detail"]
    answer = client.post("/print", content=b'{"text": ', headers=JSON)
    assert answer.status_code == 400 and answer.json()["error"] == "body is not valid JSON"
    assert client.get("/queue").json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x", "copies": 11}, "copies"),
        ({"text": "x", "copies": 0}, "copies"),
        ({"text": "x", "colour": "red"}, "colour"),
        ({"text": "x", "receipt": {}}, None),
        ({}, None),
        ({"text": "x", "order_id": ""}, "order_id"),
        ([1, 2], None),
    ],
)
def test_invalid_order_is_422_naming_the_field(
    client: httpx.Client, body: object, field: str | None
) -> None:
    answer = client.post("/print", json=body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert answer.json()["error"] == "invalid request"
    if field:
        assert any(p["field"] == field for p in problems), problems


def test_printers_and_test_print(
    server: Server, printer: VirtualPrinterThread, client: httpx.Client
) -> None:
    answer = client.post("/test-print")
    assert answer.status_code == 202
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    assert "spoonprint test page" in ticket.text
    server.wait_for_state(answer.json()["job_id"], "printed")
    (info,) = client.get("/printers").json()
    assert info["name"] == "kitchen" and info["default"] and info["online"] is True
    assert info["uri"] == f"tcp://127.0.0.1:{printer.port}"


def test_unreachable_printer_keeps_the_job_until_it_returns(
    server: Server, printer: VirtualPrinterThread, client: httpx.Client
) -> None:
    printer.set_mode(PrinterMode.OFFLINE)
    job_id = client.post("/print", json={"text": "while offline"}).json()["job_id"]
    job = server.wait_for_job(job_id, lambda j: j["attempts"] >= 1 and j["state"] == "queued")
    assert "refused" in job["last_error"]
    assert [j["id"] for j in client.get("/queue").json()] == [job_id]
    (info,) = client.get("/printers").json()
    assert info["online"] is False and info["queued"] == 1
    assert httpx.get(f"{server.url}/status").json()["queue_depth"] == 1
    printer.set_mode(PrinterMode.ONLINE)
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    assert "while offline" in ticket.text and "REPRINT" not in ticket.text
    server.wait_for_state(job_id, "printed")


def test_restart_keeps_queue_and_history(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}])
    client = server.client()
    printed = client.post("/print", json={"text": "before restart"}).json()["job_id"]
    printer.wait_for_tickets(1, timeout=10)
    server.wait_for_state(printed, "printed")
    printer.set_mode(PrinterMode.OFFLINE)
    waiting = [
        client.post("/print", json={"text": f"queued {n}"}).json()["job_id"] for n in range(3)
    ]
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit code is -SIGTERM.
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text(encoding="utf-8")
    printer.set_mode(PrinterMode.ONLINE)
    server.start()
    tickets = printer.wait_for_tickets(4, timeout=15)
    assert [f"queued {n}" in t.text for n, t in enumerate(tickets[1:])] == [True] * 3
    for job_id in waiting:
        server.wait_for_state(job_id, "printed")
    history = server.client().get(f"/jobs/{printed}").json()["events"]
    assert [e["to_state"] for e in history] == ["queued", "printing", "printed"]
    db = sqlite3.connect(server.data_dir / "spoonprint.db")
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'printed'").fetchone()[0] == 4
    db.close()


def test_no_printer_configured_uses_the_virtual_printer(make_server: ServerFactory) -> None:
    server = make_server([])
    answer = server.client().post("/print", json={"text": "first order"})
    assert answer.status_code == 202 and answer.json()["printer"] == "virtual"
    server.wait_for_state(answer.json()["job_id"], "printed")
    saved = list((server.data_dir / "virtual-printer").glob("*.txt"))
    assert len(saved) == 1 and "first order" in saved[0].read_text(encoding="utf-8")


def test_log_file_has_a_line_per_state_change(server: Server, client: httpx.Client) -> None:
    job_id = client.post("/print", json={"text": "logged"}).json()["job_id"]
    server.wait_for_state(job_id, "printed")
    log = (server.data_dir / "logs" / "spoonprint.log").read_text(encoding="utf-8")
    for change in ("queued for printer kitchen", "queued -> printing", "printing -> printed"):
        assert f"job {job_id}" in log and change in log


def test_key_is_never_stored_in_plain_text(tmp_path: Path, server: Server) -> None:
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert server.key.encode() not in path.read_bytes(), path


def test_print_checks_key_then_media_type_then_header_and_body(
    server: Server, client: httpx.Client
) -> None:
    anonymous = server.client(key=None)
    answer = anonymous.post("/print", content=b"text", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
    answer = client.post("/print", content=b"{", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    long_key = {**JSON, "Idempotency-Key": "k" * 129}
    answer = client.post("/print", content=b'{"copies": 0}', headers=long_key)
    assert answer.status_code == 422
    fields = {p["field"] for p in answer.json()["detail"]}
    assert {"header.Idempotency-Key", "copies"} <= fields, fields
    answer = client.post("/print", content=b"", headers=JSON)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid request"
    # The key as the password of HTTP Basic auth; a garbled Basic header is a 401.
    answer = anonymous.post("/print", json={"text": "basic"}, auth=("shop", server.key))
    assert answer.status_code == 202, answer.text
    garbled = {"Authorization": "Basic !!!"}
    assert anonymous.post("/print", json={"text": "x"}, headers=garbled).status_code == 401


def test_print_is_documented_like_every_route(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/print"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PrintRequest"}
    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    assert {"202", "200", "401", "422"} <= set(operation["responses"])
    assert operation["security"]
