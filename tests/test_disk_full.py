"""A small, then a full disk under a real server (issue 16, part 4): the data folder is a 3 MB
tmpfs mounted for the test. SQLite's write-ahead log must not fill it by itself; when the
disk is full, orders get a 503 that says how much space to free, the logs say they cannot be
written once a minute rather than a traceback a line, and orders are taken again as soon as
there is room.
"""

from __future__ import annotations

import errno
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import Server, ServerFactory

SIZE = "3m"
SmallDiskServer = Callable[[], Server]


@pytest.fixture
def small_disk_server(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> Iterator[SmallDiskServer]:
    """A server whose data folder is a fresh 3 MB tmpfs; stopped, then unmounted, after."""
    mounted: list[tuple[Server, Path]] = []

    def make() -> Server:
        uri = f"tcp://127.0.0.1:{printer.port}"
        server = make_server([{"name": "kitchen", "uri": uri}], start=False)
        server.data_dir.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(server.data_dir)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append((server, server.data_dir))
        return server.start()

    yield make
    for server, path in mounted:
        server.close()  # nothing may hold a file there when it is unmounted
        subprocess.run(["umount", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; the file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left over at close
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_the_write_ahead_log_does_not_fill_a_small_disk(
    small_disk_server: SmallDiskServer,
) -> None:
    server = small_disk_server()
    client = server.client()
    job_ids = []
    for n in range(300):  # about 54 filled the disk before
        answer = client.post("/print", json={"text": f"order {n} " + "x" * 200})
        assert answer.status_code == 202, f"order {n}: {answer.text}"
        job_ids.append(answer.json()["job_id"])
    server.wait_for_state(job_ids[-1], "printed", timeout=30)
    wal = server.data_dir / "spoonprint.db-wal"
    assert wal.stat().st_size < 1024 * 1024, wal.stat().st_size


def test_a_full_disk_refuses_orders_saying_what_to_free_and_logs_quietly(
    small_disk_server: SmallDiskServer,
) -> None:
    server = small_disk_server()
    client = server.client()
    before = client.post("/print", json={"text": "before"})
    assert before.status_code == 202
    server.wait_for_state(before.json()["job_id"], "printed")  # nothing is mid-ticket
    filler = fill(server.data_dir)
    for n in range(20):
        answer = client.post("/print", json={"text": f"order {n}", "order_id": f"full-{n}"})
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["error"] == "cannot store orders right now; nothing was accepted"
        assert f"the disk holding {server.data_dir} is full" in body["detail"], body
        assert re.search(r"\(\d+ KB free\): free at least \d+ MB there$", body["detail"]), body
    output = server.log.read_text(errors="replace")
    assert "--- Logging error ---" not in output and "Traceback" not in output, output[-3000:]
    warnings = [line for line in output.splitlines() if "cannot write" in line and "log" in line]
    assert len(warnings) == 1, warnings
    assert "spoonprint.log (" in warnings[0] and "No space left on device" in warnings[0]
    assert "said at most once every 60 s" in warnings[0]

    filler.unlink()  # room again: the same order is taken now, and prints
    answer = client.post("/print", json={"text": "order 0", "order_id": "full-0"})
    assert answer.status_code == 202, answer.text
    server.wait_for_state(answer.json()["job_id"], "printed")
