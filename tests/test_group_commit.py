"""Group commit of new jobs: concurrent orders share one transaction (one fsync), on a real
SQLite file, and lose none of what a commit of their own gave them: each caller is answered
only once its batch is on disk, duplicates are caught inside a batch too, jobs keep the order
they were submitted in, and a batch whose commit fails acknowledges nobody."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from spoonprint.db import DB_FILENAME, migrate
from spoonprint.domain.job import PENDING_STATES, Job, JobState, NewJob
from spoonprint.emulator.virtual_printer import VirtualPrinterThread
from spoonprint.errors import StoreUnavailable
from spoonprint.queue.group_commit import GroupCommit, GroupCommitClosed
from spoonprint.queue.sqlite import _COUNT_PENDING, SqliteJobStore
from tests.conftest import Server

DEADLINE = 10.0
ORDER = re.compile(r"order H-(\d+)")


def new(order_id: str | None = None, key: str | None = None, text: str = "hi") -> NewJob:
    return NewJob("kitchen", {"text": text}, order_id=order_id, idempotency_key=key)


def on_disk(tmp_path: Path) -> list[tuple[int, str | None, str | None]]:
    """(id, order_id, idempotency_key) of every job, read by an independent connection."""
    other = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        rows = other.execute("SELECT id, order_id, idempotency_key FROM jobs ORDER BY id")
        return [tuple(row) for row in rows]
    finally:
        other.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    s = SqliteJobStore.open(tmp_path)
    yield s
    s.close()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.001)  # a thread's progress, with no event to wait on


@contextmanager
def one_batch(store: SqliteJobStore) -> Iterator[None]:
    """Everything submitted inside goes into one batch: the writer thread is held at the
    store's lock with a first job while the rest queue up behind it."""
    with store._lock:
        yield
    # Released: the held first job commits alone, then the rest together.


async def writer_busy(group: GroupCommit[Any, Any], queued: int = 0) -> None:
    """Until the writer is committing a batch of one and ``queued`` more wait behind it."""

    def there() -> bool:
        return group.in_flight == 1 and group._queue.qsize() == queued

    await asyncio.to_thread(wait_until, there, f"writer busy, {queued} waiting")


async def submit_all(store: SqliteJobStore, jobs: list[NewJob]) -> list[Any]:
    """Submit ``jobs`` in this order (each task queues its job before the next starts) while
    the writer is held with a first job, so that they make one batch; their outcomes."""
    tasks = []
    with one_batch(store):
        first = asyncio.ensure_future(store.enqueue_async(new(text="opens the writer")))
        await writer_busy(store._group)  # holding that job, waiting for the lock
        for job in jobs:
            tasks.append(asyncio.ensure_future(store.enqueue_async(job)))
            await asyncio.sleep(0)  # let it run up to its wait: its job is queued
        await writer_busy(store._group, len(jobs))
    await first
    return await asyncio.gather(*tasks, return_exceptions=True)


# -- the store -----------------------------------------------------------------------------------


def test_concurrent_orders_share_commits_and_are_on_disk(
    tmp_path: Path, store: SqliteJobStore
) -> None:
    async def order(n: int) -> Job:
        job, created = await store.enqueue_async(new(f"A-{n}"))
        assert created
        # Answered: an independent connection sees it at once.
        assert (job.id, f"A-{n}", None) in on_disk(tmp_path)
        return job

    async def main() -> list[Job]:
        return await asyncio.gather(*(order(n) for n in range(40)))

    jobs = asyncio.run(main())
    assert len({job.id for job in jobs}) == 40
    assert len(on_disk(tmp_path)) == 40
    assert sum(store._group.recent_batches) == 40
    assert len(store._group.recent_batches) < 40  # some orders shared a commit


def test_one_batch_keeps_submission_order(tmp_path: Path, store: SqliteJobStore) -> None:
    outcomes = asyncio.run(submit_all(store, [new(f"B-{n}") for n in range(20)]))
    assert list(store._group.recent_batches) == [1, 20]
    ids = [job.id for job, created in outcomes]
    assert ids == sorted(ids) and all(created for _, created in outcomes)
    assert [row[1] for row in on_disk(tmp_path)[1:]] == [f"B-{n}" for n in range(20)]
    # Claimed in that order too.
    claimed = [store.claim_next("kitchen") for _ in range(3)]
    assert claimed[0] is not None and claimed[0].order_id is None  # the writer-opening job


def test_duplicates_inside_one_batch_make_one_job(tmp_path: Path, store: SqliteJobStore) -> None:
    earlier, _ = store.enqueue(new("C-0"))
    jobs = [
        new("C-1"),
        new("C-1"),
        new(key="k-1"),
        new("C-2", key="k-1"),  # the key was used by the job before: a duplicate of it
        new("C-1"),
        new("C-0"),  # committed in an earlier transaction
    ]
    outcomes = asyncio.run(submit_all(store, jobs))
    assert list(store._group.recent_batches)[-2:] == [1, 6]
    (c1, made_c1), (c1b, made_c1b), (k1, made_k1), (c2, made_c2), (c1c, made_c1c), (c0, made_c0) = (
        outcomes
    )
    assert made_c1 and not made_c1b and not made_c1c and c1b.id == c1c.id == c1.id
    assert made_k1 and not made_c2 and c2.id == k1.id
    assert not made_c0 and c0.id == earlier.id
    rows = on_disk(tmp_path)
    assert [row[1:] for row in rows[2:]] == [("C-1", None), (None, "k-1")]


