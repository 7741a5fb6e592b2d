"""Settings: a TOML file (``spoonprint.toml``) with every key overridable by environment.

Environment variables are ``SPOONPRINT_`` + the key path joined by ``__``, e.g.
``SPOONPRINT_SERVER__PORT=9000``; a list such as ``printers`` takes JSON. ``SPOONPRINT_API_KEY``
supplies one more API key for automation (never written to disk).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from spoonprint.domain.job import JobState
from spoonprint.domain.profile import Chinese, PrinterProfile, Protocol
from spoonprint.domain.ticket import Style
from spoonprint.errors import ConfigError
from spoonprint.security.clients import PRIVATE_AND_LOOPBACK, parse_networks
from spoonprint.transports.uri import parse_uri

DEFAULT_CONFIG = Path("spoonprint.toml")
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("spoonprint_config_file", default=None)
Seconds = Annotated[float, Field(gt=0, le=3600)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("./spoonprint-data")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")


class DeliverySettings(_Section):
    connect_timeout: Seconds = 3.0
    write_timeout: Seconds = 3.0
    status_timeout: Seconds = 3.0
    #: First retry delay after a failed attempt; doubles per attempt up to retry_max.
    retry_initial: Seconds = 1.0
    retry_max: Seconds = 30.0
    #: Give a job up (failed, kept for reprint) after this many attempts; empty: never.
    max_attempts: int | None = Field(None, ge=1)
    #: Give a job up when it has not printed this long after the order (seconds).
    max_age: float = Field(24 * 3600.0, gt=0)
    #: Consecutive failures that open a printer's circuit breaker.
    breaker_threshold: int = Field(3, ge=1)
    #: Seconds the breaker stays open before a status probe (doubling up to breaker_max_reset).
    breaker_reset: Seconds = 5.0
    breaker_max_reset: Seconds = 60.0
    #: How long a job being printed is reserved without a heartbeat (renewed every third).
    lease_seconds: Seconds = 30.0


class SecuritySettings(_Section):
    #: The shop's own networks: never rate limited, never blocked by strikes.
    allowed_networks: list[str] = list(PRIVATE_AND_LOOPBACK)
    #: Reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = []
    #: Refuse every client outside allowed_networks, even with a valid key.
    allowlist_only: bool = False
    #: Requests a minute per address outside allowed_networks.
    rate_limit_per_minute: int = Field(10, ge=1)
    #: Strikes (scanner probes, wrong keys, malformed requests) that block an address...
    block_after: int = Field(5, ge=1)
    #: ...for this many seconds.
    block_seconds: float = Field(300.0, gt=0)
    #: A client must send its request headers within this many seconds.
    header_timeout: Seconds = 10.0
    #: Open connections one address outside allowed_networks may hold...
    max_connections_per_address: int = Field(10, ge=1, le=10_000)
    #: ...all those addresses together...
    max_connections_outside: int = Field(150, ge=1, le=100_000)
    #: ...and, apart from those, all addresses in allowed_networks together.
    max_connections_allowlisted: int = Field(100, ge=1, le=100_000)
    #: A request's whole body must arrive within this many seconds of its headers.
    body_timeout: Seconds = 10.0
    #: Request line and headers together may be this many bytes (more: 431)...
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    #: ...and hold this many headers.
    max_headers: int = Field(100, ge=10, le=1000)
    #: Serve HTTPS with this certificate and key (PEM files).
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                parse_networks([value])
            except ValueError:
                raise ValueError(f"{value!r} is not an address or network (CIDR)") from None
        return values


class RecoverySettings(_Section):
    """The health monitor. Changed at run time by ``POST /recovery/config`` (kept in the
    database, over these values, across restarts)."""

    #: Watch printers and heal what software can heal.
    enabled: bool = True
    #: Seconds between probes of each printer (a failed ticket triggers one at once).
    interval: float = Field(30.0, ge=1, le=3600)
    #: A spooler job with no progress for this many seconds is stuck: cancelled and re-sent.
    stuck_after: float = Field(60.0, ge=1, le=86400)
    #: Times each strategy is tried for one fault before it is only reported (until the fault
    #: clears, or someone triggers recovery).
    max_tries: int = Field(3, ge=1, le=100)
    #: Strategy names not to use, e.g. ["windows-restart-spooler"].
    disabled_strategies: list[str] = []


class WebhookSettings(_Section):
    #: Where to POST job state changes (empty: no webhooks).
    url: str = ""
    #: Shared secret for the X-Spoonprint-Signature HMAC-SHA256 header.
    secret: SecretStr = SecretStr("")
    #: Which new states to send; empty: all.
    states: list[JobState] = []
    timeout: Seconds = 5.0
    #: Longest wait between attempts at an event the receiver refused.
    retry_max: Seconds = 60.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// address")
        return url


class MetricsSettings(_Section):
    """Prometheus ``/metrics``: open to an admin key, always."""

    #: Also let clients in security.allowed_networks scrape without a key.
    open_to_allowed_networks: bool = False


class RenderSettings(_Section):
    #: A font file that can draw Chinese; empty: the bundled font, then the system's.
    font: Path | None = None
    #: The face inside a .ttc collection.
    font_index: int = Field(0, ge=0)


class DdnsSettings(_Section):
    """Keep a dynamic DNS name pointing at this shop's public address (see spoonprint.ddns)."""

    #: Check the public address every ``interval`` seconds while ``serve`` runs.
    enabled: bool = False
    #: "dyndns2" (No-IP, Dyn, Dynu and others speaking the same protocol) or "duckdns".
    provider: str = Field("dyndns2", pattern="^(dyndns2|duckdns)$")
    #: The provider's update address; empty: the provider's usual one (No-IP for dyndns2), e.g.
    #: "https://members.dyndns.org/nic/update" or "https://api.dynu.com/nic/update".
    server: str = ""
    #: The name to update, e.g. "myshop.ddns.net" (DuckDNS: "myshop" or "myshop.duckdns.org").
    hostname: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    #: DuckDNS's account token.
    token: SecretStr = SecretStr("")
    interval: Seconds = 300.0
    #: A page that answers with the caller's public address as plain text.
    ip_url: str = "https://api.ipify.org"
    timeout: Seconds = 10.0

    @field_validator("server", "ip_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// address")
        return url


