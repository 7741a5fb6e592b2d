"""Connection-level rules against a real server over real sockets: the HTTP parser, slow
responses. Clients bind to 127.0.0.2, 127.0.0.3 ... to act as other machines."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from .conftest import ServerFactory, free_port, run_spoonprint, write_config
from .test_dashboard import sign_in


def test_a_response_streaming_past_the_header_timeout_is_not_cut(
    make_server: ServerFactory,
) -> None:
    server = make_server([], SPOONPRINT_SECURITY__HEADER_TIMEOUT="0.5")
    client, _ = sign_in(server)
    orders = server.client()
    job_ids: list[int] = []

    def order() -> None:
        job_ids.append(orders.post("/print", json={"text": "x"}).json()["job_id"])

    # Three header timeouts into the stream, a change that must still reach the page.
    later = threading.Timer(1.5, order)
    started = time.monotonic()
    with client.stream("GET", "/dashboard/api/events", timeout=10) as stream:
        later.start()
        for line in stream.iter_lines():
            if job_ids and line.startswith("data: "):
                jobs = json.loads(line[6:])["state"]["jobs"]
                if any(job["id"] == job_ids[0] for job in jobs):
                    break
            assert time.monotonic() - started < 8, "no event for the new job"
    later.join()
    assert time.monotonic() - started > 1.5
    events = (server.data_dir / "logs" / "security.jsonl").read_text(encoding="utf-8")
    assert "slow_headers" not in events


def test_without_httptools_the_server_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a platform where httptools has no wheel: its import fails.
    blocker = tmp_path / "blocked" / "httptools"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("no httptools here")\n')
    config = tmp_path / "spoonprint.toml"
    write_config(config, free_port(), [])
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    result = run_spoonprint(tmp_path, "serve", "--config", str(config))
    assert result.returncode == 1, result.stderr
    assert "httptools" in result.stderr and "required" in result.stderr
    assert "Traceback" not in result.stderr
