"""``spoonprint diagnose --windows``: the Windows self-test (see
:mod:`spoonprint.windows_selftest`) with a verdict per step and a report file for support."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text

from spoonprint.cli.common import OK, PRINTER_PROBLEM, USAGE, console, fail
from spoonprint.config import PrinterConfig, Settings
from spoonprint.transports.uri import parse_uri

REPORT_FILE = "windows-selftest.txt"
_MARKS = {
    "ok": Text("[ ok ]", "bold green"),
    "warning": Text("[warn]", "bold yellow"),
    "failed": Text("[FAIL]", "bold red"),
    "skipped": Text("[skip]", "dim"),
}


def self_test(
    settings: Settings, chosen: PrinterConfig, *, print_jobs: bool, timeout: float | None
) -> int:
    """Run it, show each step, write the report; the exit code."""
    from spoonprint.diagnostics import Check
    from spoonprint.transports.base import Timeouts
    from spoonprint.windows_selftest import WindowsSelfTest, report, verdict

    uri = parse_uri(chosen.uri)
    if uri.scheme != "windows":
        fail(f"--windows tests a windows: printer; {chosen.name!r} is {chosen.uri}", USAGE)
    delivery = settings.delivery
    timeouts = (
        Timeouts(timeout, timeout, timeout)
        if timeout
        else Timeouts(delivery.connect_timeout, delivery.write_timeout, delivery.status_timeout)
    )

    def show(step: Check) -> None:
        line = Text.assemble(_MARKS[step.outcome], f" {step.name}: {step.detail}")
        console.print(line, soft_wrap=True)
        if step.next_step:
            console.print(f"       -> {step.next_step}", soft_wrap=True)

    console.print(f"Windows self-test of [bold]{uri.target}[/bold]")
    test = WindowsSelfTest(uri.target, print_jobs=print_jobs, timeouts=timeouts, on_step=show)
    steps = asyncio.run(test.run())
    path = Path(settings.server.data_dir) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report(uri.target, steps), encoding="utf-8")
    console.print()
    console.print(verdict(steps), style="bold")
    console.print(f"Report for support: {path}", soft_wrap=True)
    return PRINTER_PROBLEM if any(s.outcome == "failed" for s in steps) else OK
