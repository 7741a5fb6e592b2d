"""``spoonprint monitor`` against a real server with a printer that works, one out of paper and
one switched off, an address blocked by the guard: every part of the dashboard shows what it
should, and the exit code says a printer needs attention. Also: a wrong key ends the monitor
at once, an unreachable server is said plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from spoonprint.cli.client import Api
from spoonprint.cli.main import app
from spoonprint.cli.monitor import render_text, take
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory, free_port

runner = CliRunner()
SCANNER = "203.0.113.7"


@pytest.fixture(autouse=True)
def own_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOONPRINT_KEY_FILE", str(tmp_path / "cli-keys.json"))
    monkeypatch.delenv("SPOONPRINT_API_KEY", raising=False)


@pytest.fixture
def troubled(
    make_server: ServerFactory, printer: VirtualPrinterThread, tmp_path: Path
) -> Iterator[Server]:
    """kitchen prints, bar is out of paper, patio is switched off; a scanner got blocked."""
    with (
        VirtualPrinterThread(out_dir=tmp_path / "bar", mode=PrinterMode.PAPER_OUT) as bar,
        VirtualPrinterThread(mode=PrinterMode.OFFLINE) as patio,
    ):
        server = make_server(
            [
                {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"},
                {"name": "bar", "uri": f"tcp://127.0.0.1:{bar.port}"},
                {"name": "patio", "uri": f"tcp://127.0.0.1:{patio.port}"},
            ],
            SPOONPRINT_RECOVERY__INTERVAL="1",
            # The tests' requests come through 127.0.0.1 as a proxy would bring the scanner's.
            SPOONPRINT_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]',
        )
        client = server.client()
        printed = client.post("/print", json={"text": "2 x wonton noodles", "order_id": "A-1"})
        server.wait_for_state(printed.json()["job_id"], "printed")
        for printer_name, order in (("bar", "B-7"), ("patio", "P-3")):
            body = {"text": "milk tea", "order_id": order, "printer": printer_name}
            job_id = client.post("/print", json=body).json()["job_id"]
            server.wait_for_job(job_id, lambda job: job["last_error"] is not None)
        for _ in range(5):
            client.get("/wp-login.php", headers={"X-Forwarded-For": SCANNER})
        until(lambda: recovery(client, "bar")["health"] == "needs-attention")
        until(lambda: any(a["printer"] == "patio" for a in recent_actions(client)))
        yield server


def recovery(client: httpx.Client, name: str) -> dict[str, Any]:
    printers = client.get("/recovery/status").json()["printers"]
    found: dict[str, Any] = next(p for p in printers if p["printer"] == name)
    return found


def recent_actions(client: httpx.Client) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = client.get("/recovery/status").json()["recent"]
    return actions


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.05)  # the state lives in the server process: poll it


def test_the_dashboard_shows_printers_queue_jobs_recovery_and_security(
    troubled: Server, tmp_path: Path
) -> None:
    with Api(troubled.url, troubled.key) as server:
        snapshot = take(server)
    frame = render_text(snapshot, width=170)
    lines = frame.splitlines()

    def row(start: str) -> str:
        return next(line for line in lines if line.strip("│ ").startswith(start))

    assert "online" in row("kitchen ") and "printing" in row("kitchen ")
    bar = row("bar ")
    assert "OUT" in bar and "needs-attention" in bar and "#2 [B-7]" in bar
    patio = row("patio ")
    assert "OFFLINE" in patio and "#3 [P-3]" in patio
    assert "bar: paper out: load a new paper roll and close the cover" in frame
    assert "patio: printer unreachable" in frame
    assert "A-1" in frame and "printed" in frame  # recent jobs
    assert "reconnect" in frame and "not fixed" in frame  # recovery actions
    assert SCANNER in row(SCANNER) and "scanner path" in frame  # blocked, and why
    assert snapshot.trouble

    svg = tmp_path / "monitor.svg"
    args = ["monitor", "--once", "--url", troubled.url, "--key", troubled.key, "--svg", str(svg)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 7, shown.stderr  # a printer needs attention
    assert "spoonprint monitor" in shown.stdout and "patio" in shown.stdout
    assert svg.read_text(encoding="utf-8").startswith("<svg")
    screenshots = os.environ.get("SPOONPRINT_SCREENSHOTS")
    if screenshots:  # the README's picture of the monitor
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        svg.replace(Path(screenshots) / "monitor.svg")
    as_json = runner.invoke(app, ["monitor", "--json", "--url", troubled.url], env=_key(troubled))
    assert as_json.exit_code == 7
    data = json.loads(as_json.stdout)
    queue = {q["printer"]: q for q in data["activity"]["queue"]}
    assert queue["bar"]["waiting"] == 1 and queue["bar"]["oldest"]["order_id"] == "B-7"
    assert [b["ip"] for b in data["activity"]["security"]["blocked"]] == [SCANNER]


def test_a_healthy_server_and_the_plain_failures(server: Server) -> None:
    fine = runner.invoke(app, ["monitor", "--once", "--url", server.url], env=_key(server))
    assert fine.exit_code == 0, fine.stderr
    assert "no jobs yet" in fine.stdout and "no address blocked" in fine.stdout
    assert "none needed" in fine.stdout
    wrong = runner.invoke(
        app, ["monitor", "--once", "--url", server.url, "--key", "sp_wrong_" + "z" * 30]
    )
    assert wrong.exit_code == 4 and "refused the API key" in wrong.stderr
    gone = f"http://127.0.0.1:{free_port()}"
    down = runner.invoke(app, ["monitor", "--once", "--url", gone, "--key", server.key])
    assert down.exit_code == 3 and "server not reachable" in down.stderr


def test_the_live_monitor_stops_at_once_on_a_wrong_key(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    result = subprocess.run(
        [sys.executable, "-m", "spoonprint", "monitor", "--url", server.url,
         "--key", "sp_wrong_" + "q" * 30],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 4 and "refused the API key" in result.stderr
    assert "Traceback" not in result.stderr


def _key(server: Server) -> dict[str, str]:
    return {"SPOONPRINT_API_KEY": server.key}
