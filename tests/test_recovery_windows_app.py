"""The whole app (composition root, worker, health monitor) on a Windows print queue, against
the pywin32 fake: a queue left paused and set to "Use Printer Offline" is healed by the monitor
and the waiting ticket prints; without Administrator rights staff are told so, plainly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoonprint.app import Services, build
from spoonprint.config import (
    DeliverySettings,
    PrinterConfig,
    RecoverySettings,
    ServerSettings,
    Settings,
)
from spoonprint.domain.job import JobState, NewJob

from .fakes.pywin32 import WIN32PRINT_CONSTANTS as C
from .fakes.pywin32 import FakeSpooler
from .fakes.pywin32_remote import serve

PRINTER = "Star TSP100 Cutter (TSP143)"
PAUSED = C["PRINTER_STATUS_PAUSED"]
WORK_OFFLINE = C["PRINTER_ATTRIBUTE_WORK_OFFLINE"]


@pytest.fixture
def spooler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSpooler]:
    """The fake spooler, answering the helper processes the app's queue starts."""
    fake = FakeSpooler()
    fake.add_printer(PRINTER)
    with fake.installed(), serve(fake, tmp_path / "boot") as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield fake


def settings(data_dir: Path) -> Settings:
    return Settings(
        server=ServerSettings(data_dir=data_dir),
        # The worker alone would try again only after 30 s.
        delivery=DeliverySettings(retry_initial=30, retry_max=30),
        recovery=RecoverySettings(interval=1),
        printers=[
            PrinterConfig(
                name="kitchen", uri=f"windows:{PRINTER}?mode=raw", protocol="star-graphic"
            )
        ],
    )


async def until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)  # spooler threads and the monitor: nothing to await


async def order(services: Services, text: str) -> int:
    job, _ = await services.accept(NewJob("kitchen", {"text": text}))
    return job.id


@pytest.mark.e2e
def test_monitor_clears_use_printer_offline_and_resumes_the_queue(
    spooler: FakeSpooler, tmp_path: Path
) -> None:
    queue = spooler.printer(PRINTER)
    queue.status |= PAUSED
    queue.attributes |= WORK_OFFLINE
    spooler.admin = True

    async def scenario() -> float:
        services = build(settings(tmp_path))
        await services.start()
        try:
            started = time.monotonic()
            job_id = await order(services, "dim sum for table 4")
            await until(lambda: services.store.get(job_id).state is JobState.SENT)
            took = time.monotonic() - started
            assert services.monitor is not None
            strategies = services.monitor.describe("kitchen")["strategies"]
            assert strategies["windows-online"]["succeeded"] == 1
            assert strategies["windows-resume"]["succeeded"] == 1
            assert services.monitor.describe("kitchen")["health"] == "ok"
            return took
        finally:
            await services.stop()

    took = asyncio.run(scenario())
    print(f"\nWindows queue paused + offline -> healed, ticket printed: {took:.2f} s")
    assert not queue.status & PAUSED and not queue.attributes & WORK_OFFLINE
    assert len(queue.printed) == 1 and queue.printed[0].datatype == "RAW"


@pytest.mark.e2e
def test_without_administrator_rights_staff_are_told_what_to_do(
    spooler: FakeSpooler, tmp_path: Path
) -> None:
    queue = spooler.printer(PRINTER)
    queue.attributes |= WORK_OFFLINE
    spooler.admin = False

    async def scenario() -> None:
        services = build(settings(tmp_path))
        await services.start()
        try:
            job_id = await order(services, "congee")
            monitor = services.monitor
            assert monitor is not None
            await until(lambda: monitor.records["kitchen"].needs_admin)
            advice = monitor.advice("kitchen")
            assert advice == [
                "printer set to 'Use Printer Offline': spoonprint cannot fix it: taking the "
                "printer out of 'Use Printer Offline' needs Administrator rights: run "
                "spoonprint as Administrator (right-click, Run as administrator), or as a "
                "Windows service under an administrator account"
            ]
            assert services.store.get(job_id).state is JobState.PRINTING  # waiting, not lost
            # Someone with the rights unticks "Use Printer Offline": the ticket goes out.
            queue.attributes &= ~WORK_OFFLINE
            await until(lambda: services.store.get(job_id).state is JobState.SENT)
        finally:
            await services.stop()

    asyncio.run(scenario())
