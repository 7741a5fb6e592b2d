"""The dynamic DNS client against fake dyndns2, DuckDNS and what-is-my-IP servers on 127.0.0.1.

The fake dyndns2 server keeps an account (user, password, hostnames and their addresses) and
answers as No-IP / Dyn document: ``good IP`` when the address changed, ``nochg IP`` when not,
``badauth`` for a wrong login, ``nohost`` / ``notfqdn`` for a name not in the account,
``badagent`` without a User-Agent; a script of answers stages the provider's trouble (911) and
blocks (abuse).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from spoonprint.config import DdnsSettings, Settings
from spoonprint.ddns import (
    FATAL_CODES,
    STATE_FILE,
    USER_AGENT,
    DdnsClient,
    Status,
    parse_ip,
    run_ddns,
)
from spoonprint.errors import ConfigError

from .conftest import run_spoonprint

USER, PASSWORD, HOST = "owner@example.com", "s3cret pass", "myshop.ddns.example"
FIRST_IP, SECOND_IP = "203.0.113.7", "198.51.100.23"


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class FakeServer:
    """One HTTP server on 127.0.0.1 in a thread; ``answer`` decides each reply."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[Seen] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, seen: Seen) -> None:
        with self.changed:
            self.requests.append(seen)
            self.changed.notify_all()

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Seen]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} request(s), wanted {count}")
            return list(self.requests)


def serve(answer: Any) -> FakeServer:
    """Start a server whose handler calls ``answer(seen) -> (status, body)``."""
    holder: dict[str, FakeServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            seen = Seen(parts.path, query, dict(self.headers.items()), time.monotonic())
            holder["server"].record(seen)
            status, body = answer(seen)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    holder["server"] = FakeServer(server, thread)
    thread.start()
    return holder["server"]


def stop(fake: FakeServer) -> None:
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(5)


class Dyndns2Account:
    """The provider's side of the dyndns2 protocol for one account."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = dict(hosts)
        #: Answers to give instead of the account's, in order (None: answer normally).
        self.script: list[str | None] = []

    def __call__(self, seen: Seen) -> tuple[int, str]:
        if seen.path != "/nic/update":
            return 404, "not found"
        if self.script:
            scripted = self.script.pop(0)
            if scripted is not None:
                return 200, scripted
        auth = seen.headers.get("Authorization", "")
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != f"Basic {expected}":
            return 401, "badauth"
        if not seen.headers.get("User-Agent"):
            return 200, "badagent"
        hostname, ip = seen.query.get("hostname", ""), seen.query.get("myip", "")
        if "." not in hostname:
            return 200, "notfqdn"
        if hostname not in self.hosts:
            return 200, "nohost"
        if self.hosts[hostname] == ip:
            return 200, f"nochg {ip}"
        self.hosts[hostname] = ip
        return 200, f"good {ip}"


class PublicIp:
    """What-is-my-IP: answers the caller's "public" address, as the test sets it."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.body: str | None = None

    def __call__(self, seen: Seen) -> tuple[int, str]:
        return 200, self.body if self.body is not None else f"{self.ip}\n"


@pytest.fixture
def account() -> Dyndns2Account:
    return Dyndns2Account({HOST: "192.0.2.1"})


@pytest.fixture
def provider(account: Dyndns2Account) -> Iterator[FakeServer]:
    fake = serve(account)
    yield fake
    stop(fake)


@pytest.fixture
def public_ip() -> PublicIp:
    return PublicIp(FIRST_IP)


@pytest.fixture
def ip_service(public_ip: PublicIp) -> Iterator[FakeServer]:
    fake = serve(public_ip)
    yield fake
    stop(fake)


def settings_for(provider: FakeServer, ip_service: FakeServer, **changes: Any) -> DdnsSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "provider": "dyndns2",
        "server": f"{provider.url}/nic/update",
        "hostname": HOST,
        "username": USER,
        "password": SecretStr(PASSWORD),
        "interval": 0.05,
        "ip_url": f"{ip_service.url}/",
        "timeout": 2.0,
    }
    values.update(changes)
    return DdnsSettings(**values)


def updates(fake: FakeServer) -> list[Seen]:
    return [seen for seen in fake.requests if seen.path in ("/nic/update", "/update")]


