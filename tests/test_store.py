"""The SQLite job store: durability on a real file, guarded transitions, idempotency."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoonprint.db import DB_FILENAME, MIGRATIONS
from spoonprint.domain.job import Job, JobState, NewJob
from spoonprint.errors import InvalidTransition, JobNotFound, StoreUnavailable
from spoonprint.queue.sqlite import LeaseNew, SqliteJobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    s = SqliteJobStore.open(tmp_path)
    yield s
    s.close()


def new(printer: str = "kitchen", **kw: object) -> NewJob:
    return NewJob(printer=printer, payload={"text": "hi"}, **kw)  # type: ignore[arg-type]


def test_enqueue_is_on_disk_when_it_returns(tmp_path: Path, store: SqliteJobStore) -> None:
    job, created = store.enqueue(new(order_id="A-1"))
    assert created and job.state is JobState.QUEUED
    # A second, independent connection sees the committed row.
    other = sqlite3.connect(tmp_path / DB_FILENAME)
    row = other.execute("SELECT state, order_id FROM jobs WHERE id = ?", (job.id,)).fetchone()
    other.close()
    assert row == ("queued", "A-1")


def test_wal_and_full_sync(tmp_path: Path, store: SqliteJobStore) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_reprints_stored_before_the_upgrade_learn_when_their_order_came(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    for script in MIGRATIONS[:5]:  # the schema before reprints kept the order's time
        for statement in script.split(";"):
            old.execute(statement)
    old.execute("PRAGMA user_version=5")
    # Job 2 reprints 1, job 3 reprints 2; job 4 reprints a job deleted since.
    chain = [(1, 100.0, None), (2, 200.0, 1), (3, 300.0, 2), (4, 400.0, 99)]
    for job_id, created_at, reprint_of in chain:
        old.execute(
            "INSERT INTO jobs (id, printer, state, payload, created_at, updated_at, reprint_of)"
            " VALUES (?, 'kitchen', 'printed', '{}', ?, ?, ?)",
            (job_id, created_at, created_at, reprint_of),
        )
    old.close()
    store = SqliteJobStore.open(tmp_path)
    try:
        assert [store.get(n).ordered_at for n in (1, 2, 3, 4)] == [100.0, 100.0, 100.0, 400.0]
        assert store.get(store.reprint(3).id).ordered_at == 100.0
    finally:
        store.close()


def test_same_order_id_or_key_returns_first_job(store: SqliteJobStore) -> None:
    first, _ = store.enqueue(new(order_id="A-1"))
    again, created = store.enqueue(new(order_id="A-1"))
    assert not created and again.id == first.id
    keyed, _ = store.enqueue(new(idempotency_key="k-1"))
    again, created = store.enqueue(new(idempotency_key="k-1", order_id="other"))
    assert not created and again.id == keyed.id
    assert len(store.pending()) == 2


def test_a_batch_of_new_orders_costs_two_inserts_each_and_a_repeat_one_lookup(
    store: SqliteJobStore,
) -> None:
    """The writer thread's work per order is the acceptance rate's limit: no savepoint and no
    duplicate lookup unless a job is refused or an order repeated."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.enqueue_many([new(order_id="B-1"), new(order_id="B-2"), new(order_id="B-1")])
    store._conn.set_trace_callback(None)
    verbs = [" ".join(statement.split()[:3]) for statement in statements]
    assert verbs == [
        "BEGIN IMMEDIATE",
        *["INSERT INTO jobs", "INSERT INTO job_events"] * 2,
        "INSERT INTO jobs",  # B-1 again: not inserted...
        "UPDATE sqlite_sequence SET",  # ...the number it drew given back...
        "SELECT id, printer,",  # ...and its first job looked up
        "COMMIT",
    ]
    assert [job.order_id for job in store.pending()] == ["B-1", "B-2"]
    # The repeat took no job number.
    assert store.enqueue(new(order_id="B-3"))[0].id == 3


def test_concurrent_duplicates_make_one_job(store: SqliteJobStore) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        results.append(store.enqueue(new(order_id="same"))[1])

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert len(store.pending()) == 1


