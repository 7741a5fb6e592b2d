"""The health monitor end to end: a real server process and a real TCP printer on 127.0.0.1.

The worker's own backoff is set to 30 s in these tests, so a ticket that prints within a few
seconds of the printer coming back was brought back by the monitor.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory, failed_attempts

SLOW_RETRY_FAST_MONITOR = {
    "SPOONPRINT_DELIVERY__RETRY_INITIAL": "30",
    "SPOONPRINT_DELIVERY__RETRY_MAX": "30",
    "SPOONPRINT_RECOVERY__INTERVAL": "1",
}


def kitchen(printer: VirtualPrinterThread) -> dict[str, object]:
    return {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}


def recovery(server: Server, name: str = "kitchen") -> dict[str, object]:
    status = server.client().get("/recovery/status").json()
    return next(p for p in status["printers"] if p["printer"] == name)


def wait_until(check: object, timeout: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)  # another process's state: polled over the API


def test_monitor_brings_an_unreachable_printer_back_long_before_the_backoff(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **SLOW_RETRY_FAST_MONITOR)
    client = server.client()
    printer.set_mode(PrinterMode.OFFLINE)
    job_id = client.post("/print", json={"text": "wonton soup"}).json()["job_id"]
    server.wait_for_job(job_id, lambda job: failed_attempts(job) >= 1)
    wait_until(lambda: recovery(server)["health"] == "recovering")
    down = recovery(server)
    assert [p["fault"] for p in down["problems"]] == ["unreachable"]
    assert "switched on" in str(down["problems"])
    assert httpx.get(f"{server.url}/status").json()["printers"][0]["advice"] == [
        "printer unreachable: check that it is switched on and its cable is in"
    ]
    back = time.monotonic()
    printer.set_mode(PrinterMode.ONLINE)
    server.wait_for_state(job_id, "printed", timeout=10)
    took = time.monotonic() - back
    print(f"\nunreachable printer back -> ticket printed: {took:.2f} s (worker backoff 30 s)")
    healed = recovery(server)
    assert healed["health"] == "ok" and healed["recoveries"] == 1
    assert healed["last_recovery_seconds"] > 0
    assert printer.tickets[-1].text.count("wonton soup") == 1


def test_paper_out_tells_staff_what_to_do_and_prints_once_refilled(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **SLOW_RETRY_FAST_MONITOR)
    printer.set_mode(PrinterMode.PAPER_OUT)
    job_id = server.client().post("/print", json={"text": "char siu"}).json()["job_id"]
    wait_until(lambda: recovery(server)["health"] == "needs-attention")
    public = httpx.get(f"{server.url}/status").json()["printers"][0]
    assert public["advice"] == ["paper out: load a new paper roll and close the cover"]
    assert all(s["tried"] == 0 for s in recovery(server)["strategies"].values())  # not "fixed"
    assert server.client().get(f"/jobs/{job_id}").json()["state"] == "queued"
    refilled = time.monotonic()
    printer.set_mode(PrinterMode.ONLINE)
    server.wait_for_state(job_id, "printed", timeout=10)
    print(f"\npaper refilled -> ticket printed: {time.monotonic() - refilled:.2f} s")
    assert len(printer.tickets) == 1  # nothing was sent while the paper was out


def test_recovery_settings_are_validated_kept_across_restarts_and_admin_only(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)])
    admin = server.client()
    bad = admin.post("/recovery/config", json={"interval": 0})
    assert bad.status_code == 422 and "interval" in str(bad.json()["detail"])
    unknown = admin.post("/recovery/config", json={"disabled_strategies": ["format-disk"]})
    assert unknown.status_code == 422 and "reconnect" in unknown.json()["detail"]
    assert admin.post("/recovery/config", json={"sleep": 1}).status_code == 422
    assert (
        admin.post(
            "/recovery/config", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    changed = admin.post("/recovery/config", json={"interval": 5, "disabled_strategies": ["reset"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["interval"] == 5
    assert recovery(server)["strategies"]["reset"]["enabled"] is False
    print_key = subprocess.run(
        [sys.executable, "-m", "spoonprint", "keys", "create", "website", "--role", "print",
         "--config", str(server.config)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    website = server.client(print_key)
    for method, path in [
        ("GET", "/recovery/status"),
        ("POST", "/recovery/config"),
        ("POST", "/recovery/trigger"),
        ("POST", "/emergency-clear"),
        ("POST", "/queue/release"),
    ]:
        assert website.request(method, path, json={}).status_code == 403, path
    assert server.client(None).get("/recovery/status").status_code == 401
    server.stop()
    server.start()
    config = server.client().get("/recovery/status").json()["config"]
    assert config["interval"] == 5 and config["disabled_strategies"] == ["reset"]


def test_emergency_clear_holds_waiting_orders_and_release_prints_them_in_order(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **SLOW_RETRY_FAST_MONITOR)
    client = server.client()
    printer.set_mode(PrinterMode.OFFLINE)
    ids = [client.post("/print", json={"text": f"backlog {n}"}).json()["job_id"] for n in range(3)]
    server.wait_for_job(ids[0], lambda job: failed_attempts(job) >= 1)
    cleared = client.post("/emergency-clear", json={})
    assert cleared.status_code == 200, cleared.text
    held = cleared.json()["held"]
    # The first job may still be mid-attempt; every waiting one is held, none deleted.
    assert set(held) <= set(ids) and set(ids[1:]) <= set(held)
    for job_id in held:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["state"] == "held"
        assert job["events"][-1]["detail"] == "held by emergency clear"
    printer.set_mode(PrinterMode.ONLINE)
    fresh = client.post("/print", json={"text": "fresh order"}).json()["job_id"]
    server.wait_for_state(fresh, "printed", timeout=10)
    held_texts = [f"backlog {ids.index(job_id)}" for job_id in held]
    assert not any(text in t.text for t in printer.tickets for text in held_texts)
    assert all(client.get(f"/jobs/{i}").json()["state"] == "held" for i in held)
    released = client.post("/queue/release", json={}).json()["released"]
    assert [job["id"] for job in released] == held
    for job_id in ids:
        server.wait_for_state(job_id, "printed", timeout=10)
    order = [n for t in printer.tickets for n in range(3) if f"backlog {n}" in t.text]
    assert order == sorted(order) and set(order) == {0, 1, 2}


def test_trigger_runs_a_round_for_one_printer_or_says_it_does_not_know_it(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)])
    client = server.client()
    answer = client.post("/recovery/trigger", json={"printer": "kitchen"})
    assert answer.status_code == 200
    assert answer.json()["printers"]["kitchen"]["health"] == "ok"
    missing = client.post("/recovery/trigger", json={"printer": "bar"})
    assert missing.status_code == 404 and missing.json()["error"] == "unknown printer"