class HousekeepingSettings(_Section):
    """``spoonprint cleanup``, also run daily by ``serve`` (see spoonprint.housekeeping)."""

    #: Delete printed, sent and cancelled jobs (and their history) older than this many days.
    #: Failed, held and waiting jobs are never deleted.
    keep_days: int = Field(90, ge=1)
    #: Start a new log file when the current one holds entries older than this many days...
    log_rotate_days: int = Field(7, ge=1)
    #: ...and delete old log files whose last entry is older than this many days.
    log_keep_days: int = Field(30, ge=1)
    #: When ``serve`` runs it (local time, HH:MM); a quiet hour is best.
    daily_at: str = Field("04:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    #: Run it inside ``serve`` at all.
    enabled: bool = True


class PrinterConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    uri: str
    protocol: Protocol = Protocol.ESCPOS
    #: Printable width in dots: 576 (80 mm paper), 512, 384 (58 mm paper).
    width: int = Field(576, ge=128, le=832, multiple_of=8)
    #: The printer font's encoding, for text-mode protocols: cp437, big5, big5hkscs, gb18030...
    text_encoding: str = "cp437"
    chinese: Chinese = Chinese.TEXT
    style: Style = Style.RECEIPT
    cut: bool = True
    #: Open the cash drawer after each ticket.
    drawer: bool = False
    #: Ask the printer for its status after each ticket; a ticket counts as printed when it answers.
    confirm: bool = True
    #: Another printer to take this one's waiting jobs when it has been down failover_after s.
    backup: str | None = None
    failover_after: Seconds = 60.0

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        parse_uri(uri)
        return uri

    @field_validator("text_encoding")
    @classmethod
    def _known_encoding(cls, name: str) -> str:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(f"unknown encoding {name!r}") from None
        return name

    def effective_protocol(self) -> Protocol:
        """What the printer is sent: a Windows queue in ``gdi`` mode (its default) prints a
        picture of the ticket through the installed driver, whatever ``protocol`` says."""
        uri = parse_uri(self.uri)
        if uri.scheme == "windows" and uri.options.get("mode", "gdi") == "gdi":
            return Protocol.IMAGE
        return self.protocol

    def profile(self) -> PrinterProfile:
        return PrinterProfile(
            protocol=self.effective_protocol(),
            width_dots=self.width,
            text_encoding=self.text_encoding,
            chinese=self.chinese,
            style=self.style,
            cut=self.cut,
            drawer=self.drawer,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPOONPRINT_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = ServerSettings()
    delivery: DeliverySettings = DeliverySettings()
    render: RenderSettings = RenderSettings()
    security: SecuritySettings = SecuritySettings()
    webhooks: WebhookSettings = WebhookSettings()
    recovery: RecoverySettings = RecoverySettings()
    metrics: MetricsSettings = MetricsSettings()
    ddns: DdnsSettings = DdnsSettings()
    housekeeping: HousekeepingSettings = HousekeepingSettings()
    printers: list[PrinterConfig] = []
    api_key: SecretStr | None = None

    @field_validator("printers")
    @classmethod
    def _unique_names(cls, printers: list[PrinterConfig]) -> list[PrinterConfig]:
        names = [p.name for p in printers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"printer names must be unique, repeated: {', '.join(duplicates)}")
        for printer in printers:
            if printer.backup is not None and (
                printer.backup not in names or printer.backup == printer.name
            ):
                raise ValueError(
                    f"printer {printer.name!r}: backup {printer.backup!r} must name another printer"
                )
        return printers

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError("an API key must be at least 16 characters")
        return key

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


def load_settings(path: Path | None = None, *, required: bool = False) -> Settings:
    """Settings from ``path`` (default ./spoonprint.toml) and the environment.

    Raises ConfigError naming the offending key. Relative ``data_dir`` is taken from the config
    file's folder, so a service started elsewhere finds the same data.
    """
    path = path or DEFAULT_CONFIG
    if not path.exists():
        if required:
            raise ConfigError(f"config file {path} not found: run 'spoonprint init' first")
        path_used = None
    else:
        path_used = path
    try:
        with _reading(path_used):
            settings = Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path_used)) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"{path}: {exc}") from None
    base = path.resolve().parent if path_used else Path.cwd()
    if not settings.server.data_dir.is_absolute():
        settings.server.data_dir = (base / settings.server.data_dir).resolve()
    if settings.render.font is not None and not settings.render.font.is_absolute():
        settings.render.font = (base / settings.render.font).resolve()
    security = settings.security
    if (security.tls_cert is None) != (security.tls_key is None):
        raise ConfigError("security.tls_cert and security.tls_key go together: set both or none")
    for name in ("tls_cert", "tls_key"):
        value = getattr(security, name)
        if value is not None and not value.is_absolute():
            setattr(security, name, (base / value).resolve())
    return settings


def describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        key = re.sub(r"\.(\d+)(\.|$)", r"[\1]\2", key)
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)
