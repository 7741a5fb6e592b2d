"""The ``spoonprint`` command line: the typer application (run by :mod:`spoonprint.cli.main`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from spoonprint import __version__
from spoonprint.cli import serve as lean_serve
from spoonprint.cli.commands import register as register_operations
from spoonprint.cli.common import USAGE, ConfigOption, settings_from, typer_option
from spoonprint.cli.ops import cleanup, ddns_app, service_app
from spoonprint.config import DEFAULT_CONFIG, Settings
from spoonprint.db import DB_FILENAME, connect
from spoonprint.errors import ConfigError
from spoonprint.security.keys import ROLES, KeyProblem, KeyStore

app = typer.Typer(
    help="spoonprint: a print server for restaurant order tickets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
security_app = typer.Typer(
    help="Blocked addresses and security events.", invoke_without_command=True
)
app.add_typer(security_app, name="security")
tls_app = typer.Typer(help="Certificates for HTTPS.", no_args_is_help=True)
app.add_typer(tls_app, name="tls")
app.add_typer(ddns_app, name="ddns")
app.add_typer(service_app, name="service")
app.command()(cleanup)
# start, stop, restart, status, printers, queue, print, test-print, reprint, cancel, logs,
# login, logout, monitor, diagnose:
register_operations(app)
console = Console()
err = Console(stderr=True)

CONFIG_TEMPLATE = """\
# spoonprint configuration. Every key can be overridden by an environment variable:
# SPOONPRINT_<SECTION>__<KEY>, e.g. SPOONPRINT_SERVER__PORT=9000.

[server]
host = "0.0.0.0"
port = 8080
data_dir = "./spoonprint-data"     # SQLite file, logs, virtual-printer output

[delivery]
connect_timeout = 3.0              # seconds
write_timeout = 3.0
status_timeout = 3.0

# With no [[printers]] the built-in virtual printer is used: tickets are saved as files
# under data_dir/virtual-printer. Add your printers like this (the first is the default):
#
# [[printers]]
# name = "kitchen"
# uri = "tcp://192.168.1.50:9100"   # or usb:/dev/usb/lp0, cups:QUEUE, windows:PRINTER NAME,
#                                   # serial:/dev/ttyUSB0?baud=19200, file:/path/to/folder
# protocol = "escpos"

# The health monitor (see README, "When a printer breaks"):
# [recovery]
# interval = 30                     # seconds between checks of each printer
# stuck_after = 60                  # seconds before a spooler job counts as stuck

# Prometheus metrics at /metrics, for an admin key (spoonprint login keeps one for the CLI):
# [metrics]
# open_to_allowed_networks = false  # true: the shop's own networks may scrape without a key

# Dynamic DNS (try it: spoonprint ddns update), and old jobs and logs (spoonprint cleanup):
# [ddns]
# enabled = true
# hostname = "myshop.ddns.net"      # No-IP by default; or provider = "duckdns", token = "..."
# username = "you@example.com"
# password = "..."
# [housekeeping]
# keep_days = 90                    # printed jobs; failed and held jobs are always kept
"""


def _key_store(settings: Settings) -> KeyStore:
    return KeyStore(connect(settings.server.data_dir / DB_FILENAME))


@app.command()
def init(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write a config file and data folder, and make the first API key (shown once)."""
    if config.exists():
        console.print(f"Already set up: {config} exists. Nothing changed.")
        console.print("To make another API key: [bold]spoonprint keys create NAME[/bold]")
        return
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    settings = settings_from(config)
    keys = _key_store(settings)
    existing = {k.name for k in keys.list()}
    name = next(
        n for n in ("default", *(f"default-{i}" for i in range(2, 1000))) if n not in existing
    )
    key = keys.create(name, "admin")
    console.print(f"Wrote {config} and data folder {settings.server.data_dir}")
    # Between a pip install and the server's log the key must be easy to find: a heading and
    # a rule around it, the key alone on its line (a box would be copied with the key).
    console.print()
    console.rule(" YOUR API KEY ", characters="=", style="bold")
    console.print(key, soft_wrap=True, highlight=False, style="bold")
    console.print(
        f'Admin key "{name}", shown only now: copy it and keep it safe. Send it as the '
        "X-API-Key header, or keep it for the CLI with 'spoonprint login'."
    )
    console.rule(characters="=", style="bold")
    console.print()
    console.print("Start the server with: [bold]spoonprint serve[/bold]")


@app.command()
def serve(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str | None, typer_option(lean_serve.HOST)] = None,
    port: Annotated[int | None, typer_option(lean_serve.PORT)] = None,
) -> None:
    """Run the print server (stop with Ctrl+C)."""
    # Reached for what spoonprint.cli.main.run leaves to typer (e.g. -cFILE) and in tests.
    code = lean_serve.serve(lean_serve.ServeArgs(config, host, port))
    if code != lean_serve.OK:
        raise typer.Exit(code)


