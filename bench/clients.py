"""Concurrent order clients: N keep-alive connections from one asyncio process, each with one
``POST /print`` in flight at a time, written as raw HTTP/1.1 so that the client costs little CPU
(on a 2-core machine it shares the CPU with the server it measures)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench.harness import RunningServer, summary
from bench.orders import bilingual_receipt

TIMEOUT = 10.0
_runs = itertools.count(1)


@dataclass
class Run:
    """What the clients saw: one latency per acknowledged order."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def figures(self) -> dict[str, Any]:
        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        figures: dict[str, Any] = {"accepted": len(self.latencies), "per_second": rate}
        if self.latencies:
            figures["ack"] = summary(self.latencies)
        figures["errors"] = self.errors
        return figures


def _request(port: int, key: str, body: bytes) -> bytes:
    head = (
        f"POST /print HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


@dataclass
class _Plan:
    server: RunningServer
    templates: list[str]
    prefix: str
    #: Orders still to send, shared by the clients.
    left: int
    deadline: float = 0.0
    #: Orders sent so far: picks each order's template, so printers take turns.
    issued: int = 0


async def _client(n: int, plan: _Plan, run: Run) -> None:
    """One client: a keep-alive connection, one order at a time until the plan is done."""
    reader, writer = await asyncio.open_connection("127.0.0.1", plan.server.port)
    try:
        while time.perf_counter() < plan.deadline and plan.left > 0:
            plan.left -= 1
            order_id = f"{plan.prefix}-{plan.issued}"
            template = plan.templates[plan.issued % len(plan.templates)]
            plan.issued += 1
            body = template.replace("ORDER_ID", order_id).encode()
            start = time.perf_counter()
            writer.write(_request(plan.server.port, plan.server.key, body))
            try:
                status, answer = await asyncio.wait_for(_read_answer(reader), TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                run.error(type(exc).__name__)
                return
            if status != 202:
                run.error(f"HTTP {status}")
                continue
            run.latencies.append(time.perf_counter() - start)
            run.acked.append(order_id)
            run.job_ids.append(int(json.loads(answer)["job_id"]))
    finally:
        writer.close()


def order_templates(
    items: int = 4, printers: list[str] | None = None, *, numbered: bool = False
) -> list[str]:
    """JSON bodies with ``ORDER_ID`` to replace, one per printer (none named: the default
    printer). ``numbered``: the receipt's order number is the order id too (it prints)."""
    receipt = bilingual_receipt(items, "ORDER_ID") if numbered else bilingual_receipt(items)
    bodies = []
    for printer in printers or [""]:
        order: dict[str, Any] = {"order_id": "ORDER_ID", "receipt": receipt}
        if printer:
            order["printer"] = printer
        bodies.append(json.dumps(order, ensure_ascii=False))
    return bodies


def post_orders(
    server: RunningServer,
    clients: int = 8,
    *,
    seconds: float = 3600.0,
    count: int | None = None,
    templates: list[str] | None = None,
) -> Run:
    """``clients`` concurrent clients send orders (each with a new ``order_id``) for
    ``seconds`` or until ``count`` were sent, whichever comes first."""
    run = Run()
    plan = _Plan(
        server,
        templates or order_templates(),
        f"bench{next(_runs)}-{time.time_ns() % 10**9}",
        count if count is not None else 1 << 62,
    )

    async def everyone() -> None:
        start = time.perf_counter()
        plan.deadline = start + seconds
        await asyncio.gather(*(_client(n, plan, run) for n in range(clients)))
        run.seconds = time.perf_counter() - start

    asyncio.run(everyone())
    return run
