"""Housekeeping on real SQLite files and log folders: which jobs go, which stay, logs rotated
and pruned, the database compacted, also while a real server takes orders."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from spoonprint.config import Settings
from spoonprint.db import DB_FILENAME, connect
from spoonprint.domain.job import JobState, NewJob
from spoonprint.housekeeping import (
    DAY,
    LOG_BACKUPS,
    data_folder_free,
    first_entry_time,
    prune_jobs,
    run_cleanup,
    run_daily_housekeeping,
    seconds_until,
)
from spoonprint.instance_lock import InstanceLock
from spoonprint.logs import LOG_FILE
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.security.events import SECURITY_LOG, SecurityLog, read_events

from .conftest import ServerFactory, run_spoonprint

NOW = time.time()
OLD = NOW - 100 * DAY  # past the default keep_days (90)
RECENT = NOW - 10 * DAY
ALL_STATES = [state.value for state in JobState]


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def setup_connection(path: Path) -> sqlite3.Connection:
    """The real schema and settings, but no fsync per transaction: these tests write thousands
    of jobs to set the scene, and durability is not what they check."""
    conn = connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def make_job(store: SqliteJobStore, clock: Clock, state: str, at: float, tag: str) -> int:
    """A job brought to ``state`` through the store's own transitions, all at time ``at``."""
    clock.at = at
    printer = f"p-{tag}"  # its own printer, so claim_next takes this job
    job, _ = store.enqueue(NewJob(printer, {"text": f"order {tag}"}, order_id=tag))
    if state in ("printing", "printed", "sent", "failed"):
        claimed = store.claim_next(printer, owner="test")
        assert claimed is not None and claimed.id == job.id
        if state == "printed":
            store.mark_printed(job.id, owner="test")
        elif state == "sent":
            store.mark_sent(job.id, owner="test")
        elif state == "failed":
            store.mark_failed(job.id, "paper out for good", owner="test")
    elif state == "cancelled":
        store.cancel(job.id)
    elif state == "held":
        store.hold_queued(printer)
    assert store.get(job.id).state == state
    return job.id


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    settings = Settings()
    settings.server.data_dir = data_dir
    return settings


@pytest.fixture
def store_at(data_dir: Path) -> Iterator[tuple[SqliteJobStore, Clock]]:
    clock = Clock(NOW)
    store = SqliteJobStore(setup_connection(data_dir / DB_FILENAME), clock)
    yield store, clock
    store.close()


def remaining(data_dir: Path) -> dict[int, str]:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return dict(conn.execute("SELECT id, state FROM jobs").fetchall())
    finally:
        conn.close()


def event_job_ids(data_dir: Path) -> set[int]:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return {row[0] for row in conn.execute("SELECT job_id FROM job_events")}
    finally:
        conn.close()


def test_only_old_printed_sent_and_cancelled_jobs_go(
    data_dir: Path, settings: Settings, store_at: tuple[SqliteJobStore, Clock]
) -> None:
    store, clock = store_at
    jobs = {
        (state, age): make_job(store, clock, state, at, f"{state}-{age}")
        for state in ALL_STATES
        for age, at in (("old", OLD), ("recent", RECENT))
    }
    # Reprints: a kept (recent) reprint keeps its old original; an old reprint of an old
    # original goes with it (newest first, so the foreign key is never broken).
    clock.at = RECENT
    kept_reprint = store.reprint(jobs["printed", "old"]).id
    store.cancel(kept_reprint)
    orphan_original = make_job(store, clock, "printed", OLD - DAY, "orphan")
    clock.at = OLD
    old_reprint = store.reprint(orphan_original).id
    claimed = store.claim_next(store.get(old_reprint).printer, owner="test")
    assert claimed is not None
    store.mark_printed(old_reprint, owner="test")
    conn = connect(data_dir / DB_FILENAME)
    last_event = conn.execute("SELECT MAX(id) FROM job_events").fetchone()[0]
    conn.execute("INSERT INTO webhook_cursor (url, last_event_id) VALUES ('http://x', ?)", (7,))
    conn.close()

    dry = run_cleanup(settings, exclusive=True, now=NOW, dry_run=True)
    assert dict(dry.jobs_deleted) == {"sent": 1, "cancelled": 1, "printed": 2}
    assert len(remaining(data_dir)) == len(jobs) + 3, "a dry run deletes nothing"

    report = run_cleanup(settings, exclusive=True, now=NOW)
    assert dict(report.jobs_deleted) == dict(dry.jobs_deleted)
    assert report.events_deleted == dry.events_deleted > 0
    gone = {jobs["sent", "old"], jobs["cancelled", "old"], orphan_original, old_reprint}
    left = remaining(data_dir)
    assert set(left) == (set(jobs.values()) | {kept_reprint, orphan_original, old_reprint}) - gone
    assert jobs["printed", "old"] in left, "a kept reprint points at it"
    for state in ("failed", "held", "queued", "printing"):
        assert left[jobs[state, "old"]] == state, f"an old {state} job is never deleted"
    assert not event_job_ids(data_dir) & gone, "their history goes with them"
    assert event_job_ids(data_dir) == set(left), "every kept job keeps its history"

    conn = connect(data_dir / DB_FILENAME)
    assert conn.execute("SELECT last_event_id FROM webhook_cursor").fetchone()[0] == 7
    clock.at = NOW
    new_job, _ = store.enqueue(NewJob("p-new", {"text": "after cleanup"}))
    assert new_job.id > max(jobs.values()) and new_job.id not in gone
    new_event = conn.execute("SELECT MAX(id) FROM job_events").fetchone()[0]
    assert new_event > last_event, "event ids are never reused (the webhook cursor stays right)"
    conn.close()

    assert run_cleanup(settings, exclusive=True, now=NOW).jobs_total == 0


