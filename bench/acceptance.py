"""Sustained acceptance: durable orders accepted per second with 8 concurrent clients, vs ``lp``
submissions per second to CUPS with 8 concurrent submitters.

spoonprint: 8 clients (keep-alive connections from one asyncio process, each with one request in
flight, so the client costs little CPU) send ``POST /print`` with a bilingual receipt and a new
``order_id`` each, for ``--seconds``. A 202 means the order is committed to SQLite (WAL,
``synchronous=FULL``). Afterwards the clients go on for a moment and the server is killed
(SIGKILL) among their orders; then its database is opened: every order that got a 202, in the
run or in that last burst, must be in it (the bench fails otherwise).

CUPS reference: 8 threads each run ``lp -d QUEUE -o raw`` with the same ticket bytes, one after
the other, for the same time; an ``lp`` that exits 0 has its job spooled by cupsd. Each side
prints to its own virtual printer at a real printer's speed (150 mm/s), so printing goes on
meanwhile, at the pace it would in a shop.

Figures: orders (jobs) a second, and the time to the acknowledgement (202 / ``lp`` exit):
median, p99, max. The ratio is spoonprint's rate over CUPS's (target: at least 10).

    python -m bench.acceptance [--seconds 30] [--clients 8] [--quick] [--no-cups] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from typing import Any

from bench.clients import Run, post_orders
from bench.cups import PrivateCups, private_cups
from bench.harness import RunningServer, cpu_seconds, figures_line, spoonprint_server
from bench.orders import bilingual_receipt, printed_bytes
from spoonprint.db import DB_FILENAME
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

TIMEOUT = 10.0
TARGET_RATIO = 10.0
SPEED_MM_S = 150.0
QUEUE = "acceptance"
#: Seconds into the last burst of orders when the server is killed.
CRASH_AFTER = 0.5


def missing_orders(server: RunningServer, acked: list[str]) -> int:
    """How many acknowledged orders are not in the (stopped) server's database."""
    conn = sqlite3.connect(server.data_dir / DB_FILENAME)
    try:
        stored = {row[0] for row in conn.execute("SELECT order_id FROM jobs")}
    finally:
        conn.close()
    return sum(1 for order_id in acked if order_id not in stored)


def acked_before_a_crash(server: RunningServer, clients: int) -> list[str]:
    """Orders acknowledged by a server killed (SIGKILL) while the clients were sending."""
    burst: list[Run] = []
    sender = threading.Thread(
        target=lambda: burst.append(post_orders(server, clients, seconds=CRASH_AFTER * 10))
    )
    sender.start()
    time.sleep(CRASH_AFTER)
    os.kill(server.pid, signal.SIGKILL)
    sender.join(TIMEOUT * 2)
    return burst[0].acked if burst else []


def spoonprint_side(clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    with (
        VirtualPrinterThread(speed_mm_s=SPEED_MM_S) as printer,
        spoonprint_server(printer.port, profile="acceptance") as server,
    ):
        post_orders(server, clients, seconds=warmup)
        cpu_before = cpu_seconds(server.pid)
        run = post_orders(server, clients, seconds=seconds)
        cpu = cpu_seconds(server.pid) - cpu_before
        burst = acked_before_a_crash(server, clients)
        server.stop()
        # Killed: the database file is all that is left of what was acknowledged.
        missing = missing_orders(server, run.acked + burst)
    figures = run.figures()
    figures["server_cpu_seconds"] = cpu
    figures["acknowledged_in_burst_cut_by_kill"] = len(burst)
    figures["acknowledged_but_not_stored"] = missing
    if missing:
        raise RuntimeError(f"{missing} acknowledged orders are not in the database")
    return figures


# -- CUPS ----------------------------------------------------------------------------------------


def _submitter(
    cups: PrivateCups, data: bytes, deadline: float, run: Run, lock: threading.Lock
) -> None:
    command = cups.submitter(QUEUE)
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        done = subprocess.run(
            command, input=data, env=cups.env, capture_output=True, timeout=TIMEOUT
        )
        took = time.perf_counter() - start
        with lock:
            if done.returncode == 0:
                run.latencies.append(took)
            else:
                run.error(done.stderr.decode(errors="replace").strip()[:80] or "lp failed")


def cups_side(cups: PrivateCups, clients: int, seconds: float) -> dict[str, Any]:
    data = printed_bytes(bilingual_receipt())
    run = Run()
    lock = threading.Lock()
    with VirtualPrinterThread(speed_mm_s=SPEED_MM_S) as printer:
        cups.add_raw_queue(QUEUE, printer.port)
        start = time.perf_counter()
        deadline = start + seconds
        threads = [
            threading.Thread(target=_submitter, args=(cups, data, deadline, run, lock))
            for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + TIMEOUT + 5)
        run.seconds = time.perf_counter() - start
        # Drop the backlog, so that cupsd does not go on printing during the next bench.
        cups.run("cancel", "-a", QUEUE, check=False)
        cups.run("lpadmin", "-x", QUEUE, check=False)
    return run.figures()


# -- the run ---------------------------------------------------------------------------------------


def run(
    seconds: float,
    clients: int,
    cups: PrivateCups | None,
    cups_skipped: str | None = None,
    warmup: float = 1.0,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "seconds": seconds,
        "clients": clients,
        "printer_speed_mm_s": SPEED_MM_S,
        "spoonprint": spoonprint_side(clients, seconds, warmup),
        "target_ratio": TARGET_RATIO,
    }
    if cups is None:
        result["cups_skipped"] = cups_skipped or "not measured"
        return result
    result["cups"] = cups_side(cups, clients, seconds)
    if result["cups"]["per_second"]:
        result["rate_ratio_vs_cups"] = (
            result["spoonprint"]["per_second"] / result["cups"]["per_second"]
        )
    return result


def print_report(result: dict[str, Any]) -> None:
    print(
        f"Sustained acceptance: {result['clients']} concurrent clients for {result['seconds']:g} s"
        f" (printers online at {result['printer_speed_mm_s']:g} mm/s)"
    )
    for side, label in (("spoonprint", "spoonprint POST /print -> 202"), ("cups", "CUPS lp")):
        if side not in result:
            continue
        figures = result[side]
        print(f"  {label}: {figures['accepted']} accepted, {figures['per_second']:.0f}/s")
        if "ack" in figures:
            print(figures_line(f"{side}_time_to_acknowledge", figures["ack"]))
        if figures["errors"]:
            print(f"    errors: {figures['errors']}")
    ours = result["spoonprint"]
    print(
        f"  spoonprint server CPU: {ours['server_cpu_seconds']:.1f} s "
        f"({1000 * ours['server_cpu_seconds'] / max(ours['accepted'], 1):.2f} ms an order)"
    )
    print(
        f"  server killed during {ours['acknowledged_in_burst_cut_by_kill']} more acknowledged "
        f"orders; acknowledged but not stored: {ours['acknowledged_but_not_stored']}"
    )
    if "rate_ratio_vs_cups" in result:
        print(
            f"  rate ratio spoonprint / CUPS: {result['rate_ratio_vs_cups']:.1f}x  "
            f"(target: at least {result['target_ratio']:g}x)"
        )
    else:
        print(f"  CUPS reference skipped: {result.get('cups_skipped', 'no job accepted')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-cups", action="store_true", help="skip the CUPS reference")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    if args.no_cups:
        result = run(seconds, args.clients, None, "--no-cups")
    else:
        with private_cups() as (cups, skipped):
            result = run(seconds, args.clients, cups, skipped)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
