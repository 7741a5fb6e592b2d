"""PrinterWorker against the in-memory transport and a real (in-memory) SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable

import pytest

from spoonprint.delivery.breaker import BreakerState, CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.worker import REPRINT_BANNER, Failover, PrinterWorker, _ticket_key
from spoonprint.domain.document import Document
from spoonprint.domain.job import Job, JobState, NewJob
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.errors import PrinterDisconnected, PrinterOffline
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface
from spoonprint.transports.base import Ticket
from spoonprint.transports.memory import MemoryTransport

FAST = RetryPolicy(initial=0.01, maximum=0.02, jitter=0.0)
#: Each scenario runs woken with the accepted job (as the server does) and woken without it.
AS_SERVED = pytest.mark.parametrize("served", [True, False], ids=["as-served", "worker-alone"])


class Harness:
    """A worker running on its own task against an in-memory store and transport.

    ``served``: each order goes to the worker as the server sends it: announced before its
    commit (an idle worker takes it as its next job, renders it and reaches the printer
    meanwhile), leased to that worker in the transaction that stores it, and settled; otherwise
    the order is stored and the worker only woken."""

    def __init__(self, served: bool = True) -> None:
        self.served = served
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

    def submit(self, text: str, order_id: str | None = None) -> int:
        new = NewJob("kitchen", {"text": text}, order_id=order_id)
        if not self.served:
            job, _ = self.store.enqueue(new)
            self.worker.wake()
            return job.id
        self.worker.expect(new)
        return self.commit(new).id

    def commit(self, new: NewJob) -> Job:
        """Store ``new`` as the server does (leased with it when its worker waits for it)
        and settle it with the worker."""
        worker = self.worker

        def lease(order: NewJob, job: Job) -> tuple[str, float] | None:
            return (worker.owner, worker.lease_seconds) if worker.expected(order) else None

        ((job, created),) = self.store.enqueue_many([new], lease=lease)  # type: ignore[misc]
        leased = created and job.state is JobState.PRINTING
        worker.settle(new, job if leased else None)
        return job

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait (bounded) until ``done()`` holds after some attempt."""
        async with asyncio.timeout(5), self.worker.progress:
            await self.worker.progress.wait_for(done)

    async def until_state(self, job_id: int, state: JobState) -> None:
        await self.until(lambda: self.store.get(job_id).state is state)

    async def until_idle(self) -> None:
        await asyncio.wait_for(self.worker.idle.wait(), 5)


