"""``spoonprint diagnose [PRINTER]``: test one printer directly and say what to do.

See :mod:`spoonprint.diagnostics` for the checks. The server need not run; when it does, the
test page goes out beside its tickets (a printer takes one connection at a time, so they wait
for each other). Exit code 0 when every check passed, 7 when the printer has a problem, 2 for
a configuration error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from spoonprint.cli.common import (
    DEFAULT_CONFIG,
    OK,
    PRINTER_PROBLEM,
    USAGE,
    ConfigOption,
    JsonOption,
    console,
    fail,
    print_json,
    settings_from,
)
from spoonprint.config import PrinterConfig
from spoonprint.domain.profile import Protocol
from spoonprint.errors import ConfigError

if TYPE_CHECKING:  # imported when run: they load the renderers, which the other commands need not
    from spoonprint.diagnostics import Check, Diagnosis

#: The config name of a printer given only by ``--uri``; its address names it on the page.
ADDRESS_ONLY = "address"
#: diagnose's own test pages on the virtual printer, in a folder beside the server's tickets.
TEST_PAGES_DIR = "test-pages"

_MARKS = {
    "ok": Text("[ ok ]", "bold green"),
    "warning": Text("[warn]", "bold yellow"),
    "failed": Text("[FAIL]", "bold red"),
    "skipped": Text("[skip]", "dim"),
}


def show_check(check: Check) -> None:
    # The status line gives its round-trip times itself.
    timed = check.seconds is not None and check.name != "status"
    took = f" ({check.seconds * 1000:.1f} ms)" if timed and check.seconds is not None else ""
    line = Text.assemble(_MARKS[check.outcome], f" {check.label}: {check.detail}{took}")
    console.print(line, soft_wrap=True)
    if check.next_step and check.outcome in ("failed", "warning"):
        console.print(f"       -> {check.next_step}", soft_wrap=True)


def as_json(diagnosis: Diagnosis) -> dict[str, object]:
    return {
        "printer": diagnosis.printer,
        "address": diagnosis.address,
        "ok": diagnosis.ok,
        "checks": [
            {
                "name": c.name,
                "mode": c.mode,
                "outcome": str(c.outcome),
                "detail": c.detail,
                "next_step": c.next_step,
                "seconds": c.seconds,
            }
            for c in diagnosis.checks
        ],
        "modes": diagnosis.modes,
        "verdict": diagnosis.verdict(),
    }


def diagnose(
    printer: Annotated[
        str | None, typer.Argument(help="Printer name in the config (default: the first).")
    ] = None,
    uri: Annotated[
        str | None,
        typer.Option(help="Test this address instead, e.g. tcp://192.168.1.50:9100."),
    ] = None,
    protocol: Annotated[
        Protocol, typer.Option(help="With --uri: what the printer speaks.")
    ] = Protocol.ESCPOS,
    print_page: Annotated[
        bool | None,
        typer.Option(
            "--print/--no-print", help="Print the test page (with --windows: off unless given)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for each connect, write and status step (default: config)."),
    ] = None,
    page_timeout: Annotated[float, typer.Option(help="Seconds the test page may take.")] = 30.0,
    windows: Annotated[
        bool,
        typer.Option(
            "--windows",
            help="Self-test every Windows path for a windows: printer; report for support.",
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    json_output: JsonOption = False,
) -> None:
    """Test a printer directly: reachable, status in words, test page, timings, what to do.

    The test page has English, Traditional Chinese, HKSCS characters, a QR code and a cut.
    """
    if windows:
        from spoonprint.cli.diagnose_windows import self_test

        settings = settings_from(config)
        if uri is None and not settings.printers:
            fail(
                f"no printer in {config.name}: --windows tests a windows: printer; add one, "
                'or give --uri "windows:PRINTER NAME"',
                USAGE,
            )
        target = _printer(settings.printers, printer, uri, protocol)
        raise typer.Exit(
            self_test(settings, target, print_jobs=print_page is True, timeout=timeout)
        )
    from spoonprint.app import VIRTUAL_PRINTER_DIR, VIRTUAL_PRINTER_NAME
    from spoonprint.diagnostics import Diagnose
    from spoonprint.render.fonts import find_typeface
    from spoonprint.transports.base import Timeouts

    settings = settings_from(config)
    # With no printer configured the server prints to its built-in virtual printer, which
    # lives only inside the server: diagnose runs one of its own, saving into the data folder.
    virtual = uri is None and not settings.printers and printer in (None, VIRTUAL_PRINTER_NAME)
    pages = settings.server.data_dir / VIRTUAL_PRINTER_DIR / TEST_PAGES_DIR
    chosen = None if virtual else _printer(settings.printers, printer, uri, protocol)
    delivery = settings.delivery
    timeouts = (
        Timeouts(timeout, timeout, timeout)
        if timeout
        else Timeouts(delivery.connect_timeout, delivery.write_timeout, delivery.status_timeout)
    )
    try:
        typeface = find_typeface(settings.render.font, settings.render.font_index)
    except ConfigError as exc:
        fail(str(exc), USAGE)
    quiet = json_output

    async def run(target: PrinterConfig) -> Diagnosis:
        # Unnamed (only --uri), the address names it: the test page says where it came from.
        title = target.uri if uri is not None and printer is None else target.name
        if not quiet:
            where = "" if title == target.uri else f" at {target.uri}"
            console.print(f"Diagnosing [bold]{title}[/bold]{where}")
        with console.status("starting", spinner="dots") as progress:
            return await Diagnose(
                target,
                typeface,
                timeouts=timeouts,
                stuck_after=settings.recovery.stuck_after,
                page_timeout=page_timeout,
                print_page=print_page is not False,
                on_step=(lambda step: None) if quiet else (lambda step: progress.update(step)),
                on_check=(lambda check: None) if quiet else show_check,
                title=title,
            ).run()

    diagnosis = asyncio.run(run(chosen) if chosen else _on_virtual_printer(run, pages))
    if json_output:
        print_json(as_json(diagnosis))
    else:
        console.print()
        for line in diagnosis.verdict():
            console.print(line, soft_wrap=True, style=None if diagnosis.ok else "bold")
        if virtual and print_page is not False:
            console.print(f"The virtual printer saved the test page in {pages}", soft_wrap=True)
    raise typer.Exit(OK if diagnosis.ok else PRINTER_PROBLEM)


async def _on_virtual_printer(
    run: Callable[[PrinterConfig], Awaitable[Diagnosis]], pages: Path
) -> Diagnosis:
    """``run`` on a virtual printer like the server's built-in one. Its pages go to a folder
    of their own: a running server numbers its tickets in ``virtual-printer`` itself."""
    from spoonprint.app import VIRTUAL_PRINTER_NAME
    from spoonprint.emulator.virtual_printer import VirtualPrinter

    async with VirtualPrinter(host="127.0.0.1", port=0, out_dir=pages) as printer:
        return await run(
            PrinterConfig(name=VIRTUAL_PRINTER_NAME, uri=f"tcp://127.0.0.1:{printer.port}")
        )


def _printer(
    printers: list[PrinterConfig], name: str | None, uri: str | None, protocol: Protocol
) -> PrinterConfig:
    if uri is not None:
        try:
            return PrinterConfig(name=name or ADDRESS_ONLY, uri=uri, protocol=protocol)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            fail(f"--uri: {exc}", USAGE)
    if name is None:
        return printers[0]
    for printer in printers:
        if printer.name == name:
            return printer
    names = ", ".join(p.name for p in printers) or "virtual (built in)"
    fail(f"no printer named {name!r}; printers: {names}", 5)
