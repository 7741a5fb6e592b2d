"""The command line as a newcomer uses it: init, keys, serve with a broken config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import Server, ServerFactory, free_port
from .conftest import run_spoonprint as spoonprint

pytestmark = pytest.mark.e2e


KEY = re.compile(r"^sp_[A-Za-z0-9_-]{40,}$", re.MULTILINE)


def test_init_makes_config_data_and_a_key_shown_once(tmp_path: Path) -> None:
    result = spoonprint(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    (key,) = KEY.findall(result.stdout)
    assert (tmp_path / "spoonprint.toml").is_file()
    db = tmp_path / "spoonprint-data" / "spoonprint.db"
    assert db.is_file()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"plain key found in {path}"
    again = spoonprint(tmp_path, "init")
    assert again.returncode == 0 and not KEY.findall(again.stdout)
    assert "Already set up" in again.stdout
    listed = spoonprint(tmp_path, "keys", "list")
    assert listed.stdout.split() == ["default", "admin", "active"]


def test_init_sets_the_key_apart_under_a_heading(tmp_path: Path) -> None:
    lines = spoonprint(tmp_path, "init").stdout.splitlines()
    (heading,) = [i for i, line in enumerate(lines) if "YOUR API KEY" in line]
    assert set(lines[heading].replace("YOUR API KEY", "").replace(" ", "")) == {"="}
    assert KEY.fullmatch(lines[heading + 1])  # alone on its line: copied without a frame
    assert lines[heading + 2].startswith('Admin key "default", shown only now: copy it')
    assert lines[heading - 1] == "" and set(lines[heading + 3]) == {"="}


def test_init_key_works_and_revoking_takes_effect_at_once(tmp_path: Path) -> None:
    key = KEY.findall(spoonprint(tmp_path, "init").stdout)[0]
    config = tmp_path / "spoonprint.toml"
    port = free_port()
    text = config.read_text(encoding="utf-8").replace("port = 8080", f"port = {port}")
    config.write_text(text.replace('host = "0.0.0.0"', 'host = "127.0.0.1"'), encoding="utf-8")
    extra = spoonprint(tmp_path, "keys", "create", "website", "--role", "print")
    (website_key,) = KEY.findall(extra.stdout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    server = Server(config, port, key, env, tmp_path / "server.log").start()
    try:
        answer = httpx.post(
            f"{server.url}/print", json={"text": "Hello World Test"}, headers={"X-API-Key": key}
        )
        assert answer.status_code == 202
        job = server.wait_for_state(answer.json()["job_id"], "printed")
        assert job["printer"] == "virtual"
        saved = list((tmp_path / "spoonprint-data" / "virtual-printer").glob("*.txt"))
        assert "Hello World Test" in saved[0].read_text(encoding="utf-8")
        headers = {"X-API-Key": website_key}
        order = {"text": "from the website"}
        assert httpx.post(f"{server.url}/print", json=order, headers=headers).status_code == 202
        assert httpx.get(f"{server.url}/queue", headers=headers).status_code == 403  # print role
        assert spoonprint(tmp_path, "keys", "revoke", "website").returncode == 0
        assert httpx.post(f"{server.url}/print", json=order, headers=headers).status_code == 401
        status = spoonprint(tmp_path, "status")
        assert status.returncode == 0 and "virtual: online" in status.stdout
    finally:
        server.close()


def test_serve_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "spoonprint.toml").write_text("[server]\nport = 0\n", encoding="utf-8")
    result = spoonprint(tmp_path, "serve")
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_status_says_clearly_when_no_server_runs(tmp_path: Path) -> None:
    result = spoonprint(tmp_path, "status", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3 and "server not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_operations_fail_cleanly(tmp_path: Path) -> None:
    spoonprint(tmp_path, "init")
    assert spoonprint(tmp_path, "keys", "create", "default").returncode == 1
    revoke = spoonprint(tmp_path, "keys", "revoke", "nobody")
    assert revoke.returncode == 1 and "no active key" in revoke.stderr


def test_an_unknown_role_is_a_usage_error(tmp_path: Path) -> None:
    spoonprint(tmp_path, "init")
    bogus = spoonprint(tmp_path, "keys", "create", "x", "--role", "bogus")
    assert bogus.returncode == 2 and "--role must be one of: admin, print" in bogus.stderr
    assert "x" not in spoonprint(tmp_path, "keys", "list").stdout.split()


def test_preview_writes_the_ticket_picture(tmp_path: Path) -> None:
    import json

    from PIL import Image

    from spoonprint.domain.receipt import EXAMPLE

    (tmp_path / "spoonprint.toml").write_text(
        '[[printers]]\nname = "kitchen"\nuri = "tcp://127.0.0.1"\nwidth = 384\nstyle = "kitchen"\n',
        encoding="utf-8",
    )
    (tmp_path / "order.json").write_text(json.dumps({"receipt": EXAMPLE}), encoding="utf-8")
    result = spoonprint(tmp_path, "preview", "order.json", "-o", "ticket.png")
    assert result.returncode == 0, result.stderr
    assert "kitchen: 384 dots, kitchen style" in result.stdout
    with Image.open(tmp_path / "ticket.png") as image:
        assert image.width == 384 and image.height > 200
    bad = spoonprint(tmp_path, "preview", "missing.json")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_a_second_server_on_the_same_data_folder_refuses_to_start(
    make_server: ServerFactory,
) -> None:
    first = make_server([])
    result = subprocess.run(
        [sys.executable, "-m", "spoonprint", "serve", "--config", str(first.config),
         "--port", str(free_port())],
        env=first.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "another spoonprint is already running" in result.stderr
    assert httpx.get(f"{first.url}/status").status_code == 200