def test_a_failing_job_fails_alone(tmp_path: Path, store: SqliteJobStore) -> None:
    # A trigger makes SQLite refuse one job; its neighbours in the batch are not touched.
    store._conn.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.jobs WHEN NEW.order_id = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    outcomes = asyncio.run(submit_all(store, [new("D-1"), new("bad"), new("D-2")]))
    assert list(store._group.recent_batches) == [1, 3]
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert outcomes[0][1] and outcomes[2][1]
    assert [row[1] for row in on_disk(tmp_path)[1:]] == ["D-1", "D-2"]
    assert store.events(outcomes[2][0].id)[0].to_state is JobState.QUEUED


class _DeferredChecks(sqlite3.Connection):
    """Foreign keys checked at COMMIT instead of at each statement (``defer_foreign_keys``
    lasts one transaction), so that a bad row makes the COMMIT itself fail."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = super().execute(sql, *args)
        if sql == "BEGIN IMMEDIATE":
            super().execute("PRAGMA defer_foreign_keys=ON")
        return cursor


def test_a_failing_commit_fails_every_caller_and_acknowledges_none(tmp_path: Path) -> None:
    conn = sqlite3.connect(
        tmp_path / DB_FILENAME,
        factory=_DeferredChecks,
        isolation_level=None,
        check_same_thread=False,
    )
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    migrate(conn)
    # A history line for a job that does not exist: the COMMIT of its batch is refused.
    conn.execute(
        "CREATE TEMP TRIGGER dangling AFTER INSERT ON main.jobs WHEN NEW.order_id = 'poison'"
        " BEGIN INSERT INTO job_events (job_id, at, to_state) VALUES (-1, 0, 'queued'); END"
    )
    store = SqliteJobStore(conn)
    try:
        outcomes = asyncio.run(
            submit_all(store, [new("E-1"), new("E-2"), new("poison"), new("E-3")])
        )
        assert list(store._group.recent_batches) == [1, 4]
        assert all(isinstance(outcome, sqlite3.IntegrityError) for outcome in outcomes)
        assert [row[1] for row in on_disk(tmp_path)] == [None]  # only the first, lone job
        # The store goes on: the next batch commits.
        job, created = asyncio.run(store.enqueue_async(new("E-1")))
        assert created and [row[1] for row in on_disk(tmp_path)] == [None, "E-1"]
    finally:
        store.close()


def test_a_store_that_cannot_write_refuses_every_caller(tmp_path: Path) -> None:
    SqliteJobStore.open(tmp_path).close()
    read_only = sqlite3.connect(
        f"file:{tmp_path / DB_FILENAME}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    store = SqliteJobStore(read_only)

    async def main() -> list[Any]:
        jobs = (store.enqueue_async(new(f"F-{n}")) for n in range(5))
        return await asyncio.gather(*jobs, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        store.close()
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
    assert on_disk(tmp_path) == []


def test_close_commits_what_waits_then_refuses(tmp_path: Path) -> None:
    store = SqliteJobStore.open(tmp_path)

    async def main() -> None:
        with one_batch(store):
            tasks = [asyncio.ensure_future(store.enqueue_async(new("G-0")))]
            await writer_busy(store._group)
            for n in range(1, 5):
                tasks.append(asyncio.ensure_future(store.enqueue_async(new(f"G-{n}"))))
                await asyncio.sleep(0)
            await writer_busy(store._group, 4)
            closing = asyncio.ensure_future(asyncio.to_thread(store._group.close))
            await writer_busy(store._group, 5)  # close() queued its end marker
        await closing
        assert all(created for _, created in await asyncio.gather(*tasks))
        with pytest.raises(GroupCommitClosed):
            await store.enqueue_async(new("too late"))

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert [row[1] for row in on_disk(tmp_path)] == [f"G-{n}" for n in range(5)]


# -- a hot path the benchmarks found: the /status count -----------------------------------------


def test_waiting_jobs_are_counted_in_the_index_alone(store: SqliteJobStore) -> None:
    """The public /status counts waiting jobs per printer on every call: the count must not
    read the jobs' rows (with 10,000 waiting that took 25 ms), nor list printers without any."""
    store.enqueue_many([new(f"I-{n}") for n in range(30)])
    store.enqueue_many([NewJob("bar", {"text": "x"}) for _ in range(3)])
    done = store.claim_next("bar")
    assert done is not None
    store.mark_printed(done.id)
    for _ in range(2):
        job = store.claim_next("bar")
        assert job is not None
        store.mark_printed(job.id)
    assert store.count_pending_by_printer() == {"kitchen": 30}
    plan = " | ".join(
        row[3]
        for row in store._conn.execute(
            "EXPLAIN QUERY PLAN " + _COUNT_PENDING, tuple(PENDING_STATES)
        )
    )
    assert "COVERING INDEX jobs_pending (printer=? AND state=?)" in plan, plan
    assert "SCAN jobs" not in plan and "TEMP B-TREE" not in plan, plan


