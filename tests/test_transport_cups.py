"""The CUPS transport against a real private cupsd, a raw queue and the virtual printer, with
both clients (pycups and the lp tools). Heal times (fault -> ticket out) are printed; see them
with ``pytest -rP``."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from spoonprint.emulator.virtual_printer import PrinterMode, Ticket, VirtualPrinterThread
from spoonprint.errors import (
    ConfigError,
    PrinterDisconnected,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import Fault, Health, Problem
from spoonprint.recovery.strategy import RecoveryFailed, Strategy
from spoonprint.transports import cups as cups_transport
from spoonprint.transports.base import StatusQuery, Timeouts
from spoonprint.transports.cups import CupsTransport
from spoonprint.transports.cups_client import cli_available, pycups_available
from spoonprint.transports.factory import open_transport
from spoonprint.transports.uri import parse_uri
from tests.cupsd import Cupsd, private_cupsd

pytestmark = pytest.mark.e2e

# Submitting the 8 MB stuck ticket may take a while on a busy machine.
TIMEOUTS = Timeouts(connect=1.0, write=5.0, status=1.0)
#: Long enough that a healthy job never looks stuck in these tests.
NEVER_STUCK = 30.0
#: The clock of the virtual printer's ticket times.
clock = time.perf_counter
STUCK_AFTER = 0.5
_names = itertools.count(1)


def ticket(text: str) -> bytes:
    """A small ESC/POS ticket: init, a line, feed and cut."""
    return b"\x1b@" + text.encode("ascii") + b"\n\x1bd\x03\x1dV\x00"


@pytest.fixture(scope="module")
def cupsd() -> Iterator[Cupsd]:
    with private_cupsd() as daemon:
        yield daemon


@pytest.fixture(params=["pycups", "cli"])
def client(request: pytest.FixtureRequest) -> str:
    if request.param == "pycups" and not pycups_available():
        pytest.skip("pycups is not installed (pip install pycups)")
    if request.param == "cli" and not cli_available():
        pytest.skip("the CUPS tools are not installed (apt-get install cups-client)")
    return str(request.param)


@pytest.fixture
def queue(cupsd: Cupsd, printer: VirtualPrinterThread) -> Iterator[str]:
    name = f"spoon{next(_names)}"
    cupsd.add_raw_queue(name, printer.port)
    yield name
    cupsd.remove_queue(name)


def make_transport(queue: str, client: str, daemon: Cupsd) -> CupsTransport:
    uri = parse_uri(f"cups:{queue}?client={client}&server={daemon.socket}")
    return cups_transport.from_uri(uri, TIMEOUTS)


def strategy(transport: CupsTransport, name: str) -> Strategy:
    return next(s for s in transport.strategies() if s.name == name)


def only_problem(health: Health, fault: Fault) -> Problem:
    assert health.faults() == {fault}, health
    return health.problems[0]


async def wait_for(
    condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll a blocking ``condition()`` (run in a thread) until it is true."""
    deadline = clock() + timeout
    while not await asyncio.to_thread(condition):
        if clock() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)  # CUPS has no event to await here


async def wait_for_fault(transport: CupsTransport, fault: Fault, stuck_after: float) -> Problem:
    deadline = clock() + 10.0
    while True:
        health = await transport.check_path(stuck_after)
        found = [p for p in health.problems if p.fault is fault]
        if found:
            return found[0]
        if clock() > deadline:
            raise TimeoutError(f"{fault} not reported: {health}")
        await asyncio.sleep(0.1)


async def printed(printer: VirtualPrinterThread, count: int = 1) -> list[Ticket]:
    """Wait for ``count`` tickets at the printer. CUPS calls a raw job completed once its
    backend has written the last byte, a moment before the printer has read it."""
    return await asyncio.to_thread(printer.wait_for_tickets, count, 10.0)


def report(name: str, **seconds: float) -> None:
    timings = ", ".join(f"{key} {value * 1000:.0f} ms" for key, value in seconds.items())
    print(f"heal time [{name}]: {timings}")


# -- printing ----------------------------------------------------------------------------------


def test_ticket_arrives_byte_for_byte(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread
) -> None:
    transport = make_transport(queue, client, cupsd)
    data = ticket(f"table 7: 2x soup ({client})")

    async def scenario() -> None:
        assert await transport.check_path(NEVER_STUCK) == Health()
        started = clock()
        assert await transport.send(data) is None
        returned = clock()
        (out,) = await printed(printer)
        print(
            f"send through CUPS ({client}): returned after {(returned - started) * 1000:.0f} ms,"
            f" ticket out after {(out.completed_at - started) * 1000:.0f} ms"
        )

    asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]
    assert cupsd.active_jobs(queue) == []


