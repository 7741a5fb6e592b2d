"""How costs grow: small sweeps over ticket size, queue depth and number of printers.

- Ticket size (dishes on a bilingual receipt): render time per dialect and bytes, and order to
  first byte through the server (one order at a time, idle printer).
- Queue depth (jobs waiting, put in the database before the server starts, printer off):
  ``POST /print`` time to 202 and ``GET /status`` time through the server, and the job store's
  claim + mark printed (a worker's bookkeeping per ticket) on a copy of that database.
- Printers (each a virtual printer at 150 mm/s with its own backlog, switched on together):
  whether the server keeps every printer busy (slowest printer's drain / its own need) and the
  server's CPU per ticket.

    python -m bench.sweep [--quick] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.clients import order_templates, post_orders
from bench.drain import paper_rows
from bench.harness import (
    cpu_seconds,
    printer_toml,
    spoonprint_server,
    summary,
)
from bench.orders import bilingual_receipt, receipt_document
from bench.render import time_calls
from spoonprint.db import DB_FILENAME
from spoonprint.domain.job import NewJob
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.emulator.virtual_printer import DOTS_PER_MM, PrinterMode, VirtualPrinterThread
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface

TIMEOUT = 10.0
SPEED_MM_S = 150.0
DIALECTS = (Protocol.ESCPOS, Protocol.ESCPOS_RASTER, Protocol.STAR_GRAPHIC)


# -- ticket size ---------------------------------------------------------------------------------


def _post(client: http.client.HTTPConnection, key: str, body: str) -> float:
    """One ``POST /print``: seconds to its answer (which must be 202)."""
    start = time.perf_counter()
    client.request("POST", "/print", body, {"X-API-Key": key, "Content-Type": "application/json"})
    answer = client.getresponse()
    answer.read()
    if answer.status != 202:
        raise RuntimeError(f"POST /print answered {answer.status}")
    return time.perf_counter() - start


def ticket_sizes(sizes: list[int], renders: int, orders: int) -> list[dict[str, Any]]:
    typeface = default_typeface()
    rows: list[dict[str, Any]] = []
    with VirtualPrinterThread() as printer, spoonprint_server(printer.port) as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        for items in sizes:
            receipt = bilingual_receipt(items)
            document = receipt_document(receipt)
            row: dict[str, Any] = {"items": items}
            for protocol in DIALECTS:
                profile = PrinterProfile(protocol=protocol)
                render = renderer_for(protocol, typeface)
                render(document, profile, 1)  # untimed: the first draws new glyphs
                times = time_calls(lambda r=render, p=profile, d=document: r(d, p, 1), renders)
                row[protocol.value] = {
                    "render_median_ms": 1000 * statistics.median(times),
                    "bytes": len(render(document, profile, 1)),
                }
            body = json.dumps({"receipt": receipt})
            first_bytes = []
            for n in range(orders + 2):  # two untimed: the first of a new size warms up
                expected = len(printer.tickets) + 1
                start = time.perf_counter()
                _post(client, server.key, body)
                ticket = printer.wait_for_tickets(expected, TIMEOUT)[expected - 1]
                if n >= 2:
                    first_bytes.append(ticket.first_byte_at - start)
                time.sleep(0.03)
            row["order_to_first_byte"] = summary(first_bytes)
            rows.append(row)
        client.close()
    return rows


# -- queue depth ---------------------------------------------------------------------------------


def fill_queue(depth: int) -> Callable[[Path], None]:
    """A ``prepare`` hook: ``depth`` bilingual receipts waiting for printer "kitchen"."""

    def prepare(data_dir: Path) -> None:
        store = SqliteJobStore.open(data_dir)
        payload = {"receipt": bilingual_receipt()}
        try:
            for start in range(0, depth, 1000):
                batch = [
                    NewJob("kitchen", payload, order_id=f"backlog-{n}")
                    for n in range(start, min(depth, start + 1000))
                ]
                store.enqueue_many(batch)
        finally:
            store.close()

    return prepare


def _store_bookkeeping(db: Path, rounds: int) -> dict[str, float]:
    """claim_next + mark_printed on a copy of the database ``db`` (the copy is thrown away)."""
    with tempfile.TemporaryDirectory(prefix="spoonprint-bench-store-") as folder:
        shutil.copy(db, Path(folder) / DB_FILENAME)
        store = SqliteJobStore.open(Path(folder))
        try:
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                job = store.claim_next("kitchen", "bench")
                if job is None:
                    break
                store.mark_printed(job.id, owner="bench")
                samples.append(time.perf_counter() - start)
        finally:
            store.close()
    return summary(samples)


def queue_depths(depths: list[int], orders: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    body = json.dumps({"receipt": bilingual_receipt()})
    for depth in depths:
        with VirtualPrinterThread() as printer:
            printer.set_mode(PrinterMode.OFFLINE)  # the backlog stays a backlog
            with spoonprint_server(printer.port, prepare=fill_queue(depth)) as server:
                client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
                posts = [_post(client, server.key, body) for _ in range(orders)]
                statuses = []
                for _ in range(orders):
                    start = time.perf_counter()
                    client.request("GET", "/status")
                    client.getresponse().read()
                    statuses.append(time.perf_counter() - start)
                client.close()
                server.stop()
                bookkeeping = _store_bookkeeping(server.data_dir / DB_FILENAME, orders)
        rows.append(
            {
                "depth": depth,
                "post_print": summary(posts[5:] or posts),
                "get_status": summary(statuses),
                "claim_and_mark_printed": bookkeeping,
            }
        )
    return rows


# -- number of printers --------------------------------------------------------------------------


def printer_counts(counts: list[int], per_printer: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for count in counts:
        with ExitStack() as stack:
            printers = [
                stack.enter_context(VirtualPrinterThread(speed_mm_s=SPEED_MM_S))
                for _ in range(count)
            ]
            for printer in printers:
                printer.set_mode(PrinterMode.OFFLINE)
            names = [f"p{n}" for n in range(count)]
            section = "".join(
                printer_toml(name, printer.port)
                for name, printer in zip(names, printers, strict=True)
            )
            server = stack.enter_context(spoonprint_server(None, printers=section))
            post_orders(
                server, 8, count=count * per_printer, templates=order_templates(printers=names)
            )
            cpu_before = cpu_seconds(server.pid)
            for printer in printers:
                printer.set_mode(PrinterMode.ONLINE)
            ratios = []
            for printer in printers:
                tickets = printer.wait_for_tickets(per_printer, 60 + 3 * per_printer)
                need = sum(paper_rows(t.data) for t in tickets) / (SPEED_MM_S * DOTS_PER_MM)
                ratios.append((tickets[-1].completed_at - tickets[0].first_byte_at) / need)
            cpu = cpu_seconds(server.pid) - cpu_before
        rows.append(
            {
                "printers": count,
                "tickets": count * per_printer,
                "worst_drain_ratio": max(ratios),
                "mean_drain_ratio": statistics.fmean(ratios),
                "server_cpu_ms_per_ticket": 1000 * cpu / (count * per_printer),
            }
        )
    return rows


# -- the run ---------------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "ticket_size": ticket_sizes([1, 15], 3, 2),
            "queue_depth": queue_depths([0, 200], 5),
            "printers": printer_counts([1, 2], 1),
        }
    return {
        "ticket_size": ticket_sizes([1, 4, 15, 30, 60], 30, 30),
        "queue_depth": queue_depths([0, 1_000, 10_000, 50_000], 100),
        "printers": printer_counts([1, 2, 4, 8], 10),
    }


def print_report(result: dict[str, Any]) -> None:
    print("Sweep: ticket size (dishes on a bilingual receipt)")
    print(
        "  items  escpos ms / bytes    escpos-raster ms / bytes  star-graphic ms / bytes"
        "   order->first byte median / p99"
    )
    for row in result["ticket_size"]:
        cells = "  ".join(
            f"{row[p.value]['render_median_ms']:6.2f} / {row[p.value]['bytes']:7d}"
            for p in DIALECTS
        )
        fb = row["order_to_first_byte"]
        print(
            f"  {row['items']:5d}  {cells}        {fb['median_ms']:6.2f} / {fb['p99_ms']:6.2f} ms"
        )
    print("Sweep: queue depth (jobs waiting; medians, ms)")
    print("  depth   POST /print   GET /status   claim+mark printed")
    for row in result["queue_depth"]:
        post, get = row["post_print"]["median_ms"], row["get_status"]["median_ms"]
        claim = row["claim_and_mark_printed"]["median_ms"]
        print(f"  {row['depth']:6d}  {post:10.2f}  {get:11.2f}  {claim:12.2f}")
    print(f"Sweep: printers at {SPEED_MM_S:g} mm/s, each with its own backlog")
    print("  printers  tickets  worst drain/need  mean drain/need  server CPU ms/ticket")
    for row in result["printers"]:
        print(
            f"  {row['printers']:8d}  {row['tickets']:7d}  {row['worst_drain_ratio']:16.3f}  "
            f"{row['mean_drain_ratio']:15.3f}  {row['server_cpu_ms_per_ticket']:19.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    result = run(args.quick)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
