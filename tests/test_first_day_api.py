"""What a new owner and the shop's web developer meet first, over a real server: refused
orders, the status page, the front page, job numbers (issue 15, points 10-17)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from spoonprint import __version__
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory, run_spoonprint
from .test_dashboard import sign_in

JSON = {"Content-Type": "application/json"}


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


def test_status_is_down_while_the_only_printer_is_unreachable(
    server: Server, printer: VirtualPrinterThread
) -> None:
    assert httpx.get(f"{server.url}/status").json()["status"] == "ok"
    printer.set_mode(PrinterMode.OFFLINE)
    job_id = server.client().post("/print", json={"text": "while offline"}).json()["job_id"]
    server.wait_for_job(job_id, lambda job: job["last_error"] is not None)
    answer = httpx.get(f"{server.url}/status")
    # Still 200, so that a monitor reads the body rather than seeing the server as gone.
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "down", body
    assert body["printers"][0]["online"] is False
    printer.set_mode(PrinterMode.ONLINE)
    server.wait_for_state(job_id, "printed")
    assert httpx.get(f"{server.url}/status").json()["status"] == "ok"


def test_status_is_degraded_while_one_of_two_printers_cannot_print(
    printer: VirtualPrinterThread, make_server: ServerFactory, tmp_path: Path
) -> None:
    with VirtualPrinterThread(out_dir=tmp_path / "bar-out", mode=PrinterMode.PAPER_OUT) as bar:
        server = make_server(
            [
                {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"},
                {"name": "bar", "uri": f"tcp://127.0.0.1:{bar.port}"},
            ]
        )
        client = server.client()
        job_id = client.post("/print", json={"text": "drinks", "printer": "bar"}).json()["job_id"]
        server.wait_for_job(job_id, lambda job: job["last_error"] is not None)
        body = httpx.get(f"{server.url}/status").json()
        assert body["status"] == "degraded", body
        online = {p["name"]: p["online"] for p in body["printers"]}
        assert online == {"kitchen": None, "bar": False}
        server.stop()


def _get_status(server: Server, source: str, key: str | None = None) -> dict[str, Any]:
    transport = httpx.HTTPTransport(local_address=source)
    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(transport=transport, headers=headers, timeout=10) as client:
        answer = client.get(f"{server.url}/status")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_status_tells_version_and_uptime_only_to_a_key_or_the_shop(
    printer: VirtualPrinterThread, make_server: ServerFactory
) -> None:
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}],
        SPOONPRINT_SECURITY__ALLOWED_NETWORKS='["127.0.0.1/32"]',
    )
    shop = _get_status(server, "127.0.0.1")
    assert shop["version"] == __version__ and shop["uptime_seconds"] > 0
    stranger = _get_status(server, "127.0.0.2")
    assert stranger["version"] is None and stranger["uptime_seconds"] is None
    assert __version__ not in json.dumps(stranger)
    # What a monitor needs is still there for anyone.
    assert stranger["status"] == "ok" and [p["name"] for p in stranger["printers"]] == ["kitchen"]
    assert _get_status(server, "127.0.0.2", "sp_wrong_key_wrong_key")["version"] is None
    # A wrong key is a strike here too, as on every route: /status is no free key tester.
    log = (server.data_dir / "logs" / "security.jsonl").read_text(encoding="utf-8")
    strikes = [json.loads(line) for line in log.splitlines() if '"strike"' in line]
    assert [(e["ip"], e["path"], e["detail"]) for e in strikes] == [
        ("127.0.0.2", "/status", "wrong API key")
    ]
    keyed = _get_status(server, "127.0.0.2", server.key)
    assert keyed["version"] == __version__ and keyed["uptime_seconds"] > 0


def test_cli_status_from_outside_the_shop_says_up_without_the_version(
    printer: VirtualPrinterThread, make_server: ServerFactory
) -> None:
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}],
        SPOONPRINT_SECURITY__ALLOWED_NETWORKS='["10.0.0.0/8"]',
    )
    result = run_spoonprint(None, "status", "--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "spoonprint up, 0 job(s) waiting"


def test_refused_duplicates_take_no_job_number(
    server: Server, printer: VirtualPrinterThread
) -> None:
    client = server.client()
    assert client.post("/print", json={"text": "a", "order_id": "A-1"}).json()["job_id"] == 1
    for _ in range(2):
        again = client.post("/print", json={"text": "a", "order_id": "A-1"})
        assert again.status_code == 200 and again.json()["job_id"] == 1
    keyed = {"Idempotency-Key": "k-1"}
    assert client.post("/print", json={"text": "b"}, headers=keyed).json()["job_id"] == 2
    assert client.post("/print", json={"text": "b"}, headers=keyed).json()["job_id"] == 2
    assert client.post("/print", json={"text": "c"}).json()["job_id"] == 3
    server.wait_for_state(3, "printed")
    assert [t.text.strip() for t in printer.tickets] == ["a", "b", "c"]


def test_builtin_virtual_printer_names_ticket_files_after_their_jobs(
    make_server: ServerFactory,
) -> None:
    server = make_server([])  # no printer configured: the built-in virtual printer
    client = server.client()
    client.post("/print", json={"text": "one", "order_id": "A-1"})
    client.post("/print", json={"text": "one", "order_id": "A-1"})  # a duplicate
    client.post("/print", json={"text": "two", "copies": 2})
    server.wait_for_state(2, "printed")
    reprint = client.post("/jobs/1/reprint").json()["job_id"]
    assert reprint == 3
    server.wait_for_state(3, "printed")
    folder = server.data_dir / "virtual-printer"
    by_job: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.bin")):
        by_job.setdefault(path.name.split("-")[0], []).append(path.stem)
    assert {job: len(names) for job, names in by_job.items()} == {
        "000001": 1,
        "000002": 2,  # two copies
        "000003": 1,
    }, by_job
    for stems in by_job.values():
        assert all((folder / f"{stem}.txt").is_file() for stem in stems)
    assert "two" in (folder / f"{by_job['000002'][1]}.txt").read_text(encoding="utf-8")


def _started(job: dict[str, Any]) -> list[str]:
    return [event["detail"] for event in job["events"] if event["to_state"] == "printing"]


def test_attempts_count_the_attempts_started_as_the_history_does(
    server: Server, printer: VirtualPrinterThread
) -> None:
    client = server.client()
    first = client.post("/print", json={"text": "first time"}).json()["job_id"]
    job = server.wait_for_state(first, "printed")
    assert job["attempts"] == 1 and _started(job) == ["attempt 1"]

    printer.set_mode(PrinterMode.OFFLINE)
    tried = client.post("/print", json={"text": "fourth time"}).json()["job_id"]
    server.wait_for_job(tried, lambda job: len(_started(job)) >= 3 and job["state"] == "queued")
    printer.set_mode(PrinterMode.ONLINE)
    job = server.wait_for_state(tried, "printed", timeout=30)
    started = _started(job)
    assert len(started) >= 4 and job["attempts"] == len(started)
    assert started == [f"attempt {n}" for n in range(1, len(started) + 1)]
    # The same count on the dashboard and in the CLI.
    dashboard, _ = sign_in(server)
    assert dashboard.get(f"/dashboard/api/jobs/{tried}").json()["attempts"] == len(started)
    shown = run_spoonprint(None, "monitor", "--json", "--url", server.url, "--key", server.key)
    assert shown.returncode in (0, 7), shown.stdout + shown.stderr  # 7: a printer had trouble
    recent = {j["id"]: j for j in json.loads(shown.stdout)["activity"]["recent_jobs"]}
    assert recent[tried]["attempts"] == len(started)


def _ordered(at: float) -> str:
    return "ordered " + time.strftime("%m-%d %H:%M", time.localtime(at))


def test_reprint_banner_shows_when_the_first_job_of_the_chain_was_ordered(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}])
    client = server.client()
    first = client.post("/print", json={"text": "roast goose", "order_id": "A-7"}).json()
    server.wait_for_state(first["job_id"], "printed")
    server.stop()
    # The order came in two days and three hours ago (the database as it would be by then).
    ordered_at = time.time() - 2 * 86400 - 3 * 3600
    with sqlite3.connect(server.data_dir / "spoonprint.db") as db:
        db.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (ordered_at, first["job_id"]))
    db.close()
    server.start()
    client = server.client()
    reprint = client.post(f"/jobs/{first['job_id']}/reprint").json()["job_id"]
    server.wait_for_state(reprint, "printed")
    again = client.post(f"/jobs/{reprint}/reprint").json()["job_id"]  # a reprint's reprint
    server.wait_for_state(again, "printed")
    first_ticket, *reprints = printer.wait_for_tickets(3, timeout=10)
    assert "ordered" not in first_ticket.text
    for ticket in reprints:
        assert "roast goose" in ticket.text
        assert _ordered(ordered_at) in ticket.text, ticket.text
        assert _ordered(time.time()) not in ticket.text


def _order(price: str, total: str = '"105.60"') -> bytes:
    """A receipt as the shop's site would send it, amounts written into the JSON text as is."""
    return (
        '{"receipt": {"order_no": "A-1", "currency": "HK$", "items": [{"name": "BBQ Pork Rice",'
        f' "qty": 2, "price": {price}}}], "total": {total}}}}}'
    ).encode()


