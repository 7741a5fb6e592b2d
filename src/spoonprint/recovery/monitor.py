"""The health monitor: probes every printer, heals what software can heal, reports the rest.

One loop per printer (a hung spooler never delays another printer's checks). Each round:

1. probe: the transport's path check (spooler queue state, stuck jobs, device file), then, for
   printers that answer status, the printer's own status bytes (never in the middle of a ticket:
   the worker's line lock is taken, and a round is skipped while a ticket is being written);
2. for every fault a strategy can fix, run the enabled strategies that fix it, in the
   transport's order, each at most ``max_tries`` times per episode, probing again after each;
   faults only a person can fix (paper, cover, power) are reported with plain advice;
3. when a printer that had a problem probes healthy again, its worker is resumed at once
   (breaker closed, backoff ended) and the time it took is recorded.

Rounds run every ``interval`` seconds, every few seconds while a problem lasts, at once after a
failed ticket (the worker pokes the monitor) and on demand (``trigger``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from spoonprint.config import RecoverySettings
from spoonprint.delivery.worker import PrinterWorker
from spoonprint.domain.status import status_dialect
from spoonprint.errors import PrinterError, PrinterOffline
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery

log = logging.getLogger("spoonprint.recovery")

#: Seconds between rounds while a printer has a problem (when ``interval`` is longer).
PROBLEM_INTERVAL = 3.0
#: How many recent recovery actions are kept for /recovery/status.
RECENT_ACTIONS = 50


@dataclass
class StrategyStats:
    tried: int = 0
    succeeded: int = 0
    last_at: float | None = None
    last_outcome: str = ""


@dataclass(frozen=True)
class RecoveryAction:
    at: float
    printer: str
    strategy: str
    fault: Fault
    succeeded: bool
    outcome: str


@dataclass
class PrinterRecord:
    """What the monitor knows about one printer."""

    health: Health = HEALTHY
    last_probe_at: float | None = None
    #: When the current problem was first seen; None while healthy.
    problem_since: float | None = None
    #: Seconds from the first sign of the last problem to healthy again.
    last_recovery_seconds: float | None = None
    recoveries: int = 0
    strategies: dict[str, StrategyStats] = field(default_factory=dict)
    #: (fault, strategy) -> tries in the current episode.
    tries: dict[tuple[Fault, str], int] = field(default_factory=dict)
    #: (fault, strategy) -> when it was last tried, so failed tickets in quick succession do
    #: not repeat the same step every few milliseconds.
    last_try: dict[tuple[Fault, str], float] = field(default_factory=dict)
    #: Faults a strategy could not fix for lack of administrator rights, with its message.
    needs_admin: dict[Fault, str] = field(default_factory=dict)


class HealthMonitor:
    def __init__(
        self,
        workers: dict[str, PrinterWorker],
        settings: RecoverySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workers = workers
        self.settings = settings
        self.clock = clock
        self.records = {name: PrinterRecord() for name in workers}
        self.recent: deque[RecoveryAction] = deque(maxlen=RECENT_ACTIONS)
        self._pokes = {name: asyncio.Event() for name in workers}
        self._rounds = {name: asyncio.Lock() for name in workers}
        self._stop = asyncio.Event()

    # -- control --------------------------------------------------------------------------

    def poke(self, name: str | None = None) -> None:
        """Probe ``name`` (or every printer) now rather than at the next interval."""
        for printer in [name] if name is not None else list(self._pokes):
            self._pokes[printer].set()

    def apply(self, settings: RecoverySettings) -> None:
        """Use new settings from now on; every printer is probed at once."""
        self.settings = settings
        for record in self.records.values():
            record.tries.clear()
        self.poke()

    def strategies(self, name: str) -> list[Strategy]:
        """Every strategy for ``name``, enabled or not, in the order they are tried."""
        worker = self.workers[name]
        found = list(worker.transport.strategies())
        reset = self._reset_strategy(worker)
        if reset is not None:
            found.append(reset)
        return found

    def strategy_names(self) -> set[str]:
        return {s.name for name in self.workers for s in self.strategies(name)}

    async def run(self) -> None:
        loops = [self._watch(name) for name in self.workers]
        await asyncio.gather(*loops)

    def stop(self) -> None:
        """End every printer's loop at its next wait (a round under way finishes first)."""
        self._stop.set()
        self.poke()

    async def trigger(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """A full recovery round now, for one printer or all, with the try limits lifted."""
        names = [name] if name is not None else list(self.workers)
        for printer in names:
            self.records[printer].tries.clear()
        await asyncio.gather(*(self.check(printer, force=True) for printer in names))
        return {printer: self.describe(printer) for printer in names}

    # -- one round ------------------------------------------------------------------------

    async def check(self, name: str, *, force: bool = False) -> PrinterRecord:
        """Probe ``name`` and run the strategies its faults call for."""
        record = self.records[name]
        async with self._rounds[name]:
            health = await self.probe(name, wait=force)
            if health is None:
                return record
            if health.ok:
                self._healthy(name, record)
                return record
            self._unhealthy(name, record, health)
            for problem in health.problems:
                if problem.human_needed or problem.fault not in health.faults():
                    continue
                fixed = await self._recover(name, record, problem, force=force)
                if fixed is not None:
                    health = fixed
                    if health.ok:
                        self._healthy(name, record)
                        return record
                    record.health = health
        return record

    async def probe(self, name: str, *, wait: bool = False) -> Health | None:
        """The printer's health now; None when a ticket is being written (``wait``: wait
        for it to finish instead)."""
        worker = self.workers[name]
        try:
            path = await worker.transport.check_path(self.settings.stuck_after)
        except Exception as exc:  # a transport must not raise here; if it does, say so
            log.exception("printer %s: path check failed", name)
            path = Health((Problem(Fault.NOT_RESPONDING, f"path check failed: {exc}"),))
        self.records[name].last_probe_at = self.clock()
        if not (worker.transport.reads_status and worker.confirm):
            return path
        if Fault.DEVICE_MISSING in path.faults():
            return path
        if worker.busy and not wait:
            return None
        async with worker.line:
            problem = await self._printer_status(worker)
        return path if problem is None else Health((*path.problems, problem))

    async def _printer_status(self, worker: PrinterWorker) -> Problem | None:
        dialect = status_dialect(worker.profile.protocol)
        transport = worker.transport
        try:
            reply = await transport.ask(StatusQuery(dialect.request, dialect.first, dialect.total))
            status = dialect.decode(reply)
            if not status.online and dialect.cause_request and dialect.decode_with_cause:
                cause = await transport.ask(StatusQuery(dialect.cause_request))
                status = dialect.decode_with_cause(reply, cause)
        except PrinterOffline as exc:
            return Problem(Fault.UNREACHABLE, str(exc))
        except PrinterError as exc:
            return Problem(Fault.NOT_RESPONDING, str(exc))
        if status.online:
            return None
        return Problem(Fault(status.fault or Fault.PRINTER_ERROR), status.problem)

    async def _recover(
        self, name: str, record: PrinterRecord, problem: Problem, *, force: bool
    ) -> Health | None:
        """Try the strategies for one problem; the health after the last one that ran."""
        after: Health | None = None
        for strategy in self._enabled(name, problem.fault):
            key = (problem.fault, strategy.name)
            if not force and not self._may_try(record, key):
                continue
            record.tries[key] = record.tries.get(key, 0) + 1
            record.last_try[key] = self.clock()
            try:
                ran, outcome = await self._run(strategy, problem)
            except NeedsAdmin as exc:
                ran, outcome = False, f"needs administrator rights: {exc}"
                record.needs_admin[problem.fault] = str(exc)
            after = await self.probe(name, wait=True)
            fixed = ran and after is not None and problem.fault not in after.faults()
            if ran and not fixed:
                outcome += "; the fault is still there"
            self._record(name, record, strategy, problem.fault, fixed, outcome)
            if fixed:
                return after
        return after

    def _may_try(self, record: PrinterRecord, key: tuple[Fault, str]) -> bool:
        if record.tries.get(key, 0) >= self.settings.max_tries:
            return False
        last = record.last_try.get(key)
        return last is None or self.clock() - last >= PROBLEM_INTERVAL

    @staticmethod
    async def _run(strategy: Strategy, problem: Problem) -> tuple[bool, str]:
        """(whether it ran, what happened); NeedsAdmin passes through to be remembered."""
        try:
            return True, await strategy.action(problem)
        except NeedsAdmin:
            raise
        except RecoveryFailed as exc:
            return False, str(exc)
        except Exception as exc:  # a strategy must never take the monitor down
            log.exception("recovery strategy %s crashed", strategy.name)
            return False, f"error: {exc}"

    def _enabled(self, name: str, fault: Fault) -> Sequence[Strategy]:
        disabled = set(self.settings.disabled_strategies)
        return [s for s in self.strategies(name) if fault in s.fixes and s.name not in disabled]

    def _reset_strategy(self, worker: PrinterWorker) -> Strategy | None:
        reset = status_dialect(worker.profile.protocol).reset
        if reset is None or not (worker.transport.reads_status and worker.confirm):
            return None

        async def send_reset(problem: Problem) -> str:
            try:
                async with worker.line:
                    await worker.transport.send(reset)
            except PrinterError as exc:
                raise RecoveryFailed(str(exc)) from exc
            return "sent the printer's error-recovery command"

        return Strategy(
            "reset",
            frozenset({Fault.PRINTER_ERROR, Fault.NOT_RESPONDING}),
            send_reset,
            "send the printer's recover-from-error and initialize commands",
        )

    # -- bookkeeping ----------------------------------------------------------------------

    def _healthy(self, name: str, record: PrinterRecord) -> None:
        record.tries.clear()
        record.last_try.clear()
        record.needs_admin.clear()
        record.health = HEALTHY
        if record.problem_since is None:
            return
        took = self.clock() - record.problem_since
        record.problem_since = None
        record.last_recovery_seconds = took
        record.recoveries += 1
        log.warning("printer %s: healthy again after %.1f s; printing resumes", name, took)
        self.workers[name].resume()

    def _unhealthy(self, name: str, record: PrinterRecord, health: Health) -> None:
        if record.problem_since is None:
            record.problem_since = self.clock()
        if health.faults() != record.health.faults():
            for problem in health.problems:
                log.warning(
                    "printer %s: %s (%s)", name, problem.advice, problem.detail or problem.fault
                )
        record.health = health

    def _record(
        self,
        name: str,
        record: PrinterRecord,
        strategy: Strategy,
        fault: Fault,
        fixed: bool,
        outcome: str,
    ) -> None:
        stats = record.strategies.setdefault(strategy.name, StrategyStats())
        stats.tried += 1
        stats.succeeded += int(fixed)
        stats.last_at = self.clock()
        stats.last_outcome = outcome
        self.recent.append(
            RecoveryAction(stats.last_at, name, strategy.name, fault, fixed, outcome)
        )
        level = logging.WARNING if fixed else logging.ERROR
        log.log(level, "printer %s: recovery %s for %s: %s", name, strategy.name, fault, outcome)

    async def _watch(self, name: str) -> None:
        poke = self._pokes[name]
        while not self._stop.is_set():
            record = self.records[name]
            wait = self.settings.interval
            if record.problem_since is not None:
                wait = min(wait, PROBLEM_INTERVAL)
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and the loop would outlive the server's stop.
            poked = asyncio.ensure_future(poke.wait())
            try:
                await asyncio.wait({poked}, timeout=wait)
            finally:
                poked.cancel()
            poke.clear()
            if self._stop.is_set() or not self.settings.enabled:
                continue
            try:
                await self.check(name)
            except Exception:  # keep watching whatever one round did
                log.exception("printer %s: health check failed", name)

    # -- reporting ------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        record = self.records[name]
        worker = self.workers[name]
        health = record.health
        if health.ok:
            verdict = "ok" if record.last_probe_at is not None else "unknown"
        elif health.human_needed:
            verdict = "needs-attention"
        else:
            verdict = "recovering"
        return {
            "printer": name,
            "address": worker.transport.address,
            "health": verdict,
            "last_probe_at": record.last_probe_at,
            "problem_since": record.problem_since,
            "problems": [
                {
                    "fault": p.fault.value,
                    "detail": p.detail,
                    "advice": p.advice,
                    "human_needed": p.human_needed,
                }
                for p in health.problems
            ],
            "breaker": worker.breaker.state.value,
            "recoveries": record.recoveries,
            "last_recovery_seconds": record.last_recovery_seconds,
            "strategies": {
                s.name: vars(record.strategies.get(s.name, StrategyStats()))
                | {"enabled": s.name not in self.settings.disabled_strategies}
                for s in self.strategies(name)
            },
        }

    def advice(self, name: str) -> list[str]:
        """What staff should do about ``name`` now, in plain words (empty when fine). When
        spoonprint lacks the rights to fix a fault itself, the advice says so."""
        record = self.records[name]
        advice = []
        for problem in record.health.problems:
            blocked = record.needs_admin.get(problem.fault)
            if blocked is None:
                advice.append(problem.advice)
            else:
                advice.append(
                    f"{problem.advice.split(':')[0]}: spoonprint cannot fix it: {blocked}"
                )
        return advice