def test_updates_only_when_the_public_address_changes(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, public_ip: PublicIp
) -> None:
    state = tmp_path / STATE_FILE
    client = DdnsClient(settings_for(provider, ip_service), state)

    first = asyncio.run(client.update())
    assert (first.status, first.code, first.ip) == (Status.UPDATED, "good", FIRST_IP)
    (sent,) = updates(provider)
    assert sent.query == {"hostname": HOST, "myip": FIRST_IP}
    login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {login}"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("spoonprint spoonprint-ddns/")

    again = asyncio.run(client.update())
    assert again.status is Status.SKIPPED and len(updates(provider)) == 1

    # A restart remembers the address from the data folder: still nothing to send.
    restarted = DdnsClient(settings_for(provider, ip_service), state)
    assert asyncio.run(restarted.update()).status is Status.SKIPPED
    assert json.loads(state.read_text())["ip"] == FIRST_IP

    public_ip.ip = SECOND_IP
    moved = asyncio.run(restarted.update())
    assert (moved.status, moved.ip) == (Status.UPDATED, SECOND_IP)
    assert [seen.query["myip"] for seen in updates(provider)] == [FIRST_IP, SECOND_IP]


def test_another_hostname_is_not_taken_for_updated(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, account: Dyndns2Account
) -> None:
    state = tmp_path / STATE_FILE
    asyncio.run(DdnsClient(settings_for(provider, ip_service), state).update())
    account.hosts["kitchen.ddns.example"] = "192.0.2.9"
    other = DdnsClient(settings_for(provider, ip_service, hostname="kitchen.ddns.example"), state)
    assert asyncio.run(other.update()).status is Status.UPDATED
    assert [s.query["hostname"] for s in updates(provider)] == [HOST, "kitchen.ddns.example"]


def test_nochg_is_success_and_remembered(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, account: Dyndns2Account
) -> None:
    account.hosts[HOST] = FIRST_IP
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE)
    outcome = asyncio.run(client.update())
    assert (outcome.status, outcome.code, outcome.ok) == (Status.UNCHANGED, "nochg", True)
    assert asyncio.run(client.update()).status is Status.SKIPPED
    assert len(updates(provider)) == 1


def test_force_sends_an_unchanged_address(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer
) -> None:
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE)
    asyncio.run(client.update())
    forced = asyncio.run(client.update(force=True))
    assert (forced.status, forced.code) == (Status.UNCHANGED, "nochg")
    assert len(updates(provider)) == 2


@pytest.mark.parametrize("code", sorted(FATAL_CODES))
def test_answers_that_need_a_person_stop_the_loop(
    tmp_path: Path,
    provider: FakeServer,
    ip_service: FakeServer,
    account: Dyndns2Account,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account.script = [code]
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE)

    async def run() -> None:
        await asyncio.wait_for(client.run(asyncio.Event()), 5)  # returns by itself

    with caplog.at_level(logging.ERROR, logger="spoonprint.ddns"):
        asyncio.run(run())
    assert len(updates(provider)) == 1, "no second update after a fatal answer"
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"answered {code}: {FATAL_CODES[code]}" in m for m in messages), messages
    assert any("updates stopped until the [ddns] settings are fixed" in m for m in messages)
    assert not (tmp_path / STATE_FILE).exists()


def test_a_wrong_password_is_badauth_and_stops(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(provider, ip_service, password=SecretStr("wrong"))
    client = DdnsClient(settings, tmp_path / STATE_FILE)
    outcome = asyncio.run(client.update())
    assert (outcome.status, outcome.code) == (Status.FATAL, "badauth")
    assert "username or password is wrong" in outcome.message
    assert "wrong" not in outcome.message.replace("is wrong", "")  # the password is not shown


@pytest.mark.parametrize(
    ("hostname", "code"), [("nosuch.ddns.example", "nohost"), ("myshop", "notfqdn")]
)
def test_names_not_in_the_account(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, hostname: str, code: str
) -> None:
    client = DdnsClient(settings_for(provider, ip_service, hostname=hostname), tmp_path / "s")
    outcome = asyncio.run(client.update())
    assert (outcome.status, outcome.code) == (Status.FATAL, code)


def test_911_backs_off_doubling_then_recovers(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, account: Dyndns2Account
) -> None:
    account.script = ["911", "dnserr", None]
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE, trouble_wait=0.3)

    async def run() -> list[Seen]:
        stopper = asyncio.Event()
        loop = asyncio.create_task(client.run(stopper))
        try:
            seen = await asyncio.to_thread(provider.wait_requests, 3)
            # After "good" the address is current: later rounds send nothing.
            await asyncio.sleep(0.3)
        finally:
            stopper.set()
            await asyncio.wait_for(loop, 2)
        return seen

    seen = asyncio.run(run())
    gaps = [b.at - a.at for a, b in zip(seen, seen[1:], strict=False)]
    # interval is 0.05 s: the waits are the back-off's (0.3 s, then doubled).
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps
    assert gaps[1] < 5, gaps
    assert len(updates(provider)) == 3
    assert json.loads((tmp_path / STATE_FILE).read_text())["ip"] == FIRST_IP


