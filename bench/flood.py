"""Legitimate orders under scanner traffic: does junk from the internet slow real orders down?

What is measured: the time from sending a legitimate ``POST /print`` (right key, valid order, one
at a time on a keep-alive connection from 127.0.0.1, 10 ms apart) to its ``202`` answer; median,
p99 and max over N orders, first with no other traffic ("quiet"), then again while flood clients
send junk as fast as they can ("under flood"). The figure of merit is p99 under flood / quiet p99
(target: at most 3x). At the end every accepted order must have reached the virtual printer.

The flood clients are separate processes (so they do not share the measuring client's GIL),
niced by default (so they compete for the CPU below the server and the measuring client, as an
attacker on another machine would), each opening a new connection per request with a raw
socket, cycling through: scanner paths (``/admin``, ``/.env``, ``/wp-login.php``, ``/cgi-bin/x``,
``/phpmyadmin/``, ``/../../etc/passwd`` verbatim), ``POST /print`` with a wrong key, oversized
bodies (declared over the 1 MiB limit, and chunked past it), an SSH banner, a TLS ClientHello,
and malformed request lines. Each client is bound to its own source address on loopback:

- ``127.0.0.1``: in ``allowed_networks``, never rate limited nor blocked, so every request it
  sends goes through the server's full cost of refusing junk (parse, check, answer 4xx);
- ``127.0.0.2``, ``127.0.0.3``: outside ``allowed_networks`` (the bench server allows only
  127.0.0.1/32 and ::1/128), so they are rate limited and, after a few strikes, blocked: from
  then on they measure the server's cost of turning away a blocked address (connection aborted
  as soon as it is accepted). Where such an address cannot be bound (e.g. macOS without an
  alias), that client falls back to 127.0.0.1 and the report says so.

What each flood client got back is counted per kind of junk: an HTTP status (404 probe, 401
wrong key, 413 too large, 400 not HTTP, 429 rate limited, 403 blocked), or ``reset`` / ``closed``
(the connection was cut without an answer: a blocked address), ``timeout``, ``not HTTP``. The
server's log is searched for ERROR lines and tracebacks, which a flood must not cause.

Everything goes to 127.0.0.1 only; every loop is bounded in count and time and stops by itself.

    python -m bench.flood [-n 500] [--sources 127.0.0.1,127.0.0.2,127.0.0.3] [--json] [--quick]

``--attacks`` runs the connection attacks of :mod:`bench.attacks` instead (slowloris, slow
bodies, a connection flood).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import multiprocessing
import os
import queue
import secrets
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench.harness import RunningServer, spoonprint_server, summary
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

SERVER_HOST = "127.0.0.1"  # the only address this bench ever sends to
TEXT = "Table 12  Order A-1023\n2 x BBQ Pork Rice\n1 x Milk Tea (less sugar)\nno spring onion"
TIMEOUT = 10.0
GAP = 0.01
TARGET_RATIO = 3.0
MAX_BODY = 1024 * 1024  # the server's default max_body_bytes
FLOOD_SOCKET_TIMEOUT = 2.0
FLOOD_MAX_REQUESTS = 2_000_000  # per client; the time limit normally ends it long before
PHASE_SECONDS = 300.0  # hard limit on one measured phase
DEFAULT_SOURCES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


# -- the server ------------------------------------------------------------------------------


#: Only 127.0.0.1 is the shop, so flood clients on 127.0.0.2+ can be rate limited and blocked
#: (the default allows all of 127.0.0.0/8).
SHOP_ONLY = '[security]\nallowed_networks = ["127.0.0.1/32", "::1/128"]\n'


# -- junk ------------------------------------------------------------------------------------


def _request(
    method: str, path: str, port: int, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {SERVER_HOST}:{port}", "User-Agent: zgrab/0.x"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _chunked(total: int, chunk: int = 64 * 1024) -> bytes:
    piece = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"
    return piece * (total // chunk + 1) + b"0\r\n\r\n"


def _tls_client_hello() -> bytes:
    body = b"\x03\x03" + secrets.token_bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00\x00\x00"
    handshake = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def junk_requests(port: int) -> list[tuple[str, bytes]]:
    """(kind, bytes to send on a fresh connection) for every kind of junk, in flood order."""
    wrong_key = {"X-API-Key": "sp_" + "x" * 40, "Content-Type": "application/json"}
    order = json.dumps({"text": "free food"}).encode()
    oversized = b"x" * (MAX_BODY + 1024)
    get = {"Accept": "*/*", "Connection": "close"}
    return [
        ("GET /admin", _request("GET", "/admin", port, get)),
        ("GET /.env", _request("GET", "/.env", port, get)),
        ("GET /wp-login.php", _request("GET", "/wp-login.php", port, get)),
        ("GET /cgi-bin/x", _request("GET", "/cgi-bin/x", port, get)),
        ("GET /phpmyadmin/", _request("GET", "/phpmyadmin/", port, get)),
        ("GET /../../etc/passwd", _request("GET", "/../../etc/passwd", port, get)),
        (
            "POST /print wrong key",
            _request(
                "POST", "/print", port, {**wrong_key, "Content-Length": str(len(order))}, order
            ),
        ),
        (
            "POST /print oversized",
            _request("POST", "/print", port, {**wrong_key, "Content-Length": str(len(oversized))})
            + oversized,
        ),
        (
            "POST /print chunked oversized",
            _request("POST", "/print", port, {**wrong_key, "Transfer-Encoding": "chunked"})
            + _chunked(MAX_BODY + 1024),
        ),
        ("SSH banner", b"SSH-2.0-OpenSSH_8.9\r\n"),
        ("TLS ClientHello", _tls_client_hello()),
        ("malformed request line", b"GET\r\n\r\n"),
        ("bad protocol", b"GET / HTTP/9.9 extra\r\n\r\n"),
        ("garbage", b"\x00\xff\xfe junk \x01\x02\r\n\r\n"),
    ]


def send_junk(source: str, port: int, data: bytes) -> str:
    """Send one piece of junk on a new connection from ``source``; what came back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Reset instead of TIME_WAIT on close, so a fast flood does not run out of ports.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.settimeout(FLOOD_SOCKET_TIMEOUT)
        sock.bind((source, 0))
        sock.connect((SERVER_HOST, port))
        # The server may answer (413) or hang up before it took it all: read what it said.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        head = sock.recv(4096)
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except OSError as exc:
        return f"error {exc.errno}"
    finally:
        sock.close()
    if not head:
        return "closed"
    if head.startswith(b"HTTP/1."):
        parts = head.split(b" ", 2)
        if len(parts) > 1 and parts[1].isdigit():
            return parts[1].decode()
    return "not HTTP"