# -- queue disabled ----------------------------------------------------------------------------


def test_disabled_queue_waits_then_cups_enable_prints(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread
) -> None:
    transport = make_transport(queue, client, cupsd)
    data = ticket("table 3: burger")
    cupsd.run("cupsdisable", "-r", "paused by staff", queue)

    async def scenario() -> None:
        fault_at = clock()
        sending = asyncio.create_task(transport.send(data))
        await wait_for(lambda: cupsd.active_jobs(queue), what="job queued")
        # A job on a stopped queue is not a failure: send keeps waiting for it.
        done, _ = await asyncio.wait({sending}, timeout=0.5)
        assert not done
        problem = only_problem(await transport.check_path(NEVER_STUCK), Fault.QUEUE_DISABLED)
        assert "paused by staff" in problem.detail and "reasons: paused" in problem.detail
        healing_at = clock()
        said = await strategy(transport, "cups-enable").action(problem)
        assert queue in said
        assert await asyncio.wait_for(sending, 10.0) is None
        out_at = (await printed(printer))[-1].completed_at
        assert await transport.check_path(NEVER_STUCK) == Health()
        report(
            f"queue disabled, {client}",
            fault_to_out=out_at - fault_at,
            enable_to_out=out_at - healing_at,
        )

    asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]


@pytest.mark.parametrize("when", ["submitting", "waiting"])
def test_cancelled_send_takes_the_job_back(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread, when: str
) -> None:
    """A send cancelled (shutdown) before its job started printing cancels the CUPS job, so
    CUPS does not print it later behind spoonprint's back."""
    transport = make_transport(queue, client, cupsd)
    cupsd.run("cupsdisable", queue)

    async def scenario() -> None:
        sending = asyncio.create_task(transport.send(ticket("never printed")))
        if when == "submitting":
            await asyncio.sleep(0)  # send runs until it waits for the submission's thread
        else:
            await wait_for(lambda: cupsd.active_jobs(queue), what="job queued")
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending

    asyncio.run(scenario())
    # The job was made, then canceled: the queue is empty, so enabling it prints nothing.
    assert cupsd.run("lpstat", "-W", "completed", "-o", queue).stdout.count(f"{queue}-") == 1
    assert cupsd.active_jobs(queue) == []
    assert printer.tickets == []


# -- queue rejecting ---------------------------------------------------------------------------


def test_rejecting_queue_fails_fast_then_cups_accept_heals(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread
) -> None:
    transport = make_transport(queue, client, cupsd)
    data = ticket("table 9: salad")
    cupsd.run("cupsreject", "-r", "closed by staff", queue)

    async def scenario() -> None:
        fault_at = clock()
        with pytest.raises(PrinterOffline) as failed:
            await transport.send(data)
        assert failed.value.bytes_written == 0
        problem = only_problem(await transport.check_path(NEVER_STUCK), Fault.QUEUE_REJECTING)
        assert "closed by staff" in problem.detail
        healing_at = clock()
        await strategy(transport, "cups-accept").action(problem)
        assert await transport.check_path(NEVER_STUCK) == Health()
        assert await transport.send(data) is None
        out_at = (await printed(printer))[-1].completed_at
        report(
            f"queue rejecting, {client}",
            fault_to_out=out_at - fault_at,
            accept_to_out=out_at - healing_at,
        )

    asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]


