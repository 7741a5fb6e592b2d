"""The cyclic garbage collector is off while the server starts and back on (with the start-up's
objects frozen) once it serves; the other commands get it back after their imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_port

pytestmark = pytest.mark.e2e

#: Runs the ``spoonprint`` entry point with uvicorn's serving replaced by a report of the
#: collector's state at the moment the server would start listening.
PROBE = """
import gc, json, sys
import uvicorn

def report(self, sockets=None):
    print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))

uvicorn.Server.run = report
sys.argv = ["spoonprint", *sys.argv[1:]]
from spoonprint.cli.main import run
run()
"""


def probe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "SPOONPRINT_API_KEY": "sp_test_" + "k" * 32},
    )


def test_the_server_serves_with_the_collector_on_and_the_start_up_frozen(tmp_path: Path) -> None:
    config = tmp_path / "spoonprint.toml"
    config.write_text(
        # A free port: the server opens its socket before uvicorn would serve on it.
        f'[server]\nhost = "127.0.0.1"\nport = {free_port()}\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    done = probe("serve", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["enabled"] is True
    # FastAPI, pydantic and the app's own objects: tens of thousands made during start-up.
    assert state["frozen"] > 10_000


def test_other_commands_run_with_the_collector_on(tmp_path: Path) -> None:
    code = "import gc, sys; from spoonprint.cli import main; main.startup.begin(); "
    code += "import spoonprint.cli.app as a; a.app = lambda: print(gc.isenabled()); "
    code += "sys.argv = ['spoonprint', 'status']; main.run()"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
