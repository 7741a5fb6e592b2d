"""The web dashboard over HTTP, against a real server and the virtual printer: sign-in with an
admin key only (wrong keys are strikes), the session cookie's flags, the CSRF token on every
action, what the state shows, each button's action, the event stream (which must not hold up a
stop), sign-out and key revocation ending sessions; then the session tokens and the job history
search on their own."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from spoonprint.db import DB_FILENAME, connect
from spoonprint.domain.job import NewJob
from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread
from spoonprint.http.dashboard import ASSETS, PUBLIC_ROUTES, summary
from spoonprint.http.session import SECRET_FILE, Sessions, load_secret
from spoonprint.queue.history import JobHistory
from spoonprint.queue.sqlite import SqliteJobStore
from spoonprint.recovery.settings_store import RuntimeSettings

from .conftest import Server, ServerFactory

OUTSIDE = "127.0.0.2"
SHOP_ONLY = {"SPOONPRINT_SECURITY__ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def browser(server: Server, source: str | None = None) -> httpx.Client:
    """A client that keeps cookies, as a browser does, and does not follow redirects."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    client = httpx.Client(base_url=server.url, timeout=10, transport=transport)
    server.clients.append(client)
    return client


def sign_in(server: Server, key: str | None = None) -> tuple[httpx.Client, str]:
    """A signed-in client and its CSRF token (read from the page, as the script does)."""
    client = browser(server)
    answer = client.post("/dashboard/sign-in", data={"key": key or server.key})
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    page = client.get("/dashboard")
    match = CSRF.search(page.text)
    assert page.status_code == 200 and match, page.text[:300]
    return client, match.group(1)


def post(client: httpx.Client, path: str, csrf: str | None, body: Any = None) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return client.post(path, json=body if body is not None else {}, headers=headers)


