"""Legitimate orders while connections are attacked: slowloris, slow bodies, a connection flood.

Each attack gets a fresh server (its blocks do not carry over), whose ``allowed_networks`` is
127.0.0.1 only. A legitimate client orders from 127.0.0.1 (allowlisted) one at a time on a
keep-alive connection, first on a quiet server, then for ``seconds`` while the attack runs from
many other loopback addresses. Per attack: the legitimate client's success rate (goal: at least
99%), its p99 against the quiet p99 (goal: at most 3x), and the server's peak resident memory
(goal: under 150 MB), with what the attack's connections got back.

- **slowloris** (as ``slowhttptest -H -c 500 -r 200``): 5 addresses x 100 connections, each
  sending a request head that never ends, one more header line every few seconds,
  reconnecting when cut, at most 200 new connections a second in all;
- **slow bodies** (as ``slowhttptest -B -c 500 -r 200``): 50 addresses x 10 connections, each
  a ``POST /preview`` (read before the key is checked) declaring 8 KB and sending a byte every
  few seconds, the same way;
- **connection flood**: 20 addresses x 50 connections opened and held without a byte, each
  opened again as soon as the server closed it (no rate limit).

The attackers are one process per attack (asyncio, every socket bound to its own 127.x source
address), niced like the junk flood's. Every loop is bounded in count and time; traffic goes to
127.0.0.1 only.

    python -m bench.flood --attacks [--seconds 25] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.flood import SHOP_ONLY, legit_orders
from bench.harness import RunningServer, rss_mb, spoonprint_server, summary
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

SERVER_HOST = "127.0.0.1"
GOAL_SUCCESS = 0.99
GOAL_RATIO = 3.0
GOAL_MB = 150.0
#: Seconds between the dribbled bytes of a slow client.
DRIBBLE = 3.0
#: Seconds an attacker waits at least before opening a connection again after one was closed.
RECONNECT = 0.05
#: New connections a second of the slow attacks: slowhttptest's ``-r`` (its default is 50).
SLOW_RATE = 200.0
#: Connections one attack opens at most in all (its time limit normally ends it first).
MAX_OPENED = 200_000


@dataclass(frozen=True)
class Attack:
    name: str
    sources: tuple[str, ...]
    per_source: int
    #: What each connection sends first, and then again every DRIBBLE seconds.
    first: bytes
    dribble: bytes
    #: New connections a second the whole attack opens at most (as slowhttptest's ``-r``);
    #: 0: as fast as it can.
    rate: float = 0.0


def _addresses(block: int, count: int) -> tuple[str, ...]:
    # 127.0.<block+10>.1 ... : never 127.0.0.1, the shop's own address.
    return tuple(f"127.0.{block + 10}.{n}" for n in range(1, count + 1))


_HEAD = f"GET / HTTP/1.1\r\nHost: {SERVER_HOST}\r\nUser-Agent: slowloris\r\n"
_BODY_HEAD = (
    f"POST /preview HTTP/1.1\r\nHost: {SERVER_HOST}\r\n"
    "Content-Type: application/json\r\nContent-Length: 8192\r\n\r\n{"
)
ATTACKS = (
    Attack("slowloris", _addresses(0, 5), 100, _HEAD.encode(), b"X-a: b\r\n", SLOW_RATE),
    Attack("slow bodies", _addresses(1, 50), 10, _BODY_HEAD.encode(), b" ", SLOW_RATE),
    Attack("connection flood", _addresses(2, 20), 50, b"", b""),
)
# -- the attacker process ----------------------------------------------------------------------


def _outcome(data: bytes) -> str:
    if not data:
        return "closed"
    if data.startswith(b"HTTP/1.") and len(data) > 12:
        return data[9:12].decode("latin-1")
    return "not HTTP"


async def _connection(attack: Attack, source: str, port: int, deadline: float) -> str:
    """One attacking connection from open to close; what the server did with it."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(SERVER_HOST, port, local_addr=(source, 0)), 5
        )
    except (OSError, TimeoutError):
        return "could not connect"
    try:
        if attack.first:
            writer.write(attack.first)
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(4096), DRIBBLE)
            except TimeoutError:
                if attack.dribble:
                    writer.write(attack.dribble)
                continue
            return _outcome(data)
        return "held to the end"
    except OSError:
        return "reset"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _attacker(attack: Attack, source: str, port: int, deadline: float) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    clients = len(attack.sources) * attack.per_source
    pause = max(RECONNECT, clients / attack.rate if attack.rate else 0.0)
    for _ in range(MAX_OPENED // clients + 1):
        if time.monotonic() >= deadline:
            break
        outcomes[await _connection(attack, source, port, deadline)] += 1
        await asyncio.sleep(pause)
    return outcomes


async def _attack(attack: Attack, port: int, seconds: float) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    tasks = [
        _attacker(attack, source, port, deadline)
        for source in attack.sources
        for _ in range(attack.per_source)
    ]
    total: Counter[str] = Counter()
    for outcomes in await asyncio.gather(*tasks):
        total.update(outcomes)
    return dict(total)


def attack_worker(
    attack: Attack, port: int, seconds: float, nice: int, results: multiprocessing.Queue[Any]
) -> None:
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    results.put(("started", {}))
    results.put(("done", asyncio.run(_attack(attack, port, seconds))))


# -- the run -----------------------------------------------------------------------------------


class MemoryWatch:
    """The peak resident memory of a process, sampled every 100 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _legit(server: RunningServer, seconds: float, warmup: int) -> dict[str, Any]:
    orders = legit_orders(server, 100_000, warmup, seconds, timed=True)
    attempted = orders.accepted + sum(orders.errors.values())
    return {
        "attempted": attempted,
        "accepted": orders.accepted,
        "success": orders.accepted / attempted if attempted else 0.0,
        "errors": dict(orders.errors),
        **summary(orders.samples),
    }


def run_attack(attack: Attack, seconds: float, quiet_count: int, nice: int) -> dict[str, Any]:
    with VirtualPrinterThread() as printer, spoonprint_server(printer.port, SHOP_ONLY) as server:
        quiet = summary(legit_orders(server, quiet_count, 10, 120).samples)
        before = rss_mb(server.pid)
        watch = MemoryWatch(server.pid)
        context = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue[Any] = context.Queue()
        process = context.Process(
            target=attack_worker,
            args=(attack, server.port, seconds + 3, nice, results),
            daemon=True,
        )
        process.start()
        try:
            results.get(timeout=30)  # started
            time.sleep(1.0)  # let the attack open its connections
            loud = _legit(server, seconds, 0)
            outcomes: dict[str, int] = {}
            with contextlib.suppress(queue.Empty):
                outcomes = results.get(timeout=seconds + 30)[1]
        finally:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
            peak = watch.stop()
    return {
        "attack": attack.name,
        "addresses": len(attack.sources),
        "connections_per_address": attack.per_source,
        "seconds": seconds,
        "quiet": quiet,
        "under_attack": loud,
        "p99_ratio": loud["p99_ms"] / quiet["p99_ms"],
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "attacker_outcomes": outcomes,
    }


def run(seconds: float, quiet_count: int, nice: int) -> dict[str, Any]:
    return {
        "goals": {"success": GOAL_SUCCESS, "p99_ratio": GOAL_RATIO, "rss_mb": GOAL_MB},
        "attacks": [run_attack(attack, seconds, quiet_count, nice) for attack in ATTACKS],
    }


def print_report(result: dict[str, Any]) -> None:
    goals = result["goals"]
    print(
        "legitimate POST /print orders from 127.0.0.1 (allowlisted) while other loopback "
        f"addresses attack; goals: success >= {goals['success']:.0%}, p99 <= "
        f"{goals['p99_ratio']:g}x quiet, peak memory < {goals['rss_mb']:g} MB"
    )
    for attack in result["attacks"]:
        loud, quiet = attack["under_attack"], attack["quiet"]
        print(
            f"  {attack['attack']:17} {attack['addresses']:3} addresses x "
            f"{attack['connections_per_address']:3} connections, {attack['seconds']:g} s: "
            f"success {loud['accepted']}/{loud['attempted']} ({loud['success']:.2%}), "
            f"p99 {loud['p99_ms']:.2f} ms vs quiet {quiet['p99_ms']:.2f} ms "
            f"({attack['p99_ratio']:.2f}x), memory {attack['rss_before_mb']:.0f} -> peak "
            f"{attack['rss_peak_mb']:.0f} MB"
        )
        got = ", ".join(
            f"{what} x{times}"
            for what, times in sorted(attack["attacker_outcomes"].items(), key=lambda i: -i[1])
        )
        print(f"    the attack's connections got: {got or 'nothing reported'}")
        if loud["errors"]:
            print(f"    legitimate errors: {loud['errors']}")
