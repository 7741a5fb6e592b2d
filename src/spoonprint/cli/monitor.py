"""``spoonprint monitor``: a live dashboard in the terminal, refreshed every second.

Printers with their health, whether tickets go out and paper (``/printers``,
``/recovery/status``); per printer the waiting and held jobs and the oldest waiting order,
recent jobs, blocked addresses and recent security events (``/ops/activity``); recent recovery
actions. It works against any server it can reach with an admin key (``--url``, ``--key``).

``--once`` draws one frame and exits (for scripts, tests and screenshots: ``--svg FILE``).
A server that stops answering is shown as such and asked again every second; a refused key
ends the monitor at once (asking again would only get this address blocked).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from spoonprint.cli.client import Api, saved_key
from spoonprint.cli.common import (
    AUTH,
    DEFAULT_CONFIG,
    OK,
    PRINTER_PROBLEM,
    CliFailure,
    ConfigOption,
    JsonOption,
    KeyOption,
    UrlOption,
    console,
    fail,
    print_json,
    printing_words,
)

RECENT_JOBS = 10
RECENT_EVENTS = 8
RECENT_ACTIONS = 8
_STATE_STYLE = {
    "printed": "green",
    "sent": "green",
    "queued": "yellow",
    "printing": "cyan",
    "held": "magenta",
    "failed": "bold red",
    "cancelled": "dim",
}


@dataclass
class Snapshot:
    """One look at the server: everything a frame shows."""

    url: str
    taken_at: float
    printers: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, Any] = field(default_factory=dict)
    activity: dict[str, Any] = field(default_factory=dict)
    #: Why the server could not be asked this time (the rest is from the last good look).
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "taken_at": self.taken_at,
            "printers": self.printers,
            "recovery": self.recovery,
            "activity": self.activity,
            "error": self.error,
        }

    @property
    def trouble(self) -> bool:
        """A printer is failing or needs attention."""
        health = {p["printer"]: p.get("health") for p in self.recovery.get("printers", [])}
        return any(
            p.get("online") is False or health.get(p["name"]) in ("needs-attention", "recovering")
            for p in self.printers
        )


def take(server: Api) -> Snapshot:
    """Ask the server for everything a frame shows (raises CliFailure)."""
    return Snapshot(
        url=server.url,
        taken_at=time.time(),
        printers=server.get("/printers"),
        recovery=server.get("/recovery/status"),
        activity=server.get("/ops/activity", jobs=RECENT_JOBS, events=RECENT_EVENTS),
    )


# -- drawing -------------------------------------------------------------------------------


def render(snapshot: Snapshot) -> RenderableType:
    """One frame of the dashboard."""
    when = datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S")
    title = Text.assemble(
        ("spoonprint monitor", "bold"), f"  {snapshot.url}  {when}  (Ctrl+C to quit)"
    )
    parts: list[RenderableType] = [title]
    if snapshot.error:
        parts.append(Panel(Text(snapshot.error, style="bold red"), title="server"))
    parts += [
        Panel(_printers(snapshot), title="printers", title_align="left"),
        Panel(_jobs(snapshot), title="recent jobs", title_align="left"),
        Panel(_recovery(snapshot), title="recovery actions", title_align="left"),
        Panel(_security(snapshot), title="security", title_align="left"),
    ]
    return Group(*parts)


def render_text(snapshot: Snapshot, width: int = 140) -> str:
    """The frame as plain text (no colours), e.g. for tests and logs."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False).print(render(snapshot))
    return out.getvalue()


def save_svg(snapshot: Snapshot, path: Path, width: int = 140) -> None:
    """A picture of the frame, as the terminal shows it (for the README)."""
    recorder = Console(record=True, width=width, file=io.StringIO(), force_terminal=True)
    recorder.print(render(snapshot))
    recorder.save_svg(str(path), title="spoonprint monitor")


def _printers(snapshot: Snapshot) -> RenderableType:
    health = {p["printer"]: p for p in snapshot.recovery.get("printers", [])}
    queue = {q["printer"]: q for q in snapshot.activity.get("queue", [])}
    table = Table(expand=True, box=None)
    for column in ("printer", "state", "health", "tickets", "paper", "waiting", "held"):
        table.add_column(column, no_wrap=True)
    table.add_column("oldest waiting", no_wrap=True)
    advice: list[Text] = []
    for printer in snapshot.printers:
        name = printer["name"]
        record = health.get(name, {})
        waiting = queue.get(name, {})
        faults = {p["fault"] for p in record.get("problems", [])}
        table.add_row(
            name,
            _online(printer.get("online")),
            _health(record.get("health", "unknown")),
            _breaker(printer),
            _paper(printer, faults),
            str(waiting.get("waiting", printer.get("queued", 0))),
            str(waiting.get("held", 0)),
            _oldest(waiting.get("oldest")),
        )
        for words in printer.get("advice") or (
            [printer["problem"]] if printer.get("problem") else []
        ):
            advice.append(Text.assemble((f"{name}: ", "bold"), (words, "yellow")))
    return Group(table, *advice)


def _online(online: bool | None) -> Text:
    return {
        True: Text("online", "green"),
        False: Text("OFFLINE", "bold red"),
        None: Text("not tried", "dim"),
    }[online]


