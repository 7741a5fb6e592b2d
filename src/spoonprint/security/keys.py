"""API keys: generated at random, stored only as SHA-256 hashes, checked in constant time.

A key is 32 random bytes, so a fast hash is enough: there is nothing to brute-force that a
slow password hash would protect. The plain key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

from spoonprint.db import transaction
from spoonprint.errors import SpoonprintError

KEY_PREFIX = "sp_"
ROLES = ("admin", "print")


class KeyProblem(SpoonprintError):
    """A key operation that cannot be done (duplicate name, unknown name)."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    created_at: float
    revoked_at: float | None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, name: str, role: str = "admin") -> str:
        """Store a new key's hash and return the key itself (the only time it is seen)."""
        if role not in ROLES:
            raise KeyProblem(f"role must be one of {', '.join(ROLES)}")
        key = generate_key()
        with self._lock, transaction(self._conn):
            if self._conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise KeyProblem(f"a key named {name!r} exists already")
            self._conn.execute(
                "INSERT INTO api_keys (name, role, key_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, hash_key(key), time.time()),
            )
        return key

    def revoke(self, name: str) -> None:
        with self._lock, transaction(self._conn):
            cursor = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (time.time(), name),
            )
            if cursor.rowcount != 1:
                raise KeyProblem(f"no active key named {name!r}")

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, role, created_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [ApiKey(*row) for row in rows]

    def identify(self, key: str) -> Identity | None:
        """Who holds the active key ``key``, or None. Every stored hash is compared, in
        constant time each, so timing tells nothing about which one matched."""
        presented = hash_key(key)
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, role, key_hash FROM api_keys WHERE revoked_at IS NULL"
            ).fetchall()
        found = None
        for name, role, stored in rows:
            if hmac.compare_digest(presented, stored):
                found = Identity(name, role)
        return found


@dataclass(frozen=True)
class Identity:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Authenticator:
    """Checks a presented key against the stored keys and the optional key from the environment
    (which has the admin role)."""

    def __init__(self, keys: KeyStore, env_key: str | None = None) -> None:
        self.keys = keys
        self._env_hash = hash_key(env_key) if env_key else None

    def identify(self, key: str | None) -> Identity | None:
        if not key or len(key) > 200:
            return None
        if self._env_hash is not None and hmac.compare_digest(hash_key(key), self._env_hash):
            return Identity("environment", "admin")
        return self.keys.identify(key)
