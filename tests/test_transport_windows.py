"""The Windows print-queue transport against a faithful fake of the pywin32 calls it makes
(tests/fakes/pywin32.py): both modes, every fault check_path names, every recovery strategy,
missing administrator rights, stuck jobs, a stopped or hung spooler, cancellation."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image, ImageDraw

from spoonprint.errors import (
    ConfigError,
    PrinterDisconnected,
    PrinterNotReady,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed
from spoonprint.transports.base import StatusQuery, Timeouts
from spoonprint.transports.factory import open_transport
from spoonprint.transports.uri import parse_uri
from spoonprint.transports.windows import WindowsTransport, from_uri
from spoonprint.transports.windows_host import InHelpers, InThreads
from tests.fakes.pywin32 import (
    EMF_DATATYPE,
    JOB_INFO_1_KEYS,
    PRINTER_DRIVER_XPS,
    PRINTER_INFO_2_KEYS,
    C,
    FakeJob,
    FakeSpooler,
)
from tests.fakes.pywin32_remote import draw as remote_draw
from tests.fakes.pywin32_remote import serve

T = TypeVar("T")
PRINTER = "Star TSP100 Cutter (TSP143)"
QUICK = Timeouts(connect=1.0, write=1.0, status=1.0)
#: Module name prefixes of pywin32 (win32print, win32ui, win32com, win32service...).
WIN32_PREFIXES = ("win32", "_win32", "pywintypes", "pythoncom", "pythonwin")
ADMIN_ADVICE = "run spoonprint as Administrator"


@pytest.fixture
def spooler() -> Iterator[FakeSpooler]:
    fake = FakeSpooler()
    fake.add_printer(PRINTER)
    with fake.installed():
        yield fake


@pytest.fixture
def served(
    spooler: FakeSpooler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSpooler]:
    """The fake spooler answering helper processes too (they inherit the environment)."""
    with serve(spooler, tmp_path / "boot") as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield spooler


def in_helpers(spooler: FakeSpooler, mode: str = "raw", **timeouts: float) -> WindowsTransport:
    """A transport as the server builds it: its pywin32 calls in helper processes."""
    return WindowsTransport(
        PRINTER,
        mode,
        Timeouts(**timeouts) if timeouts else QUICK,
        draw=remote_draw,
        poll_interval=0.02,
        restart_wait=2.0,
    )


def windows(
    spooler: FakeSpooler, mode: str = "raw", printer: str = PRINTER, **timeouts: float
) -> WindowsTransport:
    return WindowsTransport(
        printer,
        mode,
        Timeouts(**timeouts) if timeouts else QUICK,
        draw=spooler.draw,
        poll_interval=0.02,
        restart_wait=2.0,
        calls=InThreads(),
    )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for the fake's state to get there; it has no event to wait on."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the spooler did not get there in time"
        await asyncio.sleep(0.01)


async def queued(spooler: FakeSpooler) -> FakeJob:
    """The ticket's job once it is complete in the queue."""
    await until(lambda: any(job.complete for job in spooler.jobs(PRINTER)))
    return spooler.jobs(PRINTER)[-1]


async def health_with(
    transport: WindowsTransport, fault: Fault, stuck_after: float = 60.0
) -> Health:
    """check_path until it reports ``fault`` (stuck jobs take ``stuck_after`` to show)."""
    deadline = time.monotonic() + 5.0
    while True:
        health = await transport.check_path(stuck_after)
        if fault in health.faults():
            return health
        assert time.monotonic() < deadline, f"no {fault} in {health}"
        await asyncio.sleep(0.02)


async def act(transport: WindowsTransport, name: str, health: Health) -> str:
    """Run the named strategy on the problem it fixes, as the health monitor would."""
    strategy = next(s for s in transport.strategies() if s.name == name)
    problem = next(p for p in health.problems if p.fault in strategy.fixes)
    return await strategy.action(problem)


