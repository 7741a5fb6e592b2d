"""The everyday commands as an operator uses them, against real servers: start, stop, restart
and status with a PID file; printers, queue, print, test-print, reprint, cancel with --json;
the exit codes and plain errors for a server that is not running, a wrong key, an unknown
printer; the CLI's key file; logs."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spoonprint.cli import process
from spoonprint.cli.logview import LogFilter, follow_file
from spoonprint.cli.main import app
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory, free_port

runner = CliRunner()


def spoonprint(server: Server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, with the server's environment."""
    env = {k: v for k, v in server.env.items() if k != "SPOONPRINT_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "spoonprint", *args, "--config", str(server.config)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(server: Server, *args: str, key: str | None = "default") -> Any:
    """The command in this process (typer's runner) against ``server``."""
    env = {} if key is None else {"SPOONPRINT_API_KEY": server.key if key == "default" else key}
    return runner.invoke(app, [*args, "--config", str(server.config)], env=env)


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture(autouse=True)
def own_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli-keys" / "keys.json"
    monkeypatch.setenv("SPOONPRINT_KEY_FILE", str(path))
    monkeypatch.delenv("SPOONPRINT_API_KEY", raising=False)
    return path


# -- start, stop, restart, status ----------------------------------------------------------


@pytest.mark.timeout(150)  # eight commands, each its own Python, and two servers starting
def test_start_status_stop_with_a_pid_file(make_server: ServerFactory) -> None:
    server = make_server([], start=False)
    pid_file = server.data_dir / process.PID_FILE
    started = spoonprint(server, "start")
    assert started.returncode == 0, started.stderr
    pid = int(pid_file.read_text())
    assert f"started (pid {pid})" in started.stdout
    assert process.state(server.data_dir).running
    try:
        status = spoonprint(server, "status")
        assert status.returncode == 0, status.stderr
        assert f"up (pid {pid})" in status.stdout and "virtual:" in status.stdout
        again = spoonprint(server, "start")
        assert again.returncode == 6 and "already running" in again.stderr
        restarted = spoonprint(server, "restart")
        assert restarted.returncode == 0, restarted.stderr
        assert f"stopped (pid {pid})" in restarted.stdout
        new_pid = int(pid_file.read_text())
        assert new_pid != pid
    finally:
        stopped = spoonprint(server, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped (pid" in stopped.stdout
    assert not pid_file.exists() and not process.state(server.data_dir).running
    gone = spoonprint(server, "status")
    assert gone.returncode == 3 and "server not reachable" in gone.stderr
    assert "Traceback" not in gone.stderr
    idle = spoonprint(server, "stop")
    assert idle.returncode == 0 and "not running" in idle.stdout


def test_a_stale_pid_file_is_replaced(make_server: ServerFactory) -> None:
    server = make_server([], start=False)
    server.data_dir.mkdir(parents=True)
    # A PID file naming a live process that is no spoonprint (as after a reboot reused it).
    (server.data_dir / process.PID_FILE).write_text(f"{os.getpid()}\n")
    assert process.state(server.data_dir).stale_pid_file
    started = spoonprint(server, "start")
    try:
        assert started.returncode == 0, started.stderr
        assert "stale PID file" in started.stdout
        assert int((server.data_dir / process.PID_FILE).read_text()) != os.getpid()
    finally:
        assert spoonprint(server, "stop").returncode == 0


def test_stop_leaves_a_server_it_did_not_start(make_server: ServerFactory) -> None:
    server = make_server([])  # started with 'serve', as a service would
    result = spoonprint(server, "stop")
    assert result.returncode == 6
    assert "not started with 'spoonprint start'" in result.stderr
    assert server.proc is not None and server.proc.poll() is None
    assert server.client().get("/status").status_code == 200


def test_a_server_that_cannot_start_says_why(make_server: ServerFactory) -> None:
    server = make_server([], start=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        result = spoonprint(server, "start")
    assert result.returncode == 1
    assert "stopped at once (exit code 2)" in result.stderr
    assert f"port {server.port} is already in use" in result.stderr
    assert not (server.data_dir / process.PID_FILE).exists()


def test_the_server_is_detached_on_each_platform() -> None:
    assert process.detach_options("linux") == {"start_new_session": True}
    flags = process.detach_options("win32")["creationflags"]
    assert flags == 0x00000200 | 0x00000008  # CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS


# -- printers and jobs ---------------------------------------------------------------------


def test_print_wait_reprint_and_printers_as_json(
    server: Server, printer: VirtualPrinterThread, tmp_path: Path
) -> None:
    job = as_json(cli(server, "print", "Hello from the CLI", "--wait", "--json"))
    assert job["state"] == "printed" and job["printer"] == "kitchen"
    assert "Hello from the CLI" in printer.wait_for_tickets(1, 5)[0].text
    order = tmp_path / "order.json"
    order.write_text(json.dumps({"order_id": "A-77", "text": "2 x congee"}), encoding="utf-8")
    first = as_json(cli(server, "print", str(order), "--json"))
    again = as_json(cli(server, "print", str(order), "--json"))
    assert again["job_id"] == first["job_id"] and again["duplicate"] is True
    server.wait_for_state(first["job_id"], "printed")
    reprinted = as_json(cli(server, "reprint", str(first["job_id"]), "--wait", "--json"))
    assert reprinted["reprint_of"] == first["job_id"] and reprinted["state"] == "printed"
    plain = cli(server, "reprint", str(first["job_id"]))
    assert plain.exit_code == 0 and f"(reprint of {first['job_id']})" in plain.stdout
    listed = as_json(cli(server, "printers", "--json"))
    assert [(p["name"], p["online"], p["default"]) for p in listed] == [("kitchen", True, True)]
    assert listed[0]["health"] in ("ok", "unknown")
    test = as_json(cli(server, "test-print", "kitchen", "--wait", "--json"))
    assert test["state"] == "printed"


def test_an_order_sent_again_says_what_became_of_the_first(
    server: Server, printer: VirtualPrinterThread, tmp_path: Path
) -> None:
    order = tmp_path / "order.json"
    order.write_text(json.dumps({"order_id": "A-9", "text": "1 x congee"}), encoding="utf-8")
    first = as_json(cli(server, "print", str(order), "--wait", "--json"))
    assert first["state"] == "printed"
    again = cli(server, "print", str(order))
    assert again.exit_code == 0, again.stderr
    printed_at = datetime.fromisoformat(first["printed_at"]).astimezone().strftime("%H:%M")
    job = first["id"]
    assert again.stdout.strip() == (
        f"Order A-9: already accepted as job {job} (printed at {printed_at} on kitchen); "
        f"nothing printed again; use `spoonprint reprint {job}` for another copy"
    )
    waited = cli(server, "print", str(order), "--wait")
    assert f"already accepted as job {job} (printed at" in waited.stdout
    assert len(printer.wait_for_tickets(1, 5)) == 1  # the one ticket of the first time


def test_a_missing_file_is_refused_and_text_still_prints(
    server: Server, printer: VirtualPrinterThread, tmp_path: Path
) -> None:
    for missing in ("/nonexistent.json", "order.JSON", "notes.txt", "orders/today"):
        refused = cli(server, "print", missing)
        assert refused.exit_code == 2, (missing, refused.stdout)
        assert f"no such file: {missing}" in refused.stderr and refused.stdout == ""
    assert as_json(cli(server, "queue", "--json")) == []
    job = as_json(cli(server, "print", "Table 5/6: 2 x congee", "--wait", "--json"))
    assert job["state"] == "printed"
    (ticket,) = printer.wait_for_tickets(1, 5)  # only this one: nothing else was sent
    assert "Table 5/6: 2 x congee" in ticket.text


def test_queue_and_cancel_while_the_printer_is_off(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    # A long breaker rest: once open, the waiting job stays queued (not retried) meanwhile.
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}],
        SPOONPRINT_DELIVERY__BREAKER_RESET="60",
    )
    printer.set_mode(PrinterMode.OFFLINE)
    accepted = as_json(cli(server, "print", "waiting for power", "--order-id", "B-2", "--json"))
    waiting = as_json(cli(server, "queue", "--json"))
    assert [(j["id"], j["order_id"]) for j in waiting] == [(accepted["job_id"], "B-2")]
    table = cli(server, "queue")
    assert table.exit_code == 0 and "B-2" in table.stdout
    admin = server.client()
    until(lambda: admin.get("/printers").json()[0]["breaker"] == "open")
    # Resting: the job stays queued, not between attempts.
    again = cli(server, "print", "waiting for power", "--order-id", "B-2")
    assert f"already accepted as job {accepted['job_id']} (waiting to print on kitchen)" in (
        again.stdout
    )
    status = spoonprint(server, "status", "--json")
    assert status.returncode == 7  # a printer is failing
    assert json.loads(status.stdout)["printers"][0]["online"] is False
    listed = cli(server, "printers", "--json")
    assert listed.exit_code == 7 and json.loads(listed.stdout)[0]["online"] is False
    assert cli(server, "printers").exit_code == 7
    cancelled = cli(server, "cancel", str(accepted["job_id"]))
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    twice = cli(server, "cancel", str(accepted["job_id"]))
    assert twice.exit_code == 6 and "cannot become cancelled" in twice.stderr
    assert as_json(cli(server, "queue", "--json")) == []
    waited = cli(server, "print", "no power", "--wait", "--timeout", "1")
    assert waited.exit_code == 7 and "queued" in waited.stdout


def test_printers_in_owner_words_in_80_columns(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    down = f"tcp://127.0.0.1:{free_port()}"  # nothing listens: refused
    server = make_server(
        [
            {"name": "kitchen", "uri": down},
            {"name": "bar", "uri": f"tcp://127.0.0.1:{printer.port}"},
        ],
        SPOONPRINT_DELIVERY__BREAKER_RESET="60",
    )
    assert as_json(cli(server, "test-print", "bar", "--wait", "--json"))["state"] == "printed"
    as_json(cli(server, "print", "waiting for power", "--json"))
    admin = server.client()
    until(lambda: admin.get("/printers").json()[0]["breaker"] == "open")
    kitchen = admin.get("/printers").json()[0]
    (advice,) = kitchen["advice"]
    env = {k: v for k, v in server.env.items() if k != "SPOONPRINT_API_KEY"}
    shown = subprocess.run(
        [sys.executable, "-m", "spoonprint", "printers", "--config", str(server.config)],
        env={**env, "SPOONPRINT_KEY_FILE": str(server.config.parent / "keys.json"),
             "SPOONPRINT_API_KEY": server.key, "COLUMNS": "80"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 7, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, shown.stdout
    retry = datetime.fromisoformat(kitchen["retry_at"]).astimezone()
    clocks = {(retry + timedelta(seconds=d)).strftime("%H:%M:%S") for d in (-1, 0, 1)}
    assert lines[0] == f"kitchen (default)  {down}"
    assert any(
        lines[1] == f"  OFFLINE; {health}pausing after failures, retry at {clock}; 1 waiting"
        for clock in clocks
        for health in ("", "recovering; ", "needs attention; ")
    ), lines[1]
    words = " ".join(shown.stdout.split())  # a long advice may wrap: read it as one text
    assert words.count(advice) == 1 and kitchen["problem"] not in words
    assert f"bar  tcp://127.0.0.1:{printer.port}" in lines
    assert "  online; printing; 0 waiting" in lines
    for engineer in ("breaker", "closed", "open", "resting"):
        assert engineer not in words
    status = spoonprint(server, "status")
    assert "  kitchen: OFFLINE, 1 waiting" in status.stdout.splitlines()
    assert status.stdout.count(advice) == 1 and kitchen["problem"] not in status.stdout


def test_plain_errors_and_exit_codes(server: Server) -> None:
    unknown = cli(server, "test-print", "patio")
    assert unknown.exit_code == 5 and "unknown printer" in unknown.stderr
    assert "kitchen" in unknown.stderr
    missing = cli(server, "reprint", "999")
    assert missing.exit_code == 5 and "no job 999" in missing.stderr
    wrong = cli(server, "queue", key="sp_wrong_key_" + "x" * 30)
    assert wrong.exit_code == 4 and "refused the API key" in wrong.stderr
    nokey = cli(server, "queue", key=None)
    assert nokey.exit_code == 4 and "an API key is needed" in nokey.stderr
    made = spoonprint(server, "keys", "create", "till", "--role", "print")
    print_key = made.stdout.strip()
    printer_only = cli(server, "queue", key=print_key)
    assert printer_only.exit_code == 4 and "admin key is needed" in printer_only.stderr
    down = runner.invoke(
        app, ["printers", "--url", f"http://127.0.0.1:{free_port()}", "--key", server.key]
    )
    assert down.exit_code == 3 and "is spoonprint running?" in down.stderr
    for result in (unknown, missing, wrong, nokey, printer_only, down):
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output


def test_login_keeps_the_key_for_the_owner_only(server: Server, own_key_file: Path) -> None:
    refused = cli(server, "login", "--key", "sp_not_a_key_" + "y" * 30, key=None)
    assert refused.exit_code == 4 and not own_key_file.exists()
    saved = cli(server, "login", "--key", server.key, key=None)
    assert saved.exit_code == 0, saved.stderr
    assert json.loads(own_key_file.read_text()) == {server.url: server.key}
    if sys.platform != "win32":
        assert stat.S_IMODE(own_key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(own_key_file.parent.stat().st_mode) == 0o700
    # No --key and no SPOONPRINT_API_KEY: the kept key is used.
    listed = runner.invoke(app, ["printers", "--json", "--config", str(server.config)])
    assert listed.exit_code == 0, listed.stderr
    assert cli(server, "logout", key=None).exit_code == 0
    assert json.loads(own_key_file.read_text()) == {}
    after = runner.invoke(app, ["printers", "--config", str(server.config)])
    assert after.exit_code == 4


# -- logs ----------------------------------------------------------------------------------


def test_logs_show_the_last_lines(server: Server) -> None:
    as_json(cli(server, "print", "for the log", "--wait", "--json"))
    shown = cli(server, "logs", "-n", "5")
    assert shown.exit_code == 0
    assert len(shown.stdout.splitlines()) == 5
    server.client().get("/wp-login.php")  # a scanner probe: a security event
    security = cli(server, "logs", "--security", "-n", "1")
    assert security.exit_code == 0 and '"path": "/wp-login.php"' in security.stdout


def test_logs_leave_out_the_access_lines_unless_asked(server: Server) -> None:
    job = as_json(cli(server, "print", "for the owner", "--wait", "--json"))
    for _ in range(3):  # what monitor and the dashboard do all day
        server.client().get("/status")
    server.wait_for_log('"GET /status HTTP/1.1" 200')  # the file is written first
    owner = cli(server, "logs", "-n", "500")
    assert owner.exit_code == 0
    assert f"job {job['id']}: printing -> printed" in owner.stdout
    assert "printer kitchen: worker started" in owner.stdout
    assert "HTTP/1.1" not in owner.stdout and "uvicorn.access" not in owner.stdout
    everything = cli(server, "logs", "--access", "-n", "500")
    assert '"GET /status HTTP/1.1" 200' in everything.stdout
    assert f"job {job['id']}: printing -> printed" in everything.stdout


def test_following_the_log_keeps_a_record_whole_and_its_traceback() -> None:
    access = '2026-12-04 18:07:01,002 INFO    uvicorn.access: 127.0.0.1:5 - "GET /status" 200\n'
    job = "2026-12-04 18:07:01,003 INFO    spoonprint.jobs: job 2: printing -> printed\n"
    failed = "2026-12-04 18:07:02,004 ERROR   uvicorn.error: Exception in ASGI application\n"
    trace = "Traceback (most recent call last):\n  ValueError: boom\n"
    stream = access + job + access + failed + trace + access
    owner = LogFilter()
    # In pieces that cut lines anywhere, as a growing file is read.
    shown = "".join(owner.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert shown == job + failed + trace
    assert LogFilter(everything=True).feed(stream) == stream


def test_logs_need_a_log(tmp_path: Path) -> None:
    config = tmp_path / "spoonprint.toml"
    config.write_text(f'[server]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n')
    result = runner.invoke(app, ["logs", "--config", str(config)])
    assert result.exit_code == 3 and "no log yet" in result.stderr


def test_follow_reads_new_lines_and_a_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "spoonprint.log"
    log.write_text("old line\n")
    seen: list[str] = []
    done = threading.Event()
    start = log.stat().st_size

    def reader() -> None:
        for text in follow_file(log, start, poll=0.01, until=done.is_set):
            seen.append(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with log.open("a") as file:
            file.write("first new line\n")
        wait_until(lambda: "".join(seen) == "first new line\n")
        log.rename(tmp_path / "spoonprint.log.1")
        log.write_text("after rotation\n")
        wait_until(lambda: "".join(seen).endswith("after rotation\n"))
    finally:
        done.set()
        thread.join(5)
    assert "old line" not in "".join(seen)


def until(condition: Any, timeout: float = 20.0) -> None:
    """Poll state that lives in the server process (bounded)."""
    wait_until(condition, timeout)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.01)  # another thread writes the file: nothing to await
