"""Shared bench plumbing: a spoonprint server process and simple statistics."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    url: str
    key: str
    data_dir: Path


@contextmanager
def spoonprint_server(printer_port: int, extra_toml: str = "") -> Iterator[RunningServer]:
    """``spoonprint serve`` in a temporary folder, printing to 127.0.0.1:printer_port, with
    ``extra_toml`` (whole sections) added to its config."""
    with tempfile.TemporaryDirectory(prefix="spoonprint-bench-") as folder:
        root = Path(folder)
        port = free_port()
        config = root / "spoonprint.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "warning"\n'
            f"{extra_toml}"
            f'[[printers]]\nname = "kitchen"\nuri = "tcp://127.0.0.1:{printer_port}"\n',
            encoding="utf-8",
        )
        key = "sp_bench_" + secrets.token_urlsafe(24)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
        env["SPOONPRINT_API_KEY"] = key
        with (root / "server.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "spoonprint", "serve", "--config", str(config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, root / "server.log")
            yield RunningServer(url, key, root / "spoonprint-data")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spoonprint exited during start-up:\n{log.read_text('utf-8')}")
        try:
            httpx.get(f"{url}/status", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.02)
    raise TimeoutError("spoonprint did not start")


def summary(samples_s: list[float]) -> dict[str, float]:
    """Median, p99 and max in milliseconds."""
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "max_ms": ordered[-1] * 1000,
    }