def _health(health: str) -> Text:
    style = {"ok": "green", "recovering": "yellow", "needs-attention": "bold red"}
    return Text(health, style.get(health, "dim"))


def _breaker(printer: dict[str, Any]) -> Text:
    styles = {"closed": "green", "open": "bold red", "half-open": "yellow"}
    return Text(printing_words(printer) or "-", styles.get(printer.get("breaker", ""), ""))


def _paper(printer: dict[str, Any], faults: set[str]) -> Text:
    problem = (printer.get("problem") or "").lower()
    if "paper-out" in faults or "paper out" in problem:
        return Text("OUT", "bold red")
    if "cover-open" in faults or "cover open" in problem:
        return Text("cover open", "bold red")
    if printer.get("online") is True:
        return Text("ok", "green")
    return Text("?", "dim")


def _oldest(oldest: dict[str, Any] | None) -> str:
    if not oldest:
        return "-"
    label = f"#{oldest['id']}" + (f" [{oldest['order_id']}]" if oldest.get("order_id") else "")
    return f"{label} {_age(oldest['age_seconds'])}"


def _jobs(snapshot: Snapshot) -> RenderableType:
    jobs = snapshot.activity.get("recent_jobs", [])
    if not jobs:
        return Text("no jobs yet", "dim")
    table = Table(expand=True, box=None)
    for column in ("job", "order", "printer", "state", "accepted", "took", "attempts"):
        table.add_column(column, no_wrap=True)
    table.add_column("note", ratio=1)
    for job in jobs:
        took = job["printed_at"] - job["created_at"] if job.get("printed_at") else None
        notes = []
        if job.get("reprint_of"):
            notes.append(f"reprint of #{job['reprint_of']}")
        if job.get("maybe_printed"):
            notes.append("REPRINT")
        if job.get("last_error") and job["state"] not in ("printed", "sent"):
            notes.append(job["last_error"])
        table.add_row(
            f"#{job['id']}",
            job.get("order_id") or "",
            job["printer"],
            Text(job["state"], _STATE_STYLE.get(job["state"], "")),
            _clock(job["created_at"]),
            f"{took:.1f} s" if took is not None else "",
            str(job["attempts"]),
            "; ".join(notes),
        )
    return table


def _recovery(snapshot: Snapshot) -> RenderableType:
    actions = list(reversed(snapshot.recovery.get("recent", [])))[:RECENT_ACTIONS]
    if not actions:
        return Text("none needed", "dim")
    table = Table(expand=True, box=None)
    for column in ("time", "printer", "strategy", "fault", "result"):
        table.add_column(column, no_wrap=True)
    table.add_column("what happened", ratio=1)
    for action in actions:
        result = Text("fixed", "green") if action["succeeded"] else Text("not fixed", "red")
        table.add_row(
            _clock(action["at"]),
            action["printer"],
            action["strategy"],
            action["fault"],
            result,
            action["outcome"],
        )
    return table


def _security(snapshot: Snapshot) -> RenderableType:
    security = snapshot.activity.get("security", {})
    blocked = security.get("blocked", [])
    events = security.get("events", [])
    parts: list[RenderableType] = []
    if blocked:
        table = Table("blocked address", "time left", "why", expand=True, box=None)
        for block in blocked:
            table.add_row(
                Text(block["ip"], "bold red"), _age(block["seconds_left"]), block["reason"]
            )
        parts.append(table)
    else:
        parts.append(Text("no address blocked", "green"))
    if events:
        table = Table("time", "address", "event", "request", "detail", expand=True, box=None)
        for event in events:
            table.add_row(
                _clock(float(event.get("ts", 0))),
                str(event.get("ip", "")),
                str(event.get("event", "")),
                f"{event.get('method', '')} {event.get('path', '')}",
                str(event.get("detail", "")),
            )
        parts.append(table)
    return Group(*parts)


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# -- the command ---------------------------------------------------------------------------


def monitor(
    config: ConfigOption = DEFAULT_CONFIG,
    url: UrlOption = None,
    key: KeyOption = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Draw one frame and exit.")] = False,
    svg: Annotated[
        Path | None, typer.Option(help="With --once: also save the frame as an SVG picture.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A live dashboard of printers, queue, jobs, recovery and security (admin key)."""
    from spoonprint.cli.commands import server_url

    base = server_url(config, url)
    with Api(base, key or saved_key(base), timeout=5.0) as server:
        if once or as_json:
            _once(server, svg, as_json)
        _live(server, interval)


def _once(server: Api, svg: Path | None, as_json: bool) -> None:
    try:
        snapshot = take(server)
    except CliFailure as exc:
        fail(str(exc), exc.code)
    if as_json:
        print_json(snapshot.as_json())
    else:
        console.print(render(snapshot))
    if svg is not None:
        save_svg(snapshot, svg)
    raise typer.Exit(PRINTER_PROBLEM if snapshot.trouble else OK)


def _live(server: Api, interval: float) -> None:
    from rich.live import Live

    last = Snapshot(server.url, time.time())
    try:
        with Live(render(last), console=console, screen=True, auto_refresh=False) as live:
            while True:
                try:
                    last = take(server)
                except CliFailure as exc:
                    if exc.code == AUTH:
                        raise
                    last.error, last.taken_at = f"{exc} (asking again)", time.time()
                live.update(render(last), refresh=True)
                time.sleep(interval)
    except CliFailure as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return
