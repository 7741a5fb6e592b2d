"""Security rules against a real server: keys and roles, allowlist, forwarded-for spoofing,
rate limits, scanner strikes and blocks (also across a restart), raw non-HTTP bytes, slow
headers, TLS. Clients bind to 127.0.0.2 or 127.0.0.3 to play "the internet": the server is told
that only 127.0.0.1 is the shop's own network."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Server, ServerFactory

OUTSIDE = "127.0.0.2"
PROXY = "127.0.0.3"
SHOP_ONLY = {"SPOONPRINT_SECURITY__ALLOWED_NETWORKS": '["127.0.0.1/32"]'}


def outside(server: Server, key: str | None = None, source: str = OUTSIDE) -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    client = httpx.Client(
        base_url=server.url,
        headers=headers,
        timeout=5,
        transport=httpx.HTTPTransport(local_address=source),
    )
    server.clients.append(client)
    return client


def security_events(server: Server) -> list[dict[str, object]]:
    path = server.data_dir / "logs" / "security.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def refused(client: httpx.Client, path: str = "/status") -> bool:
    """A blocked address is cut off: 403, or the connection is closed at once."""
    try:
        return client.get(path).status_code == 403
    except httpx.TransportError:
        return True


def test_every_route_but_status_needs_a_key(server: Server) -> None:
    spec = server.client().get("/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    routes += [("GET", "/openapi.json"), ("GET", "/docs")]
    assert ("POST", "/print") in routes and len(routes) >= 10
    for method, path in routes:
        concrete = path.replace("{job_id}", "1")
        answer = httpx.request(method, server.url + concrete, json={})
        expected = 200 if path == "/status" else 401
        assert answer.status_code == expected, (method, path, answer.status_code)


@pytest.mark.parametrize(
    "key",
    ["sp_wrong", "", "x" * 5000, "sp_ünïcode", "Bearer sp_abc", "sp_" + "A" * 43],
    ids=["wrong", "empty", "huge", "non-ascii", "bearer", "well-formed-unknown"],
)
def test_bad_keys_are_401(server: Server, key: str) -> None:
    headers = {"X-API-Key": key.encode("utf-8")}
    answer = httpx.post(f"{server.url}/print", json={"text": "x"}, headers=headers)
    assert answer.status_code in (401, 431) and "error" in answer.json()


def test_print_role_prints_and_reads_only_its_own_jobs(server: Server, tmp_path: Path) -> None:
    keys = [
        subprocess.run(
            [sys.executable, "-m", "spoonprint", "keys", "create", name, "--role", "print",
             "--config", str(server.config)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for name in ("website", "kiosk")
    ]  # fmt: skip
    web = httpx.Client(base_url=server.url, headers={"X-API-Key": keys[0]})
    kiosk = httpx.Client(base_url=server.url, headers={"X-API-Key": keys[1]})
    server.clients += [web, kiosk]
    job_id = web.post("/print", json={"text": "from the web"}).json()["job_id"]
    assert web.get(f"/jobs/{job_id}").status_code == 200
    assert kiosk.get(f"/jobs/{job_id}").status_code == 404  # someone else's order
    spec = server.client().get("/openapi.json").json()
    allowed = {("POST", "/print"), ("POST", "/preview"), ("GET", "/jobs/{job_id}"),
               ("GET", "/status")}  # fmt: skip
    for path, operations in spec["paths"].items():
        for method in operations:
            if (method.upper(), path) in allowed:
                continue
            concrete = path.replace("{job_id}", str(job_id))
            answer = web.request(method.upper(), concrete, json={})
            assert answer.status_code == 403, (method, path)  # admin only
    assert web.get("/openapi.json").status_code == 403
    subprocess.run(
        [sys.executable, "-m", "spoonprint", "keys", "revoke", "website", "--config",
         str(server.config)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert web.post("/print", json={"text": "again"}).status_code == 401


def test_allowlist_only_refuses_outsiders_even_with_a_key(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__ALLOWLIST_ONLY="true")
    answer = outside(server, server.key).post("/print", json={"text": "x"})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert server.client().post("/print", json={"text": "x"}).status_code == 202


def test_outsiders_are_rate_limited_with_retry_after(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE="3")
    client = outside(server, server.key)
    codes = [client.post("/print", json={"text": f"o{n}"}).status_code for n in range(4)]
    assert codes == [202, 202, 202, 429]
    limited = client.get("/status")
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    for n in range(10):  # the shop's own network is never limited
        assert server.client().post("/print", json={"text": f"s{n}"}).status_code == 202


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__TRUSTED_PROXIES=f'["{PROXY}/32"]',
        SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE="2",
    )
    spoofer = outside(server, server.key)
    spoof = {"X-Forwarded-For": "127.0.0.1"}  # pretending to be the shop
    codes = [spoofer.get("/queue", headers=spoof).status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # still judged as 127.0.0.2
    proxy = outside(server, server.key, source=PROXY)
    assert proxy.get("/queue", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    for _ in range(3):  # the proxy's clients are judged by the address the proxy saw
        proxy.get("/wp-login.php", headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.9"})
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert {e["ip"] for e in strikes} == {"127.0.0.9"}


@pytest.mark.parametrize(
    "probe",
    ["/admin", "/.env", "/wp-login.php", "/cgi-bin/luci", "/phpmyadmin/", "/manager/html",
     "/login", "/static/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/nothing-here"],
)  # fmt: skip
def test_scanner_paths_are_404_json(server: Server, probe: str) -> None:
    answer = httpx.get(server.url + probe)
    assert answer.status_code == 404 and answer.json()["error"] == "not found"


def test_strikes_block_then_the_block_expires(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__BLOCK_AFTER="3",
        SPOONPRINT_SECURITY__BLOCK_SECONDS="1.5",
        SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE="100",
    )
    scanner = outside(server)
    assert [scanner.get(p).status_code for p in ("/admin", "/.env")] == [404, 404]
    assert scanner.request("PROPFIND", "/print").status_code == 404  # unusual method
    assert refused(outside(server, server.key))  # even with a key: blocked
    assert server.client().get("/status").status_code == 200  # others are unaffected
    deadline = time.monotonic() + 10
    while refused(outside(server, server.key)):
        assert time.monotonic() < deadline, "the block never expired"
        time.sleep(0.2)  # waiting out a timed block: nothing to await
    events = {e["event"] for e in security_events(server)}
    assert {"strike", "blocked"} <= events


def test_a_block_survives_a_restart_and_can_be_lifted(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__BLOCK_AFTER="2",
        SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE="100",
    )
    for path in ("/.git/config", "/xmlrpc.php"):
        outside(server).get(path)
    assert refused(outside(server))
    server.stop()
    server.start()
    assert refused(outside(server))
    summary = subprocess.run(
        [sys.executable, "-m", "spoonprint", "security", "--config", str(server.config)],
        capture_output=True, text=True, env=server.env,
    )  # fmt: skip
    assert summary.returncode == 0 and OUTSIDE in summary.stdout
    unblock = subprocess.run(
        [sys.executable, "-m", "spoonprint", "security", "unblock", OUTSIDE, "--config",
         str(server.config)],
        capture_output=True, text=True, env=server.env,
    )  # fmt: skip
    assert unblock.returncode == 0
    assert outside(server).get("/status").status_code == 200  # at once, no restart


def test_the_shop_network_is_never_blocked_only_logged(make_server: ServerFactory) -> None:
    server = make_server([], SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    for _ in range(6):
        assert httpx.get(f"{server.url}/admin").status_code == 404
    assert httpx.get(f"{server.url}/status").status_code == 200
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert len(strikes) == 6 and not any(e["event"] == "blocked" for e in security_events(server))


def raw_exchange(server: Server, data: bytes, source: str = OUTSIDE) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                  source_address=(source, 0)) as sock:  # fmt: skip
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(4096)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     b"GET / HTTP/1.1 extra junk\r\n\r\n", b"\x00\xff\x00\xff" * 8],
    ids=["ssh-banner", "tls-hello", "malformed-line", "binary"],
)  # fmt: skip
def test_raw_non_http_bytes_are_refused_and_count_as_a_strike(
    make_server: ServerFactory, garbage: bytes
) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    for _ in range(2):
        answer = raw_exchange(server, garbage)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
    assert refused(outside(server))
    assert server.client().get("/status").status_code == 200


def test_slow_headers_are_cut_off(make_server: ServerFactory) -> None:
    server = make_server([], SPOONPRINT_SECURITY__HEADER_TIMEOUT="0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # ... and never the end
        started = time.monotonic()
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")  # answered, then hung up on
        assert time.monotonic() - started < 4.5
    assert any(e["event"] == "slow_headers" for e in security_events(server))


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    result = subprocess.run(
        [sys.executable, "-m", "spoonprint", "tls", "self-signed", "--host", "127.0.0.1",
         "--out", str(tmp_path / "tls")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "tls_cert" in result.stdout
    yield tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"


def test_https_with_a_self_signed_certificate(
    make_server: ServerFactory, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server = make_server(
        [],
        start=False,
        SPOONPRINT_SECURITY__TLS_CERT=str(cert),
        SPOONPRINT_SECURITY__TLS_KEY=str(key),
    )
    server.scheme = "https"
    server.verify = str(cert)
    server.start()
    context = ssl.create_default_context(cafile=str(cert))
    answer = httpx.get(f"https://127.0.0.1:{server.port}/status", verify=context)
    assert answer.status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{server.port}/status")
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_forwarded_for_from_loopback_is_not_believed_without_trusted_proxies(
    make_server: ServerFactory,
) -> None:
    # The HTTP server's own proxy-header handling (which trusts 127.0.0.1 by default) is off:
    # only `trusted_proxies` decides whose X-Forwarded-For counts, loopback included.
    server = make_server([])
    local = server.client(key=None)
    local.get("/wp-login.php", headers={"X-Forwarded-For": "203.0.113.7"})
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert [e["ip"] for e in strikes] == ["127.0.0.1"]


@pytest.mark.parametrize(("path", "status"), [("/ws", b"404"), ("/status", b"200")])
def test_websocket_upgrades_are_answered_as_plain_http(
    server: Server, path: str, status: bytes
) -> None:
    """spoonprint has no WebSocket endpoint, and the server loads no WebSocket code: an upgrade
    request is an ordinary request, answered (or refused) like any other, never switched."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close, Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, request, source="127.0.0.1")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b"101 Switching" not in answer
    # Nor logged as a missing feature (uvicorn would advise installing a WebSocket library).
    log = server.log.read_text(errors="replace")
    assert "Unsupported upgrade" not in log and "WebSocket library" not in log, log[-2000:]
