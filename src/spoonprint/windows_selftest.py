"""``spoonprint diagnose --windows``: exercise, on the restaurant PC, each Windows API path the
server uses, and say per step what is wrong and what to change.

Steps: pywin32 importable; the printer found; its driver (v3, v4, XPSDrv) and the datatypes
its queue takes; its Printing Defaults; with ``--print`` a RAW and a GDI test job followed
until the spooler is done with them; the right to restart the Spooler service; the account the
spoonprint service runs under. Nothing is printed without ``--print``. Every spooler call runs
as the server makes it (in helper processes, bounded by the timeouts). The report (text) is
written to a file that can be sent to support.
"""

from __future__ import annotations

import io
import platform
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image, ImageDraw

from spoonprint.diagnostics import Check, Outcome
from spoonprint.errors import PrinterError
from spoonprint.service import DEFAULT_NAME
from spoonprint.transports.base import Timeouts
from spoonprint.transports.windows import WindowsTransport
from spoonprint.transports.windows_checks import (
    Paper,
    printing_defaults,
    pywin32_missing,
    service_account,
    spooler_control,
    this_account,
)
from spoonprint.transports.windows_driver import Driver, describe_driver
from spoonprint.transports.windows_gdi import DrawImage, draw_dib
from spoonprint.transports.windows_host import SpoolerCalls, default_calls
from spoonprint.transports.windows_spool import describe, installed_printers

PRINTING_DEFAULTS_FIX = (
    "open Settings > Bluetooth & devices > Printers & scanners > {printer} > Printer "
    "properties > Advanced > Printing Defaults, and choose the receipt paper (Star: '72mm x "
    "Receipt'); spoonprint asks for it itself, but other programs and the service account get "
    "these defaults"
)
SESSION_0 = (
    "it runs as LocalSystem, in session 0, where Microsoft does not support printing through a "
    "driver (KB2890836): run it under the PC's user account ('spoonprint service install "
    "--user .\\USER', or services.msc > spoonprint > Log On > This account), or start "
    "'spoonprint start' from a scheduled task at logon instead (docs/windows.md)"
)
STAR_ADVICE = (
    "a Star TSP100 with the futurePRNT driver: use mode=gdi (its RAW path goes through Star's "
    "command emulator)"
)
#: A RAW ticket every receipt printer prints: ESC @, text, feed and a partial cut (ESC/POS);
#: a Star raster driver takes it through its command emulator.
RAW_TEST = b"\x1b@spoonprint Windows self-test: RAW\n\n\n\n\x1dV\x01"


