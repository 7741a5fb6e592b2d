"""Footprint: start-up time and resident memory of ``spoonprint serve``, idle and after many
orders, vs a bare FastAPI app on uvicorn measured the same way in the same run.

Start-up: from starting the process to its first ``/status`` answer (polled every 2 ms), the
median of ``--starts`` starts, each followed by one of the reference's, and the CPU seconds the
process had used by then (user + system: less swayed than the wall time by other work on a
shared machine). Memory: resident set (VmRSS)
after start-up and a second of idling, then after ``--orders`` orders (8 concurrent clients,
bilingual receipts, printer online at a real printer's 150 mm/s, so the queue grows as in a
rush hour), and the peak (VmHWM).
Targets: under 80 MB after the orders, under 1 s to the first answer. spoonprint's modules are
byte-compiled first, as an installed package's are (see :func:`compile_spoonprint`).

References: ``python -m bench.bare_app`` (FastAPI + uvicorn, one route) started and measured
like spoonprint, and a plain ``python -c "import fastapi, uvicorn"`` (time to exit, RSS at exit).

    python -m bench.footprint [--orders 10000] [--starts 7] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import spoonprint
from bench.clients import post_orders
from bench.harness import (
    RunningServer,
    cpu_seconds,
    free_port,
    rss_mb,
    spoonprint_server,
    status,
    stop_process,
    wait_ready,
)
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

TARGET_RSS_MB = 80.0
TARGET_STARTUP_S = 1.0
SPEED_MM_S = 150.0
IDLE_S = 1.0


def peak_rss_mb(pid: int) -> float:
    """Highest resident memory of process ``pid`` so far, in MB (VmHWM), 0.0 off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def bare_app() -> Iterator[tuple[int, float]]:
    """The reference server running: (pid, seconds to its first answer)."""
    port = free_port()
    log = Path(f"/tmp/spoonprint-bench-bare-{port}.log")
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_app", str(port)], stdout=out, stderr=out
        )
    try:
        wait_ready(port, proc, log)
        yield proc.pid, time.perf_counter() - started
    finally:
        stop_process(proc)
        log.unlink(missing_ok=True)


