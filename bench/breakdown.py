"""Where the order-to-first-byte time goes: the latency bench's orders (one at a time, a
bilingual receipt, an idle printer on 127.0.0.1) sent to ``python -m bench.probe serve``, which
timestamps each step an order goes through on the server's side.

Steps (medians over the orders, ms): the request until the handler hands the order to the store
(HTTP: parse, guard, authentication, validation), the commit (the writer thread's transaction
with its fsync, including waiting for the thread), the 202 reaching the client, the worker's claim
(a transaction with its fsync), rendering, connecting, and the rest until the printer's first
byte (the status check before sending, then the data). The sum of the medians is close to the
median total, not equal to it.

    python -m bench.breakdown [-n 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import spoonprint_server
from bench.orders import bilingual_receipt
from bench.probe import ENV
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

TIMEOUT = 10.0
GAP = 0.03

#: (label, from mark, to mark); "sent", "202" and "first byte" are the bench's own times.
STEPS = (
    ("request in, until handed to the store", "sent", "accept>"),
    ("commit (writer thread, fsync)", "commit>", "commit<"),
    ("accept returns, answer reaches client", "commit<", "202"),
    ("worker wakes, claim starts", "commit<", "claim>"),
    ("claim (transaction, fsync)", "claim>", "claim<"),
    ("claim done, render starts", "claim<", "render>"),
    ("render", "render>", "render<"),
    ("render done, connect starts", "render<", "connect>"),
    ("connect", "connect>", "connect<"),
    ("status check, then first byte", "connect<", "first byte"),
    ("total: order to first byte", "sent", "first byte"),
)


def _marks(path: Path, start: int) -> tuple[list[tuple[str, float]], int]:
    """Marks written since byte ``start`` of the file; and the new end."""
    data = path.read_bytes()
    marks = []
    for line in data[start:].decode().splitlines():
        name, _, at = line.partition(" ")
        marks.append((name, float(at)))
    return marks, len(data)


def run(count: int, warmup: int = 10) -> dict[str, Any]:
    body = json.dumps({"receipt": bilingual_receipt()})
    orders: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="spoonprint-bench-probe-") as folder:
        marks_file = Path(folder) / "marks"
        marks_file.touch()
        with (
            VirtualPrinterThread() as printer,
            spoonprint_server(
                printer.port, module="bench.probe", env={ENV: str(marks_file)}
            ) as server,
        ):
            client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            headers = {"X-API-Key": server.key, "Content-Type": "application/json"}
            _, offset = _marks(marks_file, 0)
            for n in range(warmup + count):
                expected = len(printer.tickets) + 1
                times = {"sent": time.perf_counter()}
                client.request("POST", "/print", body, headers)
                client.getresponse().read()
                times["202"] = time.perf_counter()
                ticket = printer.wait_for_tickets(expected, TIMEOUT)[expected - 1]
                times["first byte"] = ticket.first_byte_at
                time.sleep(GAP)  # the worker marks the job printed meanwhile
                marks, offset = _marks(marks_file, offset)
                for name, at in marks:
                    times.setdefault(name, at)  # the first of each: this order's
                if n >= warmup:
                    orders.append(times)
            client.close()
    steps = {}
    for label, start, end in STEPS:
        spans = [o[end] - o[start] for o in orders if start in o and end in o]
        if spans:
            steps[label] = 1000 * statistics.median(spans)
    return {"orders": count, "steps_median_ms": steps}


def print_report(result: dict[str, Any]) -> None:
    print(f"Where order-to-first-byte time goes ({result['orders']} orders; medians)")
    for label, ms in result["steps_median_ms"].items():
        print(f"  {label:40} {ms:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100, help="orders to time")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    result = run(args.n)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