def picture(width: int, height: int) -> Image.Image:
    """A 1-bit ticket picture: white, with a black bar across the top quarter's left half."""
    image = Image.new("1", (width, height), 1)
    ImageDraw.Draw(image).rectangle((0, 0, width // 2 - 1, height // 4 - 1), fill=0)
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# -- without pywin32 ------------------------------------------------------------------------


@pytest.mark.e2e
def test_module_imports_on_linux_without_any_win32_module_and_says_what_it_needs() -> None:
    code = (
        "import sys\n"
        "import spoonprint.transports.windows as windows\n"
        f"print(sorted(m for m in sys.modules if m.startswith({WIN32_PREFIXES!r})))\n"
        "print(windows.usable())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out == ["[]", "needs Windows with pywin32 (pip install pywin32)"]


def test_opening_a_windows_printer_without_pywin32_is_a_config_error_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"pip install pywin32"):
        open_transport("windows:Kitchen", QUICK)


def test_printer_names_keep_spaces_and_backslashes_and_mode_defaults_to_gdi() -> None:
    shared = from_uri(parse_uri(r"windows:\\POS-PC\Star TSP100 Kitchen?mode=raw"), QUICK)
    assert (shared.printer, shared.mode) == (r"\\POS-PC\Star TSP100 Kitchen", "raw")
    assert shared.address == r"windows:\\POS-PC\Star TSP100 Kitchen?mode=raw"
    local = from_uri(parse_uri("windows:Star TSP100 Cutter (TSP143)"), QUICK)
    assert (local.printer, local.mode, local.reads_status) == (PRINTER, "gdi", False)
    with pytest.raises(ConfigError, match="mode must be gdi or raw"):
        from_uri(parse_uri("windows:Kitchen?mode=escpos"), QUICK)
    with pytest.raises(ConfigError, match="unknown option.*copies"):
        from_uri(parse_uri("windows:Kitchen?copies=2"), QUICK)


# -- the fake is pywin32-shaped -------------------------------------------------------------


def test_the_fake_answers_in_pywin32_shapes(spooler: FakeSpooler) -> None:
    import pywintypes
    import win32print

    handle = win32print.OpenPrinter(PRINTER)
    assert tuple(win32print.GetPrinter(handle, 2)) == PRINTER_INFO_2_KEYS
    job_id = win32print.StartDocPrinter(handle, 1, ("doc", None, "RAW"))
    (info,) = win32print.EnumJobs(handle, 0, 999, 1)
    assert tuple(info) == JOB_INFO_1_KEYS and info["JobId"] == job_id
    assert info["Submitted"].utcoffset().total_seconds() == 0
    win32print.AbortPrinter(handle)
    with pytest.raises(pywintypes.error) as gone:
        win32print.GetJob(handle, job_id, 1)
    assert gone.value.args == (87, "GetJob", "The parameter is incorrect.")
    with pytest.raises(pywintypes.error) as unknown:
        win32print.OpenPrinter("No Such Printer")
    assert (unknown.value.winerror, unknown.value.funcname) == (1801, "OpenPrinter")
    with pytest.raises(pywintypes.error) as denied:  # not an administrator
        win32print.OpenPrinter(PRINTER, {"DesiredAccess": win32print.PRINTER_ALL_ACCESS})
    assert denied.value.strerror == "Access is denied."
    spooler.admin = True
    admin = win32print.OpenPrinter(PRINTER, {"DesiredAccess": win32print.PRINTER_ALL_ACCESS})
    info2 = win32print.GetPrinter(admin, 2)
    info2["pDevMode"] = None
    with pytest.raises(TypeError):  # pywin32 refuses SetPrinter level 2 without the DEVMODE
        win32print.SetPrinter(admin, 2, info2, 0)


def test_win32print_is_importable_without_bringing_pywintypes_along(spooler: FakeSpooler) -> None:
    # pywin32 makes its error class in C (PyWinGlobals_Ensure): importing win32print does
    # not import the pywintypes module, yet its errors are pywintypes.error.
    assert "pywintypes" not in sys.modules
    import win32print

    assert "pywintypes" not in sys.modules
    with pytest.raises(Exception) as unknown:
        win32print.OpenPrinter("No Such Printer")
    import pywintypes

    assert isinstance(unknown.value, pywintypes.error)
    assert unknown.value.args == (1801, "OpenPrinter", "The printer name is invalid.")


def test_a_job_that_left_the_queue_printed_although_nobody_imported_pywintypes(
    spooler: FakeSpooler,
) -> None:
    # GetJob answers error 87 for a finished job: taken for anything else, every ticket
    # would count as lost and print again.
    sys.modules.pop("pywintypes", None)
    assert run(windows(spooler, "raw").send(b"ticket")) is None
    (job,) = spooler.printer(PRINTER).printed
    assert bytes(job.data) == b"ticket"


# -- printing -------------------------------------------------------------------------------


def test_a_queue_that_keeps_printed_documents_counts_them_as_printed(
    spooler: FakeSpooler,
) -> None:
    printer = spooler.printer(PRINTER)
    printer.attributes |= C.PRINTER_ATTRIBUTE_KEEPPRINTEDJOBS
    transport = windows(spooler, "raw")

    async def scenario() -> Health:
        async with asyncio.timeout(5):  # a job that never leaves the queue: no endless wait
            await transport.send(b"ticket")
        return await transport.check_path(0.0)

    health = run(scenario())
    (job,) = spooler.jobs(PRINTER)  # still listed, printed
    assert job.status & C.JOB_STATUS_PRINTED and printer.printed == [job]
    assert health.problems == ()  # a kept printed job is not a stuck one


@pytest.mark.parametrize(
    ("version", "attributes", "kind"), [(4, 0, "v4"), (3, PRINTER_DRIVER_XPS, "XPSDrv")]
)
def test_raw_mode_refuses_a_v4_or_xps_driver_that_would_drop_the_bytes(
    spooler: FakeSpooler, version: int, attributes: int, kind: str
) -> None:
    # KB2779300: the RAW job spools 0 bytes and still leaves the queue as printed.
    printer = spooler.printer(PRINTER)
    printer.driver_version, printer.driver_attributes = version, attributes
    transport = windows(spooler, "raw")
    with pytest.raises(PrinterNotReady) as refused:
        run(transport.send(b"ticket"))
    assert f"is a {kind} driver" in str(refused.value) and "mode=gdi" in str(refused.value)
    assert refused.value.bytes_written == 0 and printer.printed == []
    (problem,) = run(transport.check_path(60.0)).problems
    assert problem.fault is Fault.WRONG_MODE and "KB2779300" in problem.detail


def test_raw_mode_refuses_a_queue_whose_print_processor_takes_no_raw(
    spooler: FakeSpooler,
) -> None:
    printer = spooler.printer(PRINTER)
    printer.datatypes = ("NT EMF 1.008",)
    with pytest.raises(PrinterNotReady, match="does not take RAW jobs .*: use mode=gdi"):
        run(windows(spooler, "raw").send(b"ticket"))
    assert printer.printed == []


def test_a_raw_job_the_queue_refuses_as_a_datatype_says_to_use_gdi(spooler: FakeSpooler) -> None:
    # A print server that does not describe its driver (no GetPrinterDriver level 8): the
    # ticket is tried, and the queue refuses the datatype (ERROR_INVALID_DATATYPE).
    printer = spooler.printer(PRINTER)
    printer.datatypes, printer.answers_level_8 = ("NT EMF 1.008",), False
    transport = windows(spooler, "raw")
    with pytest.raises(PrinterOffline, match=r"does not take RAW jobs .*error 1804.*mode=gdi"):
        run(transport.send(b"ticket"))


def test_raw_mode_spools_the_bytes_untouched_as_a_raw_job(spooler: FakeSpooler) -> None:
    data = bytes(range(256)) * 160  # 40 KiB: written in several WritePrinter calls
    assert run(windows(spooler, "raw").send(data)) is None
    (job,) = spooler.printer(PRINTER).printed
    assert (job.datatype, bytes(job.data), len(job.pages)) == ("RAW", data, 1)
    assert job.document.startswith("spoonprint ")
    assert spooler.jobs(PRINTER) == []
    steps = [c for c in spooler.calls if c.endswith(("DocPrinter", "PagePrinter"))]
    assert steps == ["StartDocPrinter", "StartPagePrinter", "EndPagePrinter", "EndDocPrinter"]
    assert spooler.calls.count("WritePrinter") == 3


def test_gdi_mode_draws_the_png_scaled_to_the_printable_width(spooler: FakeSpooler) -> None:
    ticket = picture(384, 400)  # a 58 mm ticket on a 72 mm (576 dot) printer
    assert run(windows(spooler, "gdi").send(png(ticket))) is None
    (job,) = spooler.printer(PRINTER).printed
    assert job.datatype == EMF_DATATYPE and job.document.startswith("spoonprint ")
    (page,) = job.pages  # one tall page, as receipt drivers expect
    (drawing,) = page
    assert drawing.rect == (0, 0, 576, 600)
    assert drawing.image.size == (576, 600) and drawing.image.mode == "1"
    assert drawing.image.getpixel((100, 50)) == 0  # the bar, scaled
    assert drawing.image.getpixel((400, 50)) == 255
    assert drawing.image.getpixel((100, 300)) == 255


def test_gdi_ticket_taller_than_the_driver_page_is_drawn_in_page_high_bands(
    spooler: FakeSpooler,
) -> None:
    spooler.printer(PRINTER).longest_page = 500
    ticket = picture(576, 1200)
    run(windows(spooler, "gdi").send(png(ticket)))
    (job,) = spooler.printer(PRINTER).printed
    bands = [page[0].image for page in job.pages]
    assert [band.size for band in bands] == [(576, 500), (576, 500), (576, 200)]
    whole = Image.new("1", (576, 1200))
    for number, band in enumerate(bands):
        whole.paste(band, (0, 500 * number))
    assert whole.tobytes() == ticket.tobytes()


def test_gdi_under_the_service_account_prints_on_roll_paper_not_the_printing_defaults(
    spooler: FakeSpooler,
) -> None:
    # LocalSystem has no Printing Preferences: a DC without a DEVMODE gets the printer's
    # Printing Defaults, here Letter (279 mm: 2233 dots), which would cut a ticket in two.
    printer = spooler.printer(PRINTER)
    printer.page_height = 2233
    printer.preferences["owner"] = (576, 26200)
    spooler.user = "SYSTEM"
    ticket = picture(576, 3000)
    run(windows(spooler, "gdi").send(png(ticket)))
    (job,) = printer.printed
    assert [[drawing.image.size for drawing in page] for page in job.pages] == [[(576, 3000)]]


def test_gdi_job_id_is_the_one_startdoc_returns_not_a_search_of_the_queue(
    spooler: FakeSpooler,
) -> None:
    # Finding the job by name through EnumJobs after StartDoc races with the spooler;
    # win32print.StartDoc returns the id.
    run(windows(spooler, "gdi").send(png(picture(576, 100))))
    assert "EnumJobs" not in spooler.calls and "StartDoc" in spooler.calls
    (job,) = spooler.printer(PRINTER).printed
    assert job.datatype == EMF_DATATYPE


def test_gdi_mode_refuses_data_that_is_not_a_picture(spooler: FakeSpooler) -> None:
    with pytest.raises(PrinterOffline, match="not a picture") as refused:
        run(windows(spooler, "gdi").send(b"\x1b@plain ESC/POS"))
    assert refused.value.bytes_written == 0
    assert spooler.jobs(PRINTER) == []


def test_ask_is_not_offered_by_a_queue(spooler: FakeSpooler) -> None:
    transport = windows(spooler)
    assert transport.reads_status is False
    with pytest.raises(PrinterNotReady):
        run(transport.ask(StatusQuery(b"\x10\x04\x01")))


# -- check_path -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attributes", "faults"),
    [
        (0, 0, []),
        (C.PRINTER_STATUS_PAUSED, 0, [Fault.QUEUE_DISABLED]),
        (C.PRINTER_STATUS_OFFLINE, C.PRINTER_ATTRIBUTE_WORK_OFFLINE, [Fault.WORK_OFFLINE]),
        (C.PRINTER_STATUS_PAPER_OUT | C.PRINTER_STATUS_ERROR, 0, [Fault.PAPER_OUT]),
        (C.PRINTER_STATUS_DOOR_OPEN | C.PRINTER_STATUS_ERROR, 0, [Fault.COVER_OPEN]),
        (C.PRINTER_STATUS_OFFLINE, 0, [Fault.POWER_OFF]),
        (C.PRINTER_STATUS_NOT_AVAILABLE, 0, [Fault.POWER_OFF]),
        (C.PRINTER_STATUS_ERROR, 0, [Fault.PRINTER_ERROR]),
        (C.PRINTER_STATUS_PAPER_JAM | C.PRINTER_STATUS_ERROR, 0, [Fault.PRINTER_ERROR]),
        (
            C.PRINTER_STATUS_PAUSED | C.PRINTER_STATUS_PAPER_OUT,
            0,
            [Fault.QUEUE_DISABLED, Fault.PAPER_OUT],
        ),
    ],
)
def test_check_path_names_what_windows_reports(
    spooler: FakeSpooler, status: int, attributes: int, faults: list[Fault]
) -> None:
    printer = spooler.printer(PRINTER)
    printer.status, printer.attributes = status, printer.attributes | attributes
    health = run(windows(spooler).check_path(60.0))
    assert [problem.fault for problem in health.problems] == faults
    assert all(PRINTER in problem.detail for problem in health.problems)


def test_unknown_printer_is_a_clear_problem_naming_the_printers_windows_has(
    spooler: FakeSpooler,
) -> None:
    transport = windows(spooler, printer="Star TSP100")
    (problem,) = run(transport.check_path(60.0)).problems
    assert problem.fault is Fault.NOT_FOUND
    assert "no printer named 'Star TSP100'" in problem.detail and repr(PRINTER) in problem.detail
    with pytest.raises(PrinterOffline, match="no printer named") as refused:
        run(transport.send(b"ticket"))
    assert refused.value.bytes_written == 0


def test_stopped_spooler_is_spooler_down_and_tickets_fail_at_once(spooler: FakeSpooler) -> None:
    spooler.stop_service()
    transport = windows(spooler)
    (problem,) = run(transport.check_path(60.0)).problems
    assert problem.fault is Fault.SPOOLER_DOWN
    assert "RPC server is unavailable" in problem.detail and "service: stopped" in problem.detail
    with pytest.raises(PrinterOffline, match="spooler is not running") as refused:
        run(transport.send(b"ticket"))
    assert refused.value.bytes_written == 0


@pytest.mark.e2e
def test_hung_spooler_is_spooler_down_and_submitting_times_out(served: FakeSpooler) -> None:
    # pywin32 holds the GIL while a hung spooler keeps it waiting: in the server's threads
    # that would stop its event loop; in a helper process only the helper waits.
    transport = in_helpers(served, connect=0.5, write=0.5, status=0.5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def scenario() -> None:
        await transport.check_path(60.0)  # helpers started before the spooler hangs
        served.hang()
        beating = asyncio.create_task(ticker())
        try:
            started = time.monotonic()
            (problem,) = (await transport.check_path(60.0)).problems
            assert problem.fault is Fault.SPOOLER_DOWN and "did not answer" in problem.detail
            with pytest.raises(PrinterTimeout) as timed_out:
                await transport.send(b"ticket")
            assert timed_out.value.bytes_written == 0
            elapsed = time.monotonic() - started
            assert elapsed < 5.0
            # The loop kept turning all along (a frozen one would not have ticked at all).
            assert ticks >= elapsed / 0.01 / 4
        finally:
            beating.cancel()
            served.answer()
        # The killed helpers are replaced: the spooler answers again and a ticket prints.
        assert await transport.send(b"after") is None

    run(scenario())
    assert [bytes(job.data) for job in served.printer(PRINTER).printed] == [b"after"]


@pytest.mark.e2e
def test_tickets_print_through_helper_processes_in_both_modes(served: FakeSpooler) -> None:
    raw = in_helpers(served, "raw")
    gdi = in_helpers(served, "gdi")
    assert run(raw.send(b"\x1b@ticket")) is None
    assert run(gdi.send(png(picture(576, 200)))) is None
    first, second = served.printer(PRINTER).printed
    assert bytes(first.data) == b"\x1b@ticket" and first.datatype == "RAW"
    (drawing,) = second.pages[0]
    assert drawing.image.size == (576, 200)


def test_strategies_come_cheapest_first(spooler: FakeSpooler) -> None:
    names = [s.name for s in windows(spooler).strategies()]
    assert names == [
        "windows-online",
        "windows-resume",
        "windows-delete-stuck",
        "windows-restart-spooler",
    ]


@pytest.mark.parametrize(
    ("status", "attributes", "fault", "strategy", "done"),
    [
        (0, C.PRINTER_ATTRIBUTE_WORK_OFFLINE, Fault.WORK_OFFLINE, "windows-online", "cleared"),
        (C.PRINTER_STATUS_PAUSED, 0, Fault.QUEUE_DISABLED, "windows-resume", "resumed"),
    ],
)
def test_queue_strategy_fixes_its_fault_and_the_waiting_ticket_prints(
    spooler: FakeSpooler, status: int, attributes: int, fault: Fault, strategy: str, done: str
) -> None:
    spooler.admin = True
    printer = spooler.printer(PRINTER)
    printer.status, printer.attributes = status, printer.attributes | attributes
    transport = windows(spooler)

    async def scenario() -> None:
        ticket = asyncio.create_task(transport.send(b"ticket"))
        await queued(spooler)
        await asyncio.sleep(0.3)  # many polls: the queue holds it
        assert not ticket.done()
        health = await transport.check_path(0.0)
        assert health.faults() == {fault}  # the job waits behind the fault: it is not stuck
        assert done in await act(transport, strategy, health)
        assert await asyncio.wait_for(ticket, 10) is None
        assert (await transport.check_path(60.0)).ok

    run(scenario())
    assert [bytes(job.data) for job in printer.printed] == [b"ticket"]


def test_use_printer_offline_is_cleared_on_a_printer_that_has_no_devmode(
    spooler: FakeSpooler,
) -> None:
    # GetPrinter level 2 gives pDevMode None there, and pywin32's SetPrinter level 2 refuses it.
    spooler.admin = True
    printer = spooler.printer(PRINTER)
    printer.has_devmode = False
    printer.attributes |= C.PRINTER_ATTRIBUTE_WORK_OFFLINE
    transport = windows(spooler)
    health = run(health_with(transport, Fault.WORK_OFFLINE))
    done = run(act(transport, "windows-online", health))
    assert done == f"cleared 'Use Printer Offline' on {PRINTER!r}"
    assert not printer.attributes & C.PRINTER_ATTRIBUTE_WORK_OFFLINE


@pytest.mark.parametrize(
    ("stage", "strategy"),
    [
        ("work-offline", "windows-online"),
        ("paused", "windows-resume"),
        ("stopped", "windows-restart-spooler"),
    ],
)
def test_privileged_strategy_without_admin_rights_says_what_to_do(
    spooler: FakeSpooler, stage: str, strategy: str
) -> None:
    printer = spooler.printer(PRINTER)
    if stage == "work-offline":
        printer.attributes |= C.PRINTER_ATTRIBUTE_WORK_OFFLINE
    elif stage == "paused":
        printer.status |= C.PRINTER_STATUS_PAUSED
    else:
        spooler.stop_service()
    transport = windows(spooler)

    async def scenario() -> None:
        health = await transport.check_path(60.0)
        with pytest.raises(NeedsAdmin) as refused:
            await act(transport, strategy, health)
        assert "needs Administrator rights" in str(refused.value)
        assert ADMIN_ADVICE in str(refused.value)
        assert (await transport.check_path(60.0)).faults() == health.faults()  # untouched

    run(scenario())
    assert "RestartService" not in spooler.calls  # known up front: not even tried
    assert spooler.restarts == 0


def test_restarting_the_spooler_message_is_the_plain_one(spooler: FakeSpooler) -> None:
    spooler.stop_service()
    transport = windows(spooler)
    health = run(transport.check_path(60.0))
    with pytest.raises(NeedsAdmin) as refused:
        run(act(transport, "windows-restart-spooler", health))
    assert str(refused.value) == (
        "restarting the print spooler needs Administrator rights: run spoonprint as "
        "Administrator (right-click, Run as administrator), or as a Windows service under an "
        "administrator account"
    )


def test_a_spooler_that_does_not_stop_is_a_failed_restart_not_a_success(
    spooler: FakeSpooler,
) -> None:
    # pywin32's RestartService only prints "Gave up waiting for the old service to stop!"
    # and returns; the spooler, still running, looked restarted.
    spooler.admin = True
    spooler.stop_hangs = True
    transport = windows(spooler)
    # What check_path reports of a spooler that stopped answering for a while.
    health = Health((Problem(Fault.SPOOLER_DOWN, "did not answer within 1 s"),))
    with pytest.raises(RecoveryFailed) as failed:
        run(act(transport, "windows-restart-spooler", health))
    assert "did not respond to the start or control request in a timely fashion" in str(
        failed.value
    )
    assert spooler.restarts == 0


def test_the_spooler_is_restarted_with_the_services_that_depend_on_it(
    spooler: FakeSpooler,
) -> None:
    spooler.admin = True
    spooler.dependents = {"PrintNotify": True, "Fax": True, "PrintWorkflowUserSvc": False}
    spooler.stop_service()
    transport = windows(spooler)
    health = run(transport.check_path(60.0))
    done = run(act(transport, "windows-restart-spooler", health))
    assert done == ("restarted the Windows print spooler and PrintNotify, Fax, which depend on it")
    assert spooler.running and spooler.dependents == {
        "PrintNotify": True, "Fax": True, "PrintWorkflowUserSvc": False,
    }  # fmt: skip


@pytest.mark.parametrize(("stick", "printed"), [("queued", False), ("printing", True)])
def test_stuck_job_is_deleted_and_the_ticket_fails_with_what_may_have_printed(
    spooler: FakeSpooler, stick: str, printed: bool
) -> None:
    spooler.printer(PRINTER).stick = stick  # deleting our own job needs no admin rights
    transport = windows(spooler)
    data = b"ticket" * 100

    async def scenario() -> None:
        ticket = asyncio.create_task(transport.send(data))
        job = await queued(spooler)
        health = await health_with(transport, Fault.STUCK_JOB, stuck_after=0.2)
        (problem,) = health.problems
        assert problem.jobs == (job.job_id,)
        outcome = await act(transport, "windows-delete-stuck", health)
        assert outcome == f"deleted stuck job(s) {job.job_id} from {PRINTER!r}"
        with pytest.raises(PrinterDisconnected, match="deleted") as failed:
            await asyncio.wait_for(ticket, 10)
        assert failed.value.bytes_written == (len(data) if printed else 0)
        assert (await transport.check_path(0.2)).ok

    run(scenario())
    assert spooler.jobs(PRINTER) == [] and spooler.printer(PRINTER).printed == []


def test_job_stuck_deleting_is_cleared_by_restarting_the_spooler(spooler: FakeSpooler) -> None:
    printer = spooler.printer(PRINTER)
    printer.stick, printer.undeletable = "queued", True
    transport = windows(spooler)

    async def scenario() -> None:
        ticket = asyncio.create_task(transport.send(b"first"))
        job = await queued(spooler)
        health = await health_with(transport, Fault.STUCK_JOB, stuck_after=0.2)
        outcome = await act(transport, "windows-delete-stuck", health)
        assert "still in the queue" in outcome
        with pytest.raises(PrinterDisconnected) as failed:
            await asyncio.wait_for(ticket, 10)
        assert failed.value.bytes_written == 0
        # Deleting did not help: the monitor's next strategy for a stuck job.
        health = await health_with(transport, Fault.STUCK_JOB, stuck_after=0.2)
        assert health.problems[0].jobs == (job.job_id,)
        spooler.admin = True
        assert await act(transport, "windows-restart-spooler", health) == (
            "restarted the Windows print spooler and PrintNotify, which depends on it"
        )
        assert (await transport.check_path(0.2)).ok
        printer.stick, printer.undeletable = None, False
        assert await transport.send(b"second") is None

    run(scenario())
    assert spooler.restarts == 1
    assert [bytes(job.data) for job in printer.printed] == [b"second"]


def test_spooler_down_then_restarted_and_the_waiting_ticket_completes(
    spooler: FakeSpooler,
) -> None:
    spooler.admin = True
    spooler.printer(PRINTER).stick = "queued"  # the port hangs ...
    transport = windows(spooler)

    async def scenario() -> None:
        ticket = asyncio.create_task(transport.send(b"ticket"))
        await queued(spooler)
        spooler.stop_service()  # ... and the spooler crashes
        health = await health_with(transport, Fault.SPOOLER_DOWN)
        await asyncio.sleep(0.2)
        assert not ticket.done()  # the job waits in its spool file
        assert await act(transport, "windows-restart-spooler", health) == (
            "restarted the Windows print spooler and PrintNotify, which depends on it"
        )
        assert await asyncio.wait_for(ticket, 10) is None

    run(scenario())
    assert spooler.restarts == 1
    assert [bytes(job.data) for job in spooler.printer(PRINTER).printed] == [b"ticket"]


def test_another_programs_stuck_job_is_reported_but_only_a_restart_touches_it(
    spooler: FakeSpooler,
) -> None:
    other = spooler.add_job(PRINTER, "Invoice.pdf", user="alice", stick="queued")
    transport = windows(spooler)

    async def scenario() -> None:
        ticket = asyncio.create_task(transport.send(b"ticket"))
        await until(lambda: len(spooler.jobs(PRINTER)) == 2)
        health = await health_with(transport, Fault.STUCK_JOB, stuck_after=0.2)
        (problem,) = health.problems
        assert problem.jobs == () and "alice" in problem.detail
        with pytest.raises(RecoveryFailed, match="not spoonprint's"):
            await act(transport, "windows-delete-stuck", health)
        assert spooler.jobs(PRINTER)[0] is other
        spooler.admin = True
        await act(transport, "windows-restart-spooler", health)
        assert await asyncio.wait_for(ticket, 10) is None

    run(scenario())
    assert [job.document for job in spooler.printer(PRINTER).printed][0] == "Invoice.pdf"


def test_spoonprint_job_left_by_another_account_needs_admin_to_delete(
    spooler: FakeSpooler,
) -> None:
    left = spooler.add_job(PRINTER, "spoonprint 0123456789ab", user="Administrator", stick="queued")
    transport = windows(spooler)

    async def scenario() -> None:
        health = await health_with(transport, Fault.STUCK_JOB, stuck_after=0.2)
        assert health.problems[0].jobs == (left.job_id,)
        with pytest.raises(NeedsAdmin, match=f"deleting stuck print job {left.job_id} needs"):
            await act(transport, "windows-delete-stuck", health)

    run(scenario())
    assert spooler.jobs(PRINTER) == [left]


# -- how a ticket ends ----------------------------------------------------------------------


def test_cancelling_send_deletes_a_job_that_has_not_started(spooler: FakeSpooler) -> None:
    printer = spooler.printer(PRINTER)
    printer.status |= C.PRINTER_STATUS_PAUSED

    async def scenario() -> None:
        ticket = asyncio.create_task(windows(spooler).send(b"ticket"))
        await queued(spooler)
        ticket.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(ticket, 10)

    run(scenario())
    run(until(lambda: spooler.jobs(PRINTER) == []))
    assert printer.printed == [] and len(printer.deleted) == 1


def test_cancelling_send_leaves_a_printing_job_to_finish(spooler: FakeSpooler) -> None:
    spooler.printer(PRINTER).stick = "printing"

    async def scenario() -> None:
        ticket = asyncio.create_task(windows(spooler).send(b"ticket"))
        await until(lambda: any(j.status & C.JOB_STATUS_PRINTING for j in spooler.jobs(PRINTER)))
        ticket.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(ticket, 10)

    run(scenario())
    (job,) = spooler.jobs(PRINTER)
    assert job.status & C.JOB_STATUS_PRINTING and not job.status & C.JOB_STATUS_DELETING


def test_job_in_error_is_withdrawn_and_the_printer_reported_not_ready(
    spooler: FakeSpooler,
) -> None:
    spooler.printer(PRINTER).stick = "queued"

    async def scenario() -> None:
        ticket = asyncio.create_task(windows(spooler).send(b"ticket"))
        job = await queued(spooler)
        spooler.fail_job(job.job_id)
        with pytest.raises(PrinterNotReady, match="in error") as failed:
            await asyncio.wait_for(ticket, 10)
        assert failed.value.bytes_written == 0

    run(scenario())
    run(until(lambda: spooler.jobs(PRINTER) == []))
    assert spooler.printer(PRINTER).printed == []


@pytest.mark.parametrize("how", ["deleted", "dropped"])
def test_job_removed_by_a_person_from_a_held_queue_did_not_print(
    spooler: FakeSpooler, how: str
) -> None:
    spooler.printer(PRINTER).status |= C.PRINTER_STATUS_PAUSED

    async def scenario() -> None:
        ticket = asyncio.create_task(windows(spooler).send(b"ticket"))
        job = await queued(spooler)
        # Cancelled in the queue window: seen "Deleting" first, or gone between two polls.
        (spooler.delete if how == "deleted" else spooler.drop)(job)
        with pytest.raises(PrinterDisconnected, match="deleted") as failed:
            await asyncio.wait_for(ticket, 10)
        assert failed.value.bytes_written == 0

    run(scenario())


@pytest.mark.e2e
def test_helper_processes_import_from_this_process_s_path_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Windows service adds its venv's site folders to sys.path at run time: a helper
    # started with `python -m` must find spoonprint (and pywin32) there too.
    (tmp_path / "probe_site").mkdir()
    (tmp_path / "probe_site" / "pathprobe.py").write_text(
        "def where() -> str:\n    return __file__\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "probe_site"))
    import pathprobe

    helpers = InHelpers()
    try:
        where = run(helpers.run(30.0, pathprobe.where))
    finally:
        helpers.close()
    assert where == str(tmp_path / "probe_site" / "pathprobe.py")