@app.command("virtual-printer")
def virtual_printer(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 9100,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    out: Annotated[Path, typer.Option(help="Folder for received tickets.")] = Path(
        "virtual-printer"
    ),
    protocol: Annotated[
        str, typer.Option(help="escpos, or star-graphic to act as a Star TSP100/TSP143.")
    ] = "escpos",
    width: Annotated[int, typer.Option(help="Printable width in dots.")] = 576,
    encoding: Annotated[
        str, typer.Option(help="Encoding of the ESC/POS printer font (e.g. big5hkscs).")
    ] = "cp437",
) -> None:
    """Run a virtual network printer that saves every ticket it receives (bytes, text, PNG)."""
    from spoonprint.emulator.virtual_printer import PROTOCOLS, VirtualPrinter

    if protocol not in PROTOCOLS:
        err.print(f"[red]--protocol must be one of: {', '.join(PROTOCOLS)}[/red]")
        raise typer.Exit(2)

    async def run() -> None:
        printer = VirtualPrinter(
            host=host, port=port, out_dir=out, protocol=protocol, width=width, encoding=encoding
        )
        await printer.start()
        console.print(f"Virtual printer on {host}:{printer.port}, saving tickets to {out}")
        try:
            await asyncio.Event().wait()
        finally:
            await printer.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("Stopped.")


@keys_app.command("create")
def keys_create(
    name: str,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "admin",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Make a new API key; it is shown once."""
    if role not in ROLES:  # a mistake on the command line: usage, as typer's own checks
        err.print(f"[red]--role must be one of: {', '.join(ROLES)} (not {role!r})[/red]")
        raise typer.Exit(USAGE)
    try:
        key = _key_store(settings_from(config)).create(name, role)
    except KeyProblem as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(key, soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List API keys (names and roles; keys themselves are never stored)."""
    for key in _key_store(settings_from(config)).list():
        state = "revoked" if key.revoked_at else "active"
        console.print(f"{key.name}\t{key.role}\t{state}")


@keys_app.command("revoke")
def keys_revoke(name: str, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Revoke an API key; it stops working at once."""
    try:
        _key_store(settings_from(config)).revoke(name)
    except KeyProblem as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Revoked {name}.")


@app.command()
def preview(
    order: Annotated[Path, typer.Argument(help="JSON file: the same body as POST /print.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "ticket.png"
    ),
    printer: Annotated[
        str | None, typer.Option(help="Printer whose width and style to use (default: first).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Draw the ticket an order would print, as a PNG, without printing it."""
    from pydantic import ValidationError

    from spoonprint.config import PrinterConfig
    from spoonprint.domain.ticket import document_for
    from spoonprint.http.schemas import parse_order
    from spoonprint.render.base import preview_png
    from spoonprint.render.fonts import find_typeface

    settings = settings_from(config)
    try:
        request = parse_order(order.read_bytes())  # as the server reads it
        typeface = find_typeface(settings.render.font, settings.render.font_index)
    except (OSError, ValidationError, ConfigError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    configs = {p.name: p for p in settings.printers}
    name = printer or request.printer
    if name is not None and name not in configs:
        err.print(f"[red]no printer named {name!r} in {config}[/red]")
        raise typer.Exit(1)
    chosen = (
        configs[name]
        if name
        else next(iter(configs.values()), PrinterConfig(name="virtual", uri="tcp://127.0.0.1"))
    )
    profile = chosen.profile()
    out.write_bytes(preview_png(document_for(request.payload(), profile.style), profile, typeface))
    console.print(f"Wrote {out} ({chosen.name}: {profile.width_dots} dots, {profile.style} style)")


@security_app.callback()
def security_summary(ctx: typer.Context, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Blocked addresses, top offenders and the last hour's security events."""
    if ctx.invoked_subcommand is not None:
        return
    import time

    from spoonprint.app import build_guard
    from spoonprint.security.events import summarise

    settings = settings_from(config)
    guard = build_guard(settings)
    try:
        blocks = guard.blocks.active(time.time())
        summary = summarise(guard.events.path) if guard.events.path else None
    finally:
        guard.close()
    console.print(f"Blocked addresses: {len(blocks)}")
    for block in blocks:
        left = int(block.until - time.time())
        console.print(f"  {block.ip}  {left} s left  ({block.reason})")
    if summary is None or not summary.total:
        console.print("No security events recorded.")
        return
    console.print(
        "Events in the last hour: "
        + (
            ", ".join(f"{event} {count}" for event, count in summary.events_last_hour.most_common())
            or "none"
        )
    )
    console.print("Top offenders:")
    for ip, count in summary.top_offenders:
        console.print(f"  {ip}  {count} events")


@security_app.command("unblock")
def security_unblock(ip: str, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Lift the block on an address (takes effect at once, also on a running server)."""
    from spoonprint.app import build_guard

    guard = build_guard(settings_from(config))
    try:
        removed = guard.unblock(ip)
    finally:
        guard.close()
    if not removed:
        err.print(f"[red]{ip} is not blocked[/red]")
        raise typer.Exit(1)
    console.print(f"Unblocked {ip}.")


@tls_app.command("self-signed")
def tls_self_signed(
    hostname: Annotated[
        list[str] | None, typer.Option("--host", help="Name or IP (repeatable); localhost.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for cert.pem and key.pem.")] = Path("tls"),
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
) -> None:
    """Make a self-signed certificate for HTTPS on the local network."""
    from spoonprint.security.tls import write_self_signed

    cert, key = write_self_signed(out, hostname or ["localhost"], days)
    console.print(f"Wrote {cert} and {key}. Add to spoonprint.toml:")
    console.print(
        f'[security]\ntls_cert = "{cert.as_posix()}"\ntls_key = "{key.as_posix()}"', highlight=False
    )


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)
