"""Everyday commands for running spoonprint: start, stop, restart, status, printers, queue,
print, test-print, reprint, cancel, login and logout (``logs`` is in
:mod:`spoonprint.cli.logview`). Exit codes: see :mod:`spoonprint.cli.common`.

Commands with live state ask the running server over its API (``--url`` for another machine);
``start``, ``stop`` and ``restart`` work on this machine's data folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from spoonprint.cli import process
from spoonprint.cli.client import Api, key_file, local_url, save_key, saved_key
from spoonprint.cli.common import (
    CONFLICT,
    DEFAULT_CONFIG,
    FAILED,
    OK,
    PRINTER_PROBLEM,
    USAGE,
    CliFailure,
    ConfigOption,
    JsonOption,
    KeyOption,
    UrlOption,
    console,
    fail,
    local_time,
    print_json,
    printing_words,
    settings_from,
)

#: Job states after which a job will not change by itself.
SETTLED = {"printed", "sent", "failed", "cancelled", "held"}


#: ``--wait`` / ``--timeout`` of the commands that print.
WaitOption = Annotated[bool, typer.Option(help="Wait until it is printed.")]
WaitTimeoutOption = Annotated[float, typer.Option(help="Seconds --wait waits.")]


# -- connecting ----------------------------------------------------------------------------


def server_url(config: Path, url: str | None) -> str:
    return url.rstrip("/") if url else local_url(settings_from(config))


@contextmanager
def api(config: Path, url: str | None, key: str | None) -> Iterator[Api]:
    """An API client for the server, failures reported plainly with their exit code."""
    base = server_url(config, url)
    client = Api(base, key or saved_key(base))
    try:
        yield client
    except CliFailure as exc:
        fail(str(exc), exc.code)
    finally:
        client.close()


# -- start, stop, restart, status ----------------------------------------------------------


def _ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        import httpx

        try:
            # Only "is it answering": a self-signed certificate is fine for that.
            return httpx.get(f"{url}/status", timeout=1.0, verify=False).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def start(
    config: ConfigOption = DEFAULT_CONFIG,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to answer.")] = 30.0,
) -> None:
    """Start the server in the background (PID file in the data folder)."""
    if not config.exists():
        fail(f"config file {config} not found: run 'spoonprint init' first", USAGE)
    settings = settings_from(config)
    data_dir = settings.server.data_dir
    url = local_url(settings)
    try:
        pid, stale = process.start(config, data_dir, _ready(url), timeout)
    except process.ProcessProblem as exc:
        # Only process.start's own words: the server's output it quotes may say the same.
        already = str(exc).startswith("spoonprint is already running")
        fail(str(exc), CONFLICT if already else FAILED)
    if stale:
        console.print("Removed a stale PID file (that server had stopped).")
    console.print(f"spoonprint started (pid {pid}), answering at {url}")
    console.print(f"Logs: {data_dir / 'logs'}   Stop with: spoonprint stop")


def stop(
    config: ConfigOption = DEFAULT_CONFIG,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 30.0,
    force: Annotated[bool, typer.Option(help="Kill it if it has not stopped in time.")] = False,
) -> None:
    """Stop the server started with 'spoonprint start' (it finishes the ticket it is on)."""
    data_dir = settings_from(config).server.data_dir
    try:
        pid = process.stop(data_dir, timeout, force=force)
    except process.ProcessProblem as exc:
        fail(str(exc), CONFLICT)
    if pid is None:
        console.print("spoonprint is not running.")
    else:
        console.print(f"spoonprint stopped (pid {pid}).")


def restart(
    config: ConfigOption = DEFAULT_CONFIG,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 30.0,
    force: Annotated[bool, typer.Option(help="Kill it if it has not stopped in time.")] = False,
) -> None:
    """Stop the server (if running) and start it again."""
    stop(config, timeout, force)
    start(config, timeout)


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Is the server up, and how are its printers? (No key needed.)

    Exit code 0 when it is up and no printer is failing, 7 when a printer is failing, 3 when
    the server is not running.
    """
    local = None if url else process.state(settings_from(config).server.data_dir)
    base = server_url(config, url)
    try:
        with Api(base, None, timeout=5.0) as server:
            answer = server.get("/status")
    except CliFailure as exc:
        if local is not None and local.running:
            fail(
                f"spoonprint runs (pid {local.pid or 'unknown'}) but does not answer: {exc}",
                exc.code,
            )
        fail(str(exc), exc.code)
    down = [p for p in answer["printers"] if p.get("online") is False]
    if as_json:
        if local is not None:
            answer["process"] = {"pid": local.pid, "started_by_cli": local.started_here}
        print_json(answer)
    else:
        _print_status(answer, local)
    raise typer.Exit(PRINTER_PROBLEM if down else OK)


