"""Pure ASGI middleware that refuses request bodies over a size limit or sent too slowly.

The limits hold while the body is read, so a chunked upload without Content-Length is cut off at
the size limit instead of being buffered whole, and a body trickling in is cut off when
``body_timeout`` seconds have passed since the request's headers (a strike with the guard).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spoonprint.http.guard import strike_after


class BodyRefused(Exception):
    """The body is refused; :class:`BodySizeLimitMiddleware` gives the answer."""

    status = 400
    error = "bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BodyTooLarge(BodyRefused):
    status = 413
    error = "request body too large"


class BodyTooSlow(BodyRefused):
    status = 408
    error = "request body too slow"


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(f"the limit is {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, too_large)
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        received = 0
        more_body = True
        refusal: BodyRefused | None = None
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, more_body, refusal
            if not more_body:  # the body is in: waiting for a disconnect takes its time
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refusal = BodyTooSlow(f"the whole body must arrive within {self.body_timeout:g} s")
                strike_after(scope, "slow body")
                raise refusal from None
            if message["type"] == "http.request":
                more_body = message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refusal = too_large
                    raise refusal
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn the exception into its own error answer: replace it.
            nonlocal answered
            if refusal is None:
                await send(message)
            elif not answered:
                answered = True
                await _refuse(send, refusal)

        with contextlib.suppress(BodyRefused):
            await self.app(scope, limited_receive, guarded_send)
        if refusal is not None and not answered:
            await _refuse(send, refusal)


async def _refuse(send: Send, refusal: BodyRefused) -> None:
    body = json.dumps({"error": refusal.error, "detail": refusal.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