@AS_SERVED
def test_prints_in_acceptance_order_and_confirms(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
            ids = [h.submit(f"order {n}") for n in range(5)]
            await h.until_state(ids[-1], JobState.PRINTED)
            sent = h.transport.sent
            assert [f"order {n}".encode() in data for n, data in enumerate(sent)] == [True] * 5
            assert all(h.store.get(i).state is JobState.PRINTED for i in ids)
            # Asked before each ticket (can it print?) and after (did it?).
            assert h.transport.queries == [b"\x10\x04\x01"] * 10

    asyncio.run(scenario())


@AS_SERVED
def test_offline_printer_keeps_job_queued_then_prints(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
            h.transport.fail_next(PrinterOffline("refused"), PrinterOffline("refused"))
            job_id = h.submit("wait for me")
            later = h.submit("after")
            await h.until(lambda: h.worker.state.consecutive_failures == 1)
            assert h.store.get(job_id).state is JobState.QUEUED
            assert h.store.get(later).state is JobState.QUEUED  # never overtakes
            await h.until_state(later, JobState.PRINTED)
            job = h.store.get(job_id)
            # Two refused, the third printed: three attempts.
            assert job.state is JobState.PRINTED and job.attempts == 3 and not job.maybe_printed
            assert b"wait for me" in h.transport.sent[0] and b"after" in h.transport.sent[1]
            assert h.worker.state.online is True and h.worker.state.last_error == "refused"

    asyncio.run(scenario())


@AS_SERVED
def test_drop_mid_ticket_reprints_with_banner(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
            h.transport.fail_next(PrinterDisconnected("reset", bytes_written=10))
            job_id = h.submit("half sent")
            await h.until_state(job_id, JobState.PRINTED)
            assert h.store.get(job_id).maybe_printed
            # A cp437 printer gets the bilingual banner as a raster band, then the time as text.
            (sent,) = h.transport.sent
            assert sent.index(b"\x1dv0") < sent.index(b"ordered ") < sent.index(b"half sent")
            assert REPRINT_BANNER == "*** REPRINT 重印 ***"

    asyncio.run(scenario())


@AS_SERVED
def test_paper_out_is_not_printed(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
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


@AS_SERVED
def test_unrenderable_job_fails_visibly(served: bool) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise ValueError("bad document")

    async def scenario() -> None:
        async with Harness(served) as h:
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


@AS_SERVED
def test_breaker_opens_and_probes_with_status_not_tickets(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
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


@AS_SERVED
def test_gives_up_after_max_attempts_and_can_be_reprinted(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
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


@AS_SERVED
def test_printer_that_cannot_confirm_ends_sent(served: bool) -> None:
    async def scenario() -> None:
        async with Harness(served) as h:
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


@AS_SERVED
def test_heartbeat_keeps_the_lease_while_a_slow_ticket_prints(served: bool) -> None:
    class SlowTransport(MemoryTransport):
        started = asyncio.Event()

        async def send(
            self, data: Ticket, query: object = None, check: object = None
        ) -> bytes | None:
            self.started.set()
            await asyncio.sleep(0.4)  # a printer taking its time: longer than the lease
            return await super().send(data, query, check)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with Harness(served) as h:
            slow = SlowTransport()
            h.worker.transport = slow
            h.worker.lease_seconds = 0.1
            job_id = h.submit("slow")
            await asyncio.wait_for(slow.started.wait(), 5)
            await asyncio.sleep(0.25)  # well past one lease: only heartbeats keep it
            assert h.store.recover_interrupted(expired_only=True) == []
            await h.until_state(job_id, JobState.PRINTED)

    asyncio.run(scenario())


class CountingRenderer:
    """The real ESC/POS renderer, keeping what it rendered; ``on_render`` is called as each
    rendering starts."""

    def __init__(self, on_render: Callable[[], None] = lambda: None) -> None:
        self.render = renderer_for(Protocol.ESCPOS, default_typeface())
        self.rendered: list[bytes] = []
        self.on_render = on_render

    def __call__(self, document: Document, profile: PrinterProfile, copies: int = 1) -> bytes:
        self.on_render()
        data = self.render(document, profile, copies)
        self.rendered.append(data)
        return data


class HeldRenderer(CountingRenderer):
    """Renders only once released: a ticket still being rendered, for as long as a test needs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        super().__init__(on_render=lambda: self.release.wait(5))


async def bounded(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (bounded: 5 s)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


def test_an_idle_worker_renders_and_reaches_the_printer_while_the_order_commits() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            await h.until_idle()
            held = h.worker.renderer = HeldRenderer()
            new = NewJob("kitchen", {"text": "order 1"})
            h.worker.expect(new)
            # Not stored yet, and already: the printer asked whether it can print.
            await bounded(lambda: h.transport.queries == [b"\x10\x04\x01"])
            job = h.commit(new)
            assert job.state is JobState.PRINTING  # leased with the order: one commit
            held.release.set()
            await h.until_state(job.id, JobState.PRINTED)
            assert held.rendered == h.transport.sent  # one rendering, the one made ahead
            assert b"order 1" in h.transport.sent[0]
            events = [e.to_state for e in h.store.events(job.id)]
            assert events == [JobState.QUEUED, JobState.PRINTING, JobState.PRINTED]

    asyncio.run(scenario())


def test_an_order_that_is_not_stored_leaves_nothing_on_paper() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            await h.until_idle()
            started = threading.Event()
            counting = h.worker.renderer = CountingRenderer(on_render=started.set)
            new = NewJob("kitchen", {"text": "never stored"})
            h.worker.expect(new)
            assert await asyncio.to_thread(started.wait, 5)  # its ticket is being rendered
            h.worker.settle(new, None)  # its commit failed (the disk was full, say)
            await h.until_idle()
            job_id = h.submit("stored")
            await h.until_state(job_id, JobState.PRINTED)
            (sent,) = h.transport.sent
            assert b"stored" in sent and b"never" not in sent
            assert any(b"never stored" in data for data in counting.rendered)  # then dropped

    asyncio.run(scenario())


def test_a_repeated_order_is_not_leased_again_nor_printed_twice() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            first = h.submit("once", order_id="A-1")
            await h.until_state(first, JobState.PRINTED)
            await h.until_idle()
            again = h.submit("once", order_id="A-1")  # the website retried
            assert again == first
            await h.until_idle()
            assert len(h.transport.sent) == 1 and h.store.get(first).state is JobState.PRINTED

    asyncio.run(scenario())


def test_only_an_idle_worker_with_a_working_printer_waits_for_an_order() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            await h.until_idle()
            first, second = NewJob("kitchen", {"text": "1"}), NewJob("kitchen", {"text": "2"})
            h.worker.expect(first)
            h.worker.expect(second)  # it already waits for the first
            assert h.worker.expected(first) and not h.worker.expected(second)
            await h.until_state(h.commit(first).id, JobState.PRINTED)
            job = h.commit(second)  # not expected: stored queued, then leased by the worker
            await h.until_state(job.id, JobState.PRINTED)
            assert [e.detail for e in h.store.events(job.id)][1] == "attempt 1"
            while h.worker.breaker.state is BreakerState.CLOSED:
                h.worker.breaker.record_failure()
            third = NewJob("kitchen", {"text": "3"})
            h.worker.expect(third)
            assert not h.worker.expected(third)  # a failing printer: no ticket ahead
            h.worker.settle(third, None)

    asyncio.run(scenario())


def test_an_order_settled_after_the_worker_began_waiting_for_it_prints() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            await h.until_idle()
            new = NewJob("kitchen", {"text": "settled late"})
            h.worker.expect(new)
            await bounded(lambda: bool(h.transport.queries))  # connected, waiting for it
            job = h.commit(new)
            await h.until_state(job.id, JobState.PRINTED)
            (sent,) = h.transport.sent
            assert b"settled late" in sent

    asyncio.run(scenario())


def test_when_the_order_was_not_leased_to_it_the_worker_leases_it_itself() -> None:
    async def scenario() -> None:
        async with Harness(served=True) as h:
            await h.until_idle()
            new = NewJob("kitchen", {"text": "lease it yourself"})
            h.worker.expect(new)
            job, _ = h.store.enqueue(new)  # stored without the lease
            h.worker.settle(new, None)
            await h.until_state(job.id, JobState.PRINTED)

    asyncio.run(scenario())


def test_an_order_leased_to_a_stopping_worker_goes_back_to_the_queue_unmarked() -> None:
    async def scenario() -> None:
        h = Harness(served=True)
        h.worker.renderer = held = HeldRenderer()
        task = asyncio.create_task(h.worker.run())
        await h.until_idle()
        new = NewJob("kitchen", {"text": "not now"})
        h.worker.expect(new)
        h.worker.request_stop()  # before the order is settled
        job = h.commit(new)
        assert job.state is JobState.PRINTING
        held.release.set()
        await asyncio.wait_for(task, 5)
        back = h.store.get(job.id)
        assert back.state is JobState.QUEUED and not back.maybe_printed and back.attempts == 0
        assert h.transport.sent == []
        h.store.close()

    asyncio.run(scenario())


def test_only_tickets_without_banners_are_rendered_ahead_and_only_for_their_order() -> None:
    job, _ = SqliteJobStore.in_memory().enqueue(NewJob("kitchen", {"text": "x"}))
    assert _ticket_key(job) == ("kitchen", 1, {"text": "x"})
    for change in ({"copies": 2}, {"printer": "bar"}, {"payload": {"text": "y"}}):
        assert _ticket_key(dataclasses.replace(job, **change)) != _ticket_key(job), change
    # A REPRINT or BACKUP FOR banner: never rendered ahead.
    assert _ticket_key(dataclasses.replace(job, maybe_printed=True)) is None
    assert _ticket_key(dataclasses.replace(job, original_printer="bar")) is None
    # What the ticket does not show may differ: the lease, the attempts, the state.
    leased = dataclasses.replace(job, attempts=3, lease_owner="w", state=JobState.PRINTING)
    assert _ticket_key(leased) == _ticket_key(job)
