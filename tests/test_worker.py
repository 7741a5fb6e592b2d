"""PrinterWorker against the in-memory transport and a real (in-memory) SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.worker import REPRINT_BANNER, PrinterWorker
from spoonprint.domain.job import JobState, NewJob
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.errors import PrinterDisconnected, PrinterOffline
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface
from spoonprint.transports.memory import MemoryTransport

FAST = RetryPolicy(initial=0.01, maximum=0.02, jitter=0.0)


class Harness:
    """A worker running on its own task against an in-memory store and transport."""

    def __init__(self) -> None:
        self.store = SqliteJobStore.in_memory()
        self.transport = MemoryTransport()
        self.worker = PrinterWorker(
            "kitchen",
            self.store,
            self.transport,
            renderer_for(Protocol.ESCPOS, default_typeface()),
            PrinterProfile(),
            FAST,
        )

    async def __aenter__(self) -> Harness:
        self._task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.worker.request_stop()
        await asyncio.wait_for(self._task, 5)
        self.store.close()

    def submit(self, text: str) -> int:
        job, _ = self.store.enqueue(NewJob("kitchen", {"text": text}))
        self.worker.wake()
        return job.id

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait (bounded) until ``done()`` holds after some attempt."""
        async with asyncio.timeout(5), self.worker.progress:
            await self.worker.progress.wait_for(done)

    async def until_state(self, job_id: int, state: JobState) -> None:
        await self.until(lambda: self.store.get(job_id).state is state)


def test_prints_in_acceptance_order_and_confirms() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            ids = [h.submit(f"order {n}") for n in range(5)]
            await h.until_state(ids[-1], JobState.PRINTED)
            sent = h.transport.sent
            assert [f"order {n}".encode() in data for n, data in enumerate(sent)] == [True] * 5
            assert all(h.store.get(i).state is JobState.PRINTED for i in ids)
            assert h.transport.queries == [b"\x10\x04\x01"] * 5

    asyncio.run(scenario())


def test_offline_printer_keeps_job_queued_then_prints() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.transport.fail_next(PrinterOffline("refused"), PrinterOffline("refused"))
            job_id = h.submit("wait for me")
            later = h.submit("after")
            await h.until(lambda: h.worker.state.consecutive_failures == 1)
            assert h.store.get(job_id).state is JobState.QUEUED
            assert h.store.get(later).state is JobState.QUEUED  # never overtakes
            await h.until_state(later, JobState.PRINTED)
            job = h.store.get(job_id)
            assert job.state is JobState.PRINTED and job.attempts == 2 and not job.maybe_printed
            assert b"wait for me" in h.transport.sent[0] and b"after" in h.transport.sent[1]
            assert h.worker.state.online is True and h.worker.state.last_error == "refused"

    asyncio.run(scenario())


def test_drop_mid_ticket_reprints_with_banner() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.transport.fail_next(PrinterDisconnected("reset", bytes_written=10))
            job_id = h.submit("half sent")
            await h.until_state(job_id, JobState.PRINTED)
            assert h.store.get(job_id).maybe_printed
            # A cp437 printer gets the bilingual banner as a raster band, then the time as text.
            (sent,) = h.transport.sent
            assert sent.index(b"\x1dv0") < sent.index(b"ordered ") < sent.index(b"half sent")
            assert REPRINT_BANNER == "*** REPRINT 重印 ***"

    asyncio.run(scenario())


def test_paper_out_is_not_printed() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.transport.status = b"\x1a"  # offline bit set
            job_id = h.submit("no paper")
            await h.until(lambda: h.worker.state.consecutive_failures >= 1)
            assert h.store.get(job_id).state is JobState.QUEUED
            assert "not ready" in (h.worker.state.last_error or "")
            h.transport.status = b"\x12"
            await h.until_state(job_id, JobState.PRINTED)
            assert h.store.get(job_id).maybe_printed  # the paper-out attempt sent the bytes

    asyncio.run(scenario())


def test_unrenderable_job_fails_visibly() -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise ValueError("bad document")

    async def scenario() -> None:
        async with Harness() as h:
            h.worker.renderer = broken
            job_id = h.submit("x")
            await h.until_state(job_id, JobState.FAILED)
            assert "bad document" in (h.store.get(job_id).last_error or "")

    asyncio.run(scenario())
