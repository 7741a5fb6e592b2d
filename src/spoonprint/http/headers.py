"""Pure ASGI middleware adding the security headers every answer needs, whichever part of
the app (or the guard in front of it) wrote it.

- ``X-Content-Type-Options: nosniff`` on everything: a browser never guesses a type.
- JSON answers carry orders, jobs and errors: ``Content-Security-Policy: default-src 'none'``
  (a JSON document loads nothing and is framed by no one, even if opened as a page) and
  ``Cache-Control: no-store`` (no browser or proxy keeps a copy). The dashboard's pages set
  their own policy and keep it; headers a route set itself are never replaced.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_JSON = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _with_headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower(): value for name, value in headers}
    added = [] if _NOSNIFF[0] in present else [_NOSNIFF]
    if present.get(b"content-type", b"").startswith(b"application/json"):
        added += [header for header in _JSON if header[0] not in present]
    return [*headers, *added]