def test_claims_in_acceptance_order_per_printer(store: SqliteJobStore) -> None:
    a = store.enqueue(new("kitchen"))[0]
    b = store.enqueue(new("bar"))[0]
    c = store.enqueue(new("kitchen"))[0]
    first = store.claim_next("kitchen")
    assert first is not None and first.id == a.id and first.state is JobState.PRINTING
    store.mark_printed(a.id)
    second = store.claim_next("kitchen")
    assert second is not None and second.id == c.id
    assert store.claim_next("kitchen") is None
    bar = store.claim_next("bar")
    assert bar is not None and bar.id == b.id


def test_release_counts_attempts_and_keeps_order(store: SqliteJobStore) -> None:
    a = store.enqueue(new())[0]
    store.enqueue(new())
    store.claim_next("kitchen")
    released = store.release(a.id, "printer offline", maybe_printed=False)
    assert released.state is JobState.QUEUED and released.attempts == 1
    assert released.last_error == "printer offline" and not released.maybe_printed
    again = store.claim_next("kitchen")
    assert again is not None and again.id == a.id


def test_transition_table_is_enforced(store: SqliteJobStore) -> None:
    job = store.enqueue(new())[0]
    with pytest.raises(InvalidTransition):
        store.mark_printed(job.id)  # queued -> printed skips printing
    store.claim_next("kitchen")
    store.mark_printed(job.id)
    with pytest.raises(InvalidTransition):
        store.cancel(job.id)  # printed is final
    with pytest.raises(JobNotFound):
        store.get(10_000)


def test_history_records_every_transition(store: SqliteJobStore) -> None:
    job = store.enqueue(new())[0]
    store.claim_next("kitchen")
    store.release(job.id, "offline", maybe_printed=False)
    store.claim_next("kitchen")
    store.mark_printed(job.id, "confirmed")
    states = [(e.from_state, e.to_state) for e in store.events(job.id)]
    assert states == [
        (None, JobState.QUEUED),
        (JobState.QUEUED, JobState.PRINTING),
        (JobState.PRINTING, JobState.QUEUED),
        (JobState.QUEUED, JobState.PRINTING),
        (JobState.PRINTING, JobState.PRINTED),
    ]


def test_recovery_after_crash_flags_reprint(tmp_path: Path) -> None:
    store = SqliteJobStore.open(tmp_path)
    job = store.enqueue(new())[0]
    unsent = store.enqueue(new("bar"))[0]
    store.claim_next("kitchen")
    store.mark_ticket_started(job.id, "")
    store.claim_next("bar")  # only its printer's status was asked
    store.close()  # the process "dies" with the jobs printing
    reopened = SqliteJobStore.open(tmp_path)
    recovered = reopened.recover_interrupted()
    assert [j.id for j in recovered] == [job.id, unsent.id]
    assert reopened.get(job.id).state is JobState.QUEUED
    assert reopened.get(job.id).maybe_printed
    assert reopened.get(unsent.id).state is JobState.QUEUED
    assert not reopened.get(unsent.id).maybe_printed
    reopened.close()


def test_a_ticket_is_started_only_under_its_lease(store: SqliteJobStore) -> None:
    job = store.enqueue(new())[0]
    with pytest.raises(InvalidTransition):
        store.mark_ticket_started(job.id, "a")  # not leased yet
    store.claim_next("kitchen", owner="a", lease_seconds=60)
    with pytest.raises(InvalidTransition):
        store.mark_ticket_started(job.id, "b")
    store.mark_ticket_started(job.id, "a")
    # A failed attempt that sent nothing is not marked; the next attempt starts unsent.
    store.release(job.id, "dropped", maybe_printed=False, owner="a")
    store.claim_next("kitchen", owner="a", lease_seconds=60)
    (recovered,) = store.recover_interrupted()
    assert not recovered.maybe_printed


