"""``spoonprint serve`` starts without the command-line framework, and reads its options exactly
as the typer command declares them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from spoonprint.cli import serve
from spoonprint.cli.app import app
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import ServerFactory
from .conftest import run_spoonprint as spoonprint

#: Modules only the other commands need: a server that imported one paid for it at start-up.
CLI_ONLY = ("typer", "rich", "httpx", "spoonprint.cli.app", "spoonprint.cli.commands")
#: Modules the server loads when first needed (the first scrape), or never (WebSockets).
LATER = ("prometheus_client", "spoonprint.http.prometheus", "websockets", "wsproto")
#: The rendering code, loaded in the background once the server listens (or by a first ticket).
RENDERING = ("PIL", "spoonprint.render.base")
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)

#: Command lines for ``spoonprint serve``: well formed, unusual and wrong.
ARGVS = [
    [],
    ["--config", "a.toml"],
    ["--config=a.toml"],
    ["-c", "a.toml"],
    ["-ca.toml"],
    ["-c=a.toml"],
    ["--host", "0.0.0.0", "--port", "9000"],
    ["--port=9000", "--port", "9001"],
    ["--port", "08080"],
    ["--port", "8080.0"],
    ["--port", "x"],
    ["--port", "-1"],
    ["--port"],
    ["--host", "--port", "9000"],
    ["--config="],
    ["--help"],
    ["--bogus"],
    ["extra"],
    ["--", "--port", "1"],
]


def typer_reading(args: list[str]) -> serve.ServeArgs | None:
    """The options typer's ``serve`` command makes of ``args``; None when it refuses them."""
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    try:
        with command.make_context("serve", list(args), resilient_parsing=False) as context:
            return serve.ServeArgs(**context.params)
    except (Exception, SystemExit):
        return None


def test_a_running_server_never_imported_the_command_line_framework_nor_prometheus(
    make_server: ServerFactory,
) -> None:
    server = make_server([], PYTHONPROFILEIMPORTTIME="1")
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit code is -SIGTERM.
    assert server.stop() in (0, -signal.SIGTERM)
    imported = set(IMPORTED.findall(server.log.read_text(errors="replace")))
    assert "spoonprint.server" in imported  # the log does list the server's imports
    assert sorted(m for m in imported if m.split(".")[0] in CLI_ONLY or m in CLI_ONLY) == []
    assert sorted(m for m in imported if m.split(".")[0] in LATER or m in LATER) == []


def test_the_rendering_code_loads_after_the_server_listens(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    # A printer of its own: without one the built-in virtual printer, which draws its paper
    # with the imaging library, would start with the server.
    kitchen = {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}
    server = make_server([kitchen], PYTHONPROFILEIMPORTTIME="1")
    server.wait_for_log("ticket font: ")  # the background warm-up has rendered a sample
    server.stop()
    log = server.log.read_text(errors="replace")
    listening = log.index("spoonprint: listening on")
    loaded = {m.group(1): m.start() for m in reversed(list(IMPORTED.finditer(log)))}
    assert {module: loaded[module] > listening for module in RENDERING} == dict.fromkeys(
        RENDERING, True
    )


@pytest.mark.parametrize("args", ARGVS, ids=" ".join)
def test_the_lean_reading_agrees_with_typer_or_leaves_it_to_typer(args: list[str]) -> None:
    lean = serve.parse_args(args, {})
    if lean is not None:
        assert lean == typer_reading(args)


def test_well_formed_options_are_read_without_typer() -> None:
    assert serve.parse_args(["--host", "0.0.0.0", "--port=9000", "-c", "x.toml"], {}) == (
        serve.ServeArgs(Path("x.toml"), "0.0.0.0", 9000)
    )
    assert serve.parse_args([], {"SPOONPRINT_CONFIG": "env.toml"}) == serve.ServeArgs(
        Path("env.toml")
    )
    assert serve.parse_args(["-c", "cli.toml"], {"SPOONPRINT_CONFIG": "env.toml"}) == (
        serve.ServeArgs(Path("cli.toml"))
    )
    assert serve.parse_args([], {"SPOONPRINT_CONFIG": ""}) == serve.ServeArgs()
    for unusual in (["--help"], ["-ca.toml"], ["--port", "8080.0"], ["--host"]):
        assert serve.parse_args(unusual, {}) is None
    assert serve.parse_args([], {"_SPOONPRINT_COMPLETE": "bash_source"}) is None


def test_typer_declares_serve_options_from_the_one_description() -> None:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    declared = {p.name: (tuple(p.opts), p.help, p.envvar) for p in command.params}
    assert declared == {o.name: (o.flags, o.help, o.envvar) for o in serve.OPTIONS}


@pytest.mark.e2e
def test_help_and_mistakes_are_typers(tmp_path: Path) -> None:
    shown = spoonprint(tmp_path, "serve", "--help")
    assert shown.returncode == 0 and "Run the print server" in shown.stdout
    assert "SPOONPRINT_CONFIG" in shown.stdout
    wrong = spoonprint(tmp_path, "serve", "--port", "eighty")
    assert wrong.returncode == 2 and "--port" in wrong.stderr


@pytest.mark.e2e
def test_an_unusual_spelling_serves_through_typer_with_the_same_exit_code(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[server]\nport = 0\n", encoding="utf-8")
    for args in (["-cbad.toml"], ["-c", "bad.toml"]):
        result = spoonprint(tmp_path, "serve", *args)
        assert result.returncode == 2 and "server.port" in result.stderr, args


@pytest.mark.e2e
def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    for args in (["--config", "nope.toml"], ["-cnope.toml"]):  # the lean path and typer's
        result = spoonprint(tmp_path, "serve", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "config file nope.toml not found (no such file)" in result.stderr, args
        assert "Traceback" not in result.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    named = subprocess.run(
        [sys.executable, "-m", "spoonprint", "serve"],
        cwd=tmp_path, env={**env, "SPOONPRINT_CONFIG": "shop.toml", "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert named.returncode == 2 and "config file shop.toml not found" in named.stderr
    assert list(tmp_path.iterdir()) == []  # no data folder made on defaults


def test_a_port_in_use_is_one_sentence_and_a_usage_error(make_server: ServerFactory) -> None:
    server = make_server([], start=False)
    with socket.socket() as taken:  # another program holds the port
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "spoonprint", "serve", "--config", str(server.config)],
            env={**server.env, "COLUMNS": "80"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"port {server.port} is already in use (is spoonprint already running? "
        "`spoonprint status`), or set [server] port"
    )
    assert not server.data_dir.exists()  # nothing else was started
