"""A USB printer (a pseudo-terminal behind a device path) and a folder of ticket files, through
a real server: unplugged, the monitor reports it; plugged back in, the waiting ticket prints
at once, not at the worker's next retry (30 s here)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import ServerFactory, failed_attempts
from .test_recovery_e2e import SLOW_RETRY_FAST_MONITOR, recovery, wait_until
from .test_transport_device import PtyPrinter

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="device files are POSIX")


def test_usb_printer_unplugged_then_plugged_back_prints_the_waiting_ticket(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    device = tmp_path / "lp0"
    printer = PtyPrinter(device)
    server = make_server([{"name": "kitchen", "uri": f"usb:{device}"}], **SLOW_RETRY_FAST_MONITOR)
    client = server.client()
    first = client.post("/print", json={"text": "first order"}).json()["job_id"]
    server.wait_for_state(first, "printed")
    assert b"first order" in printer.wait_for(1)
    printer.unplug()
    job_id = client.post("/print", json={"text": "while unplugged"}).json()["job_id"]
    server.wait_for_job(job_id, lambda job: failed_attempts(job) >= 1)
    wait_until(lambda: recovery(server)["health"] == "recovering")
    assert [p["fault"] for p in recovery(server)["problems"]] == ["device-missing"]
    advice = httpx.get(f"{server.url}/status").json()["printers"][0]["advice"]
    assert advice == ["printer not connected: check the USB cable and that it is switched on"]
    plugged = time.monotonic()
    printer = PtyPrinter(device)
    try:
        server.wait_for_state(job_id, "printed", timeout=10)
        took = time.monotonic() - plugged
        print(f"\nUSB printer plugged back in -> ticket printed: {took:.2f} s (retry 30 s)")
        assert b"while unplugged" in printer.wait_for(1)
        healed = recovery(server)
        assert healed["health"] == "ok" and healed["recoveries"] == 1
        assert healed["strategies"]["reopen"]["tried"] >= 1  # while unplugged: it said why
    finally:
        printer.stop()


def test_file_printer_writes_each_ticket_and_marks_it_sent(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "tickets"
    server = make_server(
        [{"name": "archive", "uri": f"file:{folder}?ext=png", "protocol": "image"}]
    )
    job_id = server.client().post("/print", json={"text": "叉燒飯 x2"}).json()["job_id"]
    job = server.wait_for_state(job_id, "sent")
    files = sorted(folder.glob("*.png"))
    assert len(files) == 1 and files[0].read_bytes().startswith(b"\x89PNG")
    assert "not confirmed" in job["events"][-1]["detail"]