def _print_status(answer: dict[str, Any], local: process.ProcessState | None) -> None:
    pid = f" (pid {local.pid})" if local is not None and local.pid else ""
    # The server tells its version and uptime only to a key or the shop's own networks.
    version = f" {answer['version']}" if answer.get("version") else ""
    uptime = answer.get("uptime_seconds")
    since = f" for {_duration(uptime)}" if uptime is not None else ""
    console.print(f"spoonprint{version} up{pid}{since}, {answer['queue_depth']} job(s) waiting")
    for printer in answer["printers"]:
        state = {True: "online", False: "OFFLINE", None: "not tried yet"}[printer["online"]]
        console.print(f"  {printer['name']}: {state}, {printer['queued']} waiting")
        for words in _what_to_do(printer):
            console.print(f"    -> {words}")


def _what_to_do(printer: dict[str, Any]) -> list[str]:
    """The health monitor's advice, which says what is wrong and what to do; else the
    problem alone. Never both: they say the same thing twice."""
    advice: list[str] = printer.get("advice") or []
    return advice or ([printer["problem"]] if printer.get("problem") else [])


# -- printers and jobs ---------------------------------------------------------------------


def printers(
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The printers: online or not, health, whether tickets go out, waiting jobs, what to do.

    Exit code 7 when a printer is offline, as for 'spoonprint status'.
    """
    with api(config, url, key) as server:
        listed = server.get("/printers")
        health = {p["printer"]: p for p in server.get("/recovery/status")["printers"]}
    for printer in listed:
        printer["health"] = health.get(printer["name"], {}).get("health", "unknown")
    code = PRINTER_PROBLEM if any(p["online"] is False for p in listed) else OK
    if as_json:
        print_json(listed)
        raise typer.Exit(code)
    for p in listed:
        _print_printer(p)
    raise typer.Exit(code)


#: Health monitor verdicts worth a word (``ok`` and ``unknown`` add nothing to the state).
_HEALTH_WORDS = {"recovering": "recovering", "needs-attention": "needs attention"}


def _print_printer(p: dict[str, Any]) -> None:
    """One printer as a short block, not a wide table: its lines wrap at words and stay
    indented, so an 80-column terminal reads it as well as a wide one."""
    name = Text(p["name"], "bold")
    if p["default"]:
        name.append(" (default)")
    console.print(Text.assemble(name, "  ", (p["uri"], "dim")), overflow="fold")
    state = {
        True: Text("online", "green"),
        False: Text("OFFLINE", "bold red"),
        None: Text("not tried yet", "dim"),
    }[p["online"]]
    facts = [state]
    if p["health"] in _HEALTH_WORDS:
        facts.append(Text(_HEALTH_WORDS[p["health"]], "yellow"))
    doing = printing_words(p)
    facts += [Text(doing)] if doing else []
    facts.append(Text(f"{p['queued']} waiting"))
    console.print(Padding(Text("; ").join(facts), (0, 0, 0, 2), expand=False))
    for words in _what_to_do(p):
        console.print(Padding(Text(f"-> {words}", "yellow"), (0, 0, 0, 2), expand=False))


def queue(
    printer: Annotated[str | None, typer.Option(help="Only this printer's jobs.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs waiting to print, oldest first."""
    with api(config, url, key) as server:
        jobs = server.get("/queue", printer=printer)
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        console.print("Nothing waiting.")
        return
    table = Table("job", "order", "printer", "state", "waiting", "attempts", "last error")
    now = time.time()
    for job in jobs:
        age = now - datetime.fromisoformat(job["created_at"]).timestamp()
        table.add_row(
            str(job["id"]),
            job.get("order_id") or "",
            job["printer"],
            job["state"],
            _duration(age),
            str(job["attempts"]),
            job.get("last_error") or "",
        )
    console.print(table)


def print_order(
    what: Annotated[
        str,
        typer.Argument(
            help="Text to print, a text file, or a .json file with the body of POST /print."
        ),
    ],
    printer: Annotated[str | None, typer.Option(help="Printer (default: the first).")] = None,
    copies: Annotated[int, typer.Option(min=1, max=10)] = 1,
    order_id: Annotated[str | None, typer.Option(help="The shop's order id.")] = None,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 60.0,
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print text, a text file, or an order (.json)."""
    body = _order_body(what)
    for name, value in (("printer", printer), ("order_id", order_id)):
        if value is not None:
            body[name] = value
    if copies != 1:
        body["copies"] = copies
    with api(config, url, key) as server:
        accepted = server.post("/print", body)
        _report_job(server, accepted, wait, timeout, as_json)


#: Endings that mark an argument of ``spoonprint print`` as a file name, not text to print.
FILE_SUFFIXES = (".json", ".txt")


def looks_like_a_file(what: str) -> bool:
    """Whether ``what`` was meant as a file: it ends in .json or .txt, or it is one word with a
    path separator in it. Words with spaces ("Table 5/6: 2 x congee") are text to print."""
    if what.lower().endswith(FILE_SUFFIXES):
        return True
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return not any(c.isspace() for c in what) and any(s in what for s in separators)


def _order_body(what: str) -> dict[str, Any]:
    path = Path(what)
    try:
        is_file = path.is_file()
    except OSError:  # a long text is no path
        is_file = False
    if not is_file:
        if looks_like_a_file(what):
            # A mistyped file name must not print as a ticket that reads the name.
            fail(f"no such file: {what} (nothing printed)", USAGE)
        return {"text": what}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", USAGE)
    if path.suffix.lower() != ".json":
        return {"text": text}
    try:
        body = json.loads(text)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}", USAGE)
    if not isinstance(body, dict):
        fail(f"{path} must hold a JSON object (the body of POST /print)", USAGE)
    return body


def test_print(
    printer: Annotated[str | None, typer.Argument(help="Printer (default: the first).")] = None,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 60.0,
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a test ticket through the server (see also 'spoonprint diagnose')."""
    with api(config, url, key) as server:
        accepted = server.post("/test-print", {"printer": printer} if printer else {})
        _report_job(server, accepted, wait, timeout, as_json)


def reprint(
    job_id: int,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 60.0,
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print an order again (a new job; marked REPRINT if it may already be on paper)."""
    with api(config, url, key) as server:
        accepted = server.post(f"/jobs/{job_id}/reprint")
        _report_job(server, accepted, wait, timeout, as_json, f" (reprint of {job_id})")


def cancel(
    job_id: int,
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job that has not printed yet."""
    with api(config, url, key) as server:
        job = server.post(f"/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    else:
        console.print(f"Job {job_id} cancelled.")


def _report_job(
    server: Api,
    accepted: dict[str, Any],
    wait: bool,
    timeout: float,
    as_json: bool,
    note: str = "",
) -> None:
    job_id = accepted["job_id"]
    if accepted.get("duplicate") and not as_json:
        # The same order_id again: nothing new prints, so say what became of the first one.
        console.print(already_accepted(server.get(f"/jobs/{job_id}")), soft_wrap=True)
        return
    if not wait:
        if as_json:
            print_json(accepted)
        else:
            console.print(f"Job {job_id} queued on {accepted['printer']}{note}.")
        return
    job = _wait_settled(server, job_id, timeout)
    if as_json:
        print_json(job)
    else:
        words = {"printed": "printed", "sent": "sent (the printer cannot confirm)"}
        outcome = words.get(job["state"], job["state"])
        error = f": {job['last_error']}" if job.get("last_error") else ""
        console.print(f"Job {job_id} on {job['printer']}{note}: {outcome}{error}.")
    if job["state"] not in ("printed", "sent"):
        raise typer.Exit(PRINTER_PROBLEM)


def already_accepted(job: dict[str, Any]) -> str:
    """What to tell someone who sent an order that was accepted before, from its job."""
    on = job["printer"]
    state = job["state"]
    if state in ("printed", "sent") and job.get("printed_at"):
        verb = "printed" if state == "printed" else "sent"
        became = f"{verb} at {local_time(job['printed_at'])} on {on}"
    elif state == "failed":
        became = f"failed on {on}: {job.get('last_error') or 'see spoonprint queue'}"
    else:
        became = {"queued": f"waiting to print on {on}", "printing": f"printing on {on}"}.get(
            state, f"{state} on {on}"
        )
    order = f"Order {job['order_id']}: " if job.get("order_id") else ""
    return (
        f"{order}already accepted as job {job['id']} ({became}); nothing printed again; use "
        f"`spoonprint reprint {job['id']}` for another copy"
    )


def _wait_settled(server: Api, job_id: int, timeout: float) -> dict[str, Any]:
    """Poll the job (it lives in the server) until it settles or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = server.get(f"/jobs/{job_id}")
        if job["state"] in SETTLED or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


# -- the CLI's key ---------------------------------------------------------------------------


def login(
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: Annotated[
        str | None,
        typer.Option(help="The API key (asked for, hidden, when not given).", show_default=False),
    ] = None,
) -> None:
    """Check an admin key against the server and keep it for the CLI (owner-only file)."""
    base = server_url(config, url)
    if key is None:
        key = typer.prompt("API key", hide_input=True)
    with api(config, base, key) as server:
        server.get("/printers")  # an admin route: proves the key is an admin key
    path = save_key(base, key)
    console.print(f"Key saved for {base} in {path} (readable by you only).")


def logout(config: ConfigOption = DEFAULT_CONFIG, url: UrlOption = None) -> None:
    """Forget the key kept for a server."""
    base = server_url(config, url)
    if saved_key(base) is None:
        console.print(f"No key kept for {base} (in {key_file()}).")
        return
    save_key(base, None)
    console.print(f"Forgot the key for {base}.")


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def register(app: typer.Typer) -> None:
    """Add these commands (and monitor, diagnose) to the ``spoonprint`` command line."""
    from spoonprint.cli.diagnose import diagnose
    from spoonprint.cli.logview import logs
    from spoonprint.cli.monitor import monitor

    for name, command in (
        ("start", start),
        ("stop", stop),
        ("restart", restart),
        ("status", status),
        ("printers", printers),
        ("queue", queue),
        ("print", print_order),
        ("test-print", test_print),
        ("reprint", reprint),
        ("cancel", cancel),
        ("logs", logs),
        ("login", login),
        ("logout", logout),
        ("monitor", monitor),
        ("diagnose", diagnose),
    ):
        app.command(name)(command)
