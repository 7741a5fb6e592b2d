"""Commands for running spoonprint unattended: ``ddns update``, ``service install|uninstall``
and ``cleanup``. Registered in :mod:`spoonprint.cli.app`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from spoonprint.cli.common import ConfigOption, settings_from
from spoonprint.config import DEFAULT_CONFIG, Settings
from spoonprint.errors import ConfigError
from spoonprint.service import DEFAULT_NAME, ServiceError

console = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]

ddns_app = typer.Typer(
    help="Dynamic DNS: keep a name like myshop.ddns.net pointing at this shop.",
    no_args_is_help=True,
)
service_app = typer.Typer(
    help="Start spoonprint with the computer (systemd on Linux, a Windows service).",
    no_args_is_help=True,
)


# -- ddns -------------------------------------------------------------------------------


@ddns_app.command("update")
def ddns_update(
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[
        bool, typer.Option(help="Send the address even if it has not changed (checks the login).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Update the dynamic DNS name once, now, and say how it went."""
    from spoonprint.ddns import client_for

    settings = settings_from(config)
    try:
        client = client_for(settings)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    outcome = asyncio.run(client.update(force=force))
    if as_json:
        record = {
            "status": str(outcome.status),
            "ip": outcome.ip,
            "code": outcome.code,
            "message": outcome.message,
            "retry_after": outcome.retry_after,
        }
        console.print_json(json.dumps(record))
    elif outcome.ok:
        console.print(outcome.message, highlight=False)
    else:
        err.print(f"[red]{outcome.message}[/red]", highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


# -- service ----------------------------------------------------------------------------


@service_app.command("install")
def service_install(
    config: ConfigOption = DEFAULT_CONFIG,
    user: Annotated[
        str | None,
        typer.Option(
            help="Linux: the user the service runs as (default: who ran sudo). Windows: the "
            "account (.\\USER), its password asked (default: LocalSystem)."
        ),
    ] = None,
    unit_dir: Annotated[
        Path | None,
        typer.Option(help="Linux: where to write the unit (~/.config/systemd/user: a user unit)."),
    ] = None,
    name: Annotated[str, typer.Option(help="Service name.")] = DEFAULT_NAME,
    no_start: Annotated[bool, typer.Option("--no-start", help="Only install it.")] = False,
) -> None:
    """Make spoonprint start with the computer and restart after a crash."""
    settings = settings_from(config, required=True)
    config = config.absolute()
    try:
        if sys.platform == "win32":
            from spoonprint.service import windows
            from spoonprint.transports.uri import parse_uri

            password = typer.prompt(f"Password of {user}", hide_input=True) if user else None
            uris = [parse_uri(printer.uri) for printer in settings.printers]
            queues = [uri.target for uri in uris if uri.scheme == "windows"]
            done = windows.install(
                config, name, start=not no_start, account=user, password=password, printers=queues
            )
            for line in done:
                console.print(line, highlight=False)
            return
        _install_systemd(config, settings, user, unit_dir, name, not no_start)
    except ServiceError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None


def _install_systemd(
    config: Path,
    settings: Settings,
    user: str | None,
    unit_dir: Path | None,
    name: str,
    start: bool,
) -> None:
    from spoonprint.service import systemd

    folder = unit_dir.absolute() if unit_dir else systemd.SYSTEM_UNIT_DIR
    spec, warnings = systemd.plan(
        config, settings.server.data_dir, unit_dir=folder, user=user, name=name
    )
    outcome = systemd.install(spec, folder, start=start)
    console.print(f"Wrote {outcome.unit_path}", highlight=False)
    for warning in warnings:
        err.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    commands = " && ".join(" ".join(command) for command in outcome.commands)
    if outcome.ran:
        console.print(f"Ran: {commands}", highlight=False)
        console.print(f"spoonprint now starts with the computer. Its log: journalctl -u {name}")
    else:
        console.print("To start it now and at every boot, run:", highlight=False)
        sudo = "" if spec.user_unit else "sudo "
        console.print(f"  {sudo}{commands.replace(' && ', f' && {sudo}')}", highlight=False)


@service_app.command("uninstall")
def service_uninstall(
    unit_dir: Annotated[
        Path | None, typer.Option(help="Linux: the folder the unit was written to.")
    ] = None,
    name: Annotated[str, typer.Option(help="Service name.")] = DEFAULT_NAME,
    no_stop: Annotated[
        bool, typer.Option("--no-stop", help="Linux: only remove the unit file.")
    ] = False,
) -> None:
    """Stop the service and remove it (the config and data stay)."""
    try:
        if sys.platform == "win32":
            from spoonprint.service import windows

            for line in windows.uninstall(name):
                console.print(line, highlight=False)
            return
        from spoonprint.service import systemd

        folder = unit_dir.absolute() if unit_dir else systemd.SYSTEM_UNIT_DIR
        outcome = systemd.uninstall(name, folder, stop=not no_stop)
    except ServiceError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"Removed {outcome.unit_path}", highlight=False)
    commands = " && ".join(" ".join(command) for command in outcome.commands)
    if outcome.ran:
        console.print(f"Ran: {commands}", highlight=False)
    else:
        console.print(f"If it was running, also run: {commands}", highlight=False)


# -- cleanup ----------------------------------------------------------------------------


def cleanup(
    config: ConfigOption = DEFAULT_CONFIG,
    keep_days: Annotated[
        int | None,
        typer.Option(min=1, help="Keep finished jobs this many days (default: the config's)."),
    ] = None,
    no_vacuum: Annotated[
        bool, typer.Option("--no-vacuum", help="Do not compact the database.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old printed jobs and old logs, and compact the database (safe while serving)."""
    from spoonprint.errors import StoreError
    from spoonprint.housekeeping import run_cleanup

    settings = settings_from(config)
    try:
        report = run_cleanup(
            settings, keep_days=keep_days, do_vacuum=not no_vacuum, dry_run=dry_run
        )
    except (StoreError, OSError) as exc:
        err.print(f"[red]cleanup failed: {exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    verb = "Would delete" if dry_run else "Deleted"
    kept = keep_days or settings.housekeeping.keep_days
    states = ", ".join(f"{count} {state}" for state, count in sorted(report.jobs_deleted.items()))
    console.print(
        f"{verb} {report.jobs_total} job(s) finished more than {kept} days ago"
        + (f" ({states}) and their {report.events_deleted} history rows" if states else "")
        + ". Failed and held jobs are kept.",
        highlight=False,
    )
    for path in report.logs_rotated:
        console.print(f"{'Would rotate' if dry_run else 'Rotated'} {path}", highlight=False)
    if report.rotation_skipped:
        console.print(f"Logs not rotated: {report.rotation_skipped}.", highlight=False)
    for path in report.logs_removed:
        console.print(f"{verb} {path}", highlight=False)
    if report.tickets_removed:
        console.print(f"{verb} {report.tickets_removed} old virtual-printer file(s).")
    if report.vacuumed:
        console.print(
            f"Compacted the database: {_mib(report.db_bytes_before)} -> "
            f"{_mib(report.db_bytes_after)}.",
            highlight=False,
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