def state(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/dashboard/api/state")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["state"]
    return result


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` (the state lives in the server process) until it returns something."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def security_events(server: Server) -> list[dict[str, Any]]:
    path = server.data_dir / "logs" / "security.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cli(server: Server, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "spoonprint", *args, "--config", str(server.config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def printed(server: Server, text: str, order_id: str | None = None) -> int:
    body = {"text": text, **({"order_id": order_id} if order_id else {})}
    job_id = int(server.client().post("/print", json=body).json()["job_id"])
    server.wait_for_state(job_id, "printed")
    return job_id


# -- pages, assets, sign-in -----------------------------------------------------------------


def test_sign_in_page_and_assets_are_served_by_spoonprint_itself(server: Server) -> None:
    client = browser(server)
    page = client.get("/dashboard")
    assert page.status_code == 200 and 'action="/dashboard/sign-in"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert {path for _, path in PUBLIC_ROUTES} == {"/dashboard", "/dashboard/"} | {
        f"/dashboard/static/{name}" for name in ASSETS
    }
    assert client.get("/dashboard/").text == page.text
    for name, media_type in ASSETS.items():
        asset = client.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"] == media_type
        if name.endswith((".css", ".js")):
            # No CDN: nothing the dashboard loads comes from anywhere but spoonprint.
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", asset.text), name
    signed_in, _ = sign_in(server)
    for html in (page.text, signed_in.get("/dashboard").text):
        links = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert links and all(link.startswith("/dashboard") for link in links), links
    # Only real files are routes: anything else under /dashboard is a scanner's guess.
    assert client.get("/dashboard/static/../../etc/passwd").status_code == 404
    assert client.get("/dashboard/static/missing.js").status_code == 404
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert [e["path"] for e in strikes][-1] == "/dashboard/static/missing.js"


def test_sign_in_only_with_an_admin_key_and_wrong_keys_are_strikes(
    make_server: ServerFactory,
) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="3")
    print_key = cli(server, "keys", "create", "till", "--role", "print")
    client = browser(server)
    refused = client.post("/dashboard/sign-in", data={"key": print_key})
    assert refused.status_code == 403 and "admin key" in refused.text
    assert "set-cookie" not in refused.headers
    answer = client.post("/dashboard/sign-in", data={"key": server.key})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    stranger = browser(server, OUTSIDE)
    for _ in range(2):
        wrong = stranger.post("/dashboard/sign-in", data={"key": "sp_guess"})
        assert wrong.status_code == 401 and "not right" in wrong.text
    assert stranger.post("/dashboard/sign-in", data={"key": server.key}).status_code == 303
    assert stranger.post("/dashboard/sign-in", data={}).status_code == 401  # no key: no strike
    third = stranger.post("/dashboard/sign-in", data={"key": "sp_other"})
    assert third.status_code == 401  # the third strike
    try:
        blocked = stranger.get("/dashboard").status_code == 403
    except httpx.TransportError:
        blocked = True  # a blocked address may be cut off before any answer
    assert blocked
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert len(strikes) == 3 and {e["ip"] for e in strikes} == {OUTSIDE}


def test_https_session_cookie_is_secure(make_server: ServerFactory, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "spoonprint", "tls", "self-signed", "--host", "127.0.0.1",
         "--out", str(tmp_path / "tls")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    server = make_server(
        [],
        start=False,
        SPOONPRINT_SECURITY__TLS_CERT=str(cert),
        SPOONPRINT_SECURITY__TLS_KEY=str(key),
    )
    server.scheme, server.verify = "https", str(cert)
    server.start()
    client = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=cert))
    server.clients.append(client)
    answer = client.post("/dashboard/sign-in", data={"key": server.key})
    assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()
    assert client.get("/dashboard/api/state").status_code == 200


# -- sessions and CSRF ----------------------------------------------------------------------


def test_every_action_needs_the_session_and_its_csrf_token(
    server: Server, printer: VirtualPrinterThread
) -> None:
    job_id = printed(server, "soup", "T-1")
    reprint = f"/dashboard/api/jobs/{job_id}/reprint"
    anonymous = browser(server)
    for path in (
        "/dashboard/api/state",
        "/dashboard/api/events",
        "/dashboard/api/jobs",
        f"/dashboard/api/jobs/{job_id}",
        f"/dashboard/api/jobs/{job_id}/preview.png",
    ):
        assert anonymous.get(path).status_code == 401, path  # fmt: skip
    assert post(anonymous, reprint, "anything").status_code == 401
    client, csrf = sign_in(server)
    other, other_csrf = sign_in(server)
    assert post(client, reprint, None).status_code == 403
    assert post(client, reprint, "x" + csrf[1:]).status_code == 403
    assert post(client, reprint, other_csrf).status_code == 403  # another session's token
    assert "CSRF" in post(client, reprint, None).json()["detail"]
    # A form post (what a forged cross-site form could send) without the token is refused too.
    assert client.post(reprint, data={"key": "x"}).status_code == 403
    assert len(printer.tickets) == 1  # nothing refused printed anything
    done = post(client, reprint, csrf)
    assert done.status_code == 200, done.text
    server.wait_for_state(done.json()["job"]["id"], "printed")
    assert len(printer.tickets) == 2


def test_sign_out_ends_the_session_also_across_a_restart(server: Server) -> None:
    leaving, csrf = sign_in(server)
    staying, _ = sign_in(server)
    cookie = leaving.cookies.get("spoonprint_session")
    assert leaving.post("/dashboard/sign-out", data={"csrf": "wrong"}).status_code == 403
    out = leaving.post("/dashboard/sign-out", data={"csrf": csrf})
    assert out.status_code == 303 and 'spoonprint_session=""' in out.headers["set-cookie"]
    # Someone who copied the cookie before the sign-out gets nothing with it.
    copied = browser(server)
    copied.cookies.set("spoonprint_session", cookie or "", path="/dashboard")
    assert copied.get("/dashboard/api/state").status_code == 401
    stale = copied.get("/dashboard")
    assert "sign-in" in stale.text and 'spoonprint_session=""' in stale.headers["set-cookie"]
    copied.cookies.set("spoonprint_session", cookie or "", path="/dashboard")
    server.stop()
    server.start()
    assert copied.get("/dashboard/api/state").status_code == 401
    assert staying.get("/dashboard/api/state").status_code == 200  # sessions survive a restart
    assert stat.S_IMODE(os.stat(server.data_dir / SECRET_FILE).st_mode) == 0o600


def test_revoking_a_key_ends_its_sessions(server: Server) -> None:
    manager_key = cli(server, "keys", "create", "manager")
    client, _ = sign_in(server, manager_key)
    assert client.get("/dashboard/api/state").status_code == 200
    cli(server, "keys", "revoke", "manager")
    assert client.get("/dashboard/api/state").status_code == 401
    assert "sign-in" in client.get("/dashboard").text


# -- what the dashboard shows and does ------------------------------------------------------


def test_state_shows_printers_queue_jobs_and_security(server: Server) -> None:
    job_id = printed(server, "<b>two dumplings</b>\nextra chili", "A-7<script>")
    client, _ = sign_in(server)
    shown = state(client)
    (kitchen,) = shown["printers"]
    assert kitchen["name"] == "kitchen" and kitchen["status"] == "ok" and kitchen["online"]
    assert kitchen["breaker"] == "closed" and kitchen["paper"] == "ok" and kitchen["queued"] == 0
    assert shown["queue"] == {"depth": 0, "held": 0, "failed": 0, "oldest": None}
    job = shown["jobs"][0]
    assert job["id"] == job_id and job["order"] == "A-7<script>" and job["state"] == "printed"
    assert job["summary"] == "<b>two dumplings</b>" and job["can_reprint"]
    assert not job["can_cancel"]
    events = shown["security"]["events"]
    assert events[0]["event"] == "dashboard_sign_in" and events[0]["detail"] == "environment"
    assert shown["security"]["blocked"] == [] and shown["recovery"] == []


def test_reprint_prints_again_with_a_banner_and_previews_show_it(
    server: Server, printer: VirtualPrinterThread
) -> None:
    job_id = printed(server, "fried rice", "R-1")
    client, csrf = sign_in(server)
    answer = post(client, f"/dashboard/api/jobs/{job_id}/reprint", csrf)
    assert answer.json()["message"].startswith(f"Job {job_id} prints again as job ")
    again = answer.json()["job"]["id"]
    server.wait_for_state(again, "printed")
    first_ticket, reprinted_ticket = printer.tickets
    # The REPRINT banner has Chinese in it, so it is printed as an image above the text.
    assert "[raster" in reprinted_ticket.text and "ordered" in reprinted_ticket.text
    assert "[raster" not in first_ticket.text and "fried rice" in reprinted_ticket.text
    detail = client.get(f"/dashboard/api/jobs/{again}").json()
    assert detail["reprint_of"] == job_id and detail["maybe_printed"]
    assert [e["to_state"] for e in detail["events"]] == ["queued", "printing", "printed"]
    first = client.get(f"/dashboard/api/jobs/{job_id}/preview.png")
    second = client.get(f"/dashboard/api/jobs/{again}/preview.png")
    assert first.headers["content-type"] == second.headers["content-type"] == "image/png"
    original, reprinted = (Image.open(io.BytesIO(r.content)) for r in (first, second))
    assert reprinted.height > original.height  # the REPRINT banner lines
    assert client.get("/dashboard/api/jobs/999999/preview.png").status_code == 404


def test_cancel_a_waiting_order_and_not_a_printed_one(
    server: Server, printer: VirtualPrinterThread
) -> None:
    done = printed(server, "tea", "C-1")
    printer.set_mode(PrinterMode.OFFLINE)
    waiting = server.client().post("/print", json={"text": "cake", "order_id": "C-2"})
    waiting_id = waiting.json()["job_id"]
    client, csrf = sign_in(server)
    shown = wait_until(lambda: (s := state(client))["queue"]["oldest"] and s)
    assert shown["queue"]["oldest"]["order"] == "C-2" and shown["queue"]["depth"] == 1
    cancelled = post(client, f"/dashboard/api/jobs/{waiting_id}/cancel", csrf)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["job"]["state"] == "cancelled"
    refused = post(client, f"/dashboard/api/jobs/{done}/cancel", csrf)
    assert refused.status_code == 409 and "printed" in refused.json()["detail"]
    printer.set_mode(PrinterMode.ONLINE)
    assert server.client().get(f"/jobs/{waiting_id}").json()["state"] == "cancelled"
    assert [t.text for t in printer.tickets if "cake" in t.text] == []


def test_held_orders_are_released_and_recovery_reports_paper_out(
    server: Server, printer: VirtualPrinterThread
) -> None:
    client, csrf = sign_in(server)
    api = server.client()
    # Switched off, the printer's breaker opens: no attempt is under way, the order waits.
    printer.set_mode(PrinterMode.OFFLINE)
    job_id = api.post("/print", json={"text": "noodles", "order_id": "H-1"}).json()["job_id"]
    wait_until(lambda: state(client)["printers"][0]["breaker"] == "open")
    assert api.post("/emergency-clear", json={}).status_code == 200
    assert state(client)["queue"]["held"] == 1
    printer.set_mode(PrinterMode.ONLINE)
    released = post(client, "/dashboard/api/queue/release", csrf)
    assert released.json()["released"] == [job_id]
    server.wait_for_state(job_id, "printed")
    unknown = post(client, "/dashboard/api/queue/release", csrf, {"printer": "nope"})
    assert unknown.status_code == 404

    printer.set_mode(PrinterMode.PAPER_OUT)
    checked = post(client, "/dashboard/api/recovery/trigger", csrf, {"printer": "kitchen"})
    assert checked.status_code == 200 and "Checked 1 printer(s)" in checked.json()["message"]
    (kitchen,) = state(client)["printers"]
    assert kitchen["paper"] == "out" and kitchen["status"] == "needs-attention"
    assert any("paper" in advice for advice in kitchen["advice"])
    printer.set_mode(PrinterMode.ONLINE)
    post(client, "/dashboard/api/recovery/trigger", csrf)
    (kitchen,) = state(client)["printers"]
    assert kitchen["paper"] == "ok" and kitchen["status"] == "ok"


def test_blocked_address_is_shown_and_unblocked(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    stranger = browser(server, OUTSIDE)
    for _ in range(2):
        assert stranger.get("/wp-login.php").status_code == 404
    client, csrf = sign_in(server)
    (block,) = state(client)["security"]["blocked"]
    assert block["ip"] == OUTSIDE and block["reason"] == "scanner path"
    assert (
        post(client, "/dashboard/api/security/unblock", csrf, {"ip": "not an ip"}).status_code
        == 422
    )
    done = post(client, "/dashboard/api/security/unblock", csrf, {"ip": OUTSIDE})
    assert done.status_code == 200, done.text
    assert post(client, "/dashboard/api/security/unblock", csrf, {"ip": OUTSIDE}).status_code == 404
    assert stranger.get("/status").status_code == 200
    shown = state(client)["security"]
    assert shown["blocked"] == [] and shown["events"][0]["event"] == "unblocked"


def test_search_by_order_number(server: Server) -> None:
    api = server.client()
    ids = {
        order: api.post("/print", json={"text": order, "order_id": order}).json()["job_id"]
        for order in ("A-100", "A-101", "B-7", "50%_off")
    }
    receipt = {"order_no": "R-55", "items": [{"name": "Milk tea", "qty": 2}], "table": "4"}
    receipt_id = api.post("/print", json={"receipt": receipt}).json()["job_id"]
    client, _ = sign_in(server)

    def found(q: str) -> list[int]:
        answer = client.get("/dashboard/api/jobs", params={"q": q})
        assert answer.status_code == 200
        return [job["id"] for job in answer.json()["jobs"]]

    assert found("a-10") == [ids["A-101"], ids["A-100"]]  # newest first, any case
    assert found("A-100") == [ids["A-100"]]
    assert found("R-55") == [receipt_id]  # the receipt's own order number
    assert found("%_") == [ids["50%_off"]]  # wildcards are plain characters
    assert found("nothing") == []
    assert found(str(ids["B-7"]))[0] == ids["B-7"]  # a job number finds that job first
    newest = client.get("/dashboard/api/jobs").json()["jobs"]
    assert newest[0]["id"] == receipt_id and newest[0]["summary"] == "table 4, 2× Milk tea"


# -- live updates ---------------------------------------------------------------------------


def test_event_stream_sends_changes_and_does_not_hold_up_a_stop(server: Server) -> None:
    client, _ = sign_in(server)
    with client.stream("GET", "/dashboard/api/events", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"

        def next_state() -> dict[str, Any]:
            for line in lines:
                if line.startswith("data: "):
                    message: dict[str, Any] = json.loads(line[6:])
                    return message["state"]
            raise AssertionError("stream ended")

        assert next_state()["jobs"] == []
        job_id = server.client().post("/print", json={"text": "x"}).json()["job_id"]
        while True:  # one event per change, until the job has printed
            jobs = next_state()["jobs"]
            if jobs and jobs[0]["id"] == job_id and jobs[0]["state"] == "printed":
                break
        started = time.monotonic()
        assert server.stop() in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 8  # the stream ended with the server


# -- parts on their own ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_session_tokens_are_signed_expire_and_survive_only_until_sign_out(
    tmp_path: Path,
) -> None:
    settings = RuntimeSettings(connect(tmp_path / DB_FILENAME))
    clock = Clock()
    sessions = Sessions.in_folder(tmp_path, settings, lifetime=60, clock=clock)
    token, session = sessions.open("owner")
    assert sessions.read(token) == session
    payload, signature = token.split(".")
    forged = payload.replace(payload[5], "A" if payload[5] != "A" else "B") + "." + signature
    for bad in (forged, payload + ".", token + "x", "", "a.b.c", "x" * 5000):
        assert sessions.read(bad) is None, bad
    other_install = Sessions(b"another secret of thirty-two bytes", settings, clock=clock)
    assert other_install.read(token) is None
    assert sessions.csrf_ok(session, sessions.csrf_token(session))
    assert not sessions.csrf_ok(session, None) and not sessions.csrf_ok(session, "é")
    clock.now += 61
    assert sessions.read(token) is None  # expired
    clock.now -= 61
    sessions.close(session)
    assert sessions.read(token) is None
    again = Sessions.in_folder(tmp_path, settings, lifetime=60, clock=clock)
    assert again.read(token) is None  # the sign-out was kept
    fresh, _ = again.open("owner")
    assert again.read(fresh) is not None
    settings.close()


def test_the_secret_file_is_private_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    secret = load_secret(tmp_path / SECRET_FILE)
    assert len(secret) == 32 and load_secret(tmp_path / SECRET_FILE) == secret
    assert stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode) == 0o600
    (tmp_path / SECRET_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="delete it"):
        load_secret(tmp_path / SECRET_FILE)


def test_history_reads_through_its_own_connection(tmp_path: Path) -> None:
    store = SqliteJobStore.open(tmp_path)
    history = JobHistory.open(tmp_path)
    try:
        assert history.recent() == [] and history.oldest_waiting() is None
        first, _ = store.enqueue(NewJob("p", {"text": "a"}, order_id="Q_1"))
        second, _ = store.enqueue(NewJob("p", {"text": "b"}, order_id="QX1"))
        assert [job.id for job in history.recent()] == [second.id, first.id]
        assert history.oldest_waiting() == first
        assert [job.id for job in history.search("q_1")] == [first.id]
        assert history.search("   ") == []
        store.cancel(second.id)
        assert history.oldest_waiting() == first
    finally:
        history.close()
        store.close()


def test_summary_says_what_a_ticket_is() -> None:
    items = [{"name": f"dish {n}", "qty": n} for n in range(1, 6)]
    assert summary({"receipt": {"table": "9", "items": items}}) == (
        "table 9, 1× dish 1, 2× dish 2, 3× dish 3, +2 more"
    )
    assert summary({"receipt": {"title": "Shop"}}) == "Shop"
    assert summary({"text": "\n\n  first line \nsecond"}) == "first line"
    assert summary({"text": "x" * 200}, width=10) == "x" * 9 + "…"
