"""Shared fixtures: a real virtual printer on 127.0.0.1 and a real spoonprint server process."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from spoonprint.emulator.virtual_printer import VirtualPrinterThread

READY_TIMEOUT = 20.0

#: Fixtures that start a ``spoonprint serve`` process: a test using one is end-to-end.
PROCESS_FIXTURES = {"make_server", "server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _no_process_outside_e2e(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast loop (``-m "not e2e"``) must not start processes: a test that does without the
    ``e2e`` marker fails here, so the marker cannot silently go stale."""
    if request.node.get_closest_marker("e2e") is None:

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError(
                f"{request.node.nodeid} starts a process: mark it (or its module) e2e"
            )

        monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


def run_spoonprint(cwd: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """``spoonprint ARGS`` in a fresh process, as a person would type it (no SPOONPRINT_*
    variables from the test run, wide output so lines are not wrapped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "spoonprint", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failed_attempts(job: dict[str, Any]) -> int:
    """Attempts of ``job`` (as ``GET /jobs/ID`` shows it) that ended without printing."""
    return sum(event["detail"].startswith("will retry") for event in job["events"])


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\") + '"'
    return str(value)


def write_config(path: Path, port: int, printers: list[dict[str, Any]]) -> None:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"data_dir = {toml_value(path.parent / 'data')}",
        "[delivery]",
        "connect_timeout = 1.0",
        "write_timeout = 1.0",
        "status_timeout = 1.0",
        "retry_initial = 0.05",
        "retry_max = 0.2",
    ]
    for printer in printers:
        lines.append("[[printers]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in printer.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Server:
    """A ``spoonprint serve`` process on 127.0.0.1 with its own config and data folder."""

    config: Path
    port: int
    key: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    clients: list[httpx.Client] = field(default_factory=list)
    scheme: str = "http"
    #: A CA file for https servers with a self-signed certificate.
    verify: str | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.verify) if self.verify else True

    @property
    def data_dir(self) -> Path:
        return self.config.parent / "data"

    def start(self) -> Server:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spoonprint", "serve", "--config", str(self.config)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text(errors='replace')}")
            try:
                status = httpx.get(f"{self.url}/status", timeout=1, verify=self._verify())
                if status.status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)  # the port is not open yet: nothing to await on
        raise TimeoutError(f"server not ready:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> int:
        """Stop as an operator would (SIGTERM / Ctrl+C) and return the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def client(self, key: str | None = "default") -> httpx.Client:
        headers = {"X-API-Key": self.key if key == "default" else key} if key else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=self._verify())
        self.clients.append(client)
        return client

    def wait_for_state(self, job_id: int, state: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for_job(job_id, lambda job: job["state"] == state, timeout)

    def wait_for_job(
        self, job_id: int, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the job over the API (its state lives in another process) until ``done``."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
            if done(job):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not get there: {job}")
            time.sleep(0.02)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Poll the server's output (another process's file) until it holds ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server never logged {text!r}")
            time.sleep(0.02)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.stop()


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    vp = VirtualPrinterThread(out_dir=tmp_path / "printer-out")
    vp.start()
    yield vp
    vp.stop()


@pytest.fixture
def big5_printer(tmp_path: Path) -> Iterator[VirtualPrinterThread]:
    """A virtual printer with a Traditional Chinese font (REPRINT 重印 and notes print as text)."""
    vp = VirtualPrinterThread(out_dir=tmp_path / "big5-paper", encoding="big5hkscs")
    vp.start()
    yield vp
    vp.stop()


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[Server] = []

    def make(
        printers: list[dict[str, Any]] | None = None, start: bool = True, **env: str
    ) -> Server:
        folder = tmp_path / f"server{len(servers)}"
        folder.mkdir()
        config = folder / "spoonprint.toml"
        port = free_port()
        write_config(config, port, printers or [])
        key = "sp_test_" + secrets.token_urlsafe(24)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
        full_env.update({"SPOONPRINT_API_KEY": key, "PYTHONUNBUFFERED": "1", **env})
        server = Server(config, port, key, full_env, folder / "server.log")
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(printer: VirtualPrinterThread, make_server: ServerFactory) -> Server:
    # The printer first, so that it is stopped after the server, not while the server may be
    # connecting to it.
    return make_server([{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}])
