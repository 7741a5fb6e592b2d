"""Backlog drain: orders queued while the printer was off, printed when it comes back, vs the
time the printer itself needs to print them.

The virtual printer prints at ``--speed`` mm/s (its model: 8 dot rows a mm; a text line 30
rows, an image row 1 row; it reads no more data until the rows it has are on paper, as a real
printer's small buffer does). It is switched off, ``-n`` bilingual receipts are posted (8
concurrent clients; each receipt carries its own order number), and it is switched on again.

Figures: detection (printer on -> first byte of the first ticket; spoonprint notices by its
retry and breaker timers), drain (first byte of the first ticket -> last ticket on paper), and
the reference: the sum over the tickets of paper length / speed, what the printer needs however
fast the data comes. The ratio drain / reference is spoonprint's overhead (1.00: the printer
never waited). The bench also checks the tickets came out in acceptance (job id) order and
reports the time between one ticket on paper and the next one's first byte (the per-ticket gap).

    python -m bench.drain [-n 1000] [--speed 150] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from typing import Any

from bench.clients import order_templates, post_orders
from bench.harness import figures_line, rss_mb, spoonprint_server, status, summary
from spoonprint.emulator.escpos_text import Kind, tokenize
from spoonprint.emulator.virtual_printer import (
    DOTS_PER_MM,
    ROWS_PER_LINE,
    PrinterMode,
    Ticket,
    VirtualPrinterThread,
)

SPEED_MM_S = 150.0
_ORDER_NO = re.compile(r"Order: (\S+)")


def paper_rows(data: bytes) -> int:
    """Dot rows of paper an ESC/POS ticket takes, by the virtual printer's documented model:
    line feed ``0A`` one text line, ``ESC d n`` n lines, ``ESC J n`` n rows, a ``GS v 0``
    image its height."""
    rows = 0
    for token in tokenize(data):
        if token.kind is Kind.NEWLINE:
            rows += ROWS_PER_LINE
        elif token.kind is Kind.FEED:
            n = data[token.start + 2]
            rows += ROWS_PER_LINE * n if data[token.start + 1] == ord("d") else n
        elif token.kind is Kind.RASTER:
            rows += token.args[1]
    return rows


def _in_order(tickets: list[Ticket], job_of: dict[str, int]) -> bool:
    """Did the tickets come out in job id order?"""
    jobs = []
    for ticket in tickets:
        match = _ORDER_NO.search(ticket.text)
        if match is None or match.group(1) not in job_of:
            return False
        jobs.append(job_of[match.group(1)])
    return jobs == sorted(jobs)


def run(count: int, speed: float) -> dict[str, Any]:
    numbered = order_templates(numbered=True)
    with VirtualPrinterThread(speed_mm_s=speed) as printer:
        printer.set_mode(PrinterMode.OFFLINE)
        with spoonprint_server(printer.port, profile="drain") as server:
            orders = post_orders(server, 8, count=count, templates=numbered)
            answer = status(server.port)
            queued = answer["queue_depth"] if answer else -1
            online_at = time.perf_counter()
            printer.set_mode(PrinterMode.ONLINE)
            own_need = count * 0.7 * 150 / speed  # a first guess for the time limit only
            tickets = printer.wait_for_tickets(count, 120 + 3 * own_need)[:count]
            rss_after = rss_mb(server.pid)
    needed = sum(paper_rows(t.data) for t in tickets) / (speed * DOTS_PER_MM)
    drain = tickets[-1].completed_at - tickets[0].first_byte_at
    gaps = [b.first_byte_at - a.completed_at for a, b in zip(tickets, tickets[1:], strict=False)]
    job_of = dict(zip(orders.acked, orders.job_ids, strict=True))
    return {
        "orders": count,
        "queued_before": queued,
        "speed_mm_s": speed,
        "detection_s": tickets[0].first_byte_at - online_at,
        "drain_s": drain,
        "printer_needs_s": needed,
        "drain_ratio": drain / needed,
        "total_s": tickets[-1].completed_at - online_at,
        "tickets_per_minute": 60 * count / drain if drain else 0.0,
        "gap_between_tickets": summary(gaps) if gaps else None,
        "mean_gap_ms": 1000 * statistics.fmean(gaps) if gaps else 0.0,
        "printed_in_acceptance_order": _in_order(tickets, job_of),
        "rss_after_drain_mb": rss_after,
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"Backlog drain: {result['orders']} receipts queued ({result['queued_before']} waiting) "
        f"while the printer was off; printer at {result['speed_mm_s']:g} mm/s"
    )
    print(f"  printer on -> first ticket's first byte: {result['detection_s']:.2f} s")
    print(
        f"  drain (first byte -> last ticket on paper): {result['drain_s']:.2f} s, "
        f"{result['tickets_per_minute']:.0f} tickets a minute"
    )
    print(f"  reference, the printer's own need (paper / speed): {result['printer_needs_s']:.2f} s")
    if result["gap_between_tickets"]:
        print(figures_line("gap_between_tickets", result["gap_between_tickets"]))
    print(
        f"  ratio drain / printer's need: {result['drain_ratio']:.3f}  (1.000: the printer never "
        f"waited for spoonprint)"
    )
    order = "yes" if result["printed_in_acceptance_order"] else "NO"
    print(
        f"  printed in acceptance order: {order}; server memory after the drain: "
        f"{result['rss_after_drain_mb']:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="orders in the backlog")
    parser.add_argument("--speed", type=float, default=SPEED_MM_S, help="printer speed, mm/s")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    result = run(5 if args.quick else args.n, args.speed)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
