"""PrinterWorker against the in-memory transport and a real (in-memory) SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from spoonprint.delivery.breaker import BreakerState, CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.worker import REPRINT_BANNER, Failover, PrinterWorker
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
            # Asked before each ticket (can it print?) and after (did it?).
            assert h.transport.queries == [b"\x10\x04\x01"] * 10

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
            await h.until(lambda: h.worker.state.consecutive_failures >= 3)
            job = h.store.get(job_id)
            assert job.state is JobState.QUEUED and job.attempts == 0  # waiting is not failing
            assert "not ready" in (h.worker.state.last_error or "")
            assert h.transport.sent == []  # asked first: nothing sent to a printer without paper
            h.transport.status = b"\x12"
            await h.until_state(job_id, JobState.PRINTED)
            assert not h.store.get(job_id).maybe_printed  # so no REPRINT banner either

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


def make_worker(store: SqliteJobStore, name: str, **kwargs: object) -> PrinterWorker:
    return PrinterWorker(
        name,
        store,
        MemoryTransport(f"memory://{name}"),
        renderer_for(Protocol.ESCPOS, default_typeface()),
        PrinterProfile(),
        kwargs.pop("retry", FAST),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_breaker_opens_and_probes_with_status_not_tickets() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.worker.breaker = CircuitBreaker(threshold=2, reset_after=0.05, max_reset=0.1)
            h.transport.offline = True
            job_id = h.submit("after outage")
            await h.until(lambda: h.worker.breaker.state is BreakerState.OPEN)
            await h.until(lambda: h.worker.state.consecutive_failures >= 4)  # probes failing
            assert h.store.get(job_id).attempts == 2  # only the tickets before it opened
            h.transport.offline = False
            await h.until_state(job_id, JobState.PRINTED)
            assert h.worker.breaker.state is BreakerState.CLOSED
            assert len(h.transport.sent) == 1

    asyncio.run(scenario())


def test_gives_up_after_max_attempts_and_can_be_reprinted() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.worker.retry = RetryPolicy(initial=0.01, maximum=0.02, max_attempts=3)
            h.transport.offline = True
            job_id = h.submit("doomed")
            await h.until_state(job_id, JobState.FAILED)
            job = h.store.get(job_id)
            assert job.attempts == 3 and "gave up after 3 attempts" in (job.last_error or "")
            h.transport.offline = False
            h.worker.breaker.record_success()
            again = h.store.reprint(job_id)
            h.worker.wake()
            await h.until_state(again.id, JobState.PRINTED)
            assert again.reprint_of == job_id and not again.maybe_printed
            assert h.store.get(job_id).state is JobState.FAILED  # the original stays visible

    asyncio.run(scenario())


def test_printer_that_cannot_confirm_ends_sent() -> None:
    async def scenario() -> None:
        async with Harness() as h:
            h.worker.confirm = False
            job_id = h.submit("no status")
            await h.until_state(job_id, JobState.SENT)
            assert h.transport.queries == []

    asyncio.run(scenario())


def test_failover_moves_waiting_jobs_to_the_backup_with_a_banner() -> None:
    async def scenario() -> None:
        store = SqliteJobStore.in_memory()
        bar = make_worker(store, "bar")
        kitchen = make_worker(store, "kitchen", failover=Failover("bar", 0.05, bar.wake))
        kitchen.transport.offline = True  # type: ignore[attr-defined]
        tasks = [asyncio.create_task(w.run()) for w in (kitchen, bar)]
        ids = [store.enqueue(NewJob("kitchen", {"text": f"dish {n}"}))[0].id for n in range(3)]
        kitchen.wake()
        async with asyncio.timeout(5), bar.progress:
            await bar.progress.wait_for(
                lambda: all(store.get(i).state is JobState.PRINTED for i in ids)
            )
        sent = bar.transport.sent  # type: ignore[attr-defined]
        assert [
            b"BACKUP FOR kitchen" in s and f"dish {n}".encode() in s for n, s in enumerate(sent)
        ] == [True] * 3
        assert all(store.get(i).printer == "bar" for i in ids)
        assert store.get(ids[0]).original_printer == "kitchen"
        for worker in (kitchen, bar):
            worker.request_stop()
        await asyncio.gather(*tasks)
        store.close()

    asyncio.run(scenario())


def test_heartbeat_keeps_the_lease_while_a_slow_ticket_prints() -> None:
    class SlowTransport(MemoryTransport):
        started = asyncio.Event()

        async def send(self, data: bytes, query: object = None, check: object = None) -> bytes:
            self.started.set()
            await asyncio.sleep(0.4)  # a printer taking its time: longer than the lease
            return await super().send(data, query, check)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with Harness() as h:
            slow = SlowTransport()
            h.worker.transport = slow
            h.worker.lease_seconds = 0.1
            job_id = h.submit("slow")
            await asyncio.wait_for(slow.started.wait(), 5)
            await asyncio.sleep(0.25)  # well past one lease: only heartbeats keep it
            assert h.store.recover_interrupted(expired_only=True) == []
            await h.until_state(job_id, JobState.PRINTED)

    asyncio.run(scenario())
