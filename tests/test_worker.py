"""PrinterWorker against the in-memory transport and a real (in-memory) SQLite store."""

from __future__ import annotations

import asyncio

from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.worker import REPRINT_BANNER, PrinterWorker
from spoonprint.domain.job import JobState, NewJob
from spoonprint.domain.profile import PrinterProfile
from spoonprint.errors import PrinterDisconnected, PrinterOffline
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.render.escpos import render_escpos_text
from spoonprint.transports.memory import MemoryTransport

FAST = RetryPolicy(initial=0.01, maximum=0.02, jitter=0.0)


class Harness:
    def __init__(self) -> None:
        self.store = SqliteJobStore.in_memory()
        self.transport = MemoryTransport()
        self.worker = PrinterWorker(
            "kitchen", self.store, self.transport, render_escpos_text, PrinterProfile(), FAST
        )

    def submit(self, text: str) -> int:
        job, _ = self.store.enqueue(NewJob("kitchen", {"text": text}))
        self.worker.wake()
        return job.id

    async def until(self, job_id: int, state: JobState) -> None:
        async with asyncio.timeout(5):
            while self.store.get(job_id).state is not state:
                await asyncio.sleep(0.005)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_prints_in_acceptance_order_and_confirms() -> None:
    async def scenario() -> None:
        h = Harness()
        task = asyncio.create_task(h.worker.run())
        ids = [h.submit(f"order {n}") for n in range(5)]
        sent = await h.transport.wait_for_sent(5)
        assert [f"order {n}".encode() in data for n, data in enumerate(sent)] == [True] * 5
        await h.until(ids[-1], JobState.PRINTED)
        assert all(h.store.get(i).state is JobState.PRINTED for i in ids)
        assert h.transport.queries == [b"\x10\x04\x01"] * 5
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_offline_printer_keeps_job_queued_then_prints() -> None:
    async def scenario() -> None:
        h = Harness()
        h.transport.fail_next(PrinterOffline("refused"), PrinterOffline("refused"))
        task = asyncio.create_task(h.worker.run())
        job_id = h.submit("wait for me")
        later = h.submit("after")
        await h.until(later, JobState.PRINTED)
        job = h.store.get(job_id)
        assert job.state is JobState.PRINTED and job.attempts == 2 and not job.maybe_printed
        assert b"wait for me" in h.transport.sent[0] and b"after" in h.transport.sent[1]
        assert h.worker.state.online is True and h.worker.state.last_error == "refused"
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_drop_mid_ticket_reprints_with_banner() -> None:
    async def scenario() -> None:
        h = Harness()
        h.transport.fail_next(PrinterDisconnected("reset", bytes_written=10))
        task = asyncio.create_task(h.worker.run())
        job_id = h.submit("half sent")
        await h.until(job_id, JobState.PRINTED)
        assert h.store.get(job_id).maybe_printed
        assert REPRINT_BANNER.split()[1].encode() in h.transport.sent[0]  # "REPRINT"
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_paper_out_is_not_printed() -> None:
    async def scenario() -> None:
        h = Harness()
        h.transport.status = b"\x1a"  # offline bit set
        task = asyncio.create_task(h.worker.run())
        job_id = h.submit("no paper")
        await h.transport.wait_for_sent(1)
        async with asyncio.timeout(5):
            while h.worker.state.consecutive_failures < 1:
                await asyncio.sleep(0.005)
        assert h.store.get(job_id).state in (JobState.QUEUED, JobState.PRINTING)
        assert "not ready" in (h.worker.state.last_error or "")
        h.transport.status = b"\x12"
        await h.until(job_id, JobState.PRINTED)
        assert h.store.get(job_id).maybe_printed  # the paper-out attempt sent bytes
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_unrenderable_job_fails_visibly() -> None:
    async def scenario() -> None:
        h = Harness()

        def broken(*args: object, **kwargs: object) -> bytes:
            raise ValueError("bad document")

        h.worker.renderer = broken
        task = asyncio.create_task(h.worker.run())
        job_id = h.submit("x")
        await h.until(job_id, JobState.FAILED)
        assert "bad document" in (h.store.get(job_id).last_error or "")
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario())
