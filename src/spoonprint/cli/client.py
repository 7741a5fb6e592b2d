"""Talking to a running server from the command line: where it is, which key to use, and API
errors turned into one plain sentence and an exit code (see :mod:`spoonprint.cli.common`).

The key is, in this order: ``--key``, the ``SPOONPRINT_API_KEY`` environment variable, or the
key ``spoonprint login`` saved for that server URL in the CLI key file: ``SPOONPRINT_KEY_FILE``
if set, else ``%APPDATA%\\spoonprint\\cli-keys.json`` on Windows and
``~/.config/spoonprint/cli-keys.json`` elsewhere, readable by its owner only (mode 0600 in a
0700 folder; on Windows the per-user profile folder is what keeps others out).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spoonprint.cli.common import (
    AUTH,
    CONFLICT,
    FAILED,
    NOT_FOUND,
    NOT_RUNNING,
    USAGE,
    CliFailure,
)
from spoonprint.config import Settings

if TYPE_CHECKING:
    import httpx

KEY_FILE_ENV = "SPOONPRINT_KEY_FILE"
TIMEOUT = 10.0

_STATUS_CODES = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT, 422: USAGE}


def local_url(settings: Settings) -> str:
    """The URL of the server the config file describes, as seen from this machine."""
    server = settings.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.security.tls_cert else "http"
    return f"{scheme}://{host}:{server.port}"


# -- the key file --------------------------------------------------------------------------


def key_file() -> Path:
    override = os.environ.get(KEY_FILE_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        return base / "spoonprint" / "cli-keys.json"
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "spoonprint" / "cli-keys.json"


def _read_keys(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(url): str(key) for url, key in data.items()} if isinstance(data, dict) else {}


def saved_key(url: str) -> str | None:
    return _read_keys(key_file()).get(url.rstrip("/"))


def save_key(url: str, key: str | None) -> Path:
    """Store (or with None, forget) the key for ``url``; the file is written whole, owner-only,
    and replaced atomically so a crash never leaves half a file."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = _read_keys(path)
    if key is None:
        keys.pop(url.rstrip("/"), None)
    else:
        keys[url.rstrip("/")] = key
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".cli-keys-")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(keys, file, indent=2)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


# -- API calls -----------------------------------------------------------------------------


@dataclass
class Api:
    """A server's API with one key; every failure is a :class:`CliFailure`."""

    url: str
    key: str | None
    timeout: float = TIMEOUT

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        import httpx  # here, not at the top: `spoonprint serve` never needs it

        headers = {"X-API-Key": self.key} if self.key else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.call("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, json=body if body is not None else {})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.key and path != "/status":
            raise CliFailure(
                "an API key is needed: --key KEY, SPOONPRINT_API_KEY, or 'spoonprint login'",
                AUTH,
            )
        import httpx

        try:
            answer = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise CliFailure(
                f"the server at {self.url} did not answer within {self.timeout:g} s", NOT_RUNNING
            ) from None
        except httpx.HTTPError as exc:
            raise CliFailure(
                f"server not reachable at {self.url} ({_reason(exc)}): is spoonprint running? "
                "Start it with 'spoonprint start'",
                NOT_RUNNING,
            ) from None
        return self._body(answer)

    def _body(self, answer: httpx.Response) -> Any:
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code < 400:
            if body is None:
                raise CliFailure(f"{self.url} answered something that is not spoonprint", FAILED)
            return body
        raise CliFailure(_describe_error(answer.status_code, body), _exit_code(answer))


def _exit_code(answer: httpx.Response) -> int:
    if answer.status_code == 403 and _error_of(answer) == "blocked":
        return AUTH
    return _STATUS_CODES.get(answer.status_code, FAILED)


def _error_of(answer: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError):
        body = answer.json()
        if isinstance(body, dict):
            return str(body.get("error"))
    return None


def _describe_error(status: int, body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 401:
        return (
            "the server refused the API key (wrong or revoked key): give the right one with "
            "--key, SPOONPRINT_API_KEY or 'spoonprint login'"
        )
    if status == 403 and error == "blocked":
        return "the server has blocked this address after bad requests: see 'spoonprint security'"
    if status == 403:
        return f"not allowed: {_words(detail) or 'an admin key is needed'}"
    if isinstance(detail, list):  # validation problems: field and message each
        detail = "; ".join(
            f"{p.get('field')}: {p.get('message')}" if isinstance(p, dict) else str(p)
            for p in detail
        )
    parts = [str(error or f"HTTP {status}"), _words(detail)]
    return ": ".join(part for part in parts if part)


def _words(detail: Any) -> str:
    return "" if detail is None else str(detail)


def _reason(exc: httpx.HTTPError) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return "connection refused or no route"
    return type(exc).__name__
