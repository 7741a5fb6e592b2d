"""Run spoonprint's benchmarks, each against its reference measured in the same run.

    python -m bench                          # every benchmark (the sweeps only when named)
    python -m bench latency acceptance       # the ones named
    python -m bench --quick                  # short runs, the whole thing in about a minute
    python -m bench --json                   # one JSON record on stdout (the report on stderr)
    python -m bench --no-cups                # skip the CUPS references
    python -m bench --profile DIR            # py-spy profiles of the server, see bench.profile

Benchmarks: latency (order to first byte vs CUPS ``lp`` and a direct socket), acceptance
(durable orders a second vs ``lp`` submissions a second), render (ticket to printer bytes vs
Pillow line by line), footprint (start-up and memory vs a bare FastAPI app), drain (backlog
after an outage vs the printer's own speed), flood (order latency under scanner traffic vs
quiet), attacks (orders from the shop's address under slowloris, slow bodies and a connection
flood; ``python -m bench.flood --attacks``), sweep (cost against ticket size, queue depth and
number of printers). Each is also a
module with its own options: ``python -m bench.NAME --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import acceptance, attacks, drain, flood, footprint, harness, latency, render, sweep
from bench.cups import PrivateCups, private_cups

Cups = PrivateCups | None


@dataclass(frozen=True)
class Bench:
    run: Callable[[bool, Cups, str | None], dict[str, Any]]
    report: Callable[[dict[str, Any]], None]
    uses_cups: bool = False
    #: Run by default (the sweeps are long: only when named).
    default: bool = True


def _latency(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    count, warmup = (20, 3) if quick else (200, 10)
    return latency.run(count, warmup, cups, skipped)


def _acceptance(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return acceptance.run(3.0 if quick else 30.0, 8, cups, skipped)


def _render(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return render.run(10 if quick else 200)


def _footprint(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return footprint.run(500, 1) if quick else footprint.run(10_000, 7)


def _drain(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return drain.run(5 if quick else 1000, drain.SPEED_MM_S)


def _flood(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    count, warmup = (30, 5) if quick else (500, 20)
    return flood.run(count, warmup, list(flood.DEFAULT_SOURCES), 10)


def _attacks(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return attacks.run(6.0, 100, 10) if quick else attacks.run(25.0, 500, 10)


def _sweep(quick: bool, cups: Cups, skipped: str | None) -> dict[str, Any]:
    return sweep.run(quick)


BENCHES: dict[str, Bench] = {
    "latency": Bench(_latency, latency.print_report, uses_cups=True),
    "acceptance": Bench(_acceptance, acceptance.print_report, uses_cups=True),
    "render": Bench(_render, render.print_report),
    "footprint": Bench(_footprint, footprint.print_report),
    "drain": Bench(_drain, drain.print_report),
    "flood": Bench(_flood, flood.print_report),
    "attacks": Bench(_attacks, attacks.print_report, default=False),
    "sweep": Bench(_sweep, sweep.print_report, default=False),
}


def machine() -> dict[str, Any]:
    """What the figures were taken on: the load matters on a shared machine."""
    return {
        "cpus": os.cpu_count(),
        "load_average": harness.load_average(),
        "cpu_pressure_avg60": harness.cpu_pressure(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


@contextmanager
def _cups_if_needed(names: list[str], no_cups: bool) -> Iterator[tuple[Cups, str | None]]:
    if not any(BENCHES[name].uses_cups for name in names):
        yield None, None
        return
    if no_cups:
        yield None, "--no-cups"
        return
    with private_cups() as (cups, skipped):
        if skipped:
            print(f"CUPS references skipped: {skipped}", file=sys.stderr)
        yield cups, skipped


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n")[0],
        epilog=f"benchmarks: {', '.join(BENCHES)}",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", action="store_true", help="one JSON record on stdout")
    parser.add_argument("--no-cups", action="store_true", help="skip the CUPS references")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy profiles to DIR")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    names = args.names or [name for name, bench in BENCHES.items() if bench.default]
    harness.PROFILE_DIR = args.profile
    record: dict[str, Any] = {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {},
    }
    # With --json, stdout carries only the record: the readable report goes to stderr.
    out = sys.stderr if args.json else sys.stdout
    print(f"{record['command']}  on {_describe(record['machine'])}", file=out)
    started = time.perf_counter()
    with _cups_if_needed(names, args.no_cups) as (cups, skipped):
        for name in names:
            print(file=out)
            result = BENCHES[name].run(args.quick, cups, skipped)
            record["benchmarks"][name] = result
            with contextlib.redirect_stdout(out):
                BENCHES[name].report(result)
    record["seconds"] = time.perf_counter() - started
    record["load_average_after"] = harness.load_average()
    record["cpu_pressure_avg60_after"] = harness.cpu_pressure()
    print(
        f"\n{len(names)} benchmark(s) in {record['seconds']:.0f} s; after: load average "
        f"{_load(record['load_average_after'])}, {_pressure(record['cpu_pressure_avg60_after'])}",
        file=out,
    )
    if args.json:
        print(json.dumps(record))


def _load(load: tuple[float, float, float] | None) -> str:
    return " ".join(f"{n:.2f}" for n in load) if load else "unknown"


def _pressure(share: float | None) -> str:
    """PSI: 0% on an idle machine; the higher, the more other work slowed the figures."""
    return "CPU pressure unknown" if share is None else f"CPU pressure {share:.0f}% (1 min)"


def _describe(info: dict[str, Any]) -> str:
    return (
        f"{info['cpus']} CPUs, load average {_load(info['load_average'])}, "
        f"{_pressure(info['cpu_pressure_avg60'])}, Python {info['python']}, {info['at']}"
    )


if __name__ == "__main__":
    main()
