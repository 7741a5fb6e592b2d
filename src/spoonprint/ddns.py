"""Dynamic DNS: keep a name such as ``myshop.ddns.net`` pointing at the shop's public address.

Two protocols:

- **dyndns2** (No-IP, Dyn, Dynu and many others): ``GET <server>?hostname=H&myip=IP`` with HTTP
  Basic auth and a User-Agent naming the client. The body answers one code per hostname:
  ``good IP`` / ``nochg IP`` (done), ``911`` / ``dnserr`` (the provider's trouble: try again no
  sooner than 30 minutes) and the codes that need a person (``badauth``, ``abuse``, ``nohost``,
  ``notfqdn``, ``numhost``, ``badagent``, ``badsys``, ``!donator``): the providers ask clients to
  stop updating until someone fixes the settings, so the loop stops with a clear log line.
- **DuckDNS**: ``GET <server>?domains=D&token=T&ip=IP&verbose=true``, answering ``OK`` (then the
  address and ``UPDATED`` / ``NOCHANGE``) or ``KO`` (wrong token or domain: stop).

Providers block clients that send updates which change nothing, so an update goes out only when
the public address (asked of ``ip_url``) differs from the last one the provider took. That last
address is kept in memory and in ``<data_dir>/ddns.json`` (so a restart does not resend it); the
file is read again each round, so an update made by ``spoonprint ddns update`` counts for the
loop inside ``serve`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spoonprint import __version__
from spoonprint.config import DdnsSettings, Settings
from spoonprint.errors import ConfigError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("spoonprint.ddns")

STATE_FILE = "ddns.json"
#: No-IP's format for software clients: "Company NameOfProgram/OSVersion-ReleaseVersion".
USER_AGENT = f"spoonprint spoonprint-ddns/{platform.system() or 'unknown'}-{__version__}"
DEFAULT_SERVERS = {
    "dyndns2": "https://dynupdate.no-ip.com/nic/update",
    "duckdns": "https://www.duckdns.org/update",
}
#: The providers ask for at least 30 minutes after 911 / dnserr; doubled per repeat up to 4 h.
SERVER_TROUBLE_WAIT = 30 * 60.0
SERVER_TROUBLE_MAX = 4 * 3600.0

#: dyndns2 codes that need a person: what each means, in words for the log.
FATAL_CODES = {
    "badauth": "the username or password is wrong",
    "!donator": "the update asked for a feature this account does not have",
    "notfqdn": "the hostname is not a full domain name (like myshop.ddns.net)",
    "nohost": "the hostname does not exist in this account",
    "numhost": "too many hostnames in one update",
    "abuse": "the provider has blocked this hostname for abuse: unblock it on their website",
    "badagent": "the provider refused this client (user agent)",
    "badsys": "the provider refused the update's system parameter",
}
TROUBLE_CODES = {
    "911": "the provider has a problem or is under maintenance",
    "dnserr": "the provider's DNS system had an error",
}
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


class Status(StrEnum):
    #: The provider changed the record.
    UPDATED = "updated"
    #: The provider already had this address.
    UNCHANGED = "unchanged"
    #: The public address has not changed since the last update: nothing was sent.
    SKIPPED = "skipped"
    #: Try again after ``retry_after`` seconds (the provider's trouble, or no network).
    RETRY = "retry"
    #: Needs a person (wrong password, blocked name...): no more updates until fixed.
    FATAL = "fatal"


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    #: The public address found (None when it could not be found).
    ip: str | None = None
    #: The provider's answer code (good, nochg, badauth, 911, OK, KO...), when it answered.
    code: str = ""
    #: For RETRY: seconds to wait before the next try.
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.UPDATED, Status.UNCHANGED, Status.SKIPPED)


def check_settings(ddns: DdnsSettings) -> None:
    """Raise ConfigError naming what is missing for the chosen provider."""
    missing = ["hostname"] if not ddns.hostname.strip() else []
    if ddns.provider == "duckdns":
        if not ddns.token.get_secret_value():
            missing.append("token")
    else:
        if not ddns.username:
            missing.append("username")
        if not ddns.password.get_secret_value():
            missing.append("password")
    if missing:
        keys = ", ".join(f"ddns.{key}" for key in missing)
        raise ConfigError(f"dynamic DNS ({ddns.provider}) needs {keys} in the config")


def parse_ip(text: str) -> str:
    """The address in a what-is-my-IP answer: the whole (stripped) body, or else the first
    dotted quad in it (some services answer with a sentence or a small HTML page)."""
    body = text.strip()
    candidates = [body, *_IPV4.findall(body)]
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    raise ValueError(f"no IP address in the answer {body[:80]!r}")


class DdnsState:
    """The last address the provider took, for one (provider, server, hostname)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self._ip: str | None = None

    def last_ip(self) -> str | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._ip
        except (OSError, ValueError) as exc:
            log.warning("ddns: cannot read %s (%s); using the address in memory", self.path, exc)
            return self._ip
        if data.get("key") != self.key:  # another name or provider: it was never updated
            return None
        ip = data.get("ip")
        self._ip = ip if isinstance(ip, str) else None
        return self._ip

    def remember(self, ip: str) -> None:
        self._ip = ip
        record = {"key": self.key, "ip": ip, "updated_at": time.time()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: the serve loop may read it meanwhile
        except OSError as exc:
            log.warning("ddns: cannot save the address in %s: %s", self.path, exc)


class DdnsClient:
    """One update round at a time: :meth:`update`; :meth:`run` repeats it until stopped."""

    def __init__(
        self,
        settings: DdnsSettings,
        state_path: Path,
        *,
        trouble_wait: float = SERVER_TROUBLE_WAIT,
        trouble_max: float = SERVER_TROUBLE_MAX,
    ) -> None:
        check_settings(settings)
        self.settings = settings
        self.server = settings.server or DEFAULT_SERVERS[settings.provider]
        self.hostname = settings.hostname.strip()
        self.state = DdnsState(
            state_path, f"{settings.provider} {self.server} {self.hostname}".lower()
        )
        self.trouble_wait = trouble_wait
        self.trouble_max = trouble_max
        self._troubles = 0

    async def update(self, *, force: bool = False) -> Outcome:
        """Find the public address and, when it changed (or ``force``), send it."""
        import httpx  # imported when used: it costs start-up time and memory

        async with httpx.AsyncClient(
            timeout=self.settings.timeout, headers={"User-Agent": USER_AGENT}
        ) as http:
            try:
                ip = await self._public_ip(http)
            except (httpx.HTTPError, ValueError) as exc:
                return Outcome(
                    Status.RETRY,
                    f"cannot find the public address at {self.settings.ip_url}: {_describe(exc)}",
                    retry_after=self.settings.interval,
                )
            if not force and ip == self.state.last_ip():
                return Outcome(Status.SKIPPED, f"public address still {ip}: nothing to send", ip)
            try:
                outcome = await self._send(http, ip)
            except httpx.HTTPError as exc:
                outcome = Outcome(
                    Status.RETRY,
                    f"cannot reach {self.server}: {_describe(exc)}",
                    ip,
                    retry_after=self.settings.interval,
                )
        if outcome.status in (Status.UPDATED, Status.UNCHANGED):
            self.state.remember(ip)
        if outcome.status is not Status.RETRY:
            self._troubles = 0
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Update every ``interval`` seconds until ``stop`` is set or an answer needs a person."""
        log.info("ddns: keeping %s up to date (%s)", self.hostname, self.settings.provider)
        while not stop.is_set():
            outcome = await self.update()
            _log(outcome)
            if outcome.status is Status.FATAL:
                log.error("ddns: updates stopped until the [ddns] settings are fixed")
                return
            wait = outcome.retry_after or self.settings.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    # -- the public address ---------------------------------------------------------------

    async def _public_ip(self, http: httpx.AsyncClient) -> str:
        answer = await http.get(self.settings.ip_url)
        answer.raise_for_status()
        return parse_ip(answer.text)

    # -- the providers --------------------------------------------------------------------

    async def _send(self, http: httpx.AsyncClient, ip: str) -> Outcome:
        if self.settings.provider == "duckdns":
            return await self._send_duckdns(http, ip)
        return await self._send_dyndns2(http, ip)

    async def _send_dyndns2(self, http: httpx.AsyncClient, ip: str) -> Outcome:
        answer = await http.get(
            self.server,
            params={"hostname": self.hostname, "myip": ip},
            auth=(self.settings.username, self.settings.password.get_secret_value()),
        )
        lines = [line.split() for line in answer.text.strip().splitlines() if line.strip()]
        codes = [words[0] for words in lines]
        known = [code for code in codes if code in FATAL_CODES or code in TROUBLE_CODES]
        if known:
            return self._bad_code(known[0], ip)
        if codes and all(code in ("good", "nochg") for code in codes):
            if "good" in codes:
                return Outcome(Status.UPDATED, f"{self.hostname} now points at {ip}", ip, "good")
            return Outcome(
                Status.UNCHANGED, f"{self.hostname} already pointed at {ip}", ip, "nochg"
            )
        return self._unexpected(answer, ip)

    async def _send_duckdns(self, http: httpx.AsyncClient, ip: str) -> Outcome:
        answer = await http.get(
            self.server,
            params={
                "domains": _duck_domains(self.hostname),
                "token": self.settings.token.get_secret_value(),
                "ip": ip,
                "verbose": "true",
            },
        )
        words = answer.text.split()
        if answer.status_code == 200 and words[:1] == ["OK"]:
            if "NOCHANGE" in words:
                return Outcome(
                    Status.UNCHANGED, f"{self.hostname} already pointed at {ip}", ip, "OK"
                )
            return Outcome(Status.UPDATED, f"{self.hostname} now points at {ip}", ip, "OK")
        if answer.status_code == 200 and words[:1] == ["KO"]:
            return Outcome(
                Status.FATAL,
                f"DuckDNS refused to update {self.hostname} (KO): the token or the domain is wrong",
                ip,
                "KO",
            )
        return self._unexpected(answer, ip)

    def _done(self, status: Status, ip: str, code: str) -> Outcome:
        if status is Status.UPDATED:
            return Outcome(status, f"{self.hostname} now points at {ip}", ip, code)
        return Outcome(status, f"{self.hostname} already pointed at {ip}", ip, code)

    def _bad_code(self, code: str, ip: str) -> Outcome:
        if code in FATAL_CODES:
            return Outcome(
                Status.FATAL,
                f"{self.server} answered {code}: {FATAL_CODES[code]}",
                ip,
                code,
            )
        wait = self._trouble_delay()
        return Outcome(
            Status.RETRY,
            f"{self.server} answered {code}: {TROUBLE_CODES[code]}; trying again in {_span(wait)}",
            ip,
            code,
            wait,
        )

    def _unexpected(self, answer: httpx.Response, ip: str) -> Outcome:
        """An answer outside the protocol: judged by its HTTP status."""
        status = answer.status_code
        text = answer.text.strip()[:80]
        if status in (401, 403):
            return Outcome(
                Status.FATAL,
                f"{self.server} refused the credentials (HTTP {status}): check the [ddns] "
                "username, password or token",
                ip,
                "badauth",
            )
        if status == 404:
            return Outcome(
                Status.FATAL,
                f"{self.server} has no update page (HTTP 404): check ddns.server",
                ip,
                "http-404",
            )
        # 5xx, 429 or a body nobody documented: the provider's trouble; back off as for 911.
        wait = self._trouble_delay()
        return Outcome(
            Status.RETRY,
            f"{self.server} gave an unexpected answer (HTTP {status}: {text!r}); "
            f"trying again in {_span(wait)}",
            ip,
            f"http-{status}",
            wait,
        )

    def _trouble_delay(self) -> float:
        """30 min after the first 911 in a row, doubling per repeat up to the maximum; an
        answer that is not the provider's trouble starts the count again."""
        delay = min(self.trouble_wait * 2**self._troubles, self.trouble_max)
        self._troubles += 1
        return float(delay)


def _duck_domains(hostname: str) -> str:
    """DuckDNS wants the sub-names only: "myshop", not "myshop.duckdns.org"."""
    names = [name.strip().lower() for name in hostname.split(",") if name.strip()]
    return ",".join(name.removesuffix(".duckdns.org") for name in names)


def _describe(exc: Exception) -> str:
    import httpx  # imported when used: it costs start-up time and memory

    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__


def _span(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


def _log(outcome: Outcome) -> None:
    if outcome.status is Status.SKIPPED:
        log.debug("ddns: %s", outcome.message)
    elif outcome.ok:
        log.info("ddns: %s", outcome.message)
    elif outcome.status is Status.RETRY:
        log.warning("ddns: %s", outcome.message)
    else:
        log.error("ddns: %s", outcome.message)


def client_for(settings: Settings) -> DdnsClient:
    """The client for the config's [ddns] section (ConfigError when it is incomplete)."""
    return DdnsClient(settings.ddns, settings.server.data_dir / STATE_FILE)


async def run_ddns(settings: Settings, stop_event: asyncio.Event) -> None:
    """The loop ``serve`` runs: nothing when [ddns] is not enabled; a config that cannot work
    is logged once (the server keeps running without dynamic DNS)."""
    if not settings.ddns.enabled:
        return
    try:
        client = client_for(settings)
    except ConfigError as exc:
        log.error("ddns: %s; dynamic DNS is off", exc)
        return
    await client.run(stop_event)