def bare_import() -> dict[str, float]:
    """``python -c "import fastapi, uvicorn"``: seconds to exit, RSS at exit (MB)."""
    code = (
        "import fastapi, uvicorn\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    took = time.perf_counter() - started
    return {"seconds": took, "rss_mb": int(done.stdout.strip() or 0) / 1024}


def bare_start() -> dict[str, float]:
    """One start of the reference app: seconds to its first answer, CPU by then, idle RSS."""
    with bare_app() as (pid, took):
        cpu = cpu_seconds(pid)
        time.sleep(IDLE_S)
        return {"seconds": took, "cpu_s": cpu, "idle_rss_mb": rss_mb(pid)}


def reference(starts: list[dict[str, float]]) -> dict[str, Any]:
    times = [start["seconds"] for start in starts]
    imports = [bare_import() for _ in starts]
    return {
        "startup_s": statistics.median(times),
        "startup_all_s": times,
        "startup_cpu_s": statistics.median(start["cpu_s"] for start in starts),
        "idle_rss_mb": statistics.median(start["idle_rss_mb"] for start in starts),
        "import_only_s": statistics.median(i["seconds"] for i in imports),
        "import_only_rss_mb": statistics.median(i["rss_mb"] for i in imports),
    }


def spoonprint_figures(
    starts: int, orders: int, after_each: Callable[[], object] = lambda: None
) -> dict[str, Any]:
    """``starts`` start-ups (``after_each`` called after each one), the last one taking
    ``orders`` orders."""
    times: list[float] = []
    cpu: list[float] = []
    figures: dict[str, Any] = {}
    with VirtualPrinterThread(speed_mm_s=SPEED_MM_S) as printer:
        for n in range(starts):
            measured = n == starts - 1  # the last start also takes the orders
            with spoonprint_server(
                printer.port, profile="footprint" if measured else None
            ) as server:
                times.append(server.startup_s)
                cpu.append(cpu_seconds(server.pid))
                if measured:
                    figures.update(memory_figures(server, orders))
            after_each()
    figures["startup_s"] = statistics.median(times)
    figures["startup_all_s"] = times
    figures["startup_cpu_s"] = statistics.median(cpu)
    return figures


def memory_figures(server: RunningServer, orders: int) -> dict[str, Any]:
    """Resident memory idle, then after ``orders`` orders, and the peak."""
    time.sleep(IDLE_S)
    figures: dict[str, Any] = {"idle_rss_mb": rss_mb(server.pid)}
    run = post_orders(server, 8, count=orders)
    figures["orders"] = len(run.acked)
    figures["orders_per_second"] = run.figures()["per_second"]
    figures["errors"] = run.errors
    answer = status(server.port)
    figures["queue_depth_after"] = answer["queue_depth"] if answer else None
    figures["rss_after_orders_mb"] = rss_mb(server.pid)
    figures["peak_rss_mb"] = peak_rss_mb(server.pid)
    return figures


def compile_spoonprint() -> None:
    """Byte-compile spoonprint's modules, as ``pip install .`` does when it installs them: the
    bare app's FastAPI and uvicorn are compiled too, and an editable checkout run with
    ``PYTHONDONTWRITEBYTECODE`` (as on these machines) would compile its sources at every
    start otherwise."""
    compileall.compile_dir(Path(spoonprint.__file__).parent, quiet=1)


def run(orders: int, starts: int) -> dict[str, Any]:
    compile_spoonprint()
    # The reference starts alternate with spoonprint's: this machine's speed drifts by a
    # quarter within minutes, and one's starts all before the other's would measure that.
    bare: list[dict[str, float]] = []
    ours = spoonprint_figures(starts, orders, after_each=lambda: bare.append(bare_start()))
    ref = reference(bare)
    return {
        "spoonprint": ours,
        "reference_bare_fastapi": ref,
        "startup_ratio": ours["startup_s"] / ref["startup_s"],
        "idle_rss_ratio": ours["idle_rss_mb"] / ref["idle_rss_mb"],
        "target_rss_mb": TARGET_RSS_MB,
        "target_startup_s": TARGET_STARTUP_S,
    }


def print_report(result: dict[str, Any]) -> None:
    ours, ref = result["spoonprint"], result["reference_bare_fastapi"]
    print(f"Footprint: spoonprint serve vs a bare FastAPI app on uvicorn ({ours['orders']} orders)")
    starts = ", ".join(f"{s:.2f}" for s in ours["startup_all_s"])
    ref_starts = ", ".join(f"{s:.2f}" for s in ref["startup_all_s"])
    print(
        f"  start to first /status answer: spoonprint {ours['startup_s']:.2f} s ({starts}; "
        f"{ours['startup_cpu_s']:.2f} s of CPU)"
    )
    print(
        f"                                 bare app   {ref['startup_s']:.2f} s ({ref_starts}; "
        f"{ref['startup_cpu_s']:.2f} s of CPU)"
    )
    print(
        f"                                 python -c 'import fastapi, uvicorn' "
        f"{ref['import_only_s']:.2f} s"
    )
    print(
        f"  resident memory: spoonprint idle {ours['idle_rss_mb']:.1f} MB, after "
        f"{ours['orders']} orders {ours['rss_after_orders_mb']:.1f} MB "
        f"(peak {ours['peak_rss_mb']:.1f} MB; {ours['queue_depth_after']} still queued)"
    )
    print(
        f"                   bare app idle {ref['idle_rss_mb']:.1f} MB; "
        f"import only {ref['import_only_rss_mb']:.1f} MB"
    )
    print(
        f"  ratios spoonprint / bare app: start-up {result['startup_ratio']:.2f}x, idle memory "
        f"{result['idle_rss_ratio']:.2f}x"
    )
    rss_ok = ours["rss_after_orders_mb"] < result["target_rss_mb"]
    start_ok = ours["startup_s"] < result["target_startup_s"]
    print(
        f"  targets: memory under {result['target_rss_mb']:g} MB "
        f"{'met' if rss_ok else 'MISSED'}; start-up under {result['target_startup_s']:g} s "
        f"{'met' if start_ok else 'MISSED'}"
    )
    if ours["errors"]:
        print(f"  order errors: {ours['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--starts", type=int, default=7, help="start-ups to time (median)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    orders, starts = (500, 1) if args.quick else (args.orders, args.starts)
    result = run(orders, starts)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
