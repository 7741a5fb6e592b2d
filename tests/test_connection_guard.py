"""Connection-level rules against a real server over real sockets: the HTTP parser, slow
responses. Clients bind to 127.0.0.2, 127.0.0.3 ... to act as other machines."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from bench.harness import rss_mb

from .conftest import Server, ServerFactory, free_port, run_spoonprint, write_config
from .test_dashboard import sign_in
from .test_security_e2e import outside, raw_exchange, security_events


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


@pytest.mark.e2e
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


# -- the request head's size --------------------------------------------------------------


def head(path: str = "/status", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    top, _, body = raw.partition(b"\r\n\r\n")
    status = int(top.split(b" ", 2)[1])
    assert b"content-type: application/json" in top.lower(), top
    return status, json.loads(body)


def test_a_normal_head_is_served(server: Server) -> None:
    answer = raw_exchange(server, head(headers=[("X-Big", "x" * 8000)]), source="127.0.0.1")
    assert json_answer(answer)[0] == 200


@pytest.mark.parametrize(
    "headers",
    [[("X-Big", "x" * 100_000)], [(f"X-{n}", "1") for n in range(150)]],
    ids=["one-huge-header", "too-many-headers"],
)
def test_a_head_over_the_limits_is_431(server: Server, headers: list[tuple[str, str]]) -> None:
    status, body = json_answer(raw_exchange(server, head(headers=headers)))
    assert status == 431 and body["error"] == "request headers too large"
    assert "16384 bytes" in body["detail"] and "100 headers" in body["detail"]


def stream_header(port: int, source: str, total: int) -> tuple[bytes, int]:
    """Send a head whose one header never ends, ``total`` bytes in 4 KB pieces; (what the
    server answered, bytes it took before it hung up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        sent = 0
        try:
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Long: ")
            while sent < total:
                s.sendall(b"y" * 4096)
                sent += 4096
        except OSError:
            pass  # the server closed: what did it say?
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                answer += chunk
    return answer, sent


def test_streamed_header_bytes_are_cut_off_and_do_not_pile_up(server: Server) -> None:
    assert server.proc is not None
    before = rss_mb(server.proc.pid)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda n: stream_header(server.port, f"127.0.0.{n + 2}", 8 * 1024 * 1024),
                range(8),
            )
        )
    for answer, sent in results:
        assert json_answer(answer)[0] == 431
        assert sent < 8 * 1024 * 1024  # refused long before the end
    assert rss_mb(server.proc.pid) - before < 20


# -- slow clients -------------------------------------------------------------------------

SHOP_ONLY = {
    "SPOONPRINT_SECURITY__ALLOWED_NETWORKS": '["127.0.0.1/32"]',
    "SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE": "1000",
}


def connect(server: Server, source: str) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=5, source_address=(source, 0)
    )


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_slow_headers_are_408_and_strikes_an_idle_connection_is_neither(
    make_server: ServerFactory,
) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__HEADER_TIMEOUT="0.5",
        SPOONPRINT_SECURITY__BLOCK_AFTER="2",
    )
    for _ in range(3):  # connections that never send a byte, as browsers keep spare ones
        with connect(server, "127.0.0.3") as idle:
            assert read_all(idle) == b""  # closed, nothing said
    assert outside(server, server.key, "127.0.0.3").get("/printers").status_code == 200
    for _ in range(2):
        with connect(server, "127.0.0.2") as slow:
            slow.sendall(b"GET /printers HTTP/1.1\r\nHost: x\r\n")  # ... never the end
            status, body = json_answer(read_all(slow))
            assert status == 408 and body["error"] == "request headers too slow"
    assert outside(server, server.key).get("/printers").status_code == 403  # blocked
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert [(e["ip"], e["detail"]) for e in strikes] == [("127.0.0.2", "slow headers")] * 2


