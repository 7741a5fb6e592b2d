"""What reaches the logs from outside cannot drive a terminal or forge a line, and expected
refusals are not logged as errors (issue 16, part 4). Real server, real sockets."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator

from .conftest import Server

#: The order id of the attack run: ESC p (an ESC/POS drawer kick), NUL, CR LF.
HOSTILE_ID = "\u001bp\u0000\r\n"
LINE_START = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def raw_request(server: Server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_outside_values_are_escaped_in_both_logs(server: Server) -> None:
    client = server.client()
    answer = client.post("/print", json={"text": "hello", "order_id": HOSTILE_ID})
    assert answer.status_code == 202, answer.text
    server.wait_for_state(answer.json()["job_id"], "printed")
    # A path with ESC [ 31 m (red) and a CR LF in it: unknown, so a strike, written to the security
    # log just after the 404 is answered.
    assert client.get("/admin%1b%5b31m%0d%0aFAKE").status_code == 404
    security_log = server.data_dir / "logs" / "security.jsonl"
    deadline = time.monotonic() + 10
    while "FAKE" not in (security_log.read_text("utf-8") if security_log.exists() else ""):
        assert time.monotonic() < deadline, "the strike never reached the security log"
        time.sleep(0.02)  # another process's file: nothing to await on

    log_file = server.data_dir / "logs" / "spoonprint.log"
    for path in (log_file, server.log):
        data = path.read_bytes()
        assert b"\x1b" not in data and b"\x00" not in data and b"\r" not in data, path
    log = log_file.read_bytes()
    assert rb"[order \x1bp\x00\r\n]" in log
    # Every line is a record of its own (tracebacks aside, which this run has none of).
    assert all(LINE_START.match(line) for line in log.splitlines()), log.decode()

    security = security_log.read_text(encoding="utf-8")
    events = [json.loads(line) for line in security.splitlines()]
    paths = [event["path"] for event in events]
    assert "/admin\\x1b[31m\\r\\nFAKE" in paths, paths
    for event in events:
        assert all("\x1b" not in str(value) for value in event.values()), event


def test_a_chunked_body_over_the_limit_is_refused_without_an_error_logged(server: Server) -> None:
    client = server.client()
    chunk = b"x" * 65536

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"text": "'
        for _ in range(20):  # 1.25 MB, over the 1 MB limit
            yield chunk

    for path in ("/print", "/preview"):
        answer = client.post(path, content=body(), headers={"Content-Type": "application/json"})
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "request body too large"
    assert client.get("/status").status_code == 200  # the server's log is written by now
    log = server.log.read_text(errors="replace")
    assert "ERROR" not in log and "Traceback" not in log and "BodyTooLarge" not in log, log
