"""Pure ASGI middleware in front of the whole app: blocked clients, allowlist, rate limits and
scanner probes are dealt with before any route runs (in the style of Starlette's
TrustedHostMiddleware).

What counts as a strike: scanner probes and unknown paths, unusual methods, and whatever an
inner layer names with :func:`strike_after` (a wrong key, a body sent too slowly). A request
without any key is not one (a browser asks before it sends a password), nor is anything asked of
the pages a person opens by hand (:data:`NEVER_STRIKES`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from spoonprint.security.clients import client_address
from spoonprint.security.guard import Block, Guard
from spoonprint.security.scanner import probe_reason

#: What a person types or a browser opens first: never a strike, with a key or without.
NEVER_STRIKES = frozenset({"/", "/docs", "/openapi.json", "/dashboard", "/dashboard/"})
_STRIKE = "strike"


def strike_after(scope: Scope, reason: str) -> None:
    """Count a strike against the client once this request has been answered."""
    scope.setdefault("state", {})[_STRIKE] = reason


class GuardMiddleware:
    def __init__(self, app: ASGIApp, guard: Guard, known_path: Callable[[str], bool]) -> None:
        self.app = app
        self.guard = guard
        self.known_path = known_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        peer = scope["client"][0] if scope.get("client") else None
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1") or None
        ip = client_address(peer, forwarded, self.guard.policy.trusted_proxies)
        state = scope.setdefault("state", {})
        state["client_ip"] = ip
        method, path = scope["method"], scope["path"]
        block = self.guard.block_of(ip)
        if block is not None:
            await _answer_blocked(send, block)
            return
        allowlisted = self.guard.allowlisted(ip)
        if not allowlisted and self.guard.policy.allowlist_only:
            self.guard.events.record(ip, method, path, "refused", "outside allowed_networks")
            await _answer(send, 403, "forbidden", "not allowed from this network")
            return
        never = method in ("GET", "HEAD") and path in NEVER_STRIKES
        reason = probe_reason(method, scope.get("raw_path", b"").decode("latin-1") or path)
        if reason is None and not self.known_path(path):
            reason = "unknown path"
        if reason is not None:
            if not never:
                self.guard.strike(ip, method, path, reason)
            await _answer(send, 404, "not found", None)
            return
        retry = None if allowlisted else self.guard.retry_after(ip)
        if retry is not None:
            self.guard.events.record(ip, method, path, "rate_limited", f"retry after {retry} s")
            await _answer(
                send,
                429,
                "too many requests",
                f"try again in {retry} s",
                [(b"retry-after", str(retry).encode())],
            )
            return
        await self.app(scope, receive, send)
        strike = state.pop(_STRIKE, None)
        if strike is not None and not never:
            self.guard.strike(ip, method, path, strike)


async def _answer_blocked(send: Send, block: Block) -> None:
    until = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(block.until))
    retry = max(int(block.until - time.time()) + 1, 1)
    detail = (
        f"this address ({block.ip}) is blocked until {until} after too many bad requests "
        f"(last: {block.reason}); the shop's owner can lift the block at once with: "
        f"spoonprint security unblock {block.ip}"
    )
    await _answer(
        send,
        403,
        "blocked",
        detail,
        [(b"retry-after", str(retry).encode()), (b"connection", b"close")],
        {"blocked_until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(block.until))},
    )


async def _answer(
    send: Send,
    status: int,
    error: str,
    detail: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
    fields: dict[str, str] | None = None,
) -> None:
    body = json.dumps({"error": error, "detail": detail, **(fields or {})}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