def post_head(server: Server, path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_a_body_sent_too_slowly_is_408_and_a_strike(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__BODY_TIMEOUT="1",
        SPOONPRINT_SECURITY__BLOCK_AFTER="2",
    )
    body = json.dumps({"text": "Table 4: 2 x BBQ pork rice"}).encode()
    with connect(server, "127.0.0.2") as fine:  # slow, but within the time
        fine.sendall(post_head(server, "/print", len(body)))
        for piece in (body[:5], body[5:10], body[10:]):
            time.sleep(0.1)  # a slow link, on purpose
            fine.sendall(piece)
        assert json_answer(read_all(fine))[0] == 202
    for path in ("/preview", "/print"):
        with connect(server, "127.0.0.2") as slow:
            slow.sendall(post_head(server, path, len(body)) + body[:10])  # ... and no more
            started = time.monotonic()
            status, answer = json_answer(read_all(slow))
            assert status == 408 and answer["error"] == "request body too slow", answer
            assert "within 1 s" in answer["detail"]
            assert time.monotonic() - started < 4
    assert outside(server, server.key).get("/printers").status_code == 403  # blocked
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert [e["detail"] for e in strikes] == ["slow body"] * 2
    log = server.log.read_text(errors="replace")
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]


# -- connection caps ----------------------------------------------------------------------


def get_status(server: Server, source: str) -> tuple[int, dict[str, Any]]:
    with connect(server, source) as sock:
        sock.sendall(head())
        return json_answer(read_all(sock))


def test_one_address_cannot_hold_more_than_its_share(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__MAX_CONNECTIONS_PER_ADDRESS="3")
    held = [connect(server, "127.0.0.2") for _ in range(3)]
    try:
        status, body = get_status(server, "127.0.0.2")
        assert status == 429 and body["error"] == "too many connections"
        assert "at most 3 open connections from one address" in body["detail"]
        assert get_status(server, "127.0.0.3")[0] == 200  # another address is not held up
        assert server.client().post("/print", json={"text": "x"}).status_code == 202
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while get_status(server, "127.0.0.2")[0] != 200:  # the server sees the closes soon
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_outsiders_cannot_use_up_the_shops_connections(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__MAX_CONNECTIONS_PER_ADDRESS="2",
        SPOONPRINT_SECURITY__MAX_CONNECTIONS_OUTSIDE="4",
        SPOONPRINT_SECURITY__MAX_CONNECTIONS_ALLOWLISTED="3",
    )
    held = [connect(server, f"127.0.0.{n}") for n in (2, 2, 3, 3)]
    try:
        status, body = get_status(server, "127.0.0.4")
        assert status == 503 and body["error"] == "server busy"
        assert "outside the shop's network" in body["detail"]
        for n in range(5):  # the shop's own orders go on, each on a new connection
            order = server.client()
            assert order.post("/print", json={"text": f"{n}"}).status_code == 202
            order.close()
        held += [connect(server, "127.0.0.1") for _ in range(3)]
        status, body = get_status(server, "127.0.0.1")
        assert status == 503 and "kept for the shop's own network" in body["detail"]
    finally:
        for sock in held:
            sock.close()


def test_a_blocked_address_loses_the_connections_it_has_open(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    kept = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=5, source_address=("127.0.0.2", 0)
    )
    try:
        kept.request("GET", "/printers", headers={"X-API-Key": server.key})
        first = kept.getresponse()
        assert first.status == 200 and first.getheader("connection") != "close"
        first.read()
        for probe in ("/admin", "/.env"):  # on other connections: blocked
            assert outside(server).get(probe).status_code == 404
        started = time.monotonic()
        with pytest.raises((http.client.HTTPException, OSError)):
            kept.request("GET", "/printers", headers={"X-API-Key": server.key})
            kept.getresponse()
        assert time.monotonic() - started < 4  # closed by the block, not by keep-alive's 5 s
    finally:
        kept.close()
    assert server.client().get("/printers").status_code == 200