# -- the group commit on its own -----------------------------------------------------------------


def test_outcomes_must_match_the_batch() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
            await group.submit(1)

    try:
        asyncio.run(main())
    finally:
        group.close()


def test_callers_on_several_loops_are_each_answered() -> None:
    seen: list[list[int]] = []
    release = threading.Event()

    def commit(items: Sequence[int]) -> list[int | BaseException]:
        release.wait(DEADLINE)
        seen.append(list(items))
        return [item * 10 for item in items]

    group: GroupCommit[int, int] = GroupCommit(commit)

    def caller(n: int) -> int:
        return asyncio.run(group.submit(n))

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(caller, 0)]
            wait_until(lambda: group.in_flight == 1, "first taken")
            futures += [pool.submit(caller, n) for n in range(1, 4)]
            wait_until(lambda: group._queue.qsize() == 3, "the others waiting")
            release.set()
            assert sorted(f.result(DEADLINE) for f in futures) == [0, 10, 20, 30]
    finally:
        group.close()
    # The three that waited while the first committed made one batch, whatever their loop.
    assert len(seen) == 2 and seen[0] == [0] and sorted(seen[1]) == [1, 2, 3]


def test_settled_callbacks_run_before_any_caller_of_the_batch_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    failing = {"poison"}

    def commit(items: Sequence[str]) -> list[str | BaseException]:
        release.wait(DEADLINE)
        if failing & set(items):
            raise OSError("disk full")
        return [item.upper() for item in items]

    group: GroupCommit[str, str] = GroupCommit(commit)
    happened: list[str] = []

    def settled(outcome: str | BaseException) -> None:
        happened.append(f"settled {outcome!r}")
        if outcome == "C":
            raise ValueError("a broken callback")

    async def caller(item: str) -> None:
        try:
            result = await group.submit(item, settled)
            happened.append(f"resumed {result}")
        except OSError:
            happened.append(f"refused {item}")

    async def main() -> None:
        first = asyncio.ensure_future(caller("a"))
        await writer_busy(group)
        rest = [asyncio.ensure_future(caller(item)) for item in "bcd"]
        await writer_busy(group, queued=3)
        release.set()
        await asyncio.gather(first, *rest)
        await caller("poison")

    try:
        asyncio.run(main())
    finally:
        group.close()
    at = {event: n for n, event in enumerate(happened)}
    assert at["settled 'A'"] < at["resumed A"]
    # The whole batch's callbacks first (a failing one included), in order, then its callers.
    assert at["settled 'B'"] < at["settled 'C'"] < at["settled 'D'"]
    assert at["settled 'D'"] < min(at["resumed B"], at["resumed C"], at["resumed D"])
    # A batch that did not commit calls back with its error, before its caller hears it.
    assert happened[-2:] == ["settled OSError('disk full')", "refused poison"]
    assert len(happened) == 10
    assert "a settled-callback failed" in caplog.text


def test_a_closed_group_refuses_and_still_settles() -> None:
    group: GroupCommit[str, str] = GroupCommit(lambda items: [i.upper() for i in items])
    group.close()
    outcomes: list[str | BaseException] = []

    async def main() -> None:
        with pytest.raises(GroupCommitClosed):
            await group.submit("late", outcomes.append)

    asyncio.run(main())
    assert len(outcomes) == 1 and isinstance(outcomes[0], GroupCommitClosed)


# -- through the server --------------------------------------------------------------------------


def test_concurrent_orders_over_http_print_once_each_in_order(
    server: Server, printer: VirtualPrinterThread
) -> None:
    """16 clients at once, every order sent twice: one job per order id, each printed once,
    in acceptance order."""

    def send(n: int) -> list[tuple[int, int]]:
        with server.client() as client:
            answers = []
            for _ in range(2):
                reply = client.post("/print", json={"order_id": f"H-{n}", "text": f"order H-{n}"})
                answers.append((reply.status_code, reply.json()["job_id"]))
            return answers

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(16)))
    for (first, job), (again, same) in results:
        assert (first, again) == (202, 200) and job == same
    jobs = {job for (_, job), _ in results}
    assert len(jobs) == 16
    tickets = printer.wait_for_tickets(16, DEADLINE)
    assert len(tickets) == 16
    printed = [int(match.group(1)) for t in tickets if (match := ORDER.search(t.text))]
    job_of = {n: result[0][1] for n, result in enumerate(results)}
    assert [job_of[n] for n in printed] == sorted(jobs)
