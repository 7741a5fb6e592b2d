"""Order to first byte at a TCP printer, for a bilingual receipt: spoonprint vs CUPS vs writing
the bytes directly.

spoonprint: ``POST /print`` with the receipt (validated, committed to SQLite with fsync, 202)
-> the printer's worker wakes -> claims the job (committed) -> renders -> connects -> first byte
at the virtual printer on 127.0.0.1. The clock starts before the request is written and stops at
the printer's first byte (both ``time.perf_counter()`` in this process).

CUPS reference: the same bytes (rendered here with the same printer settings; the bench checks
that the printer got identical tickets) through a private cupsd's raw queue, as a point-of-sale
program prints without spoonprint: ``lp -d QUEUE -o raw`` (a new process per order) -> cupsd
spools it -> the socket backend connects -> first byte. Direct reference: connect and write the
bytes (what no spooler costs). The three take turns, order by order, with a pause after each
ticket, so each meets an idle printer and all see the same machine load.

    python -m bench.latency [-n 200] [--quick] [--no-cups] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.cups import PrivateCups, private_cups
from bench.harness import RunningServer, figures_line, spoonprint_server, summary
from bench.orders import bilingual_receipt, printed_bytes
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

TIMEOUT = 10.0
#: Pause after each ticket: the worker finishes its job (marks it printed) before the next.
GAP = 0.03
TARGET_RATIO = 0.25  # spoonprint's median at most a quarter of CUPS's
QUEUE = "latency"


class Orders:
    """One order at a time, by each way of printing, timed to the printer's first byte."""

    def __init__(self, printer: VirtualPrinterThread, receipt: dict[str, Any]) -> None:
        self.printer = printer
        self.body = json.dumps({"receipt": receipt})
        self.data = printed_bytes(receipt)
        self.accepted: list[float] = []
        self.mismatched = 0

    def _first_byte(self, send: Callable[[], None]) -> float:
        """Seconds from calling ``send`` to the first byte of the ticket it causes."""
        expected = len(self.printer.tickets) + 1
        start = time.perf_counter()
        send()
        ticket = self.printer.wait_for_tickets(expected, TIMEOUT)[expected - 1]
        if ticket.data != self.data:
            self.mismatched += 1
        time.sleep(GAP)
        return ticket.first_byte_at - start

    def spoonprint(self, client: http.client.HTTPConnection, key: str) -> float:
        headers = {"X-API-Key": key, "Content-Type": "application/json"}

        def post() -> None:
            start = time.perf_counter()
            client.request("POST", "/print", self.body, headers)
            answer = client.getresponse()
            answer.read()
            self.accepted.append(time.perf_counter() - start)
            if answer.status != 202:
                raise RuntimeError(f"POST /print answered {answer.status}")

        return self._first_byte(post)

    def cups(self, cups: PrivateCups) -> float:
        def lp() -> None:
            subprocess.run(
                cups.submitter(QUEUE), input=self.data, env=cups.env, check=True,
                capture_output=True, timeout=TIMEOUT,
            )  # fmt: skip

        return self._first_byte(lp)

    def direct(self) -> float:
        def write() -> None:
            address = ("127.0.0.1", self.printer.port)
            with socket.create_connection(address, timeout=TIMEOUT) as sock:
                sock.sendall(self.data)

        return self._first_byte(write)


def _rounds(
    orders: Orders, server: RunningServer, cups: PrivateCups | None, count: int, warmup: int
) -> dict[str, list[float]]:
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    samples: dict[str, list[float]] = {"spoonprint": [], "cups": [], "direct": []}
    try:
        for n in range(warmup + count):
            figures = {
                "spoonprint": orders.spoonprint(client, server.key),
                "direct": orders.direct(),
            }
            if cups is not None:
                figures["cups"] = orders.cups(cups)
            if n >= warmup:
                for name, seconds in figures.items():
                    samples[name].append(seconds)
    finally:
        client.close()
    del orders.accepted[:warmup]
    return samples


def run(
    count: int, warmup: int, cups: PrivateCups | None, cups_skipped: str | None = None
) -> dict[str, Any]:
    receipt = bilingual_receipt()
    with (
        VirtualPrinterThread() as printer,
        spoonprint_server(printer.port, profile="latency") as server,
    ):
        if cups is not None:
            cups.add_raw_queue(QUEUE, printer.port)
        orders = Orders(printer, receipt)
        samples = _rounds(orders, server, cups, count, warmup)
    result: dict[str, Any] = {
        "orders": count,
        "ticket_bytes": len(orders.data),
        "tickets_differing_from_reference": orders.mismatched,
        "spoonprint_order_to_first_byte": summary(samples["spoonprint"]),
        "spoonprint_order_to_202": summary(orders.accepted),
        "direct_socket_to_first_byte": summary(samples["direct"]),
        "target_ratio_vs_cups": TARGET_RATIO,
    }
    ours = result["spoonprint_order_to_first_byte"]["median_ms"]
    result["median_ratio_vs_direct"] = ours / result["direct_socket_to_first_byte"]["median_ms"]
    if samples["cups"]:
        result["cups_lp_to_first_byte"] = summary(samples["cups"])
        result["median_ratio_vs_cups"] = ours / result["cups_lp_to_first_byte"]["median_ms"]
    else:
        result["cups_skipped"] = cups_skipped or "not measured"
    return result


def print_report(result: dict[str, Any]) -> None:
    print(
        f"Order to first byte: {result['orders']} bilingual receipts ({result['ticket_bytes']} "
        "bytes each), one at a time, idle printer on 127.0.0.1"
    )
    for name in (
        "spoonprint_order_to_first_byte",
        "spoonprint_order_to_202",
        "cups_lp_to_first_byte",
        "direct_socket_to_first_byte",
    ):
        if name in result:
            print(figures_line(name, result[name]))
    if result["tickets_differing_from_reference"]:
        print(f"  WARNING: {result['tickets_differing_from_reference']} tickets differed")
    if "median_ratio_vs_cups" in result:
        print(
            f"  median ratio spoonprint / CUPS: {result['median_ratio_vs_cups']:.2f}  "
            f"(target: at most {result['target_ratio_vs_cups']:g})"
        )
    else:
        print(f"  CUPS reference skipped: {result['cups_skipped']}")
    print(f"  median ratio spoonprint / direct socket: {result['median_ratio_vs_direct']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="orders to time")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-cups", action="store_true", help="skip the CUPS reference")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    count, warmup = (20, 3) if args.quick else (args.n, args.warmup)
    if args.no_cups:
        result = run(count, warmup, None, "--no-cups")
    else:
        with private_cups() as (cups, skipped):
            result = run(count, warmup, cups, skipped)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