Limits = tuple[float, int, int]  # seconds, requests, niceness


def flood_worker(
    source: str, port: int, stop: Event, results: multiprocessing.Queue[Any], limits: Limits
) -> None:
    """One flood client: junk as fast as it can until ``stop``, its time or its count is up."""
    max_seconds, max_requests, nice = limits
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    junk = junk_requests(port)
    outcomes: Counter[str] = Counter()
    results.put(("started", source, {}))
    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    sent = 0
    while sent < max_requests and not stop.is_set() and time.monotonic() < deadline:
        kind, data = junk[sent % len(junk)]
        outcomes[f"{kind} -> {send_junk(source, port, data)}"] += 1
        sent += 1
    elapsed = time.perf_counter() - started
    results.put(("done", source, {"sent": sent, "seconds": elapsed, "outcomes": dict(outcomes)}))


@dataclass
class Flood:
    sources: list[str]
    stop: Event
    results: multiprocessing.Queue[Any]
    processes: list[multiprocessing.process.BaseProcess]

    def finish(self) -> list[dict[str, Any]]:
        """Stop every client and collect what each sent; never waits more than a few seconds."""
        self.stop.set()
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + FLOOD_SOCKET_TIMEOUT * 3 + 5
        while len(reports) < len(self.processes) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                what, source, report = self.results.get(timeout=0.5)
                if what == "done":
                    reports.append({"source": source, **report})
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        return sorted(reports, key=lambda report: str(report["source"]))


