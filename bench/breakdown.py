"""Where the order-to-first-byte time goes: the latency bench's orders (one at a time, a
bilingual receipt, an idle printer on 127.0.0.1) sent to ``python -m bench.probe serve``, which
timestamps each step an order goes through on the server's side.

The steps overlap (the ticket is rendered and the printer reached while the order commits), so
the report is a timeline: for each mark, the median time after the client sent the order (ms),
in the order they come. Marks: the handler hands the order to the store (``accept>``), the
writer thread's transaction with its fsync, which also leases the job to an idle printer's
worker (``commit>``, ``commit<``), the worker told (``settle>``), its attempt, the rendering,
the connection (and, just after it, the status check), the ticket ready to send (``ticket>``),
the printer's first byte, and the 202 at the client. ``claim>``/``claim<`` appear only when a
worker leases for itself (a printer busy with earlier tickets).

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

#: Marks in the timeline, with what each says; "sent", "202" and "first byte" are the bench's own.
MARKS = {
    "accept>": "order handed to the store",
    "commit>": "commit starts (writer thread)",
    "commit<": "commit done (order and lease on disk)",
    "claim>": "worker leases for itself",
    "claim<": "its lease done",
    "settle>": "worker told the order's job",
    "attempt>": "attempt starts",
    "connect>": "connecting to the printer",
    "connect<": "connected (status check next)",
    "render>": "rendering starts",
    "render<": "rendering done",
    "ticket>": "ticket ready to send",
    "first byte": "printer's first byte",
    "202": "202 at the client",
}


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
    timeline = {}
    for name in MARKS:
        # Only what an order goes through before its first byte (not the next step's lease).
        offsets = [
            o[name] - o["sent"]
            for o in orders
            if name in o and (name == "202" or o[name] <= o["first byte"])
        ]
        if len(offsets) >= len(orders) // 2:  # a mark most orders pass
            timeline[name] = 1000 * statistics.median(offsets)
    ordered = dict(sorted(timeline.items(), key=lambda item: item[1]))
    return {"orders": count, "timeline_median_ms": ordered}


def print_report(result: dict[str, Any]) -> None:
    print(f"Where order-to-first-byte time goes ({result['orders']} orders; median ms after sent)")
    for name, ms in result["timeline_median_ms"].items():
        print(f"  {ms:7.2f}  {name:11} {MARKS[name]}")


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