def gdi_test_picture(width: int = 576) -> bytes:
    """A small black-on-white PNG saying what it is."""
    image = Image.new("1", (width, 120), 1)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, 119), outline=0, width=3)
    draw.text((16, 40), "spoonprint Windows self-test: GDI", fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class WindowsSelfTest:
    def __init__(
        self,
        printer: str,
        *,
        print_jobs: bool = False,
        timeouts: Timeouts = Timeouts(),
        calls: SpoolerCalls | None = None,
        draw: DrawImage = draw_dib,
        service_name: str = DEFAULT_NAME,
        on_step: Callable[[Check], None] = lambda step: None,
    ) -> None:
        self.printer = printer
        self.print_jobs = print_jobs
        self.timeouts = timeouts
        self.calls = default_calls() if calls is None else calls
        self.draw = draw
        self.service_name = service_name
        self.on_step = on_step
        self.steps: list[Check] = []

    def _add(self, step: Check) -> None:
        self.steps.append(step)
        self.on_step(step)

    async def _call(self, call: Callable[..., Any], *args: Any) -> Any:
        return await self.calls.run(self.timeouts.status, call, *args)

    async def run(self) -> list[Check]:
        missing = pywin32_missing()
        if missing:
            self._add(
                Check(
                    "pywin32",
                    Outcome.FAILED,
                    f"cannot import {', '.join(missing)}",
                    "pip install pywin32 (in the Python spoonprint runs with)",
                )
            )
            return self.steps
        self._add(Check("pywin32", Outcome.OK, "pywin32 imports"))
        if not await self._found():
            return self.steps
        driver = await self._driver()
        await self._defaults()
        if self.print_jobs:
            await self._job("raw", RAW_TEST, driver)
            await self._job("gdi", gdi_test_picture(), driver)
        else:
            for mode in ("raw", "gdi"):
                self._add(Check(f"{mode} job", Outcome.SKIPPED, "not printed (add --print)"))
        await self._rights()
        await self._account()
        return self.steps

    async def _found(self) -> bool:
        try:
            names = await self._call(installed_printers)
        except Exception as exc:
            self._add(
                Check(
                    "printer",
                    Outcome.FAILED,
                    f"the spooler answered {_words(exc)}",
                    "check that the Print Spooler service runs (services.msc)",
                )
            )
            return False
        if any(name.casefold() == self.printer.casefold() for name in names):
            self._add(Check("printer", Outcome.OK, f"Windows has {self.printer!r}"))
            return True
        known = ", ".join(map(repr, names)) or "none"
        self._add(
            Check(
                "printer",
                Outcome.FAILED,
                f"no printer {self.printer!r} (printers: {known})",
                "copy the printer's name exactly from Printers & scanners into spoonprint.toml",
            )
        )
        return False

    async def _driver(self) -> Driver | None:
        try:
            driver: Driver = await self._call(describe_driver, self.printer)
        except Exception as exc:
            self._add(Check("driver", Outcome.WARNING, f"cannot tell: {_words(exc)}"))
            return None
        what = f"{driver.name!r} ({driver.kind} driver, {driver.manufacturer or 'maker unknown'})"
        refusal = driver.raw_refusal()
        advice = [refusal] if refusal is not None else []
        if driver.star_raster:
            advice.append(STAR_ADVICE)
        outcome = Outcome.WARNING if refusal is not None else Outcome.OK
        self._add(Check("driver", outcome, what, "; ".join(advice)))
        types = ", ".join(driver.datatypes) or "none"
        raw = "RAW" in driver.datatypes
        self._add(
            Check(
                "datatypes",
                Outcome.OK if raw else Outcome.WARNING,
                f"the print processor {driver.print_processor!r} takes {types}",
                "" if raw else "RAW is not offered: use mode=gdi",
            )
        )
        return driver

    async def _defaults(self) -> None:
        try:
            paper: Paper | None = await self._call(printing_defaults, self.printer)
        except Exception as exc:
            self._add(Check("printing defaults", Outcome.WARNING, f"cannot read: {_words(exc)}"))
            return
        fix = PRINTING_DEFAULTS_FIX.format(printer=self.printer)
        if paper is None:
            self._add(
                Check(
                    "printing defaults",
                    Outcome.WARNING,
                    "the driver gives the printer no settings (DEVMODE)",
                    fix,
                )
            )
        elif paper.receipt:
            self._add(Check("printing defaults", Outcome.OK, f"paper {paper.words()}"))
        else:
            self._add(
                Check(
                    "printing defaults",
                    Outcome.WARNING,
                    f"paper {paper.words()}: not receipt paper",
                    fix,
                )
            )

    async def _job(self, mode: str, data: bytes, driver: Driver | None) -> None:
        name = f"{mode} job"
        refusal = driver.raw_refusal() if driver is not None and mode == "raw" else None
        if refusal is not None:
            self._add(Check(name, Outcome.SKIPPED, "not sent: " + refusal))
            return
        transport = WindowsTransport(
            self.printer, mode, self.timeouts, draw=self.draw, calls=self.calls
        )
        try:
            await transport.send(data)
        except PrinterError as exc:
            self._add(
                Check(
                    name,
                    Outcome.FAILED,
                    str(exc),
                    "open the printer's queue window: is it paused, offline, or a job "
                    "stuck? Then run this again",
                )
            )
            return
        self._add(Check(name, Outcome.OK, "spooled and followed until the spooler was done"))

    async def _rights(self) -> None:
        try:
            denied = await self._call(spooler_control)
        except Exception as exc:
            self._add(Check("spooler control", Outcome.WARNING, f"cannot tell: {_words(exc)}"))
            return
        if denied is None:
            self._add(
                Check("spooler control", Outcome.OK, "this account may restart the Print Spooler")
            )
        else:
            self._add(
                Check(
                    "spooler control",
                    Outcome.WARNING,
                    f"this account may not restart the Print Spooler ({denied})",
                    "spoonprint cannot restart a hung spooler by itself: run it as a "
                    "service under an administrator account",
                )
            )

    async def _account(self) -> None:
        try:
            account = await self._call(service_account, self.service_name)
            me = await self._call(this_account)
        except Exception as exc:
            self._add(Check("service account", Outcome.WARNING, f"cannot tell: {_words(exc)}"))
            return
        if account is None:
            self._add(
                Check(
                    "service account",
                    Outcome.OK,
                    f"no {self.service_name!r} service; this command runs as {me}",
                )
            )
        elif account.casefold() in ("localsystem", "nt authority\\system"):
            self._add(
                Check(
                    "service account",
                    Outcome.WARNING,
                    f"the {self.service_name!r} service runs as {account}",
                    SESSION_0,
                )
            )
        else:
            self._add(
                Check(
                    "service account",
                    Outcome.OK,
                    f"the {self.service_name!r} service runs as {account}",
                )
            )


def _words(exc: BaseException) -> str:
    return "no answer in time" if isinstance(exc, TimeoutError) else describe(exc)


def verdict(steps: list[Check]) -> str:
    failed = [s.name for s in steps if s.outcome is Outcome.FAILED]
    warned = [s.name for s in steps if s.outcome is Outcome.WARNING]
    if failed:
        return f"NOT READY: fix {', '.join(failed)} first"
    if warned:
        return f"works, with warnings: {', '.join(warned)}"
    return "ready: every Windows path spoonprint uses works"


def report(printer: str, steps: list[Check], now: datetime | None = None) -> str:
    """The self-test as text for support."""
    stamp = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
    lines = [
        "spoonprint Windows self-test",
        f"when: {stamp}",
        f"computer: {platform.node()} ({platform.platform()}, Python {platform.python_version()})",
        f"printer: {printer}",
        "",
    ]
    for step in steps:
        lines.append(f"[{step.outcome}] {step.name}: {step.detail}")
        if step.next_step:
            lines.append(f"    -> {step.next_step}")
    lines += ["", f"verdict: {verdict(steps)}"]
    return "\n".join(lines) + "\n"
