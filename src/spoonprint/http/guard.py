"""Pure ASGI middleware in front of the whole app: blocked clients, allowlist, rate limits and
scanner probes are dealt with before any route runs (in the style of Starlette's
TrustedHostMiddleware)."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spoonprint.security.clients import client_address
from spoonprint.security.guard import Guard
from spoonprint.security.scanner import probe_reason


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
        scope.setdefault("state", {})["client_ip"] = ip
        method, path = scope["method"], scope["path"]
        if self.guard.blocked(ip):
            await _answer(send, 403, "blocked", "too many bad requests from this address")
            return
        allowlisted = self.guard.allowlisted(ip)
        if not allowlisted and self.guard.policy.allowlist_only:
            self.guard.events.record(ip, method, path, "refused", "outside allowed_networks")
            await _answer(send, 403, "forbidden", "not allowed from this network")
            return
        reason = probe_reason(method, scope.get("raw_path", b"").decode("latin-1") or path)
        if reason is None and not self.known_path(path):
            reason = "unknown path"
        if reason is not None:
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
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:
            self.guard.strike(ip, method, path, "missing or wrong API key")


async def _answer(
    send: Send,
    status: int,
    error: str,
    detail: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