def start_flood(port: int, sources: list[str], max_seconds: float, nice: int) -> Flood:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    results: multiprocessing.Queue[Any] = context.Queue()
    limits: Limits = (max_seconds, FLOOD_MAX_REQUESTS, nice)
    processes: list[multiprocessing.process.BaseProcess] = [
        context.Process(
            target=flood_worker, args=(source, port, stop, results, limits), daemon=True
        )
        for source in sources
    ]
    for process in processes:
        process.start()
    flood = Flood(sources, stop, results, processes)
    started = 0
    deadline = time.monotonic() + 30
    while started < len(processes) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            if flood.results.get(timeout=0.5)[0] == "started":
                started += 1
    if started < len(processes):
        flood.finish()
        raise RuntimeError("the flood clients did not start")
    return flood


def usable_source(address: str) -> str:
    """``address`` if this machine can send from it, else 127.0.0.1."""
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
        return address
    except OSError:
        return SERVER_HOST


# -- the legitimate client -------------------------------------------------------------------


@dataclass
class Orders:
    samples: list[float]
    errors: Counter[str]
    accepted: int


def legit_orders(
    server: RunningServer, count: int, warmup: int, max_seconds: float, timed: bool = False
) -> Orders:
    """``count`` orders one at a time (after ``warmup`` untimed ones), seconds to 202 each.
    ``timed``: ``max_seconds`` is the phase's length, not a limit whose reaching is an error."""
    port = int(server.url.rsplit(":", 1)[1])
    headers = {"X-API-Key": server.key, "Content-Type": "application/json"}
    client = http.client.HTTPConnection(SERVER_HOST, port, timeout=TIMEOUT)
    samples: list[float] = []
    errors: Counter[str] = Counter()
    accepted = 0
    deadline = time.monotonic() + max_seconds
    for n in range(warmup + count):
        if time.monotonic() > deadline:
            if not timed:
                errors["phase time limit reached"] += count + warmup - n
            break
        body = json.dumps({"text": f"{TEXT}\n#{n}"})
        start = time.perf_counter()
        try:
            client.request("POST", "/print", body, headers)
            answer = client.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] += 1
            client.close()  # http.client reconnects on the next request
            continue
        took = time.perf_counter() - start
        if answer.status != 202:
            errors[f"HTTP {answer.status}"] += 1
            continue
        accepted += 1
        if n >= warmup:
            samples.append(took)
        time.sleep(GAP)
    client.close()
    return Orders(samples, errors, accepted)


# -- the run ---------------------------------------------------------------------------------


def _server_errors(log: Path) -> list[str]:
    """The server's ERROR lines and tracebacks (a flood must cause none), at most 20."""
    lines = log.read_text("utf-8", errors="replace").splitlines()
    return [line for line in lines if " ERROR " in line or line.startswith("Traceback")][:20]


