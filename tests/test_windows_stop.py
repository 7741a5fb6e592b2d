"""`spoonprint stop` as it runs on Windows: a stop request through the data folder to a real
server (no signal reaches a detached process there), and os.kill's Windows errors."""

from __future__ import annotations

from typing import NoReturn

import pytest

from spoonprint.cli import process

from .conftest import ServerFactory


def no_signals(pid: int, signum: int) -> NoReturn:
    raise AssertionError(f"os.kill({pid}, {signum}): Windows would cut the ticket short")


def test_stop_on_windows_asks_through_the_data_folder_and_the_server_stops_gracefully(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    assert server.proc is not None
    monkeypatch.setattr(process.os, "kill", no_signals)
    assert process._ask_to_stop(server.proc.pid, server.data_dir, 15.0, platform="win32")
    assert server.proc.wait(15) == 0  # its own graceful end, as after Ctrl+C
    server.proc = None
    log = server.log.read_text(errors="replace")
    assert "stop requested by 'spoonprint stop'" in log
    assert not (server.data_dir / "spoonprint.stop").exists()


def test_a_stop_request_left_from_before_does_not_stop_the_next_server(
    make_server: ServerFactory,
) -> None:
    server = make_server(start=False)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    (server.data_dir / "spoonprint.stop").write_text("old\n", encoding="utf-8")
    server.start()
    assert server.client().get("/status").status_code == 200
    assert server.proc is not None and server.proc.poll() is None


def test_windows_errors_of_os_kill_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    def ended(pid: int, signum: int) -> NoReturn:
        # What Windows' os.kill raises for a process that has ended (winerror 87).
        raise OSError(22, "The parameter is incorrect", None, 87)

    monkeypatch.setattr(process.os, "kill", ended)
    process._signal(4242, 15)  # gone: that is what stopping wanted

    def elevated(pid: int, signum: int) -> NoReturn:
        raise PermissionError(13, "Access is denied", None, 5)

    monkeypatch.setattr(process.os, "kill", elevated)
    with pytest.raises(process.ProcessProblem) as refused:
        process._signal(4242, 15)
    assert "Run as administrator" in str(refused.value)
