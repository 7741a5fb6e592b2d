"""Composition root: the one place that builds and wires spoonprint's parts."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from spoonprint import __version__
from spoonprint.config import PrinterConfig, RecoverySettings, Settings
from spoonprint.db import DB_FILENAME, connect
from spoonprint.delivery.breaker import CircuitBreaker
from spoonprint.delivery.retry import RetryPolicy
from spoonprint.delivery.webhooks import WebhookDispatcher, WebhookOutbox
from spoonprint.delivery.worker import Failover, PrinterWorker
from spoonprint.domain.job import Job, JobState, NewJob
from spoonprint.domain.ticket import document_for
from spoonprint.errors import StoreError, UnknownPrinter
from spoonprint.housekeeping import run_daily_housekeeping
from spoonprint.instance_lock import InstanceLock
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.recovery.monitor import HealthMonitor
from spoonprint.recovery.settings_store import RuntimeSettings
from spoonprint.render import loader
from spoonprint.render.fonts import Typeface, typeface_at_start
from spoonprint.render.loader import preview_png, renderer_for
from spoonprint.security.clients import parse_networks
from spoonprint.security.events import SECURITY_LOG, SecurityLog
from spoonprint.security.guard import BlockStore, Guard, SecurityPolicy
from spoonprint.security.keys import Authenticator, KeyStore
from spoonprint.transports.base import Timeouts
from spoonprint.transports.factory import open_transport

if TYPE_CHECKING:
    from spoonprint.emulator.virtual_printer import VirtualPrinter

log = logging.getLogger("spoonprint")

VIRTUAL_PRINTER_NAME = "virtual"
VIRTUAL_PRINTER_DIR = "virtual-printer"
RECOVERY_SECTION = "recovery"


@dataclass
class Services:
    settings: Settings
    store: SqliteJobStore
    auth: Authenticator
    typeface: Typeface
    lock: InstanceLock
    guard: Guard
    runtime: RuntimeSettings
    webhooks: WebhookDispatcher | None = None
    monitor: HealthMonitor | None = None
    #: Identifies this process's leases on jobs.
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    printers: dict[str, PrinterWorker] = field(default_factory=dict)
    configs: dict[str, PrinterConfig] = field(default_factory=dict)
    virtual_printer: VirtualPrinter | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: Set at stop: ends the DDNS and daily housekeeping loops.
    _ops_stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def default_printer(self) -> str:
        return next(iter(self.configs))

    def printer_name(self, requested: str | None) -> str:
        name = requested or self.default_printer
        if name not in self.printers:
            raise UnknownPrinter(f"no printer named {name!r}; printers: {', '.join(self.printers)}")
        return name

    async def accept(self, new: NewJob) -> tuple[Job, bool]:
        """Commit an order (in the store's writer thread, together with the orders that
        arrive meanwhile: one fsync for all); its printer's worker is told as soon as it is on
        disk, before this caller (and the batch's others) resumes to write its answer.
        Returns the job and whether it is new (False: a duplicate).

        An idle printer's worker takes the order as its next job at once: it renders the
        ticket and reaches the printer while the order is committed, and the job is leased to
        it in the same transaction (then it is ``printing`` when this returns)."""
        worker = self.printers.get(new.printer)
        if worker is not None:
            worker.expect(new)
        return await self.store.enqueue_async(new, lambda outcome: self._settled(new, outcome))

    def _settled(self, new: NewJob, outcome: tuple[Job, bool] | BaseException) -> None:
        worker = self.printers.get(new.printer)
        if isinstance(outcome, BaseException):
            if worker is not None:
                worker.settle(new, None)
            return
        job, created = outcome
        if worker is not None:
            mine = created and job.state is JobState.PRINTING and job.lease_owner == worker.owner
            worker.settle(new, job if mine else None)
        if created and self.webhooks is not None:
            self.webhooks.wake()

    def _lease_new(self, new: NewJob, job: Job) -> tuple[str, float] | None:
        """In the job store's writer thread, storing ``job``: lease it at once to its
        printer's worker if that waits for exactly this order (see :meth:`accept`)."""
        worker = self.printers.get(job.printer)
        if worker is None or not worker.expected(new):
            return None
        return worker.owner, worker.lease_seconds

    def unprintable(
        self, printer: str, payload: dict[str, Any], source: str = ""
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """Each field of ``payload`` (read from the JSON text ``source``, if given) that
        ``printer`` could not print, and why: asked before an order is accepted, so that
        nothing is acknowledged that cannot print."""
        profile = self.printers[printer].profile
        return loader.unprintable(payload, profile, self.typeface, source)

    def preview(self, printer: str, payload: dict[str, Any]) -> bytes:
        """PNG of the ticket ``payload`` would print on ``printer`` (CPU-bound: use a thread)."""
        profile = self.configs[printer].profile()
        return preview_png(document_for(payload, profile.style), profile, self.typeface)

    def queued_by_printer(self) -> dict[str, int]:
        """Jobs waiting per printer: one counting query (``/status`` is public and polled)."""
        return {**dict.fromkeys(self.printers, 0), **self.store.count_pending_by_printer()}

    async def start(self) -> None:
        self.store.lease_new = self._lease_new
        # The instance lock is held: every job still "printing" belongs to a process that died.
        recovered = await asyncio.to_thread(self.store.recover_interrupted)
        if recovered:
            log.warning(
                "%d job(s) were interrupted by a stop; %d of them had started printing and "
                "will print marked REPRINT",
                len(recovered),
                sum(job.maybe_printed for job in recovered),
            )
        configs = list(self.settings.printers) or [await self._start_virtual_printer()]
        for config in configs:
            self.configs[config.name] = config
            self.printers[config.name] = self._worker(config)
        self.monitor = HealthMonitor(self.printers, self._recovery_settings())
        for worker in self.printers.values():
            worker.on_trouble = lambda name=worker.name: self._poke_monitor(name)
            self._tasks.append(asyncio.create_task(worker.run(), name=f"printer-{worker.name}"))
        self._tasks.append(asyncio.create_task(self.monitor.run(), name="health-monitor"))
        self._tasks.append(asyncio.create_task(self._sweep_leases(), name="lease-sweeper"))
        if self.webhooks is not None:
            self._tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        if self.settings.ddns.enabled:
            # Imported only here: most shops have no dynamic DNS, and start-up pays for imports.
            from spoonprint.ddns import run_ddns

            self._tasks.append(
                asyncio.create_task(run_ddns(self.settings, self._ops_stop), name="ddns")
            )
        self._tasks.append(
            asyncio.create_task(
                run_daily_housekeeping(self.settings, self._ops_stop), name="housekeeping"
            )
        )
        log.info("spoonprint %s ready; printers: %s", self.version, ", ".join(self.printers))

    def warm_up(self) -> None:
        """Load the rendering code in the background (see :func:`loader.warm_up`): called
        once the server listens, so that it does not delay the first answer."""
        profiles = [config.profile() for config in self.configs.values()]
        task = asyncio.to_thread(loader.warm_up, self.typeface, profiles)
        self._tasks.append(asyncio.create_task(task, name="render-warm-up"))

    # -- recovery -------------------------------------------------------------------------

    def _recovery_settings(self) -> RecoverySettings:
        """The config file's [recovery] section with the changes made at run time on top."""
        stored = self.runtime.load(RECOVERY_SECTION)
        base = self.settings.recovery.model_dump()
        try:
            return RecoverySettings.model_validate({**base, **stored})
        except ValidationError as exc:
            log.error("ignoring stored recovery settings (%s); using the config file's", exc)
            return self.settings.recovery

    def _poke_monitor(self, name: str) -> None:
        if self.monitor is not None:
            self.monitor.poke(name)

    def update_recovery(self, changes: dict[str, Any]) -> RecoverySettings:
        """Validate, persist and apply recovery settings changes (ValidationError / ValueError
        when they are not valid)."""
        assert self.monitor is not None
        merged = RecoverySettings.model_validate({**self.monitor.settings.model_dump(), **changes})
        unknown = set(merged.disabled_strategies) - self.monitor.strategy_names()
        if unknown:
            known = ", ".join(sorted(self.monitor.strategy_names()))
            raise ValueError(f"unknown strategies {sorted(unknown)}; known: {known}")
        stored = self.runtime.load(RECOVERY_SECTION)
        self.runtime.save(RECOVERY_SECTION, {**stored, **merged.model_dump(include=set(changes))})
        self.monitor.apply(merged)
        log.warning("recovery settings changed: %s", changes)
        return merged

    async def emergency_clear(self) -> dict[str, Any]:
        """Set every waiting job aside (held, never deleted), reset every breaker and backoff,
        and run a full recovery round on every printer."""
        assert self.monitor is not None
        held = await asyncio.to_thread(self.store.hold_queued, None, "held by emergency clear")
        for worker in self.printers.values():
            worker.resume()
        log.warning("emergency clear: %d waiting job(s) held; full recovery running", len(held))
        recovery = await self.monitor.trigger()
        return {"held": [job.id for job in held], "printers": recovery}

    async def release_held(self, printer: str | None = None) -> list[Job]:
        released = await asyncio.to_thread(self.store.release_held, printer, "released")
        for name in {job.printer for job in released}:
            if name in self.printers:
                self.printers[name].wake()
        return released

    async def _sweep_leases(self) -> None:
        """Jobs whose lease ran out (an attempt stuck past every timeout) go back to the queue,
        marked REPRINT, and their printer's worker is woken."""
        interval = self.settings.delivery.lease_seconds / 2
        while True:
            await asyncio.sleep(interval)
            try:
                recovered = await asyncio.to_thread(
                    self.store.recover_interrupted, expired_only=True
                )
            except StoreError:
                log.exception("lease sweep failed; will try again")
                continue
            for job in recovered:
                if job.printer in self.printers:
                    self.printers[job.printer].wake()

    async def stop(self) -> None:
        """Let each worker finish the ticket it is writing (bounded by its timeouts), give back
        the leases of anything still unfinished, then close."""
        self._ops_stop.set()
        if self.monitor is not None:
            self.monitor.stop()
        for worker in self.printers.values():
            worker.request_stop()
        if self._tasks:
            delivery = self.settings.delivery
            grace = delivery.connect_timeout + delivery.write_timeout + 2 * delivery.status_timeout
            workers = [t for t in self._tasks if t.get_name().startswith("printer-")]
            _, unfinished = await asyncio.wait(workers, timeout=grace)
            for task in [*unfinished, *(t for t in self._tasks if t not in workers)]:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            interrupted = await asyncio.to_thread(self.store.recover_interrupted)
        except StoreError as exc:  # e.g. a full disk: the next start recovers them
            log.error("could not give back unfinished jobs (%s); the next start will", exc)
            interrupted = []
        if interrupted:
            log.warning(
                "%d job(s) stopped unfinished; %d of them had started printing and will print "
                "marked REPRINT",
                len(interrupted),
                sum(job.maybe_printed for job in interrupted),
            )
        if self.virtual_printer is not None:
            await self.virtual_printer.stop()
        self.store.close()
        self.runtime.close()
        self.auth.keys.close()
        self.guard.close()
        if self.webhooks is not None:
            self.webhooks.outbox.close()
        self.lock.release()

    async def _start_virtual_printer(self) -> PrinterConfig:
        out_dir = self.settings.server.data_dir / VIRTUAL_PRINTER_DIR
        # Imported here: only a server without printers needs the emulator.
        from spoonprint.emulator.virtual_printer import VirtualPrinter

        self.virtual_printer = VirtualPrinter(
            host="127.0.0.1", port=0, out_dir=out_dir, job_of=self._printing_on_virtual
        )
        await self.virtual_printer.start()
        log.info(
            "no printer configured: virtual printer on 127.0.0.1:%d saves tickets to %s",
            self.virtual_printer.port,
            out_dir,
        )
        return PrinterConfig(
            name=VIRTUAL_PRINTER_NAME, uri=f"tcp://127.0.0.1:{self.virtual_printer.port}"
        )

    def _printing_on_virtual(self) -> int | None:
        """The job the built-in printer is printing, which its ticket files are named after."""
        try:
            return self.store.printing(VIRTUAL_PRINTER_NAME)
        except (sqlite3.Error, StoreError):  # a name is not worth losing the ticket
            log.exception("virtual printer: cannot tell which job is printing")
            return None

    def _worker(self, config: PrinterConfig) -> PrinterWorker:
        delivery = self.settings.delivery
        timeouts = Timeouts(
            delivery.connect_timeout, delivery.write_timeout, delivery.status_timeout
        )
        return PrinterWorker(
            name=config.name,
            store=self.store,
            transport=open_transport(config.uri, timeouts),
            renderer=renderer_for(config.effective_protocol(), self.typeface),
            profile=config.profile(),
            retry=RetryPolicy(
                initial=delivery.retry_initial,
                maximum=delivery.retry_max,
                max_attempts=delivery.max_attempts,
                max_age=delivery.max_age,
            ),
            confirm=config.confirm,
            owner=self.owner,
            lease_seconds=delivery.lease_seconds,
            breaker=CircuitBreaker(
                threshold=delivery.breaker_threshold,
                reset_after=delivery.breaker_reset,
                max_reset=delivery.breaker_max_reset,
            ),
            failover=self._failover(config),
        )

    def _failover(self, config: PrinterConfig) -> Failover | None:
        if config.backup is None:
            return None
        backup = config.backup
        return Failover(backup, config.failover_after, lambda: self.printers[backup].wake())


def build(settings: Settings) -> Services:
    """Open storage and check every printer's settings; nothing runs until ``start()``."""
    data_dir: Path = settings.server.data_dir
    lock = InstanceLock(data_dir)
    lock.acquire()
    # Every printer may need to draw a line it cannot print as text: choose the font at start
    # (a configured one is checked now; it is loaded with the rendering code, see warm_up()).
    typeface = typeface_at_start(settings.render.font, settings.render.font_index)
    store = SqliteJobStore.open(data_dir)
    env_key = settings.api_key.get_secret_value() if settings.api_key else None
    keys = KeyStore(connect(data_dir / DB_FILENAME))
    return Services(
        settings=settings,
        store=store,
        auth=Authenticator(keys, env_key),
        typeface=typeface,
        lock=lock,
        guard=build_guard(settings),
        runtime=RuntimeSettings(connect(data_dir / DB_FILENAME)),
        webhooks=build_webhooks(settings),
    )


def build_webhooks(settings: Settings) -> WebhookDispatcher | None:
    hooks = settings.webhooks
    if not hooks.url:
        return None
    outbox = WebhookOutbox(connect(settings.server.data_dir / DB_FILENAME), hooks.url)
    return WebhookDispatcher(
        outbox,
        hooks.url,
        hooks.secret.get_secret_value(),
        hooks.timeout,
        RetryPolicy(initial=settings.delivery.retry_initial, maximum=hooks.retry_max),
        states=frozenset(hooks.states),
    )


def build_guard(settings: Settings) -> Guard:
    security = settings.security
    policy = SecurityPolicy(
        allowed_networks=parse_networks(security.allowed_networks),
        trusted_proxies=parse_networks(security.trusted_proxies),
        allowlist_only=security.allowlist_only,
        rate_limit_per_minute=security.rate_limit_per_minute,
        block_after=security.block_after,
        block_seconds=security.block_seconds,
    )
    data_dir = settings.server.data_dir
    blocks = BlockStore(connect(data_dir / DB_FILENAME))
    return Guard(policy, blocks, SecurityLog(data_dir / "logs" / SECURITY_LOG))
