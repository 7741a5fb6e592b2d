"""`spoonprint diagnose --windows` against the faithful fake spooler: each step's verdict and
advice, the test jobs only with --print, and the report file for support."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spoonprint.cli.main import app
from spoonprint.diagnostics import Check, Outcome
from spoonprint.transports.base import Timeouts
from spoonprint.transports.windows_host import InThreads
from spoonprint.windows_selftest import RAW_TEST, WindowsSelfTest, report
from tests.fakes.pywin32 import C, FakeSpooler
from tests.fakes.pywin32_remote import serve

#: Some of these run the spooler calls in real helper processes.
pytestmark = pytest.mark.e2e

PRINTER = "Star TSP100 Cutter (TSP143)"
QUICK = Timeouts(connect=1.0, write=1.0, status=1.0)


@pytest.fixture
def spooler() -> Iterator[FakeSpooler]:
    fake = FakeSpooler(print_seconds=0.05)
    fake.add_printer(PRINTER)
    with fake.installed():
        yield fake


def self_test(spooler: FakeSpooler, *, print_jobs: bool = False) -> dict[str, Check]:
    test = WindowsSelfTest(
        PRINTER, print_jobs=print_jobs, timeouts=QUICK, calls=InThreads(), draw=spooler.draw
    )
    return {step.name: step for step in asyncio.run(test.run())}


def outcomes(steps: dict[str, Check]) -> dict[str, str]:
    return {name: str(step.outcome) for name, step in steps.items()}


def test_a_good_pc_passes_every_step_and_prints_nothing_without_print(
    spooler: FakeSpooler,
) -> None:
    spooler.admin = True
    spooler.service_account = ".\\kitchen"
    steps = self_test(spooler)
    assert outcomes(steps) == {
        "pywin32": "ok", "printer": "ok", "driver": "ok", "datatypes": "ok",
        "printing defaults": "ok", "raw job": "skipped", "gdi job": "skipped",
        "spooler control": "ok", "service account": "ok",
    }  # fmt: skip
    assert "v3 driver, Star Micronics" in steps["driver"].detail
    assert "use mode=gdi" in steps["driver"].next_step  # a TSP100 with futurePRNT
    assert steps["printing defaults"].detail == "paper 72 mm x 3276 mm"
    assert "runs as .\\kitchen" in steps["service account"].detail
    assert spooler.printer(PRINTER).printed == [] and spooler.jobs(PRINTER) == []


def test_with_print_a_raw_and_a_gdi_job_are_followed_to_completion(spooler: FakeSpooler) -> None:
    steps = self_test(spooler, print_jobs=True)
    assert steps["raw job"].outcome is Outcome.OK and steps["gdi job"].outcome is Outcome.OK
    raw, gdi = spooler.printer(PRINTER).printed
    assert bytes(raw.data) == RAW_TEST and raw.datatype == "RAW"
    assert [len(page) for page in gdi.pages] == [1]


def test_what_is_wrong_on_a_badly_set_up_pc_is_said_with_what_to_change(
    spooler: FakeSpooler,
) -> None:
    printer = spooler.printer(PRINTER)
    printer.driver_version = 4  # a v4 driver
    printer.defaults_paper = (2159, 2794)  # Letter
    spooler.service_account = "LocalSystem"
    steps = self_test(spooler, print_jobs=True)
    assert steps["driver"].outcome is Outcome.WARNING and "KB2779300" in steps["driver"].next_step
    assert steps["raw job"].outcome is Outcome.SKIPPED
    defaults = steps["printing defaults"]
    assert defaults.detail == "paper 215.9 mm x 279.4 mm: not receipt paper"
    assert (
        "Advanced > Printing Defaults" in defaults.next_step
        and "72mm x Receipt" in defaults.next_step
    )
    assert steps["spooler control"].outcome is Outcome.WARNING  # not an administrator
    account = steps["service account"]
    assert account.outcome is Outcome.WARNING and "KB2890836" in account.next_step
    assert "Log On > This account" in account.next_step
    assert steps["gdi job"].outcome is Outcome.OK
    text = report(PRINTER, list(steps.values()))
    assert "[warning] printing defaults: paper 215.9 mm x 279.4 mm" in text
    assert text.rstrip().endswith("verdict: works, with warnings: driver, printing defaults, "
                                  "spooler control, service account")  # fmt: skip


def test_an_unknown_printer_fails_naming_the_printers_windows_has(spooler: FakeSpooler) -> None:
    test = WindowsSelfTest("Kitchen", timeouts=QUICK, calls=InThreads())
    steps = asyncio.run(test.run())
    assert [s.name for s in steps] == ["pywin32", "printer"]
    assert steps[-1].outcome is Outcome.FAILED and repr(PRINTER) in steps[-1].detail


def test_without_pywin32_the_first_step_says_to_install_it() -> None:
    steps = asyncio.run(WindowsSelfTest(PRINTER, calls=InThreads()).run())
    (step,) = steps
    assert step.outcome is Outcome.FAILED and step.next_step.startswith("pip install pywin32")


def test_the_command_runs_through_helper_processes_and_writes_the_report(
    spooler: FakeSpooler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "spoonprint.toml"
    data = tmp_path / "data"
    config.write_text(
        f'[server]\ndata_dir = "{data}"\n[[printers]]\nname = "kitchen"\n'
        f'uri = "windows:{PRINTER}"\n',
        encoding="utf-8",
    )
    with serve(spooler, tmp_path / "boot") as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(
            app, ["diagnose", "--windows", "--print", "--config", str(config)],
            env={"COLUMNS": "200"},
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[ ok ] gdi job: spooled and followed until the spooler was done" in result.output
    text = (data / "windows-selftest.txt").read_text(encoding="utf-8")
    assert f"printer: {PRINTER}" in text and "[ok] raw job:" in text
    assert len(spooler.printer(PRINTER).printed) == 2
    assert C.PRINTER_ATTRIBUTE_LOCAL  # the fake's constants are pywin32's
