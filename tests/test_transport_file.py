"""The file transport on real folders: names, bytes, atomic appearance, sequence numbers across a
restart, a full disk and a read-only disk (small tmpfs mounts), a missing folder and its fix."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoonprint.errors import ConfigError, PrinterOffline, PrinterTimeout
from spoonprint.recovery.health import HEALTHY, Fault, Problem
from spoonprint.recovery.strategy import RecoveryFailed, Strategy
from spoonprint.transports import file
from spoonprint.transports.base import StatusQuery, Timeouts
from spoonprint.transports.file import TICKET_NAME, FileTransport
from spoonprint.transports.uri import parse_uri

TIMEOUTS = Timeouts()


def act(strategy: Strategy, problem: Problem) -> str:
    """Run a recovery strategy's action, as the health monitor does."""

    async def run() -> str:
        return await strategy.action(problem)

    return asyncio.run(run())


def tickets(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if TICKET_NAME.match(name))


def send(transport: FileTransport, data: bytes) -> None:
    assert asyncio.run(transport.send(data)) is None


def test_tickets_land_as_numbered_files_with_their_bytes(tmp_path: Path) -> None:
    transport = file.from_uri(parse_uri(f"file:{tmp_path}/out?ext=png"), TIMEOUTS)
    assert not transport.reads_status and transport.address == f"file:{tmp_path}/out"
    before = time.time()
    bodies = [b"\x89PNG first", bytes(range(256)), b""]
    for body in bodies:
        send(transport, body)
    names = tickets(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == names  # nothing else: no temporary files
    assert [name.split("-")[0] for name in names] == ["000001", "000002", "000003"]
    for name, body in zip(names, bodies, strict=True):
        assert name.endswith(".png")
        assert (tmp_path / "out" / name).read_bytes() == body
        stamp = time.mktime(time.strptime(name[7:22], "%Y%m%d-%H%M%S"))
        assert before - 1 <= stamp <= time.time() + 1


def test_default_extension_is_bin(tmp_path: Path) -> None:
    transport = file.from_uri(parse_uri(f"file:{tmp_path}"), TIMEOUTS)
    send(transport, b"ticket")
    [name] = tickets(tmp_path)
    assert name.endswith(".bin")


def test_a_watcher_never_sees_part_of_a_ticket(tmp_path: Path) -> None:
    body = os.urandom(1 << 20) * 4
    seen: dict[str, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for name in tickets(tmp_path):
                seen[name] = min(seen.get(name, len(body)), (tmp_path / name).stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        transport = FileTransport(tmp_path)
        for _ in range(6):
            send(transport, body)
    finally:
        done.set()
        watcher.join(10)
    assert len(tickets(tmp_path)) == 6
    assert set(seen.values()) <= {len(body)}  # every ticket the watcher saw was whole
    assert sorted(os.listdir(tmp_path)) == tickets(tmp_path)  # no temporary file left behind


def test_sequence_continues_after_a_restart(tmp_path: Path) -> None:
    send(FileTransport(tmp_path), b"one")
    send(FileTransport(tmp_path), b"two")  # a new process: it counts what is there
    (tmp_path / "000041-20240101-120000.png").write_bytes(b"older, other extension")
    (tmp_path / "notes-0099.txt").write_bytes(b"not a ticket")
    (tmp_path / ".000500-20240101-120000.part").write_bytes(b"a temporary file")
    restarted = FileTransport(tmp_path)
    send(restarted, b"three")
    send(restarted, b"four")
    numbers = [name[:6] for name in tickets(tmp_path)]
    assert numbers == ["000001", "000002", "000041", "000042", "000043"]
    assert (tmp_path / tickets(tmp_path)[-1]).read_bytes() == b"four"


def mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount_tmpfs(mount, "size=1m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ro"
    mount_tmpfs(mount, "ro,size=1m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the disk under ``folder`` to the last block."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.e2e
def test_disk_full_is_offline_and_leaves_nothing_behind(small_disk: Path) -> None:
    transport = FileTransport(small_disk)
    send(transport, b"before")
    filler = fill(small_disk)
    with pytest.raises(PrinterOffline, match="disk full") as caught:
        send(transport, b"x" * 65536)
    assert caught.value.bytes_written == 0
    assert sorted(os.listdir(small_disk)) == sorted([*tickets(small_disk), "filler"])
    assert len(tickets(small_disk)) == 1  # no partial ticket, no temporary file
    [problem] = asyncio.run(transport.check_path(60)).problems
    assert problem.fault is Fault.UNREACHABLE and "disk full" in problem.detail
    filler.unlink()
    assert asyncio.run(transport.check_path(60)) == HEALTHY
    send(transport, b"after")
    assert [name[:6] for name in tickets(small_disk)] == ["000001", "000002"]


@pytest.mark.e2e
def test_read_only_disk_is_offline_and_reported(read_only_disk: Path) -> None:
    transport = FileTransport(read_only_disk)
    with pytest.raises(PrinterOffline, match="read-only"):
        send(transport, b"ticket")
    [problem] = asyncio.run(transport.check_path(60)).problems
    assert problem.fault is Fault.UNREACHABLE and "read-only" in problem.detail


def test_missing_folder_is_reported_and_created(tmp_path: Path) -> None:
    folder = tmp_path / "tickets" / "kitchen"
    transport = FileTransport(folder)
    [problem] = asyncio.run(transport.check_path(60)).problems
    assert problem.fault is Fault.NOT_FOUND and str(folder) in problem.detail
    [create] = transport.strategies()
    assert create.name == "create-folder" and create.fixes == {Fault.NOT_FOUND}
    assert act(create, problem) == f"created folder {folder}"
    assert folder.is_dir() and asyncio.run(transport.check_path(60)) == HEALTHY
    send(transport, b"ticket")
    assert len(tickets(folder)) == 1


def test_send_creates_a_missing_folder(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "a" / "b")
    send(transport, b"ticket")
    assert len(tickets(tmp_path / "a" / "b")) == 1


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"")
    transport = FileTransport(tmp_path / "out")
    with pytest.raises(PrinterOffline, match="not a folder"):
        send(transport, b"ticket")
    [problem] = asyncio.run(transport.check_path(60)).problems
    assert problem.fault is Fault.UNREACHABLE and "not a folder" in problem.detail
    [create] = transport.strategies()
    with pytest.raises(RecoveryFailed):
        act(create, problem)


def test_status_questions_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    query = StatusQuery(b"\x10\x04\x01")
    with pytest.raises(PrinterTimeout) as caught:
        asyncio.run(transport.send(b"ticket", query, check=lambda reply: None))
    assert caught.value.bytes_written == 0 and tickets(tmp_path) == []
    with pytest.raises(PrinterTimeout):
        asyncio.run(transport.ask(query))


@pytest.mark.parametrize(
    ("uri", "option"),
    [("file:/tmp/x?ext=.png", "ext"), ("file:/tmp/x?ext=", "ext"), ("file:/tmp/x?mode=1", "mode")],
)
def test_bad_options_are_named(uri: str, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        file.from_uri(parse_uri(uri), TIMEOUTS)


def test_usable_everywhere() -> None:
    assert file.usable() is None
