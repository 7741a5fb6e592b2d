"""A real ``spoonprint serve`` process printing to a Windows queue, against the fake spooler
answering over its RPC stand-in (tests/fakes/pywin32_remote.py): the server's pywin32 calls
hold its GIL while the spooler keeps them waiting, as pywin32's do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.fakes.pywin32 import FakeSpooler
from tests.fakes.pywin32_remote import serve

PRINTER = "Star TSP100 Cutter (TSP143)"


@pytest.fixture
def spooler(tmp_path: Path) -> Iterator[tuple[FakeSpooler, dict[str, str]]]:
    fake = FakeSpooler(print_seconds=0.05)
    fake.add_printer(PRINTER)
    with fake.installed(), serve(fake, tmp_path / "boot") as env:
        yield fake, env


def test_status_keeps_answering_while_the_spooler_hangs(
    spooler: tuple[FakeSpooler, dict[str, str]], make_server: ServerFactory
) -> None:
    fake, env = spooler
    printers = [{"name": "kitchen", "uri": f"windows:{PRINTER}?mode=raw"}]
    server = make_server(printers, **env)
    client = server.client()
    first = client.post("/print", json={"text": "before"}).json()["job_id"]
    server.wait_for_state(first, "sent", timeout=20)

    # The driver stalls while the ticket is written, as a USB printer switched off does:
    # WritePrinter keeps pywin32 (and its GIL) waiting.
    fake.hang("WritePrinter")
    try:
        stuck = client.post("/print", json={"text": "during"}, timeout=5).json()["job_id"]
        deadline = time.monotonic() + 3.0  # the submission times out and is tried again
        while time.monotonic() < deadline:
            started = time.monotonic()
            answer = httpx.get(f"{server.url}/status", timeout=5)
            assert answer.status_code == 200
            assert time.monotonic() - started < 1.0, "the server froze with the spooler"
    finally:
        fake.answer()
    server.wait_for_state(stuck, "sent", timeout=30)
    assert len(fake.printer(PRINTER).printed) == 2