# -- stuck job ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [PrinterMode.BLACKHOLE, PrinterMode.OFFLINE])
def test_stuck_job_is_cancelled_and_sent_again(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread, mode: PrinterMode
) -> None:
    """Blackhole: the printer takes the connection and never reads, so the backend blocks
    once the socket buffers are full. Offline: connections are refused and the backend keeps
    retrying. Either way CUPS shows the job processing, forever."""
    transport = make_transport(queue, client, cupsd)
    # Big enough to fill the socket buffers of a printer that never reads.
    stuck = ticket("table 5: stuck") + b"\0" * (8 << 20)
    again = ticket("table 5: stuck (sent again)")
    printer.set_mode(mode)

    async def scenario() -> None:
        fault_at = clock()
        sending = asyncio.create_task(transport.send(stuck))
        problem = await wait_for_fault(transport, Fault.STUCK_JOB, STUCK_AFTER)
        detected_at = clock()
        (ours,) = problem.jobs
        # Another program's job behind ours, as big, so it gets stuck in its turn too.
        foreign = await asyncio.to_thread(cupsd.submit, queue, stuck)
        assert cupsd.active_jobs(queue) == [ours, foreign]

        # Asked to cancel a job spoonprint did not submit as well: only ours is canceled.
        mixed = Problem(Fault.STUCK_JOB, problem.detail, jobs=(ours, foreign))
        said = await strategy(transport, "cups-cancel-stuck").action(mixed)
        assert str(ours) in said and f"left job(s) {foreign} alone" in said
        with pytest.raises(PrinterDisconnected) as failed:
            await asyncio.wait_for(sending, 10.0)
        # The job had started processing: part of it may be on paper, so it is a reprint.
        assert failed.value.bytes_written == len(stuck)
        assert foreign in cupsd.active_jobs(queue)
        with pytest.raises(RecoveryFailed):
            await strategy(transport, "cups-cancel-stuck").action(
                Problem(Fault.STUCK_JOB, "not ours", jobs=(foreign,))
            )
        assert foreign in cupsd.active_jobs(queue)
        cancelled_at = clock()

        # Staff clear their own job and switch the printer off and on; the worker re-sends.
        cupsd.run("cancel", f"{queue}-{foreign}")
        await asyncio.to_thread(printer.set_mode, PrinterMode.OFFLINE)
        await asyncio.to_thread(printer.set_mode, PrinterMode.ONLINE)
        resend_at = clock()
        assert await transport.send(again) is None
        out_at = (await printed(printer))[-1].completed_at
        report(
            f"stuck job ({mode}), {client}",
            detect=detected_at - fault_at,
            cancel=cancelled_at - detected_at,
            resend_to_out=out_at - resend_at,
        )

    asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [again]


def test_held_job_counts_as_stuck(
    cupsd: Cupsd, queue: str, client: str, printer: VirtualPrinterThread
) -> None:
    """CUPS holds a job it could not send and retries minutes later; an operator can hold one
    too. Held longer than stuck_after, spoonprint's job is taken back and sent again."""
    transport = make_transport(queue, client, cupsd)
    data = ticket("table 4: held")
    cupsd.run("cupsdisable", queue)

    async def scenario() -> None:
        sending = asyncio.create_task(transport.send(data))
        await wait_for(lambda: cupsd.active_jobs(queue), what="job queued")
        (job,) = cupsd.active_jobs(queue)
        cupsd.run("lp", "-i", f"{queue}-{job}", "-H", "hold")
        cupsd.run("cupsenable", queue)
        fault_at = clock()
        problem = await wait_for_fault(transport, Fault.STUCK_JOB, STUCK_AFTER)
        assert problem.jobs == (job,)
        await strategy(transport, "cups-cancel-stuck").action(problem)
        with pytest.raises(PrinterDisconnected) as failed:
            await asyncio.wait_for(sending, 10.0)
        # It never started, so it certainly did not print: not a reprint.
        assert failed.value.bytes_written == 0
        assert await transport.send(data) is None
        out_at = (await printed(printer))[-1].completed_at
        report(f"held job, {client}", fault_to_out=out_at - fault_at)

    asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]


# -- cupsd down --------------------------------------------------------------------------------


def test_spooler_down_then_back(client: str, printer: VirtualPrinterThread) -> None:
    with private_cupsd() as daemon:
        daemon.add_raw_queue("kitchen", printer.port)
        transport = make_transport("kitchen", client, daemon)
        data = ticket("table 1: fries")

        async def scenario() -> None:
            assert await transport.check_path(NEVER_STUCK) == Health()
            await asyncio.to_thread(daemon.stop)
            fault_at = clock()
            problem = only_problem(await transport.check_path(NEVER_STUCK), Fault.SPOOLER_DOWN)
            assert problem.detail
            assert not [s for s in transport.strategies() if Fault.SPOOLER_DOWN in s.fixes]
            with pytest.raises(PrinterOffline) as failed:
                await transport.send(data)
            assert failed.value.bytes_written == 0
            restart_at = clock()
            await asyncio.to_thread(daemon.start)
            assert await transport.check_path(NEVER_STUCK) == Health()
            assert await transport.send(data) is None
            out_at = (await printed(printer))[-1].completed_at
            report(
                f"cupsd down, {client}",
                fault_to_out=out_at - fault_at,
                restart_to_out=out_at - restart_at,
            )

        asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]