def run(count: int, warmup: int, sources: list[str], nice: int) -> dict[str, Any]:
    used = [usable_source(source) for source in sources]
    with VirtualPrinterThread() as printer, spoonprint_server(printer.port, SHOP_ONLY) as server:
        port = int(server.url.rsplit(":", 1)[1])
        quiet = legit_orders(server, count, warmup, PHASE_SECONDS)
        flood = start_flood(port, used, PHASE_SECONDS + 30, nice)
        try:
            time.sleep(0.5)  # let the flood reach full speed (and the blocks happen)
            loud = legit_orders(server, count, warmup, PHASE_SECONDS)
        finally:
            reports = flood.finish()
        accepted = quiet.accepted + loud.accepted
        try:
            printed = len(printer.wait_for_tickets(accepted, 60.0))
        except TimeoutError:
            printed = len(printer.tickets)
        server_errors = _server_errors(server.data_dir.parent / "server.log")
    if not quiet.samples or not loud.samples:
        raise RuntimeError(f"no order was accepted: {quiet.errors + loud.errors}")
    quiet_stats, loud_stats = summary(quiet.samples), summary(loud.samples)
    sent = sum(int(report["sent"]) for report in reports)
    rate = sum(report["sent"] / max(report["seconds"], 1e-9) for report in reports)
    return {
        "orders": count,
        "quiet": quiet_stats,
        "under_flood": loud_stats,
        "p99_ratio": loud_stats["p99_ms"] / quiet_stats["p99_ms"],
        "target_ratio": TARGET_RATIO,
        "legit_errors": dict(quiet.errors + loud.errors),
        "legit_accepted": accepted,
        "legit_printed": printed,
        "flood_clients": len(reports),
        "flood_requests": sent,
        "flood_rate_per_s": rate,
        "flood_sources": {"requested": sources, "used": used},
        "flood_nice": nice,
        "server_log_errors": server_errors,
        "flood": reports,
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"{result['orders']} legitimate POST /print orders, one at a time, from 127.0.0.1; "
        "seconds to 202"
    )
    for name in ("quiet", "under_flood"):
        s = result[name]
        print(
            f"  {name:12} median {s['median_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms  "
            f"max {s['max_ms']:7.2f} ms"
        )
    print(
        f"  accepted {result['legit_accepted']}, printed {result['legit_printed']}, "
        f"errors {result['legit_errors'] or 'none'}"
    )
    print(
        f"flood: {result['flood_clients']} clients (nice {result['flood_nice']}), "
        f"{result['flood_requests']} requests sent ({result['flood_rate_per_s']:.0f}/s)"
    )
    for report in result["flood"]:
        outcomes: dict[str, int] = report["outcomes"]
        by_answer: Counter[str] = Counter()
        for what, times in outcomes.items():
            by_answer[what.rsplit(" -> ", 1)[1]] += times
        answers = ", ".join(f"{answer} x{times}" for answer, times in by_answer.most_common())
        print(
            f"  from {report['source']:10} {report['sent']:7} sent in {report['seconds']:4.1f} s: "
            f"{answers}"
        )
    requested, used = result["flood_sources"]["requested"], result["flood_sources"]["used"]
    if requested != used:
        print(f"  (could not send from every address asked for: {requested} -> {used})")
    for line in result["server_log_errors"] or ["no ERROR line, no traceback"]:
        print(f"  server log: {line}")
    print(
        f"p99 under flood / quiet p99: {result['p99_ratio']:.2f}x  "
        f"(target: at most {result['target_ratio']:g}x)"
    )


def _attacks(args: argparse.Namespace) -> None:
    from bench import attacks  # which uses this module's client

    seconds, quiet = (6.0, 100) if args.quick else (args.seconds, 500)
    result = attacks.run(seconds, quiet, args.nice)
    if args.json:
        print(json.dumps(result))
    else:
        attacks.print_report(result)


def _is_ipv4_loopback(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.version == 4 and parsed.is_loopback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=500, help="orders to time in each phase")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help="one flood client per source address (loopback only: 127.x.x.x)",
    )
    parser.add_argument("--nice", type=int, default=10, help="niceness of the flood clients")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--attacks",
        action="store_true",
        help="instead: slowloris, slow bodies and a connection flood (see bench.attacks)",
    )
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each attack")
    args = parser.parse_args()
    if args.attacks:
        _attacks(args)
        return
    sources = [source.strip() for source in args.sources.split(",") if source.strip()]
    if not sources or not all(_is_ipv4_loopback(source) for source in sources):
        parser.error("--sources: IPv4 loopback addresses (127.x.x.x) only")
    count, warmup = (30, 5) if args.quick else (args.n, args.warmup)
    result = run(count, warmup, sources, args.nice)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
