"""HealthMonitor against a real worker, the in-memory transport and an in-memory SQLite store:
probes, strategies in order with their outcomes, human-needed faults, try limits, settings."""

from __future__ import annotations

import asyncio

from spoonprint.config import RecoverySettings
from spoonprint.delivery.breaker import BreakerState, CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.worker import PrinterWorker
from spoonprint.domain.job import JobState, NewJob
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.monitor import HealthMonitor
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface
from spoonprint.transports.memory import MemoryTransport

OFFLINE = b"\x1a"  # DLE EOT 1 reply: offline
PAPER_END = b"\x32"  # DLE EOT 2 reply: stopped by paper end
ERROR_CAUSE = b"\x52"  # DLE EOT 2 reply: error
QUEUE_STOPPED = Health((Problem(Fault.QUEUE_DISABLED, "queue stopped"),))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    settings: RecoverySettings | None = None, clock: Clock | None = None
) -> tuple[HealthMonitor, PrinterWorker]:
    worker = PrinterWorker(
        "kitchen",
        SqliteJobStore.in_memory(),
        MemoryTransport(),
        renderer_for(Protocol.ESCPOS, default_typeface()),
        PrinterProfile(),
        RetryPolicy(initial=60, maximum=60, jitter=0),
        breaker=CircuitBreaker(threshold=1, reset_after=60),
    )
    monitor = HealthMonitor({"kitchen": worker}, settings or RecoverySettings(), clock or Clock())
    return monitor, worker


def transport_of(worker: PrinterWorker) -> MemoryTransport:
    assert isinstance(worker.transport, MemoryTransport)
    return worker.transport


def strategy(name: str, fixes: Fault, calls: list[str], fix: object = None) -> Strategy:
    """A strategy that records its call, then heals (``fix`` is a callable) or raises."""

    async def act(problem: Problem) -> str:
        calls.append(name)
        if isinstance(fix, Exception):
            raise fix
        if callable(fix):
            fix()
        return f"{name} done"

    return Strategy(name, frozenset({fixes}), act)


def test_healthy_printer_probes_ok_and_runs_nothing() -> None:
    monitor, worker = make()
    calls: list[str] = []
    transport_of(worker).recovery = [strategy("enable", Fault.QUEUE_DISABLED, calls)]
    record = asyncio.run(monitor.check("kitchen"))
    assert record.health.ok and record.last_probe_at is not None and calls == []
    assert monitor.describe("kitchen")["health"] == "ok"


def test_paper_out_is_reported_with_advice_and_never_recovered() -> None:
    monitor, worker = make()
    calls: list[str] = []
    transport = transport_of(worker)
    transport.status = OFFLINE
    transport.replies[b"\x10\x04\x02"] = PAPER_END
    transport.recovery = [strategy("reconnect", Fault.UNREACHABLE, calls)]
    asyncio.run(monitor.check("kitchen"))
    described = monitor.describe("kitchen")
    assert described["health"] == "needs-attention"
    assert [p["fault"] for p in described["problems"]] == ["paper-out"]
    assert monitor.advice("kitchen") == ["paper out: load a new paper roll and close the cover"]
    assert calls == [] and not monitor.recent
    # DLE EOT 2 was asked to explain the offline answer.
    assert transport.queries == [b"\x10\x04\x01", b"\x10\x04\x02"]


def test_strategies_run_in_order_until_one_fixes_and_the_worker_resumes() -> None:
    async def scenario() -> None:
        monitor, worker = make()
        transport = transport_of(worker)
        transport.path_health = QUEUE_STOPPED
        calls: list[str] = []

        def heal() -> None:
            transport.path_health = HEALTHY

        transport.recovery = [
            strategy("first", Fault.QUEUE_DISABLED, calls, RecoveryFailed("could not")),
            strategy("second", Fault.QUEUE_DISABLED, calls, heal),
            strategy("third", Fault.QUEUE_DISABLED, calls),
        ]
        worker.breaker.record_failure()
        assert worker.breaker.state is BreakerState.OPEN
        record = await monitor.check("kitchen")
        assert calls == ["first", "second"]
        assert record.health.ok and record.recoveries == 1
        assert record.last_recovery_seconds is not None
        assert worker.breaker.state is BreakerState.CLOSED  # resumed: no waiting out the breaker
        stats = monitor.describe("kitchen")["strategies"]
        assert (stats["first"]["tried"], stats["first"]["succeeded"]) == (1, 0)
        assert (stats["second"]["tried"], stats["second"]["succeeded"]) == (1, 1)
        assert stats["third"]["tried"] == 0
        assert [(a.strategy, a.succeeded) for a in monitor.recent] == [
            ("first", False),
            ("second", True),
        ]

    asyncio.run(scenario())


