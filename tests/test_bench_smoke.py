"""The benchmarks still run: ``python -m bench --quick`` runs every one, exits 0, prints each
one's figures and gives one parseable ``--json`` record; a bench module still runs on its own.
No timing is asserted (a shared 2-core machine is no place for that). Where CUPS is installed,
the latency and acceptance benches start a private cupsd for their reference (stopped by PID at
the end); where it is not, they say so and run the rest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"median\s+\d+\.\d+ ms\s+p99\s+\d+\.\d+ ms")
#: Under the 60 s a test may take; every quick bench needs well under this.
LIMIT = 55


def bench(*args: str, timeout: float = LIMIT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


#: What each bench's report must say (besides its figures).
EXPECTED = {
    "latency": ["spoonprint_order_to_first_byte", "direct_socket_to_first_byte", "CUPS"],
    "acceptance": ["spoonprint POST /print -> 202", "acknowledged but not stored: 0"],
    "render": ["star-graphic", "escpos-raster", "bytes", "reference_pillow_line_by_line"],
    "footprint": ["start to first /status answer", "resident memory", "bare app"],
    "drain": ["printer's own need", "printed in acceptance order: yes"],
    "flood": ["quiet", "under_flood", "requests sent", "p99 under flood"],
    "sweep": ["ticket size", "queue depth", "printers at"],
}


# One run of the whole suite, as CI would start it: about a minute on an idle 2-core machine.
@pytest.mark.timeout(4 * LIMIT)
def test_every_bench_runs_quick_with_a_json_record() -> None:
    result = bench("bench", "--quick", "--json", *EXPECTED, timeout=4 * LIMIT - 10)
    report, record = result.stderr, json.loads(result.stdout)
    assert record["quick"] is True and record["machine"]["cpus"] >= 1
    assert set(record["benchmarks"]) == set(EXPECTED)
    assert len(FIGURE.findall(report)) >= 10, report
    for texts in EXPECTED.values():
        for text in texts:
            assert text in report, report
    figures = record["benchmarks"]
    assert set(figures["render"]["star-graphic"]) >= {"median_ms", "p99_ms", "max_ms", "bytes"}
    assert figures["acceptance"]["spoonprint"]["acknowledged_but_not_stored"] == 0
    assert figures["drain"]["printed_in_acceptance_order"] is True
    assert figures["latency"]["tickets_differing_from_reference"] == 0


def test_a_bench_module_runs_on_its_own() -> None:
    out = bench("bench.latency", "--quick", "--no-cups").stdout
    assert FIGURE.search(out) and "CUPS reference skipped: --no-cups" in out, out


def test_the_app_is_built_as_serve_builds_it_for_counting_instructions(tmp_path: Path) -> None:
    config = tmp_path / "spoonprint.toml"
    config.write_text('[[printers]]\nname = "kitchen"\nuri = "tcp://127.0.0.1:9"\n')
    bench("bench.build_app", str(config))
    assert (tmp_path / "spoonprint-data" / "spoonprint.db").is_file()
    bench("bench.build_app", "--bare")


def test_unknown_benchmark_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "nosuch"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert result.returncode == 2 and "unknown benchmark" in result.stderr


def test_the_connection_attacks_run_quick() -> None:
    result = bench("bench.flood", "--attacks", "--quick", "--json")
    record = json.loads(result.stdout)
    names = [attack["attack"] for attack in record["attacks"]]
    assert names == ["slowloris", "slow bodies", "connection flood"]
    for attack in record["attacks"]:
        assert attack["under_attack"]["attempted"] > 0 and attack["rss_peak_mb"] > 0
        assert attack["attacker_outcomes"], attack  # the attack ran and got answers
