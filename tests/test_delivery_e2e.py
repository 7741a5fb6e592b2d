"""Failure paths end to end: a real server process, real TCP printers on 127.0.0.1 that go
offline, black-hole, drop the connection, run out of paper, and a disk that fills up."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory, failed_attempts

FAST_BREAKER = {
    "SPOONPRINT_DELIVERY__BREAKER_RESET": "0.2",
    "SPOONPRINT_DELIVERY__BREAKER_MAX_RESET": "0.4",
}


def kitchen(printer: VirtualPrinterThread | int, **extra: object) -> dict[str, object]:
    port = printer if isinstance(printer, int) else printer.port
    return {"name": "kitchen", "uri": f"tcp://127.0.0.1:{port}", **extra}


def marked_reprint(text: str) -> bool:
    """The reprint banner: "*** REPRINT 重印 ***" (a raster band on a cp437 printer) and the
    original order time as text."""
    return "REPRINT" in text or "ordered " in text


def printer_info(server: Server, name: str = "kitchen") -> dict[str, object]:
    return next(p for p in server.client().get("/printers").json() if p["name"] == name)


def test_printer_down_for_a_while_then_back_prints_everything_in_order(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **FAST_BREAKER)
    client = server.client()
    printer.set_mode(PrinterMode.OFFLINE)
    ids = [client.post("/print", json={"text": f"dish {n}"}).json()["job_id"] for n in range(6)]
    server.wait_for_job(ids[0], lambda j: failed_attempts(j) >= 3)
    info = printer_info(server)
    assert info["online"] is False and info["breaker"] in ("open", "half-open")
    assert "unreachable" in str(info["problem"])
    status = httpx.get(f"{server.url}/status").json()
    assert status["queue_depth"] == 6 and "127.0.0.1" not in str(status)
    printer.set_mode(PrinterMode.ONLINE)
    tickets = printer.wait_for_tickets(6, timeout=15)
    assert [f"dish {n}" in t.text for n, t in enumerate(tickets)] == [True] * 6
    assert not any(marked_reprint(t.text) for t in tickets)  # nothing reached it while down
    for job_id in ids:
        server.wait_for_state(job_id, "printed")
    assert printer_info(server)["breaker"] == "closed"


def test_black_hole_printer_times_out_opens_the_breaker_and_the_api_stays_responsive(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **FAST_BREAKER)
    client = server.client()
    printer.set_mode(PrinterMode.BLACKHOLE)
    job_id = client.post("/print", json={"text": "into the void"}).json()["job_id"]
    with httpx.Client(base_url=server.url, timeout=2.0) as quick:
        for _ in range(20):  # each answer well within 2 s while the worker is stuck
            assert quick.get("/status").status_code == 200
    job = server.wait_for_job(job_id, lambda j: failed_attempts(j) >= 3, timeout=20)
    assert "no progress" in job["last_error"] or "did not answer" in job["last_error"]
    server.wait_for_job(job_id, lambda _: printer_info(server)["breaker"] != "closed")
    printer.set_mode(PrinterMode.ONLINE)
    job = server.wait_for_state(job_id, "printed", timeout=20)
    # The status question before the ticket went unanswered, so the ticket was never sent:
    # it prints once, with no REPRINT banner.
    assert not job["maybe_printed"]
    (ticket,) = [t for t in printer.tickets if "into the void" in t.text]
    assert not marked_reprint(ticket.text)


class DroppingProxy:
    """Forwards to a printer, but cuts the first connection after ``cut_after`` bytes."""

    def __init__(self, target: int, cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, limit), daemon=True).start()

    def _pipe(self, client: socket.socket, limit: int | None) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target)) as upstream:
            upstream.settimeout(5)
            client.settimeout(5)
            sent = 0
            try:
                while True:
                    data = client.recv(4096)
                    if not data:
                        return
                    if limit is not None and sent + len(data) > limit:
                        upstream.sendall(data[: limit - sent])
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0"
                        )
                        return  # closing with linger 0 resets the connection mid-ticket
                    upstream.sendall(data)
                    sent += len(data)
                    if data.endswith((b"\x10\x04\x01", b"\x10\x04\x02")):
                        client.sendall(upstream.recv(1))
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


def test_connection_dropped_mid_ticket_is_printed_again_marked_reprint(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    proxy = DroppingProxy(printer.port, cut_after=40)
    try:
        server = make_server([kitchen(proxy.port)])
        text = "Beef brisket noodles, extra spring onion"
        job_id = server.client().post("/print", json={"text": text}).json()["job_id"]
        job = server.wait_for_state(job_id, "printed", timeout=20)
    finally:
        proxy.close()
    assert job["maybe_printed"] and job["attempts"] == 2  # dropped at the first, printed next
    assert "dropped" in job["events"][2]["detail"]
    complete = [t for t in printer.tickets if text in t.text]
    assert len(complete) == 1 and marked_reprint(complete[0].text)


def test_paper_out_waits_then_prints_by_itself_when_refilled(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server([kitchen(printer)], **FAST_BREAKER)
    printer.set_mode(PrinterMode.PAPER_OUT)
    job_id = server.client().post("/print", json={"text": "needs paper"}).json()["job_id"]
    job = server.wait_for_job(job_id, lambda j: j["last_error"] is not None)
    # Waiting for paper is no attempt: only one under way (printing) counts.
    assert job["attempts"] == {"queued": 0, "printing": 1}[job["state"]]
    assert "paper out" in job["last_error"]
    assert printer_info(server)["problem"] == "paper out"
    assert httpx.get(f"{server.url}/status").json()["printers"][0]["problem"] == "paper out"
    assert printer.tickets == []
    printer.set_mode(PrinterMode.ONLINE)
    job = server.wait_for_state(job_id, "printed")
    assert not job["maybe_printed"]
    (ticket,) = printer.wait_for_tickets(1, timeout=5)
    assert "needs paper" in ticket.text and not marked_reprint(ticket.text)


def test_failover_to_the_backup_printer(make_server: ServerFactory, tmp_path: Path) -> None:
    with (
        VirtualPrinterThread(out_dir=tmp_path / "k") as main,
        VirtualPrinterThread(out_dir=tmp_path / "b") as backup,
    ):
        main.set_mode(PrinterMode.OFFLINE)
        server = make_server(
            [
                kitchen(main, backup="bar", failover_after=0.5),
                {"name": "bar", "uri": f"tcp://127.0.0.1:{backup.port}"},
            ],
            **FAST_BREAKER,
        )
        ids = [
            server.client().post("/print", json={"text": f"wok {n}"}).json()["job_id"]
            for n in range(3)
        ]
        tickets = backup.wait_for_tickets(3, timeout=20)
        assert [f"wok {n}" in t.text for n, t in enumerate(tickets)] == [True] * 3
        assert all("BACKUP FOR kitchen" in t.text for t in tickets)
        for job_id in ids:
            job = server.wait_for_state(job_id, "printed")
            assert job["printer"] == "bar" and job["original_printer"] == "kitchen"
        assert main.tickets == []


def test_reprint_and_cancel_over_the_api(server: Server, printer: VirtualPrinterThread) -> None:
    client = server.client()
    first = client.post("/print", json={"text": "again please"}).json()["job_id"]
    server.wait_for_state(first, "printed")
    answer = client.post(f"/jobs/{first}/reprint")
    assert answer.status_code == 202
    again = server.wait_for_state(answer.json()["job_id"], "printed")
    assert again["reprint_of"] == first and again["maybe_printed"]
    tickets = printer.wait_for_tickets(2, timeout=10)
    assert not marked_reprint(tickets[0].text) and marked_reprint(tickets[1].text)
    assert "again please" in tickets[1].text
    assert client.post(f"/jobs/{first}/cancel").status_code == 409  # printed is final
    assert client.post("/jobs/999/reprint").status_code == 404
    printer.set_mode(PrinterMode.OFFLINE)
    waiting = client.post("/print", json={"text": "never mind"}).json()["job_id"]
    # Once the breaker is open the job sits queued (between attempts it could be mid-try, and a
    # ticket being sent cannot be cancelled: 409).
    server.wait_for_job(waiting, lambda j: printer_info(server)["breaker"] == "open")
    cancelled = client.post(f"/jobs/{waiting}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    printer.set_mode(PrinterMode.ONLINE)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            pass
    return filler


def test_disk_full_answers_503_and_acknowledges_nothing_it_did_not_store(
    make_server: ServerFactory, printer: VirtualPrinterThread, small_disk: Path
) -> None:
    server = make_server([kitchen(printer)], SPOONPRINT_SERVER__DATA_DIR=str(small_disk))
    client = server.client()
    assert client.post("/print", json={"text": "before", "order_id": "d-0"}).status_code == 202
    filler = fill(small_disk)
    acknowledged, refused = [], []
    for n in range(1, 3000):
        answer = client.post("/print", json={"text": f"order {n}", "order_id": f"d-{n}"})
        if answer.status_code == 503:
            refused.append(n)
            body = answer.json()
            assert body["error"] == "cannot store orders right now; nothing was accepted"
            assert "full" in body["detail"]
            break
        assert answer.status_code == 202
        acknowledged.append(n)
    assert refused, "the disk never filled up"
    assert httpx.get(f"{server.url}/status").status_code == 200
    filler.unlink()
    for n in [0, *acknowledged]:
        job_id = client.post("/print", json={"text": f"order {n}", "order_id": f"d-{n}"})
        assert job_id.status_code == 200  # every acknowledged order is stored
    retry = client.post("/print", json={"text": "again", "order_id": f"d-{refused[0]}"})
    assert retry.status_code == 202  # the refused one was not


def test_sigterm_finishes_the_ticket_being_printed_then_exits(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    import signal
    import sqlite3

    # A long raster ticket at a printer that reads only as fast as it prints: the worker is
    # still busy with it (about 0.6 s) when the operator stops the server.
    with VirtualPrinterThread(out_dir=tmp_path / "slow", speed_mm_s=2500) as slow:
        server = make_server([kitchen(slow, protocol="escpos-raster")])
        text = "\n".join(f"line {n}" for n in range(400))
        job_id = server.client().post("/print", json={"text": text}).json()["job_id"]
        server.wait_for_job(job_id, lambda j: j["state"] == "printing")
        assert server.stop() in (0, -signal.SIGTERM)
        (ticket,) = slow.wait_for_tickets(1, timeout=10)
    assert ticket.image is not None and ticket.image.height >= 400 * 30
    db = sqlite3.connect(server.data_dir / "spoonprint.db")
    state, lease = db.execute(
        "SELECT state, lease_owner FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    db.close()
    assert (state, lease) == ("printed", None)