def test_a_resumed_worker_prints_at_once_instead_of_after_its_backoff() -> None:
    async def scenario() -> None:
        monitor, worker = make()
        transport = transport_of(worker)
        transport.offline = True
        task = asyncio.create_task(worker.run())
        job, _ = worker.store.enqueue(NewJob("kitchen", {"text": "soup"}))
        worker.wake()
        async with asyncio.timeout(5), worker.progress:
            await worker.progress.wait_for(lambda: worker.state.consecutive_failures >= 1)
        await monitor.check("kitchen")
        assert monitor.records["kitchen"].health.faults() == {Fault.UNREACHABLE}
        transport.offline = False  # back; the worker's own backoff is 60 s
        await monitor.check("kitchen")
        async with asyncio.timeout(5), worker.progress:
            await worker.progress.wait_for(
                lambda: worker.store.get(job.id).state is JobState.PRINTED
            )
        assert monitor.records["kitchen"].recoveries == 1
        worker.request_stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_missing_admin_rights_are_recorded_plainly_and_the_try_limit_holds() -> None:
    clock = Clock()
    monitor, worker = make(RecoverySettings(max_tries=2), clock)
    transport = transport_of(worker)
    transport.path_health = Health((Problem(Fault.SPOOLER_DOWN, "spooler stopped"),))
    calls: list[str] = []
    admin = NeedsAdmin("restarting the spooler needs Administrator rights")
    transport.recovery = [strategy("restart-spooler", Fault.SPOOLER_DOWN, calls, admin)]
    asyncio.run(monitor.check("kitchen"))
    asyncio.run(monitor.check("kitchen"))  # a moment later: not again yet
    assert calls == ["restart-spooler"]
    for _ in range(3):
        clock.now += 5
        asyncio.run(monitor.check("kitchen"))
    assert calls == ["restart-spooler"] * 2  # then only reported
    outcome = monitor.describe("kitchen")["strategies"]["restart-spooler"]["last_outcome"]
    assert (
        outcome == "needs administrator rights: restarting the spooler needs Administrator rights"
    )
    asyncio.run(monitor.trigger("kitchen"))  # staff asked: the limit is lifted once
    assert calls == ["restart-spooler"] * 3
    assert monitor.describe("kitchen")["health"] == "recovering"


def test_a_crashing_strategy_does_not_stop_the_monitor() -> None:
    monitor, worker = make()
    transport = transport_of(worker)
    transport.path_health = QUEUE_STOPPED
    calls: list[str] = []
    transport.recovery = [strategy("broken", Fault.QUEUE_DISABLED, calls, KeyError("boom"))]
    asyncio.run(monitor.check("kitchen"))
    assert monitor.recent[-1].outcome == "error: 'boom'"


def test_disabled_strategies_are_skipped_and_settings_apply_at_once() -> None:
    monitor, worker = make()
    transport = transport_of(worker)
    transport.path_health = QUEUE_STOPPED
    calls: list[str] = []
    transport.recovery = [
        strategy("enable", Fault.QUEUE_DISABLED, calls, lambda: None),
    ]
    monitor.apply(RecoverySettings(disabled_strategies=["enable"]))
    asyncio.run(monitor.check("kitchen"))
    assert calls == []
    assert monitor.describe("kitchen")["strategies"]["enable"]["enabled"] is False
    monitor.apply(RecoverySettings())
    asyncio.run(monitor.check("kitchen"))
    assert calls == ["enable"]


def test_no_probe_in_the_middle_of_a_ticket() -> None:
    async def scenario() -> None:
        monitor, worker = make()
        async with worker.line:  # a ticket is being written
            assert await monitor.probe("kitchen") is None
        assert await monitor.probe("kitchen") == HEALTHY
        assert transport_of(worker).queries == [b"\x10\x04\x01"]

    asyncio.run(scenario())


def test_printer_error_gets_the_reset_command() -> None:
    monitor, worker = make()
    transport = transport_of(worker)
    transport.status = OFFLINE
    transport.replies[b"\x10\x04\x02"] = ERROR_CAUSE
    asyncio.run(monitor.check("kitchen"))
    assert transport.sent == [b"\x10\x05\x02\x1b\x40"]  # DLE ENQ 2, ESC @
    reset = monitor.describe("kitchen")["strategies"]["reset"]
    assert (reset["tried"], reset["succeeded"]) == (1, 0)  # the scripted printer stays in error
    assert monitor.advice("kitchen") == [
        "printer error: open and close the cover; if it stays, switch it off and on"
    ]