def test_trouble_wait_defaults_to_30_minutes_and_caps(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, account: Dyndns2Account
) -> None:
    account.script = ["911"] * 6
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE)
    waits = [asyncio.run(client.update()).retry_after for _ in range(6)]
    assert waits == [1800.0, 3600.0, 7200.0, 14400.0, 14400.0, 14400.0]


def test_server_errors_back_off_and_unknown_login_pages_stop(
    tmp_path: Path, ip_service: FakeServer
) -> None:
    answers = [(503, "<html>down</html>"), (401, "<html>login</html>"), (404, "nope")]

    def provider_answer(seen: Seen) -> tuple[int, str]:
        return answers.pop(0)

    fake = serve(provider_answer)
    try:
        client = DdnsClient(settings_for(fake, ip_service), tmp_path / STATE_FILE)
        down, login, missing = (asyncio.run(client.update()) for _ in range(3))
    finally:
        stop(fake)
    assert (down.status, down.retry_after) == (Status.RETRY, 1800.0)
    assert (login.status, login.code) == (Status.FATAL, "badauth")
    assert (missing.status, missing.code) == (Status.FATAL, "http-404")
    assert "check ddns.server" in missing.message


def test_no_public_address_sends_nothing(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, public_ip: PublicIp
) -> None:
    public_ip.body = "<html>rate limited</html>"
    client = DdnsClient(settings_for(provider, ip_service), tmp_path / STATE_FILE)
    outcome = asyncio.run(client.update())
    assert (outcome.status, outcome.retry_after) == (Status.RETRY, 0.05)
    assert "cannot find the public address" in outcome.message
    assert updates(provider) == []

    public_ip.body = "<html><body>Current IP Address: 203.0.113.99</body></html>"
    assert asyncio.run(client.update()).ip == "203.0.113.99"


def test_unreachable_provider_retries_at_the_interval(
    tmp_path: Path, ip_service: FakeServer
) -> None:
    fake = serve(lambda seen: (200, ""))
    url = fake.url
    stop(fake)  # nothing listens there now
    settings = DdnsSettings(
        enabled=True,
        server=f"{url}/nic/update",
        hostname=HOST,
        username=USER,
        password=SecretStr(PASSWORD),
        interval=7.0,
        ip_url=f"{ip_service.url}/",
    )
    outcome = asyncio.run(DdnsClient(settings, tmp_path / STATE_FILE).update())
    assert (outcome.status, outcome.retry_after) == (Status.RETRY, 7.0)
    assert "cannot reach" in outcome.message


def test_parse_ip() -> None:
    assert parse_ip(" 203.0.113.5\n") == "203.0.113.5"
    assert parse_ip("2001:db8::1") == "2001:db8::1"
    assert parse_ip("Current IP Address: 198.51.100.1") == "198.51.100.1"
    with pytest.raises(ValueError):
        parse_ip("999.1.1.1 is not one")


def test_incomplete_settings_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ddns\.hostname, ddns\.username, ddns\.password"):
        DdnsClient(DdnsSettings(enabled=True), tmp_path / STATE_FILE)
    with pytest.raises(ConfigError, match=r"ddns\.token"):
        DdnsClient(DdnsSettings(provider="duckdns", hostname="shop"), tmp_path / STATE_FILE)


# -- DuckDNS ----------------------------------------------------------------------------


class DuckDns:
    """DuckDNS's /update: OK (verbose: the address and UPDATED / NOCHANGE) or KO."""

    def __init__(self, token: str, domains: dict[str, str]) -> None:
        self.token = token
        self.domains = dict(domains)

    def __call__(self, seen: Seen) -> tuple[int, str]:
        names = seen.query.get("domains", "").split(",")
        if seen.query.get("token") != self.token or not all(n in self.domains for n in names):
            return 200, "KO"
        ip = seen.query.get("ip", "")
        changed = any(self.domains[name] != ip for name in names)
        for name in names:
            self.domains[name] = ip
        if seen.query.get("verbose") == "true":
            return 200, f"OK\n{ip}\n\n{'UPDATED' if changed else 'NOCHANGE'}"
        return 200, "OK"


