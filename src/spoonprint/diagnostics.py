"""The printer test suite behind ``spoonprint diagnose``: it talks to one printer directly,
through the same transports the server uses, and says in plain words what works and what to
do about what does not.

Checks, in order (later ones are skipped when an earlier one shows they cannot work):

1. ``setup``: the printer address can be used on this machine (the transport's ``usable()``).
2. ``path``: what lies between spoonprint and the printer (``check_path``: spooler queue state,
   stuck jobs, a missing device file).
3. ``reachable`` (network printers): a connection opens, and how long that takes.
4. ``status`` (printers that answer status): the status bytes, decoded bit by bit into words,
   and the round trip of the status question (best and worst of three).
5. ``test page``: English, Traditional Chinese, HKSCS characters, a QR code and a cut, sent as
   the server would send a ticket; confirmed by the printer's status where it can answer, or
   followed through the spooler until it is done. Bounded by ``page_timeout``.

A Windows queue is tried in both of its modes (``raw`` and ``gdi``), each with its own path
check and test page, so the verdict can say which mode works.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from spoonprint.config import PrinterConfig
from spoonprint.domain.document import Align, Document, Feed, QRCode, Rule, Text
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.status import (
    STAR_DIALECT,
    STATUS_OFFLINE_CAUSE,
    StatusDialect,
    is_status_byte,
    status_dialect,
)
from spoonprint.errors import ConfigError, PrinterError, PrinterOffline
from spoonprint.recovery.health import ADVICE, Fault
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import Typeface
from spoonprint.transports.base import StatusQuery, Timeouts, Transport
from spoonprint.transports.factory import open_transport, transport_module
from spoonprint.transports.uri import PrinterUri, parse_uri

#: ESC/POS DLE EOT 3 (errors) and DLE EOT 4 (paper roll sensor).
STATUS_ERRORS = b"\x10\x04\x03"
STATUS_PAPER = b"\x10\x04\x04"
HKSCS_SAMPLE = "餸 啱 嘅 嘢 咗 冇 揾"
CHINESE_SAMPLE = "叉燒飯 雲吞麵 凍檸茶 港式奶茶"
NEAR_END = "paper roll near its end"
#: The status question is asked this many times for the round-trip timing.
ROUND_TRIPS = 3

Opener = Callable[[PrinterUri, Timeouts], Transport]


class Outcome(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    #: What was found, in words.
    detail: str
    #: What to do about it (failures and warnings).
    next_step: str = ""
    seconds: float | None = None
    #: The Windows queue mode this check was made in, when there are several.
    mode: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} (mode={self.mode})" if self.mode else self.name


@dataclass
class Diagnosis:
    printer: str
    address: str
    checks: list[Check] = field(default_factory=list)
    #: Windows queues: mode -> whether its test page went through.
    modes: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(check.outcome is Outcome.FAILED for check in self.checks)

    def verdict(self) -> list[str]:
        """The plain conclusion: one line, then one next step per failure or warning."""
        if self.modes:
            return self._modes_verdict()
        if self.ok:
            lines = [
                f"{self.printer} works. Look at the test page: every line should read right, "
                "the QR code should scan and the paper should be cut."
            ]
        else:
            lines = [f"{self.printer} has a problem:"]
        steps = [c.next_step for c in self.checks if c.outcome in _ADVISED and c.next_step]
        return lines + [f"- {step}" for step in dict.fromkeys(steps)]

    def _modes_verdict(self) -> list[str]:
        working = [mode for mode, ok in self.modes.items() if ok]
        if not working:
            steps = [c.next_step for c in self.checks if c.outcome in _ADVISED and c.next_step]
            return [f"{self.printer}: neither mode printed:"] + [
                f"- {step}" for step in dict.fromkeys(steps)
            ]
        both = len(working) == len(self.modes)
        lines = [
            f"{self.printer}: the Windows queue took and finished the test page in "
            + (" and ".join(f"mode={m}" for m in working))
            + ". Keep the mode whose test page reads right on paper (each page names its mode)"
            + (
                ": usually gdi for any driver, raw for a printer that speaks ESC/POS."
                if both
                else "."
            )
        ]
        if not both:
            (mode,) = working
            lines.append(f'- use uri = "windows:{_windows_name(self.address)}?mode={mode}"')
        return lines


_ADVISED = (Outcome.FAILED, Outcome.WARNING)


def _windows_name(address: str) -> str:
    return address.removeprefix("windows:").split("?")[0]


# -- what the status bytes say -------------------------------------------------------------


def escpos_words(n: int, byte: int) -> list[str]:
    """The bits of an ESC/POS ``DLE EOT n`` reply, in words (empty: nothing to report)."""
    if not is_status_byte(byte):
        return [f"not a status reply (0x{byte:02x})"]
    bits = {
        1: {0x08: "offline", 0x20: "waiting to come back online", 0x40: "feed button pressed"},
        2: {
            0x04: "cover open",
            0x08: "paper being fed by the feed button",
            0x20: "stopped: paper out",
            0x40: "error",
        },
        3: {
            0x08: "cutter error",
            0x20: "unrecoverable error",
            0x40: "error that clears by itself",
        },
        4: {0x0C: NEAR_END, 0x60: "paper sensor: no paper"},
    }[n]
    return [words for mask, words in bits.items() if byte & mask]


def star_words(asb: bytes) -> list[str]:
    """The bits of a Star automatic status (ASB), in words."""
    if len(asb) < 6:
        return [f"short status reply ({asb.hex(' ')})"]
    state, errors, paper = asb[2], asb[3], asb[5]
    checks = [
        (state & 0x20, "cover open"),
        (state & 0x08, "offline"),
        (errors & 0x20, "unrecoverable error"),
        (errors & 0x08, "cutter error"),
        (errors & 0x04, "mechanical error"),
        (paper & 0x04, NEAR_END),
        (paper & 0x08, "paper out"),
    ]
    return [words for bit, words in checks if bit]


# -- the test page -------------------------------------------------------------------------


def test_page(printer: str, mode: str | None = None) -> Document:
    """English, Traditional Chinese, HKSCS characters and a QR code (the cut is the
    renderer's, as for every ticket)."""
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
    header = f"printer: {printer}" + (f"  (mode={mode})" if mode else "")
    return Document(
        (
            Text("spoonprint test page", bold=True, align=Align.CENTER, scale=2),
            Text(header, align=Align.CENTER),
            Text(stamp, align=Align.CENTER),
            Rule(),
            Text("English: The quick brown fox jumps over the lazy dog 0123456789"),
            Text(f"中文: {CHINESE_SAMPLE}"),
            Text(f"HKSCS: {HKSCS_SAMPLE}"),
            Rule(),
            Text("Scan the code: it names this printer", align=Align.CENTER),
            QRCode(f"spoonprint test page: {printer}"),
            Feed(),
            Text("If every line above reads right, printing works.", align=Align.CENTER),
        )
    )


# -- running it ----------------------------------------------------------------------------


@dataclass
class Diagnose:
    """One run of the checks for one printer. ``on_step`` is told what is being checked now,
    ``on_check`` each result as it comes (for a progress display)."""

    config: PrinterConfig
    typeface: Typeface
    timeouts: Timeouts = Timeouts(2.0, 2.0, 2.0)
    stuck_after: float = 60.0
    page_timeout: float = 30.0
    print_page: bool = True
    opener: Opener = open_transport
    on_step: Callable[[str], None] = lambda step: None
    on_check: Callable[[Check], None] = lambda check: None
    #: How the report and the test page name the printer (default: its config name).
    title: str | None = None

    @property
    def printer(self) -> str:
        return self.title or self.config.name

    async def run(self) -> Diagnosis:
        uri = parse_uri(self.config.uri)
        result = Diagnosis(self.printer, uri.raw)
        if uri.scheme == "windows":
            await self._windows(uri, result)
        else:
            await self._one(uri, self.config.profile(), result)
        return result

    def _add(self, result: Diagnosis, check: Check) -> Check:
        result.checks.append(check)
        self.on_check(check)
        return check

    async def _windows(self, uri: PrinterUri, result: Diagnosis) -> None:
        configured = uri.options.get("mode", "gdi")
        for mode in (configured, *(m for m in ("gdi", "raw") if m != configured)):
            moded = PrinterUri(uri.scheme, uri.target, {**uri.options, "mode": mode}, uri.raw)
            protocol = Protocol.IMAGE if mode == "gdi" else self._raw_protocol()
            profile = replace(self.config.profile(), protocol=protocol)
            page = await self._one(moded, profile, result, mode)
            if page is None or page.outcome is not Outcome.SKIPPED:
                result.modes[mode] = page is not None and page.outcome is Outcome.OK

    def _raw_protocol(self) -> Protocol:
        protocol = self.config.protocol
        return Protocol.ESCPOS if protocol is Protocol.IMAGE else protocol

    async def _one(
        self, uri: PrinterUri, profile: PrinterProfile, result: Diagnosis, mode: str | None = None
    ) -> Check | None:
        """The checks for one address; the test page's check (None when not reached)."""

        def add(check: Check) -> Check:
            return self._add(result, replace(check, mode=mode))

        self.on_step("opening the printer address")
        transport = self._open(uri, add)
        if transport is None:
            return None
        self.on_step("checking the way to the printer")
        if not await self._path(transport, add):
            add(_skipped("test page", "the way to the printer is blocked"))
            return None
        if transport.reads_status:
            if transport.address.startswith("tcp://"):
                self.on_step("connecting")
                if not await self._reachable(uri, add):
                    add(_skipped("status", "the printer cannot be reached"))
                    add(_skipped("test page", "the printer cannot be reached"))
                    return None
            self.on_step("asking the printer for its status")
            if not await self._status(transport, profile, add):
                add(_skipped("test page", "the printer cannot print now"))
                return None
        if not self.print_page:
            return add(_skipped("test page", "not asked for (--no-print)"))
        self.on_step("printing the test page")
        return await self._page(transport, profile, add, mode)

    def _open(self, uri: PrinterUri, add: Callable[[Check], Check]) -> Transport | None:
        reason = transport_module(uri.scheme).usable()
        if reason is not None:
            add(Check("setup", Outcome.FAILED, f"{uri.scheme}: printers cannot be used here: "
                      f"{reason}", next_step=reason))  # fmt: skip
            return None
        try:
            transport = self.opener(uri, self.timeouts)
        except ConfigError as exc:
            add(Check("setup", Outcome.FAILED, str(exc), "correct the printer's uri in the config"))
            return None
        add(Check("setup", Outcome.OK, f"{transport.address} can be used on this machine"))
        return transport

    async def _path(self, transport: Transport, add: Callable[[Check], Check]) -> bool:
        try:
            health = await asyncio.wait_for(
                transport.check_path(self.stuck_after), self.timeouts.status * 3
            )
        except TimeoutError:
            add(Check("path", Outcome.FAILED, "no answer about the way to the printer in time",
                      ADVICE[Fault.SPOOLER_DOWN]))  # fmt: skip
            return False
        if health.ok:
            add(Check("path", Outcome.OK, _path_words(transport)))
            return True
        blocking = False
        for problem in health.problems:
            add(Check("path", Outcome.FAILED, problem.detail or str(problem.fault),
                      problem.advice))  # fmt: skip
            blocking = blocking or problem.fault in _BLOCKING
        return not blocking

    async def _reachable(self, uri: PrinterUri, add: Callable[[Check], Check]) -> bool:
        host, _, port = uri.target.rpartition(":")
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), self.timeouts.connect
            )
        except TimeoutError:
            add(Check("reachable", Outcome.FAILED,
                      f"no answer from {uri.target} within {self.timeouts.connect:g} s",
                      ADVICE[Fault.UNREACHABLE]))  # fmt: skip
            return False
        except OSError as exc:
            refused = isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED
            why = "refused the connection (nothing listens there)" if refused else str(exc)
            add(Check("reachable", Outcome.FAILED, f"{uri.target} {why}",
                      ADVICE[Fault.UNREACHABLE]))  # fmt: skip
            return False
        took = time.perf_counter() - started
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        add(Check("reachable", Outcome.OK, f"{uri.target} accepts connections", seconds=took))
        return True

    async def _status(
        self, transport: Transport, profile: PrinterProfile, add: Callable[[Check], Check]
    ) -> bool:
        dialect = status_dialect(profile.protocol)
        query = StatusQuery(dialect.request, dialect.first, dialect.total)
        times: list[float] = []
        try:
            for _ in range(ROUND_TRIPS):
                started = time.perf_counter()
                reply = await transport.ask(query)
                times.append(time.perf_counter() - started)
        except PrinterError as exc:
            fault = Fault.UNREACHABLE if isinstance(exc, PrinterOffline) else Fault.NOT_RESPONDING
            add(Check("status", Outcome.FAILED, f"no status answer: {exc}", ADVICE[fault]))
            return False
        timing = f"answers in {_ms(min(times))} (best of {ROUND_TRIPS}; worst {_ms(max(times))})"
        status = dialect.decode(reply)
        words = await self._words(transport, dialect, reply, status.online)
        if status.online:
            low = NEAR_END in words
            add(Check("status", Outcome.WARNING if low else Outcome.OK,
                      f"{', '.join(words) or 'online, no fault'}; {timing}",
                      "paper running low: have a new roll ready" if low else "",
                      seconds=min(times)))  # fmt: skip
            return True
        if dialect.cause_request and dialect.decode_with_cause:
            try:
                cause = await transport.ask(StatusQuery(dialect.cause_request))
                status = dialect.decode_with_cause(reply, cause)
            except PrinterError:
                pass
        fault = Fault(status.fault or Fault.PRINTER_ERROR)
        add(Check("status", Outcome.FAILED, f"{', '.join(words) or status.problem}; {timing}",
                  ADVICE[fault], seconds=min(times)))  # fmt: skip
        return False

    async def _words(
        self, transport: Transport, dialect: StatusDialect, reply: bytes, online: bool
    ) -> list[str]:
        """Every status bit that is set, in words: the first reply's, then (ESC/POS) the
        offline cause when offline and the paper sensor, when the printer answers them."""
        if dialect is STAR_DIALECT:
            return star_words(reply)
        words = escpos_words(1, reply[0])
        extra = [(2, STATUS_OFFLINE_CAUSE)] if not online else []
        for n, request in [*extra, (4, STATUS_PAPER)]:
            try:
                byte = (await transport.ask(StatusQuery(request)))[0]
            except PrinterError:  # not every printer has every sensor
                continue
            words += [w for w in escpos_words(n, byte) if w not in words]
            if n == 2 and byte & 0x40:
                with_errors = await self._optional(transport, STATUS_ERRORS)
                if with_errors is not None:
                    words += escpos_words(3, with_errors)
        return words

    @staticmethod
    async def _optional(transport: Transport, request: bytes) -> int | None:
        try:
            return (await transport.ask(StatusQuery(request)))[0]
        except PrinterError:
            return None

    async def _page(
        self,
        transport: Transport,
        profile: PrinterProfile,
        add: Callable[[Check], Check],
        mode: str | None,
    ) -> Check:
        document = test_page(self.printer, mode)
        render = renderer_for(profile.protocol, self.typeface)
        data = await asyncio.to_thread(render, document, profile, 1)
        started = time.perf_counter()
        try:
            reply = await asyncio.wait_for(self._send(transport, profile, data), self.page_timeout)
        except TimeoutError:
            return add(Check("test page", Outcome.FAILED,
                             f"not done within {self.page_timeout:g} s",
                             _page_advice(transport)))  # fmt: skip
        except PrinterError as exc:
            fault = Fault.UNREACHABLE if isinstance(exc, PrinterOffline) else Fault.NOT_RESPONDING
            return add(Check("test page", Outcome.FAILED, str(exc),
                             _page_advice(transport) if not transport.reads_status
                             else ADVICE[fault]))  # fmt: skip
        took = time.perf_counter() - started
        size = f"{len(data):,} bytes"
        if reply is None:
            detail = (
                f"{size} written, not confirmed (this printer cannot answer)"
                if transport.reads_status
                else f"{size}: the spooler took it and finished it"
            )
            return add(Check("test page", Outcome.OK, detail, seconds=took))
        status = status_dialect(profile.protocol).decode(reply)
        if not status.online:
            fault = Fault(status.fault or Fault.PRINTER_ERROR)
            return add(Check("test page", Outcome.FAILED,
                             f"{size} sent, then the printer said: {status.problem}",
                             ADVICE[fault], seconds=took))  # fmt: skip
        return add(Check("test page", Outcome.OK, f"{size} printed, confirmed by the printer",
                         seconds=took))  # fmt: skip

    @staticmethod
    def _send(
        transport: Transport, profile: PrinterProfile, data: bytes
    ) -> Awaitable[bytes | None]:
        if not transport.reads_status:
            return transport.send(data)
        dialect = status_dialect(profile.protocol)
        return transport.send(data, StatusQuery(dialect.request, dialect.first, dialect.total))


#: Path faults after which no ticket can get through.
_BLOCKING = frozenset(
    {Fault.DEVICE_MISSING, Fault.NOT_FOUND, Fault.SPOOLER_DOWN, Fault.QUEUE_REJECTING}
)


def _skipped(name: str, why: str) -> Check:
    return Check(name, Outcome.SKIPPED, why)


def _path_words(transport: Transport) -> str:
    if transport.address.startswith("tcp://"):
        return "network printer: nothing between spoonprint and the printer"
    return "nothing in the way (queue, device or folder ready)"


def _page_advice(transport: Transport) -> str:
    if transport.address.startswith("windows:"):
        return (
            "open the printer's queue in Windows (Settings, Printers): clear paused or "
            "'Use Printer Offline', look for errors, and check the printer itself"
        )
    if transport.address.startswith("cups:"):
        return "check the queue with 'lpstat -p' and the printer itself"
    return ADVICE[Fault.NOT_RESPONDING]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
