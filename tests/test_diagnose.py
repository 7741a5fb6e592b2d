"""``spoonprint diagnose`` against the virtual printer in each of its modes (online, paper out,
cover open, switched off, accepting but never answering; ESC/POS and Star), and against a
Windows queue (the pywin32 fake) in both of its modes: the right checks pass or fail, status
bits come out as words, the test page arrives with its Chinese, HKSCS, QR code and cut, and
each failure carries the plain next step."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from spoonprint.cli.main import app
from spoonprint.config import PrinterConfig
from spoonprint.diagnostics import (
    CHINESE_SAMPLE,
    HKSCS_SAMPLE,
    Diagnose,
    Outcome,
    escpos_words,
    star_words,
)
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread
from spoonprint.recovery.health import ADVICE, Fault
from spoonprint.render.escpos import CUT
from spoonprint.render.fonts import find_typeface
from spoonprint.transports.base import Timeouts, Transport
from spoonprint.transports.uri import PrinterUri
from spoonprint.transports.windows import WindowsTransport
from spoonprint.transports.windows_host import InThreads

from .conftest import free_port, write_config
from .fakes.pywin32 import EMF_DATATYPE, FakeSpooler
from .fakes.pywin32 import WIN32PRINT_CONSTANTS as C

runner = CliRunner()
QR = b"\x1d(k"
WINDOWS_PRINTER = "EPSON TM-T82III Receipt"
QUICK = Timeouts(1.0, 1.0, 1.0)


def diagnose(tmp_path: Path, printers: list[dict[str, Any]], *args: str) -> Any:
    config = tmp_path / "spoonprint.toml"
    write_config(config, free_port(), printers)
    return runner.invoke(app, ["diagnose", *args, "--config", str(config)])


def report(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    data["by_name"] = {check["name"]: check for check in data["checks"]}
    return data


def test_a_working_printer_prints_the_test_page(tmp_path: Path) -> None:
    with VirtualPrinterThread(out_dir=tmp_path / "out") as printer:
        uri = f"tcp://127.0.0.1:{printer.port}"
        printers = [{"name": "kitchen", "uri": uri, "text_encoding": "big5hkscs"}]
        result = diagnose(tmp_path, printers, "--json")
        assert result.exit_code == 0, result.output
        checks = report(result)["by_name"]
        assert [c["outcome"] for c in report(result)["checks"]] == ["ok"] * 5
        assert "accepts connections" in checks["reachable"]["detail"]
        assert "online, no fault; answers in" in checks["status"]["detail"]
        assert "best of 3" in checks["status"]["detail"]
        assert "confirmed by the printer" in checks["test page"]["detail"]
        (ticket,) = printer.wait_for_tickets(1, 5)
    assert "spoonprint test page" in ticket.text and "printer: kitchen" in ticket.text
    assert CHINESE_SAMPLE in ticket.text and HKSCS_SAMPLE in ticket.text  # in the printer font
    assert QR in ticket.data and CUT in ticket.data
    assert ticket.path is not None
    with Image.open(ticket.path.with_suffix(".png")) as paper:
        assert paper.width == 576 and paper.height > 400


def test_progress_and_verdict_in_words(tmp_path: Path) -> None:
    with VirtualPrinterThread() as printer:
        printers = [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}]
        result = diagnose(tmp_path, printers, "--no-print")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Diagnosing kitchen at tcp://127.0.0.1:")
    assert [line.split(":")[0] for line in lines[1:6]] == [
        "[ ok ] setup", "[ ok ] path", "[ ok ] reachable", "[ ok ] status",
        "[skip] test page",
    ]  # fmt: skip
    assert lines[-1].startswith("kitchen works.")


@pytest.mark.parametrize(
    ("mode", "failing", "words", "fault"),
    [
        (PrinterMode.PAPER_OUT, "status", ["offline", "stopped: paper out"], Fault.PAPER_OUT),
        (PrinterMode.COVER_OPEN, "status", ["offline", "cover open"], Fault.COVER_OPEN),
        (PrinterMode.OFFLINE, "reachable", ["refused"], Fault.UNREACHABLE),
        (PrinterMode.BLACKHOLE, "status", ["no status answer"], Fault.NOT_RESPONDING),
    ],
)
def test_a_printer_in_trouble_gets_the_next_step(
    tmp_path: Path, mode: PrinterMode, failing: str, words: list[str], fault: Fault
) -> None:
    with VirtualPrinterThread(mode=mode) as printer:
        printers = [{"name": "bar", "uri": f"tcp://127.0.0.1:{printer.port}"}]
        result = diagnose(tmp_path, printers, "--json")
        tickets = printer.tickets
    assert result.exit_code == 7, result.output
    data = report(result)
    check = data["by_name"][failing]
    assert check["outcome"] == "failed"
    for word in words:
        assert word in check["detail"]
    assert check["next_step"] == ADVICE[fault]
    assert data["by_name"]["test page"]["outcome"] == "skipped"
    assert data["verdict"] == ["bar has a problem:", f"- {ADVICE[fault]}"]
    assert tickets == []


def test_a_star_printer(tmp_path: Path) -> None:
    with VirtualPrinterThread(protocol="star-graphic") as printer:
        uri = f"tcp://127.0.0.1:{printer.port}"
        printers = [{"name": "counter", "uri": uri, "protocol": "star-graphic"}]
        result = diagnose(tmp_path, printers, "--json")
        assert result.exit_code == 0, result.output
        (ticket,) = printer.wait_for_tickets(1, 5)
    assert report(result)["by_name"]["test page"]["outcome"] == "ok"
    assert ticket.image is not None and ticket.image.height > 400  # the whole page as raster


def test_no_printer_or_an_unknown_one(tmp_path: Path) -> None:
    unknown = diagnose(tmp_path, [{"name": "kitchen", "uri": "tcp://127.0.0.1:9"}], "patio")
    assert unknown.exit_code == 5 and "kitchen" in unknown.stderr
    virtual_only = diagnose(tmp_path, [], "patio")
    assert virtual_only.exit_code == 5
    assert "no printer named 'patio'; printers: virtual (built in)" in virtual_only.stderr


def test_an_address_names_itself_on_the_test_page(tmp_path: Path) -> None:
    with VirtualPrinterThread(out_dir=tmp_path / "out") as printer:
        address = f"tcp://127.0.0.1:{printer.port}"
        adhoc = runner.invoke(
            app, ["diagnose", "--uri", address, "--config", str(tmp_path / "none.toml")]
        )
        assert adhoc.exit_code == 0, adhoc.output
        (ticket,) = printer.wait_for_tickets(1, 5)
    assert f"Diagnosing {address}\n" in adhoc.stdout
    assert f"printer: {address}" in ticket.text  # the page says which printer it came from


@pytest.mark.parametrize("args", [[], ["virtual"]], ids=["default", "named"])
def test_the_built_in_virtual_printer(tmp_path: Path, args: list[str]) -> None:
    # No [[printers]]: the server prints to its virtual printer, and so does diagnose.
    result = diagnose(tmp_path, [], *args)
    assert result.exit_code == 0, result.output
    assert "Diagnosing virtual at tcp://127.0.0.1:" in result.stdout
    assert "[ ok ] test page:" in result.stdout and "confirmed by the printer" in result.stdout
    pages = tmp_path / "data" / "virtual-printer" / "test-pages"
    assert f"The virtual printer saved the test page in {pages}" in result.stdout
    (page,) = pages.glob("*.txt")
    text = page.read_text(encoding="utf-8")
    assert "spoonprint test page" in text and "printer: virtual" in text
    assert CHINESE_SAMPLE in text or (pages / f"{page.stem}.png").is_file()


def test_status_bits_in_words() -> None:
    assert escpos_words(1, 0x12) == []
    assert escpos_words(1, 0x1A) == ["offline"]
    assert escpos_words(2, 0x32) == ["stopped: paper out"]
    assert escpos_words(2, 0x16) == ["cover open"]
    assert escpos_words(2, 0x52) == ["error"]
    assert escpos_words(3, 0x1A) == ["cutter error"]
    assert escpos_words(4, 0x7E) == ["paper roll near its end", "paper sensor: no paper"]
    assert escpos_words(1, 0xFF) == ["not a status reply (0xff)"]
    online = bytes.fromhex("23 06 00 00 00 00 00 00 00")
    assert star_words(online) == []
    assert star_words(bytes.fromhex("23 06 28 00 00 00 00 00 00")) == ["cover open", "offline"]
    assert star_words(bytes.fromhex("23 06 08 08 00 08 00 00 00")) == [
        "offline", "cutter error", "paper out",
    ]  # fmt: skip


# -- Windows queues ------------------------------------------------------------------------


@pytest.fixture
def spooler() -> Iterator[FakeSpooler]:
    fake = FakeSpooler(print_seconds=0.05)
    fake.add_printer(WINDOWS_PRINTER)
    with fake.installed():
        yield fake


def windows_diagnosis(spooler: FakeSpooler, draw: Any = None, page_timeout: float = 10.0) -> Any:
    def opener(uri: PrinterUri, timeouts: Timeouts) -> Transport:
        return WindowsTransport(
            uri.target,
            uri.options.get("mode", "gdi"),
            timeouts,
            draw=draw or spooler.draw,
            poll_interval=0.02,
            calls=InThreads(),  # in-process: these tests stage the driver's drawing
        )

    config = PrinterConfig(name="counter", uri=f"windows:{WINDOWS_PRINTER}")
    run = Diagnose(
        config, find_typeface(None), timeouts=QUICK, page_timeout=page_timeout, opener=opener
    )
    return asyncio.run(run.run())


def test_a_windows_queue_is_tried_in_both_modes(spooler: FakeSpooler) -> None:
    diagnosis = windows_diagnosis(spooler)
    assert diagnosis.ok and diagnosis.modes == {"gdi": True, "raw": True}
    assert [(c.label, c.outcome) for c in diagnosis.checks] == [
        ("setup (mode=gdi)", Outcome.OK), ("path (mode=gdi)", Outcome.OK),
        ("test page (mode=gdi)", Outcome.OK),
        ("setup (mode=raw)", Outcome.OK), ("path (mode=raw)", Outcome.OK),
        ("test page (mode=raw)", Outcome.OK),
    ]  # fmt: skip
    printed = spooler.printer(WINDOWS_PRINTER).printed
    assert [job.datatype for job in printed] == [EMF_DATATYPE, "RAW"]
    (page,) = printed[0].pages
    assert page[0].image.height > 400  # the test page drawn through the driver
    assert QR in printed[1].data and CUT in printed[1].data  # ESC/POS bytes as they are
    assert "mode=gdi and mode=raw" in diagnosis.verdict()[0]


def test_a_queue_whose_driver_cannot_draw_is_told_to_use_raw(spooler: FakeSpooler) -> None:
    def broken(hdc: int, image: Image.Image, rect: tuple[int, int, int, int]) -> None:
        raise RuntimeError("the driver cannot draw")

    diagnosis = windows_diagnosis(spooler, draw=broken)
    assert diagnosis.modes == {"gdi": False, "raw": True}
    page = next(c for c in diagnosis.checks if c.label == "test page (mode=gdi)")
    assert page.outcome is Outcome.FAILED and "open the printer's queue" in page.next_step
    assert diagnosis.verdict()[-1] == f'- use uri = "windows:{WINDOWS_PRINTER}?mode=raw"'


@pytest.mark.e2e
def test_a_paused_queue_is_found_and_the_page_is_bounded(spooler: FakeSpooler) -> None:
    spooler.printer(WINDOWS_PRINTER).status |= C["PRINTER_STATUS_PAUSED"]
    diagnosis = windows_diagnosis(spooler, page_timeout=0.5)
    assert not diagnosis.ok and diagnosis.modes == {"gdi": False, "raw": False}
    path = next(c for c in diagnosis.checks if c.label == "path (mode=gdi)")
    assert path.outcome is Outcome.FAILED and path.next_step == ADVICE[Fault.QUEUE_DISABLED]
    page = next(c for c in diagnosis.checks if c.label == "test page (mode=raw)")
    assert page.outcome is Outcome.FAILED and page.detail == "not done within 0.5 s"
    assert diagnosis.verdict()[0] == "counter: neither mode printed:"
    # The abandoned pages were withdrawn: the spooler takes a moment to delete them.
    deadline = time.monotonic() + 5
    while spooler.jobs(WINDOWS_PRINTER):
        assert time.monotonic() < deadline, "the test pages stayed in the queue"
        time.sleep(0.02)  # the fake spooler's own clock: nothing to await
