"""Dashboard sessions: signed tokens in an HttpOnly cookie, and a CSRF token per session.

A session token is ``<payload>.<signature>``: the payload (base64url JSON with a random session
id, the name of the key used to sign in, the issue and expiry times, and for the key from the
environment a fingerprint of that key) signed with HMAC-SHA256 and a per-install secret kept in
the data folder (:data:`SECRET_FILE`, readable by its owner only). Only sign-outs are stored: a
session ends when it expires, when its holder signs out (its id is kept, until it would have
expired anyway, in the database's runtime settings, so a sign-out survives a restart), when the
key it was opened with is revoked (the caller checks, see :meth:`Sessions.read`), or when the
secret file is deleted (everyone is signed out at the next start).

The CSRF token is derived from the session id with the same secret, so it needs no storage
either: the page carries it and every action sends it back in :data:`CSRF_HEADER`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

COOKIE = "spoonprint_session"
COOKIE_PATH = "/dashboard"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "dashboard.secret"
#: The runtime-settings section holding sign-outs: session id -> its expiry time.
SIGN_OUTS = "dashboard-sign-outs"
#: A session lasts one long shift.
LIFETIME = 12 * 3600.0
#: Longer cookies are refused unread (a real token is about 200 characters).
MAX_TOKEN = 1024


class SectionStore(Protocol):
    """Where sign-outs are kept (:class:`spoonprint.recovery.settings_store.RuntimeSettings`)."""

    def load(self, section: str) -> dict[str, Any]: ...

    def save(self, section: str, values: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Session:
    id: str
    #: The name of the admin key used to sign in.
    name: str
    issued_at: float
    expires_at: float
    #: Set for the key from the environment (it has no stored row to check): a keyed hash of
    #: it, so that changing the environment's key ends its sessions.
    key_fingerprint: str | None = None


def load_secret(path: Path) -> bytes:
    """The install's signing secret, created (owner-only) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text(encoding="ascii").strip()
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) < 32:
            raise ValueError(f"{path} is damaged: delete it (everyone signs in again)") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret.hex() + "\n")
    return secret


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Issues and checks session tokens. Thread-safe."""

    def __init__(
        self,
        secret: bytes,
        store: SectionStore,
        lifetime: float = LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._store = store
        self.lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        stored = store.load(SIGN_OUTS)
        self._signed_out = {
            sid: float(until) for sid, until in stored.items() if isinstance(until, int | float)
        }

    @classmethod
    def in_folder(cls, data_dir: Path, store: SectionStore, **options: Any) -> Sessions:
        return cls(load_secret(data_dir / SECRET_FILE), store, **options)

    def fingerprint(self, key: str) -> str:
        return self._mac(b"key\0" + key.encode("utf-8"))[:32]

    def open(self, name: str, key_fingerprint: str | None = None) -> tuple[str, Session]:
        """A new session for the holder of key ``name``: (the cookie's token, the session)."""
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(16), name, now, now + self.lifetime, key_fingerprint
        )
        fields = {
            "sid": session.id,
            "sub": session.name,
            "iat": round(session.issued_at, 3),
            "exp": round(session.expires_at, 3),
            "kfp": session.key_fingerprint,
        }
        payload = _b64encode(json.dumps(fields, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._mac(payload.encode('ascii'))}", session

    def read(self, token: str | None) -> Session | None:
        """The session a cookie carries, if its signature is right and it has neither expired
        nor been signed out. Whether its key is still valid is the caller's to check."""
        if not token or len(token) > MAX_TOKEN or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._mac(payload.encode("ascii", "replace")), signature):
            return None
        try:
            fields = json.loads(_b64decode(payload))
            session = Session(
                str(fields["sid"]),
                str(fields["sub"]),
                float(fields["iat"]),
                float(fields["exp"]),
                None if fields.get("kfp") is None else str(fields["kfp"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None  # signed by us, so only a format from another version gets here
        if session.expires_at <= self._clock():
            return None
        with self._lock:
            if session.id in self._signed_out:
                return None
        return session

    def close(self, session: Session) -> None:
        """Sign out: the session's token is refused from now on, also after a restart."""
        now = self._clock()
        with self._lock:
            self._signed_out = {s: t for s, t in self._signed_out.items() if t > now}
            self._signed_out[session.id] = session.expires_at
            remembered = dict(self._signed_out)
        self._store.save(SIGN_OUTS, remembered)

    def csrf_token(self, session: Session) -> str:
        return self._mac(b"csrf\0" + session.id.encode("ascii"))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            self.csrf_token(session).encode("ascii"), presented.encode("utf-8", "replace")
        )

    def _mac(self, data: bytes) -> str:
        return _b64encode(hmac.new(self._secret, data, hashlib.sha256).digest())