@pytest.mark.parametrize(
    ("price", "total", "printed"),
    [
        ('"96.00"', '"105.60"', ["HK$96.00", "HK$105.60"]),
        ("96.5", "105.6", ["HK$96.50", "HK$105.60"]),  # numbers print with cents
        ("96", "1.05e2", ["HK$96.00", "HK$105.00"]),
        ("0.1234", "-3", ["HK$0.1234", "HK$-3.00"]),
    ],
)
def test_amounts_may_be_json_numbers_taken_exactly(
    server: Server, printer: VirtualPrinterThread, price: str, total: str, printed: list[str]
) -> None:
    client = server.client()
    body = _order(price, total)
    preview = client.post("/preview", content=body, headers=JSON)
    assert preview.status_code == 200, preview.text
    answer = client.post("/print", content=body, headers=JSON)
    assert answer.status_code == 202, answer.text
    (ticket,) = printer.wait_for_tickets(1, timeout=10)
    for amount in printed:
        assert amount in ticket.text, ticket.text


@pytest.mark.parametrize(
    ("price", "message"),
    [
        # As a float this would be 48.5: read from the text, it has 17 decimal places.
        ("48.50000000000000001", "at most 4 decimal places"),
        ("1e400", "at most 9 digits before the decimal point"),
        ("1234567890", "at most 9 digits before the decimal point"),
        ("true", 'a decimal string such as "96.00", or a JSON number'),
        ('"48.5.0"', 'a decimal string such as "96.00", or a JSON number'),
    ],
)
def test_an_amount_that_cannot_print_exactly_is_refused_saying_why(
    server: Server, price: str, message: str
) -> None:
    client = server.client()
    for route in ("/print", "/preview"):
        answer = client.post(route, content=_order(price), headers=JSON)
        assert answer.status_code == 422, answer.text
        (problem,) = answer.json()["detail"]
        assert problem["field"] == "receipt.items.0.price"
        assert message in problem["message"], problem
    assert client.get("/queue").json() == []


def test_price_is_documented_as_the_line_total(server: Server) -> None:
    spec = server.client().get("/openapi.json").json()
    price = spec["components"]["schemas"]["Item"]["properties"]["price"]
    assert price["description"].startswith("The line's total")
    assert spec["paths"]["/preview"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/PrintRequest"}


@pytest.mark.e2e
def test_cli_preview_reads_amounts_as_the_server_does(tmp_path: Path) -> None:
    (tmp_path / "order.json").write_bytes(_order("96.5"))
    result = run_spoonprint(tmp_path, "preview", "order.json", "-o", "ticket.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "ticket.png").read_bytes().startswith(b"\x89PNG")
    (tmp_path / "order.json").write_bytes(_order("48.50000000000000001"))
    result = run_spoonprint(tmp_path, "preview", "order.json", "-o", "ticket.png")
    assert result.returncode == 1 and "at most 4 decimal places" in result.stderr
