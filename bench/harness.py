"""Shared bench plumbing: a spoonprint server process, optional py-spy profiles of it, simple
statistics and process measurements."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where ``spoonprint_server(..., profile=NAME)`` writes py-spy profiles (None: no profiling).
#: Set by ``python -m bench --profile DIR``.
PROFILE_DIR: Path | None = None
#: Seconds allowed for the server to answer /status after it was started.
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    url: str
    key: str
    data_dir: Path
    #: The ``spoonprint serve`` process.
    pid: int = 0
    #: Seconds from starting the process to its first ``/status`` answer.
    startup_s: float = 0.0
    #: Stop the server now (SIGTERM, as a service manager would), e.g. to read its database
    #: before the temporary folder goes; stopping again does nothing.
    stop: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def printer_toml(name: str, port: int, options: str = "") -> str:
    """One ``[[printers]]`` entry for a TCP printer on 127.0.0.1 (``options``: more TOML lines)."""
    return f'[[printers]]\nname = "{name}"\nuri = "tcp://127.0.0.1:{port}"\n{options}'


@contextmanager
def spoonprint_server(
    printer_port: int | None,
    extra_toml: str = "",
    *,
    printers: str | None = None,
    log_level: str = "warning",
    profile: str | None = None,
    prepare: Callable[[Path], None] | None = None,
    module: str = "spoonprint",
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """``spoonprint serve`` in a temporary folder, printing to 127.0.0.1:printer_port, with
    ``extra_toml`` (whole sections) added to its config.

    ``printers`` replaces the one printer with these ``[[printers]]`` entries. ``profile``
    names a py-spy profile of the server, written to :data:`PROFILE_DIR` when that is set.
    ``prepare`` is called with the (empty) data folder before the server starts. ``module``
    is what ``python -m`` runs (``bench.probe``: spoonprint with timestamps), with ``env`` added
    to its environment.
    """
    if printers is None:
        assert printer_port is not None, "a printer port or a printers section"
        printers = printer_toml("kitchen", printer_port)
    with tempfile.TemporaryDirectory(prefix="spoonprint-bench-") as folder:
        root = Path(folder)
        port = free_port()
        config = root / "spoonprint.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "{log_level}"\n'
            f"{extra_toml}{printers}",
            encoding="utf-8",
        )
        if prepare is not None:
            prepare(root / "spoonprint-data")
        key = "sp_bench_" + secrets.token_urlsafe(24)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
        environment.update(env or {})
        environment["SPOONPRINT_API_KEY"] = key
        with (root / "server.log").open("wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--config", str(config)],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(port, proc, root / "server.log")
            startup = time.perf_counter() - started
            with _profiled(proc.pid, profile):
                yield RunningServer(
                    url,
                    key,
                    root / "spoonprint-data",
                    proc.pid,
                    startup,
                    lambda: stop_process(proc),
                )
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT
) -> None:
    """Poll ``/status`` every 2 ms (a refused connect costs microseconds, so the poll neither
    slows the start-up it times nor adds more than 2 ms to it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spoonprint exited during start-up:\n{log.read_text('utf-8')}")
        if status(port, timeout=1.0) is not None:
            return
        time.sleep(0.002)
    raise TimeoutError("spoonprint did not start")


def status(port: int, timeout: float = 5.0) -> dict[str, Any] | None:
    """The server's ``/status`` answer, or None when it does not answer (yet)."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        client.request("GET", "/status")
        answer = client.getresponse()
        body = answer.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        client.close()
    if answer.status != 200:
        return None
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def wait_queue_empty(port: int, timeout: float) -> float:
    """Poll ``/status`` every 50 ms until no job waits; seconds it took. TimeoutError if not."""
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = status(port)
        if answer is not None and answer["queue_depth"] == 0:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise TimeoutError(f"jobs still waiting after {timeout} s")


# -- profiles ----------------------------------------------------------------------------------


@contextmanager
def _profiled(pid: int, name: str | None) -> Iterator[None]:
    """py-spy samples process ``pid`` meanwhile, when profiling is on and py-spy is installed;
    writes ``NAME.txt`` (collapsed stacks, for :mod:`bench.profile`) in :data:`PROFILE_DIR`."""
    spy = _py_spy()
    if PROFILE_DIR is None or name is None or spy is None:
        if PROFILE_DIR is not None and name is not None:
            print(f"  (no profile {name}: py-spy not found; pip install py-spy)")
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    output = PROFILE_DIR / f"{name}.txt"
    with (PROFILE_DIR / f"{name}.py-spy.log").open("wb") as log:
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
            + ["--nonblocking", "--gil", "--output", str(output)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(0.3)  # py-spy attaches in a moment: let it before the measured work starts
        yield
    finally:
        # SIGINT makes py-spy write its file and exit.
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


# -- measurements ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux: VmRSS in /proc), 0.0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (Linux), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_pressure() -> float | None:
    """Share of the last minute (%) in which some runnable task waited for a CPU (Linux PSI):
    how much other work competed with the benchmarks; None where the kernel does not say."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=") for part in line.split()[1:])
    return float(fields["avg60"])


def summary(samples_s: list[float]) -> dict[str, float]:
    """Median, p99 and max in milliseconds."""
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def figures_line(name: str, figures: dict[str, float], width: int = 34) -> str:
    """``name  median X ms  p99 Y ms  max Z ms`` (the format every bench prints)."""
    return (
        f"  {name:{width}} median {figures['median_ms']:7.2f} ms  "
        f"p99 {figures['p99_ms']:7.2f} ms  max {figures['max_ms']:7.2f} ms"
    )
