"""``spoonprint serve`` without the command-line framework.

The server is the one command that runs for long and whose start-up time matters, so
:func:`spoonprint.cli.main.run` hands it here when its options are plainly well formed: no
typer, no rich, no API client (some 80 modules and ~4 MB of resident memory). Anything else
(``--help``, a mistake, an unusual spelling) goes to the typer application
(:mod:`spoonprint.cli.app`), which declares the same options from :data:`OPTIONS` and runs the
same :func:`serve`, so the help text, the error messages and the exit codes are typer's, as
they always were.

Exit codes: 0 stopped normally, 1 could not start (see :mod:`spoonprint.cli.common`), 2 the
config file does not load, a config file named explicitly does not exist or the port cannot
be had, 130 interrupted before the server took over Ctrl+C.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spoonprint.config import DEFAULT_CONFIG, load_settings
from spoonprint.errors import ConfigError, SpoonprintError

#: Exit codes, as in :mod:`spoonprint.cli.common` (not imported: it imports typer).
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class ServeOption:
    """One option of ``spoonprint serve``: what typer declares and the lean parser reads."""

    #: The parameter's name in :class:`ServeArgs` and in the typer command.
    name: str
    flags: tuple[str, ...]
    help: str
    #: Text on the command line to value; ValueError when it is not one.
    parse: Callable[[str], object]
    envvar: str | None = None


CONFIG = ServeOption("config", ("--config", "-c"), "Config file.", Path, envvar="SPOONPRINT_CONFIG")
HOST = ServeOption("host", ("--host",), "Listen address (overrides config).", str)


def _digits(text: str) -> int:
    # Plain decimal digits only: typer reads other spellings ("8080.0") its own way, so those
    # are left to it.
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a port number: {text!r}")
    return int(text)


PORT = ServeOption("port", ("--port",), "Port (overrides config).", _digits)
OPTIONS = (CONFIG, HOST, PORT)


@dataclass(frozen=True)
class ServeArgs:
    config: Path = DEFAULT_CONFIG
    host: str | None = None
    port: int | None = None


def parse_args(args: Sequence[str], environ: Mapping[str, str]) -> ServeArgs | None:
    """The options of ``spoonprint serve ARGS`` when every one is written ``--flag VALUE``,
    ``--flag=VALUE`` or ``-c VALUE``; None for anything else (help, an unknown option, a
    missing or malformed value, a value that starts with ``-``, shell completion), which the
    typer application then answers exactly as it would have."""
    if _completion_requested(environ) or (os.name == "nt" and _has_wildcards(args)):
        return None  # typer's business: completion scripts, Windows wildcard expansion
    by_flag = {flag: option for option in OPTIONS for flag in option.flags}
    values: dict[str, object] = {}
    rest = list(args)
    while rest:
        flag, equals, inline = rest.pop(0).partition("=")
        option = by_flag.get(flag)
        if option is None or (equals and not flag.startswith("--")):
            return None
        text = inline if equals else (rest.pop(0) if rest else "")
        if not text or text.startswith("-"):
            return None
        try:
            values[option.name] = option.parse(text)  # the last one wins, as in typer
        except ValueError:
            return None
    if CONFIG.name not in values and CONFIG.envvar and environ.get(CONFIG.envvar):
        values[CONFIG.name] = CONFIG.parse(environ[CONFIG.envvar])
    return ServeArgs(**values)  # type: ignore[arg-type]  # each value parsed by its option


def serve(args: ServeArgs) -> int:
    """Load the config, apply the overrides and run the server until it is stopped; the exit
    code."""
    try:
        return _serve(args)
    except KeyboardInterrupt:  # Ctrl+C before the server took the signal over
        return INTERRUPTED


def _serve(args: ServeArgs) -> int:
    # Only the default file may be missing (then the built-in defaults): a file named with
    # --config or SPOONPRINT_CONFIG that is not there is a typo, and starting on defaults with
    # a new, empty data folder would hide it.
    if args.config != DEFAULT_CONFIG and not args.config.exists():
        _report(
            f"config file {args.config} not found (no such file): check the name, or make it "
            f"with 'spoonprint init --config {args.config}'"
        )
        return USAGE
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _report(str(exc))
        return USAGE
    if args.host is not None:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    # Imported here: a broken config is reported without loading the server.
    from spoonprint.server import serve as run_server

    try:
        run_server(settings)
    except ConfigError as exc:  # e.g. the port is taken: the config's to change
        _report(str(exc))
        return USAGE
    except SpoonprintError as exc:
        _report(f"cannot start: {exc}")
        return FAILED
    return OK


def _report(message: str) -> None:
    """The error on stderr, red on a terminal, as every other command says it. Only failures
    reach this, so importing rich here costs the start-up nothing."""
    from rich.console import Console

    # Not markup: messages quote config sections such as "[server]", and one line, unwrapped.
    Console(stderr=True).print(message, style="red", markup=False, soft_wrap=True)


def _completion_requested(environ: Mapping[str, str]) -> bool:
    # click's completion variable is _{PROG}_COMPLETE; typer's helpers are _TYPER_COMPLETE_*.
    return any(name.startswith("_") and "_COMPLETE" in name for name in environ)


def _has_wildcards(args: Sequence[str]) -> bool:
    return any(char in arg for arg in args for char in "*?[")
