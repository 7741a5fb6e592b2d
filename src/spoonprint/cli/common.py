"""What every operating command shares: exit codes, consoles, common options, friendly failure.

Exit codes (the same for every command, so scripts can tell what went wrong):

==  ===================================================================================
0   done; for ``status``, ``monitor --once`` and ``diagnose``: everything is fine
1   the request failed for another reason (the server answered an error, a job failed)
2   usage or configuration error (a bad option, a config file that does not load)
3   the server is not running or cannot be reached
4   no API key, a wrong key, or a key that may not do this (a print key on an admin action)
5   not found: no such job or printer
6   not possible now: the job is in a state that does not allow it, or the server is
    already running / not started by ``spoonprint start``
7   a printer has a problem (``diagnose``, ``status``, ``print --wait`` that did not print)
==  ===================================================================================
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from spoonprint.cli.serve import CONFIG, ServeOption
from spoonprint.config import DEFAULT_CONFIG, Settings, load_settings
from spoonprint.errors import ConfigError

OK = 0
FAILED = 1
USAGE = 2
NOT_RUNNING = 3
AUTH = 4
NOT_FOUND = 5
CONFLICT = 6
PRINTER_PROBLEM = 7

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def typer_option(option: ServeOption) -> Any:
    """The typer declaration of an option that ``spoonprint serve`` also reads without typer
    (:mod:`spoonprint.cli.serve`): one description for both."""
    return typer.Option(*option.flags, help=option.help, envvar=option.envvar)


ConfigOption = Annotated[Path, typer_option(CONFIG)]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Server URL, e.g. http://192.168.1.20:8080 (default: from the config file).",
        envvar="SPOONPRINT_URL",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="API key (default: SPOONPRINT_API_KEY, then the key saved by 'spoonprint login').",
        envvar="SPOONPRINT_API_KEY",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]

__all__ = ["DEFAULT_CONFIG"]


class CliFailure(Exception):
    """A failure to report in one plain line, with the exit code it maps to."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = FAILED) -> NoReturn:
    """Say what went wrong on stderr (no traceback) and exit with ``code``."""
    err.print(f"[red]{message}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def settings_from(config: Path, *, required: bool = False) -> Settings:
    """The settings, or exit 2 saying why the config file does not load."""
    try:
        return load_settings(config, required=required)
    except ConfigError as exc:
        fail(str(exc), USAGE)


def local_time(timestamp: str, *, seconds: bool = False) -> str:
    """An API time (ISO 8601) as this computer's local time of day, with the date when it is
    not today."""
    moment = datetime.fromisoformat(timestamp).astimezone()
    clock = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
    if moment.date() == datetime.now().astimezone().date():
        return clock
    return f"{moment:%Y-%m-%d} {clock}"


def printing_words(printer: dict[str, Any]) -> str:
    """A printer's circuit breaker (``/printers``) in the owner's words; "" for a printer not
    tried yet, which has nothing to say."""
    breaker = printer.get("breaker")
    if breaker == "open":
        retry = printer.get("retry_at")
        return "pausing after failures" + (
            f", retry at {local_time(retry, seconds=True)}" if retry else ""
        )
    if breaker == "half-open":
        return "trying again"
    # Closed: tickets go out, or are retried on their own timer while it is offline.
    return {True: "printing", False: "retrying", None: ""}[printer.get("online")]


def print_json(value: Any) -> None:
    """JSON on stdout exactly as given (no wrapping, no colour), one document."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
