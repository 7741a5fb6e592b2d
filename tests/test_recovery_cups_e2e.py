"""The health monitor heals a real CUPS queue: a private cupsd with a raw queue to the virtual
printer, and a real spoonprint server printing to ``cups:QUEUE``. The worker's own retry is 30 s
here, so a ticket out within seconds was brought out by the monitor."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread

from .conftest import Server, ServerFactory
from .cupsd import Cupsd, private_cupsd
from .test_delivery_e2e import marked_reprint
from .test_recovery_e2e import SLOW_RETRY_FAST_MONITOR, recovery, wait_until

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


@pytest.fixture(scope="module")
def cupsd() -> Iterator[Cupsd]:
    with private_cupsd() as daemon:
        yield daemon


@pytest.fixture
def queue(cupsd: Cupsd, printer: VirtualPrinterThread) -> Iterator[str]:
    name = f"kitchen{next(_names)}"
    cupsd.add_raw_queue(name, printer.port)
    yield name
    cupsd.remove_queue(name)


def serve(make_server: ServerFactory, cupsd: Cupsd, queue: str) -> Server:
    uri = f"cups:{queue}?server={cupsd.socket}"
    return make_server(
        [{"name": "kitchen", "uri": uri, "protocol": "escpos"}],
        **SLOW_RETRY_FAST_MONITOR,
        SPOONPRINT_RECOVERY__STUCK_AFTER="1",
    )


def heal(server: Server, strategy: str) -> dict[str, object]:
    wait_until(lambda: recovery(server)["strategies"][strategy]["succeeded"] >= 1)
    return recovery(server)


def test_a_stopped_queue_is_restarted_and_the_waiting_ticket_prints(
    make_server: ServerFactory, cupsd: Cupsd, queue: str, printer: VirtualPrinterThread
) -> None:
    server = serve(make_server, cupsd, queue)
    cupsd.run("cupsdisable", queue)
    ordered = time.monotonic()
    job_id = server.client().post("/print", json={"text": "roast goose"}).json()["job_id"]
    job = server.wait_for_state(job_id, "sent", timeout=15)
    print(f"\nCUPS queue stopped -> re-enabled, ticket out: {time.monotonic() - ordered:.2f} s")
    assert "roast goose" in printer.wait_for_tickets(1, timeout=5)[0].text
    assert "cups-enable" in str(heal(server, "cups-enable")["strategies"])
    assert job["attempts"] == 1  # it waited in the CUPS queue; nothing failed or duplicated
    assert len(printer.tickets) == 1


def test_a_queue_refusing_jobs_is_reopened(
    make_server: ServerFactory, cupsd: Cupsd, queue: str, printer: VirtualPrinterThread
) -> None:
    server = serve(make_server, cupsd, queue)
    cupsd.run("cupsreject", queue)
    ordered = time.monotonic()
    job_id = server.client().post("/print", json={"text": "milk tea"}).json()["job_id"]
    server.wait_for_state(job_id, "sent", timeout=15)
    print(f"\nCUPS queue rejecting -> accepting, ticket out: {time.monotonic() - ordered:.2f} s")
    heal(server, "cups-accept")
    tickets = printer.wait_for_tickets(1, timeout=5)
    assert len(tickets) == 1 and not marked_reprint(tickets[0].text)  # nothing reached CUPS


def test_a_stuck_job_is_cancelled_and_sent_again_marked_reprint(
    make_server: ServerFactory, cupsd: Cupsd, queue: str, printer: VirtualPrinterThread
) -> None:
    server = serve(make_server, cupsd, queue)
    # The printer refuses connections: CUPS's backend keeps the job "processing" and retries.
    printer.set_mode(PrinterMode.OFFLINE)
    job_id = server.client().post("/print", json={"text": "beef brisket"}).json()["job_id"]
    wait_until(lambda: recovery(server)["strategies"]["cups-cancel-stuck"]["tried"] >= 1)
    back = time.monotonic()
    printer.set_mode(PrinterMode.ONLINE)
    job = server.wait_for_state(job_id, "sent", timeout=20)
    print(
        f"\nstuck CUPS job cancelled; printer back -> ticket out: {time.monotonic() - back:.2f} s"
    )
    tickets = printer.wait_for_tickets(1, timeout=5)
    # The cancelled job had started: the copy that prints says it may be a second one.
    assert all(marked_reprint(t.text) and "beef brisket" in t.text for t in tickets)
    assert any("will retry" in event["detail"] for event in job["events"])
    assert cupsd.active_jobs(queue) == []