def test_keep_days_is_the_cutoff(
    data_dir: Path, settings: Settings, store_at: tuple[SqliteJobStore, Clock]
) -> None:
    store, clock = store_at
    ages = {
        days: make_job(store, clock, "printed", NOW - days * DAY, f"d{days}")
        for days in (5, 29, 31)
    }
    settings.housekeeping.keep_days = 30
    assert run_cleanup(settings, exclusive=True, now=NOW).jobs_total == 1
    assert set(remaining(data_dir)) == {ages[5], ages[29]}
    assert run_cleanup(settings, exclusive=True, now=NOW, keep_days=1).jobs_total == 2


def test_many_jobs_are_deleted_in_batches_and_the_file_shrinks(
    data_dir: Path, settings: Settings, store_at: tuple[SqliteJobStore, Clock]
) -> None:
    store, clock = store_at
    clock.at = OLD
    payload = {"text": "x" * 2000}
    news = [NewJob("p", payload, order_id=f"o{i}") for i in range(1500)]
    for start in range(0, len(news), 500):
        store.enqueue_many(news[start : start + 500])
    for _ in range(1500):
        job = store.claim_next("p", owner="t")
        assert job is not None
        store.mark_printed(job.id, owner="t")
    kept = make_job(store, clock, "failed", OLD, "kept")

    conn = connect(data_dir / DB_FILENAME)
    deleted, events = prune_jobs(conn, NOW - 90 * DAY, batch=200)
    conn.close()
    assert deleted == {"printed": 1500} and events == 1500 * 3
    assert set(remaining(data_dir)) == {kept}

    # The pages freed by deleting go back to the disk.
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 0
    conn.close()
    report = run_cleanup(settings, exclusive=True, now=NOW)
    assert report.vacuumed
    assert report.db_bytes_after < report.db_bytes_before / 4, report
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert not run_cleanup(settings, exclusive=True, now=NOW).vacuumed, "nothing to reclaim"


def test_a_fresh_data_folder_gets_no_database(settings: Settings, data_dir: Path) -> None:
    report = run_cleanup(settings, exclusive=True, now=NOW)
    assert report.jobs_total == 0 and not report.vacuumed
    assert not (data_dir / DB_FILENAME).exists()


# -- logs -------------------------------------------------------------------------------


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S,000")


