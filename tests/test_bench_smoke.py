"""The benchmarks still run: each as ``python -m bench.NAME`` in a short mode, exiting 0 and
printing its figures. No timing is asserted (a shared 2-core machine is no place for that)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"median\s+\d+\.\d+ ms\s+p99\s+\d+\.\d+ ms")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bench.flood", "--quick"], ["quiet", "under_flood", "requests sent", "p99 under flood"]),
        (["bench.latency", "-n", "5"], ["spoonprint_order_to_202"]),
        (["bench.render", "-n", "3"], ["star-graphic"]),
    ],
    ids=["flood", "latency", "render"],
)
def test_bench_runs(args: list[str], expected: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert FIGURE.search(result.stdout), result.stdout
    for text in expected:
        assert text in result.stdout, result.stdout