def test_spooler_lost_while_waiting_no_duplicate(
    client: str, printer: VirtualPrinterThread
) -> None:
    """cupsd goes away while a ticket waits in a stopped queue: send gives up as a possible
    reprint, and once cupsd is back the re-send withdraws the old copy first."""
    with private_cupsd() as daemon:
        daemon.add_raw_queue("kitchen", printer.port)
        transport = make_transport("kitchen", client, daemon)
        data = ticket("table 2: pasta")
        daemon.run("cupsdisable", "kitchen")

        async def scenario() -> None:
            sending = asyncio.create_task(transport.send(data))
            await wait_for(lambda: daemon.active_jobs("kitchen"), what="job queued")
            (old,) = daemon.active_jobs("kitchen")
            await asyncio.to_thread(daemon.stop)
            with pytest.raises(PrinterOffline) as failed:
                await asyncio.wait_for(sending, 10.0)
            # CUPS still holds the job and may print it later: count it as possibly printed.
            assert failed.value.bytes_written == len(data)
            await asyncio.to_thread(daemon.start)
            assert old in daemon.active_jobs("kitchen")  # restored from the spool, waiting
            resending = asyncio.create_task(transport.send(data))
            await wait_for(lambda: old not in daemon.active_jobs("kitchen"), what="withdrawn")
            problem = await wait_for_fault(transport, Fault.QUEUE_DISABLED, NEVER_STUCK)
            await strategy(transport, "cups-enable").action(problem)
            assert await asyncio.wait_for(resending, 10.0) is None
            await printed(printer)
            # The old copy was canceled before the queue ran again: it can never print.
            assert daemon.active_jobs("kitchen") == []

        asyncio.run(scenario())
    assert [t.data for t in printer.tickets] == [data]


def test_unknown_queue(cupsd: Cupsd, client: str) -> None:
    transport = make_transport("no-such-queue", client, cupsd)

    async def scenario() -> None:
        problem = only_problem(await transport.check_path(NEVER_STUCK), Fault.NOT_FOUND)
        assert "no queue 'no-such-queue'" in problem.detail
        assert not [s for s in transport.strategies() if Fault.NOT_FOUND in s.fixes]
        with pytest.raises(PrinterOffline) as failed:
            await transport.send(ticket("lost"))
        assert failed.value.bytes_written == 0

    asyncio.run(scenario())


# -- usable / from_uri -------------------------------------------------------------------------


@pytest.mark.skipif(
    not (pycups_available() or cli_available()), reason="neither pycups nor lp installed"
)
def test_usable_here() -> None:
    assert cups_transport.usable() is None


def test_usable_without_pycups_or_lp_says_how_to_fix() -> None:
    # A fresh interpreter where pycups cannot be imported and no lp is on PATH.
    code = (
        "import sys; sys.modules['cups'] = None\n"
        "from spoonprint.transports import cups\n"
        "print(cups.usable())"
    )
    env = dict(os.environ, PATH="/nonexistent")
    said = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert said.returncode == 0, said.stderr
    assert "apt-get install cups-client" in said.stdout and "pycups" in said.stdout


def test_from_uri() -> None:
    transport = cups_transport.from_uri(parse_uri("cups:kitchen"), TIMEOUTS)
    assert transport.queue == "kitchen" and transport.address == "cups:kitchen"
    assert transport.reads_status is False
    # pycups when it imports, else the tools.
    assert transport.client.kind == ("pycups" if pycups_available() else "cli")
    assert [s.name for s in transport.strategies()] == [
        "cups-enable",
        "cups-accept",
        "cups-cancel-stuck",
    ]


def test_status_questions_do_not_go_through_cups() -> None:
    transport = cups_transport.from_uri(parse_uri("cups:kitchen"), TIMEOUTS)
    with pytest.raises(PrinterTimeout, match="cannot go through CUPS"):
        asyncio.run(transport.ask(StatusQuery(b"\x10\x04\x01")))


@pytest.mark.skipif(not cli_available(), reason="lp is not installed")
def test_from_uri_forced_client_through_the_factory() -> None:
    forced = open_transport("cups:bar%20one?client=cli", TIMEOUTS)
    assert isinstance(forced, CupsTransport)
    assert forced.queue == "bar one" and forced.client.kind == "cli"


@pytest.mark.parametrize(
    ("uri", "named"),
    [("cups:kitchen?client=lpr", "client"), ("cups:kitchen?colour=red", "colour")],
)
def test_from_uri_names_a_bad_option(uri: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        cups_transport.from_uri(parse_uri(uri), TIMEOUTS)