def write_log(path: Path, first_at: float, lines: int = 3, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"{stamp(first_at + i)} INFO    spoonprint: line {i} of {path.name}\n" for i in range(lines)
    )
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_first_entry_time_reads_both_log_formats(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", OLD)
    assert abs((first_entry_time(tmp_path / "a.log") or 0) - OLD) < 1
    security = SecurityLog(tmp_path / SECURITY_LOG)
    security.record("203.0.113.9", "GET", "/wp-login.php", "scanner")
    security.close()
    assert abs((first_entry_time(tmp_path / SECURITY_LOG) or 0) - time.time()) < 5
    (tmp_path / "empty.log").write_text("")
    assert first_entry_time(tmp_path / "empty.log") is None
    assert first_entry_time(tmp_path / "missing.log") is None


def test_logs_are_rotated_when_old_and_pruned_when_older(
    settings: Settings, data_dir: Path
) -> None:
    logs = data_dir / "logs"
    write_log(logs / LOG_FILE, NOW - 8 * DAY)  # older than log_rotate_days (7)
    write_log(logs / SECURITY_LOG, NOW - 2 * DAY)  # not yet
    for n in range(1, LOG_BACKUPS + 1):  # spoonprint.log.1 .. .5, last written 11, 21 .. days ago
        write_log(
            logs / f"{LOG_FILE}.{n}", NOW - (10 * n + 5) * DAY, mtime=NOW - (10 * n + 1) * DAY
        )
    write_log(logs / f"{SECURITY_LOG}.1", NOW - 40 * DAY, mtime=NOW - 35 * DAY)
    write_log(logs / f"{LOG_FILE}.9", NOW - DAY, mtime=NOW - DAY)  # beyond what is kept
    live_text = (logs / LOG_FILE).read_text()

    report = run_cleanup(settings, now=NOW)  # no server: the command line may rotate
    assert report.logs_rotated == [logs / LOG_FILE]
    assert not report.rotation_skipped
    assert not (logs / LOG_FILE).exists(), "the server starts a new one on its next line"
    assert (logs / f"{LOG_FILE}.1").read_text() == live_text
    assert (logs / SECURITY_LOG).exists()
    # Shifted up one: .2 was written 11 days ago, .3 21, .4 31, .5 41 (the old .5 fell off).
    # log_keep_days (30) removes .4, .5, the 35-day-old security log and the stray .9.
    left = sorted(p.name for p in logs.iterdir())
    assert left == sorted([f"{LOG_FILE}.{n}" for n in (1, 2, 3)] + [SECURITY_LOG]), left
    assert sorted(p.name for p in report.logs_removed) == sorted(
        [f"{LOG_FILE}.4", f"{LOG_FILE}.5", f"{LOG_FILE}.9", f"{SECURITY_LOG}.1"]
    )


def test_the_command_line_leaves_a_running_servers_logs_alone(
    settings: Settings, data_dir: Path
) -> None:
    logs = data_dir / "logs"
    write_log(logs / LOG_FILE, NOW - 8 * DAY)
    write_log(logs / f"{LOG_FILE}.3", NOW - 60 * DAY, mtime=NOW - 50 * DAY)
    lock = InstanceLock(data_dir)  # what a running server holds
    lock.acquire()
    try:
        with data_folder_free(data_dir) as free:
            assert not free
        report = run_cleanup(settings, now=NOW)
    finally:
        lock.release()
    assert report.logs_rotated == []
    assert "running server rotates its own logs" in report.rotation_skipped
    assert (logs / LOG_FILE).exists()
    assert report.logs_removed == [logs / f"{LOG_FILE}.3"], "old rotated files still go"
    assert (data_dir / "spoonprint.lock").read_text().strip() == str(os.getpid())
    with data_folder_free(data_dir) as free:
        assert free


def test_inside_the_server_its_own_handler_rotates_without_losing_a_line(
    settings: Settings, data_dir: Path
) -> None:
    path = data_dir / "logs" / SECURITY_LOG
    path.parent.mkdir(parents=True)
    old_entry = {"time": stamp(NOW - 9 * DAY), "ts": NOW - 9 * DAY, "ip": "192.0.2.1"}
    path.write_text(json.dumps({**old_entry, "event": "old"}) + "\n", encoding="utf-8")
    security = SecurityLog(path)  # the server's handler, holding the file open
    try:
        security.record("192.0.2.2", "GET", "/", "before")
        report = run_cleanup(settings, exclusive=True, now=NOW)
        assert report.logs_rotated == [path]
        security.record("192.0.2.3", "GET", "/", "after")
    finally:
        security.close()
    assert [e["event"] for e in read_events(path)] == ["old", "before", "after"]
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["after"]


def test_old_virtual_printer_tickets_go(settings: Settings, data_dir: Path) -> None:
    folder = data_dir / "virtual-printer"
    folder.mkdir(parents=True)
    for name, age in (("000001-a.bin", 100), ("000001-a.txt", 100), ("000002-b.bin", 3)):
        (folder / name).write_bytes(b"ticket")
        os.utime(folder / name, (NOW - age * DAY, NOW - age * DAY))
    assert run_cleanup(settings, exclusive=True, now=NOW).tickets_removed == 2
    assert [p.name for p in folder.iterdir()] == ["000002-b.bin"]


# -- every day inside serve -------------------------------------------------------------


def test_seconds_until() -> None:
    at = datetime(2024, 3, 1, 3, 59, 30)
    assert seconds_until("04:00", at) == 30
    assert seconds_until("04:00", datetime(2024, 3, 1, 4, 0)) == DAY
    assert seconds_until("03:00", at) == DAY - 3570  # 03:00 tomorrow


def test_daily_housekeeping_runs_at_its_hour_until_stopped(
    data_dir: Path, settings: Settings, store_at: tuple[SqliteJobStore, Clock]
) -> None:
    store, clock = store_at
    doomed = make_job(store, clock, "printed", OLD, "doomed")
    kept = make_job(store, clock, "failed", OLD, "kept")
    started = datetime.now()
    # The wall clock as the server would see it, 0.3 s before housekeeping.daily_at.
    fake_start = datetime(2024, 3, 1, 3, 59, 59, 700000)

    def wall_clock() -> datetime:
        return fake_start + (datetime.now() - started)

    async def run() -> tuple[float, float]:
        stop_event = asyncio.Event()
        task = asyncio.create_task(run_daily_housekeeping(settings, stop_event, clock=wall_clock))
        begun = time.monotonic()
        deadline = begun + 10
        while doomed in remaining(data_dir):  # another thread deletes: nothing to await
            assert time.monotonic() < deadline, "housekeeping did not run"
            await asyncio.sleep(0.02)
        ran_after = time.monotonic() - begun
        stop_event.set()
        stop_begun = time.monotonic()
        await asyncio.wait_for(task, 2)  # it was waiting for tomorrow: stops at once
        return ran_after, time.monotonic() - stop_begun

    ran_after, stopped_in = asyncio.run(run())
    assert 0.2 < ran_after < 5
    assert stopped_in < 0.5
    assert set(remaining(data_dir)) == {kept}


def test_daily_housekeeping_can_be_turned_off(settings: Settings) -> None:
    settings.housekeeping.enabled = False
    asyncio.run(asyncio.wait_for(run_daily_housekeeping(settings, asyncio.Event()), 1))


# -- the command, beside a running server -----------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_spoonprint(None, *args)


def _fill(data_dir: Path, count: int) -> tuple[list[int], int]:
    """``count`` old printed jobs and one old failed job, written before the server starts."""
    clock = Clock(OLD)
    store = SqliteJobStore(setup_connection(data_dir / DB_FILENAME), clock)
    try:
        news = [
            NewJob("kitchen", {"text": "old " + "x" * 500}, order_id=f"old-{i}")
            for i in range(count)
        ]
        store.enqueue_many(news)
        printed = []
        for _ in range(count):
            job = store.claim_next("kitchen", owner="t")
            assert job is not None
            printed.append(store.mark_printed(job.id, owner="t").id)
        failed = make_job(store, clock, "failed", OLD, "old-failed")
    finally:
        store.close()
    return printed, failed


def test_cleanup_command_while_the_server_takes_orders(
    make_server: ServerFactory, printer: object
) -> None:
    port = printer.port  # type: ignore[attr-defined]
    server = make_server([{"name": "kitchen", "uri": f"tcp://127.0.0.1:{port}"}], start=False)
    server.data_dir.mkdir()
    printed, failed = _fill(server.data_dir, 3000)
    write_log(server.data_dir / "logs" / LOG_FILE, NOW - 8 * DAY)
    server.start()
    client = server.client()

    dry = _cli("cleanup", "--config", str(server.config), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["jobs_deleted"] == {"printed": 3000}

    accepted: list[int] = []
    problems: list[str] = []
    done = threading.Event()

    def take_orders() -> None:  # orders keep coming while cleanup deletes and vacuums
        n = 0
        while not done.is_set() and n < 400:
            answer = client.post("/print", json={"text": f"new order {n}"})
            if answer.status_code == 202:
                accepted.append(answer.json()["job_id"])
            else:
                problems.append(f"{answer.status_code} {answer.text}")
            n += 1

    orders = threading.Thread(target=take_orders)
    orders.start()
    try:
        result = _cli("cleanup", "--config", str(server.config))
    finally:
        done.set()
        orders.join(30)
    assert result.returncode == 0, result.stderr
    assert "Deleted 3000 job(s) finished more than 90 days ago (3000 printed)" in result.stdout
    assert "Logs not rotated: the running server rotates its own logs" in result.stdout
    assert "Compacted the database" in result.stdout
    assert problems == [] and accepted, "every order taken during cleanup was accepted"
    for job_id in accepted[-3:]:
        server.wait_for_state(job_id, "printed")
    assert client.get(f"/jobs/{printed[0]}").status_code == 404
    assert client.get(f"/jobs/{failed}").json()["state"] == "failed"
    assert set(remaining(server.data_dir)) >= {failed, *accepted}


@pytest.mark.e2e
def test_cleanup_command_reports_and_exits_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "spoonprint.toml"
    config.write_text('[server]\ndata_dir = "data"\n[housekeeping]\nkeep_days = 30\n')
    _fill(tmp_path / "data", 5)
    result = _cli("cleanup", "--config", str(config), "--no-vacuum")
    assert result.returncode == 0, result.stderr
    assert "Deleted 5 job(s) finished more than 30 days ago (5 printed)" in result.stdout
    assert "Failed and held jobs are kept." in result.stdout
    assert "Compacted" not in result.stdout
    bad = _cli("cleanup", "--config", str(config), "--keep-days", "0")
    assert bad.returncode == 2