def test_duckdns_updates_and_stops_on_ko(tmp_path: Path, ip_service: FakeServer) -> None:
    duck = DuckDns("tok-123", {"myshop": "192.0.2.1", "kitchen": FIRST_IP})
    fake = serve(duck)
    try:

        def client(hostname: str, token: str = "tok-123") -> DdnsClient:
            settings = DdnsSettings(
                enabled=True,
                provider="duckdns",
                server=f"{fake.url}/update",
                hostname=hostname,
                token=SecretStr(token),
                ip_url=f"{ip_service.url}/",
            )
            return DdnsClient(settings, tmp_path / f"{hostname}-{token}.json")

        updated = asyncio.run(client("myshop.duckdns.org").update())
        unchanged = asyncio.run(client("kitchen").update())
        refused = asyncio.run(client("myshop", token="wrong").update())
    finally:
        stop(fake)
    assert (updated.status, updated.code) == (Status.UPDATED, "OK")
    assert fake.requests[0].query == {
        "domains": "myshop",
        "token": "tok-123",
        "ip": FIRST_IP,
        "verbose": "true",
    }
    assert fake.requests[0].headers["User-Agent"] == USER_AGENT
    assert duck.domains["myshop"] == FIRST_IP
    assert unchanged.status is Status.UNCHANGED
    assert (refused.status, refused.code) == (Status.FATAL, "KO")
    assert "token or the domain is wrong" in refused.message


# -- inside serve -----------------------------------------------------------------------


def test_run_ddns_follows_address_changes_until_stopped(
    tmp_path: Path, provider: FakeServer, ip_service: FakeServer, public_ip: PublicIp
) -> None:
    settings = Settings()
    settings.server.data_dir = tmp_path / "data"
    settings.ddns = settings_for(provider, ip_service)

    async def run() -> float:
        stop_event = asyncio.Event()
        loop = asyncio.create_task(run_ddns(settings, stop_event))
        await asyncio.to_thread(provider.wait_requests, 1)
        await asyncio.to_thread(ip_service.wait_requests, 3)  # two rounds with nothing to send
        public_ip.ip = SECOND_IP
        await asyncio.to_thread(provider.wait_requests, 2)
        stop_event.set()
        started = time.monotonic()
        await asyncio.wait_for(loop, 2)
        return time.monotonic() - started

    stopped_in = asyncio.run(run())
    assert [seen.query["myip"] for seen in updates(provider)] == [FIRST_IP, SECOND_IP]
    assert stopped_in < 1.0
    assert json.loads((tmp_path / "data" / STATE_FILE).read_text())["ip"] == SECOND_IP
    # Between the two updates the address was asked for again, the provider not at all.
    assert len(ip_service.requests) >= 4


def test_run_ddns_does_nothing_when_off_and_logs_a_bad_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings()
    settings.server.data_dir = tmp_path
    asyncio.run(asyncio.wait_for(run_ddns(settings, asyncio.Event()), 1))
    settings.ddns = DdnsSettings(enabled=True, hostname=HOST)
    with caplog.at_level(logging.ERROR, logger="spoonprint.ddns"):
        asyncio.run(asyncio.wait_for(run_ddns(settings, asyncio.Event()), 1))
    assert any("dynamic DNS is off" in r.getMessage() for r in caplog.records)


# -- the command ------------------------------------------------------------------------


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_spoonprint(cwd, *args)


def _write_config(path: Path, ddns: dict[str, str]) -> None:
    lines = ["[server]", 'data_dir = "data"', "[ddns]"]
    lines += [f'{key} = "{value}"' for key, value in ddns.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.e2e
def test_ddns_update_command(tmp_path: Path, provider: FakeServer, ip_service: FakeServer) -> None:
    ddns = {
        "server": f"{provider.url}/nic/update",
        "hostname": HOST,
        "username": USER,
        "password": PASSWORD,
        "ip_url": f"{ip_service.url}/",
    }
    _write_config(tmp_path / "spoonprint.toml", ddns)
    first = _cli(tmp_path, "ddns", "update")
    assert first.returncode == 0, first.stderr
    assert f"{HOST} now points at {FIRST_IP}" in first.stdout
    second = _cli(tmp_path, "ddns", "update", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "skipped"
    assert (tmp_path / "data" / STATE_FILE).is_file()

    _write_config(tmp_path / "spoonprint.toml", {**ddns, "password": "wrong"})
    refused = _cli(tmp_path, "ddns", "update", "--force")
    assert refused.returncode == 1
    assert "username or password is wrong" in refused.stderr
    assert "Traceback" not in refused.stderr

    _write_config(tmp_path / "spoonprint.toml", {"hostname": HOST})
    missing = _cli(tmp_path, "ddns", "update")
    assert missing.returncode == 2
    assert "ddns.username" in missing.stderr
