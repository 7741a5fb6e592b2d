"""Order to first byte at a TCP printer: spoonprint vs writing the same bytes directly.

spoonprint: ``POST /print`` (validated, committed to SQLite with fsync, 202) -> worker wakes ->
render -> connect -> first byte at the virtual printer on 127.0.0.1. Reference, in the same run:
open a socket to the same printer and write the same rendered bytes. Orders go one at a time, so
the printer is idle for each.

    python -m bench.latency [-n 200] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import time

from bench.harness import spoonprint_server, summary
from spoonprint.domain.document import text_document
from spoonprint.domain.profile import PrinterProfile
from spoonprint.emulator.virtual_printer import VirtualPrinterThread
from spoonprint.render.escpos import render_escpos_text
from spoonprint.render.fonts import default_typeface

TEXT = "Table 12  Order A-1023\n2 x BBQ Pork Rice\n1 x Milk Tea (less sugar)\nno spring onion"
TIMEOUT = 10.0
GAP = 0.02


def spoonprint_latencies(
    printer: VirtualPrinterThread, count: int, warmup: int
) -> dict[str, list[float]]:
    first_byte: list[float] = []
    accepted: list[float] = []
    body = json.dumps({"text": TEXT})
    with spoonprint_server(printer.port) as server:
        # The standard library's client: light, so the figure is the server's, not the client's.
        host, port = server.url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
        headers = {"X-API-Key": server.key, "Content-Type": "application/json"}
        for n in range(warmup + count):
            expected = len(printer.tickets) + 1
            start = time.perf_counter()
            client.request("POST", "/print", body, headers)
            answer = client.getresponse()
            answer.read()
            acked = time.perf_counter()
            assert answer.status == 202, answer.status
            ticket = printer.wait_for_tickets(expected, TIMEOUT)[expected - 1]
            if n >= warmup:
                first_byte.append(ticket.first_byte_at - start)
                accepted.append(acked - start)
            time.sleep(GAP)  # let the worker finish this job: each order meets an idle server
        client.close()
    return {"first_byte": first_byte, "accepted": accepted}


def direct_latencies(printer: VirtualPrinterThread, count: int, warmup: int) -> list[float]:
    data = render_escpos_text(text_document(TEXT), PrinterProfile(), default_typeface())
    samples: list[float] = []
    for n in range(warmup + count):
        expected = len(printer.tickets) + 1
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", printer.port), timeout=TIMEOUT) as sock:
            sock.sendall(data)
        ticket = printer.wait_for_tickets(expected, TIMEOUT)[expected - 1]
        if n >= warmup:
            samples.append(ticket.first_byte_at - start)
        time.sleep(GAP)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="orders to time")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    with VirtualPrinterThread() as printer:
        direct = direct_latencies(printer, args.n, args.warmup)
        ours = spoonprint_latencies(printer, args.n, args.warmup)
    result = {
        "orders": args.n,
        "spoonprint_order_to_first_byte": summary(ours["first_byte"]),
        "spoonprint_order_to_202": summary(ours["accepted"]),
        "direct_socket_to_first_byte": summary(direct),
    }
    ratio = (
        result["spoonprint_order_to_first_byte"]["median_ms"]
        / result["direct_socket_to_first_byte"]["median_ms"]
    )
    result["median_ratio_spoonprint_vs_direct"] = ratio
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.n} orders, one at a time, idle printer on 127.0.0.1")
    for name in (
        "spoonprint_order_to_first_byte",
        "spoonprint_order_to_202",
        "direct_socket_to_first_byte",
    ):
        s = result[name]
        assert isinstance(s, dict)
        print(
            f"  {name:32} median {s['median_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms  "
            f"max {s['max_ms']:7.2f} ms"
        )
    print(f"  median ratio spoonprint / direct: {ratio:.1f}x  (target: spoonprint median < 10 ms)")


if __name__ == "__main__":
    main()