def test_read_only_database_refuses_writes(tmp_path: Path) -> None:
    store = SqliteJobStore.open(tmp_path)
    store.enqueue(new())
    store.close()
    conn = sqlite3.connect(
        f"file:{tmp_path / DB_FILENAME}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    read_only = SqliteJobStore(conn)
    with pytest.raises(StoreUnavailable):
        read_only.enqueue(new())
    assert len(read_only.pending()) == 1
    read_only.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteJobStore.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        SqliteJobStore.open(tmp_path)


def test_an_older_job_still_printing_blocks_later_ones(store: SqliteJobStore) -> None:
    first = store.enqueue(new())[0]
    second = store.enqueue(new())[0]
    claimed = store.claim_next("kitchen", owner="dead-process", lease_seconds=60)
    assert claimed is not None and claimed.id == first.id
    store.mark_ticket_started(first.id, "dead-process")
    assert store.claim_next("kitchen", owner="me") is None  # order before speed
    store.recover_interrupted()
    again = store.claim_next("kitchen", owner="me")
    assert again is not None and again.id == first.id and again.maybe_printed
    assert store.get(second.id).state is JobState.QUEUED


def test_leases_guard_every_finish(store: SqliteJobStore) -> None:
    job = store.enqueue(new())[0]
    store.claim_next("kitchen", owner="a", lease_seconds=60)
    with pytest.raises(InvalidTransition):
        store.mark_printed(job.id, owner="b")
    with pytest.raises(InvalidTransition):
        store.heartbeat(job.id, "b", 60)
    store.heartbeat(job.id, "a", 60)
    assert store.mark_printed(job.id, owner="a").state is JobState.PRINTED


def test_expired_leases_are_recovered_and_fresh_ones_kept(tmp_path: Path) -> None:
    now = [1000.0]
    store = SqliteJobStore(SqliteJobStore.open(tmp_path)._conn, clock=lambda: now[0])
    job = store.enqueue(new())[0]
    store.claim_next("kitchen", owner="a", lease_seconds=10)
    store.mark_ticket_started(job.id, "a")
    now[0] += 5
    assert store.recover_interrupted(expired_only=True) == []
    now[0] += 6
    (recovered,) = store.recover_interrupted(expired_only=True)
    assert recovered.id == job.id and recovered.state is JobState.QUEUED
    assert recovered.maybe_printed and recovered.lease_owner is None
    store.close()


def test_move_to_backup_keeps_order_and_history(store: SqliteJobStore) -> None:
    a = store.enqueue(new("kitchen"))[0]
    b = store.enqueue(new("kitchen"))[0]
    store.enqueue(new("bar"))
    moved = store.move_to_backup("kitchen", "bar")
    assert [j.id for j in moved] == [a.id, b.id]
    assert all(j.printer == "bar" and j.original_printer == "kitchen" for j in moved)
    assert moved[0].moved_to_backup
    assert store.events(a.id)[-1].detail == "moved from kitchen to bar"
    assert [j.id for j in store.pending("bar")][:2] == [a.id, b.id]


def test_reprint_is_a_new_job_marked_when_it_may_be_a_duplicate(store: SqliteJobStore) -> None:
    job = store.enqueue(new(order_id="A-9"))[0]
    with pytest.raises(InvalidTransition):
        store.reprint(job.id)  # still queued: it will print anyway
    store.claim_next("kitchen")
    store.mark_printed(job.id)
    again = store.reprint(job.id)
    assert again.id != job.id and again.reprint_of == job.id and again.maybe_printed
    assert again.order_id is None  # the order id stays with the first job
    assert store.get(job.id).state is JobState.PRINTED


def test_sent_is_final(store: SqliteJobStore) -> None:
    job = store.enqueue(new())[0]
    store.claim_next("kitchen")
    assert store.mark_sent(job.id).state is JobState.SENT
    with pytest.raises(InvalidTransition):
        store.cancel(job.id)


def test_pending_counted_per_printer(store: SqliteJobStore) -> None:
    for printer in ("kitchen", "kitchen", "bar"):
        store.enqueue(new(printer))
    done = store.claim_next("bar")
    assert done is not None
    assert store.count_pending_by_printer() == {"kitchen": 2, "bar": 1}
    store.mark_printed(done.id)
    assert store.count_pending_by_printer() == {"kitchen": 2}


# -- a new job leased in the transaction that stores it -------------------------------------


def lease_to(owner: str, expected: set[str]) -> LeaseNew:
    """Leases a new job to ``owner`` (for 30 s) when its order id is in ``expected``."""

    def lease(order: NewJob, job: Job) -> tuple[str, float] | None:
        return (owner, 30.0) if order.order_id in expected else None

    return lease


def test_a_new_job_can_be_leased_with_its_order_in_one_transaction(
    tmp_path: Path, store: SqliteJobStore
) -> None:
    (outcome, other) = store.enqueue_many(
        [new(order_id="A-1"), new("bar", order_id="B-1")], lease=lease_to("w1", {"A-1"})
    )
    assert not isinstance(outcome, Exception) and not isinstance(other, Exception)
    job, created = outcome
    assert created and job.state is JobState.PRINTING and job.lease_owner == "w1"
    assert other[0].state is JobState.QUEUED  # not asked for
    # On disk as returned, with its history: accepted, then its first attempt.
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    row = conn.execute("SELECT state, lease_owner FROM jobs WHERE id = ?", (job.id,)).fetchone()
    assert row == ("printing", "w1")
    assert [(e.to_state, e.detail) for e in store.events(job.id)][1:] == [
        (JobState.PRINTING, "attempt 1")
    ]
    # Its owner finishes it as if it had leased it itself.
    assert store.mark_printed(job.id, owner="w1").state is JobState.PRINTED


def test_no_lease_with_the_order_while_an_older_job_of_its_printer_waits(
    store: SqliteJobStore,
) -> None:
    older, _ = store.enqueue(new(order_id="old"))
    ((job, _),) = store.enqueue_many([new(order_id="A-1")], lease=lease_to("w1", {"A-1"}))  # type: ignore[misc]
    assert job.state is JobState.QUEUED  # order first: the older one prints before it
    assert store.claim_next("kitchen", "w1").id == older.id  # type: ignore[union-attr]


def test_no_lease_for_a_repeated_order_or_a_reprint(store: SqliteJobStore) -> None:
    first, _ = store.enqueue(new(order_id="A-1"))
    store.mark_failed(first.id, "gave up")
    lease = lease_to("w1", {"A-1", None})  # type: ignore[arg-type]
    ((again, created),) = store.enqueue_many([new(order_id="A-1")], lease=lease)  # type: ignore[misc]
    assert not created and again.id == first.id and again.state is JobState.FAILED
    ((reprint, created),) = store.enqueue_many([new(maybe_printed=True)], lease=lease)  # type: ignore[misc]
    assert created and reprint.state is JobState.QUEUED  # a REPRINT is not rendered ahead


def test_orders_through_the_writer_thread_are_leased_as_lease_new_says(
    store: SqliteJobStore,
) -> None:
    store.lease_new = lease_to("w1", {"A-1"})

    async def main() -> list[Job]:
        leased, _ = await store.enqueue_async(new(order_id="A-1"))
        queued, _ = await store.enqueue_async(new("bar", order_id="B-1"))
        return [leased, queued]

    leased, queued = asyncio.run(main())
    assert (leased.state, queued.state) == (JobState.PRINTING, JobState.QUEUED)
    assert store.enqueue(new(order_id="A-2"))[0].state is JobState.QUEUED  # not that way


def test_no_second_lease_on_a_printer_for_an_older_job_moved_to_it(store: SqliteJobStore) -> None:
    """Found by the property test of job states: a failed printer's jobs moved to its backup
    are older (lower ids) than the one the backup is printing, and were leased beside it."""
    kitchen, _ = store.enqueue(new("kitchen"))
    bar, _ = store.enqueue(new("bar"))
    assert store.claim_next("bar", "w1").id == bar.id  # type: ignore[union-attr]
    store.move_to_backup("kitchen", "bar")
    assert store.claim_next("bar", "w2") is None  # one ticket at a time
    store.mark_printed(bar.id, owner="w1")
    assert store.claim_next("bar", "w1").id == kitchen.id  # type: ignore[union-attr]
