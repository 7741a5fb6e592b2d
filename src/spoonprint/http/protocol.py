"""uvicorn's HTTP protocol with guards at the connection level, below the ASGI app:

- a blocked address is told it is blocked a few times a minute, and past that disconnected as
  soon as it connects (nothing else runs for it); the connections it has open when it gets
  blocked are closed;
- bytes that are not HTTP at all (an SSH banner, garbage, a malformed request line) count as a
  strike against the sender, answered 400;
- request headers must arrive within ``header_timeout`` seconds, so a client dribbling bytes
  cannot hold a connection open (uvicorn itself times out only idle keep-alive connections):
  a strike, answered 408 (a connection that sent nothing at all is only closed);
- each address has a cap on open connections, within a pool for the shop's own network and
  one for everyone else (:mod:`spoonprint.security.connections`), answered 429 or 503;
- the request line and headers may be ``max_header_bytes`` long and hold ``max_headers``
  headers (httptools itself has no limit: it buffers a header as long as it keeps coming).

Every refusal here is a JSON answer like the app's own, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import http
import json
from typing import Any

from spoonprint.config import SecuritySettings
from spoonprint.errors import SpoonprintError
from spoonprint.security.clients import parse_address, within
from spoonprint.security.connections import DROP, ConnectionLimits, ConnectionTable, Refusal
from spoonprint.security.guard import Guard

#: Seconds a refused connection is still read from (and the bytes dropped) after its answer,
#: so that the client reads the answer instead of a reset for the request it was still sending.
LINGER = 1.0
#: ... unless more than this many bytes come meanwhile: then it is closed at once.
LINGER_BYTES = 64 * 1024


def refusal(
    status: int, error: str, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A whole HTTP/1.1 answer ``{"error": ..., "detail": ...}`` that closes the connection."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head over the limits."""


def guarded_protocol(guard: Guard, settings: SecuritySettings) -> type[Any]:
    """uvicorn's httptools protocol class with the guards.

    httptools is a required dependency. uvicorn's h11 protocol is no fallback: it has no
    ``on_headers_complete`` to disarm the header timer by, so it would cut every response
    still streaming at ``header_timeout``."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError as exc:
        raise SpoonprintError(
            f"the HTTP parser httptools cannot be loaded ({exc}); it is required: "
            "reinstall spoonprint (pip install --force-reinstall spoonprint)"
        ) from exc
    header_timeout = settings.header_timeout
    max_head, max_headers = settings.max_header_bytes, settings.max_headers
    too_large = refusal(
        431,
        "request headers too large",
        f"the request line and headers may be at most {max_head} bytes and {max_headers} headers",
    )

    too_slow = refusal(
        408,
        "request headers too slow",
        f"the request line and headers must arrive within {header_timeout:g} s",
    )

    def is_proxy(ip: str) -> bool:
        return within(parse_address(ip), guard.policy.trusted_proxies)

    limits = ConnectionLimits(
        settings.max_connections_per_address,
        settings.max_connections_outside,
        settings.max_connections_allowlisted,
    )
    connections: ConnectionTable[Any] = ConnectionTable(limits, guard.allowlisted, is_proxy)

    def close_blocked(ip: str) -> None:
        # Even a keep-alive connection between requests. Soon rather than now, so that the
        # answer to the request that earned the block is written (and flushed by the close).
        def close() -> None:
            for connection in connections.of(ip):
                connection.transport.close()

        asyncio.get_running_loop().call_soon(close)

    guard.on_block.append(close_blocked)

    class GuardedProtocol(Base):
        _ip = "unknown"
        _header_timer: asyncio.TimerHandle | None = None
        #: Reading a request's line and headers (not its body): bytes and headers so far.
        _in_head = True
        _head_bytes = 0
        _exact_head = 0
        _header_count = 0
        #: Answered and closing: whatever still comes is dropped.
        _refused = False
        _dropped = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._ip = ip = self.client[0] if self.client else "unknown"
            # Behind a trusted proxy the real client is only known from its header (later).
            # A blocked address within its few answers a minute goes on, to be answered 403
            # by the guard middleware, saying why.
            if not is_proxy(ip) and guard.blocked(ip) and not guard.may_answer_blocked(ip):
                transport.abort()
                return
            admission = connections.admit(ip, self)
            if admission == DROP:
                transport.abort()
            elif isinstance(admission, Refusal):
                retry = (("retry-after", str(admission.retry_after)),)
                self._refuse(refusal(admission.status, admission.error, admission.detail, retry))
            else:
                self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            # uvicorn's own, with the head's size counted as it comes and JSON refusals.
            if self._refused:
                self._dropped += len(data)
                if self._dropped > LINGER_BYTES:
                    self.transport.abort()
                return
            if self._in_head:
                self._head_bytes += len(data)
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, _HeadTooLarge):
                    self._refuse(too_large)
                else:
                    self.send_400_response("Invalid HTTP request received.")
            else:
                if self._in_head and self._head_bytes > max_head:
                    self._refuse(too_large)  # a head still coming, past the limit already

        def on_message_begin(self) -> None:
            self._arm_header_timer()
            self._exact_head, self._header_count = 0, 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count_head(len(url), 0)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_head(len(name) + len(value) + 4, 1)
            super().on_header(name, value)

        def _count_head(self, size: int, headers: int) -> None:
            # The exact size of a head that arrived whole within one read.
            self._exact_head += size
            self._header_count += headers
            if self._exact_head > max_head or self._header_count > max_headers:
                raise _HeadTooLarge

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            self._in_head, self._head_bytes = False, 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True  # what comes next is the next request's head
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            connections.release(self._ip, self)
            super().connection_lost(exc)

        def _unsupported_upgrade_warning(self) -> None:
            # No WebSocket endpoint exists and none is loaded (serve's ws="none"): an upgrade
            # request is served as plain HTTP, through the guard like any other. uvicorn would
            # log two warnings for each, one advising to install a WebSocket library: noise
            # from scanners, and advice that would mislead whoever reads the log.
            pass

        def send_400_response(self, msg: str) -> None:
            self._strike(f"not HTTP: {msg}")
            self._refuse(refusal(400, "bad request", "this is not an HTTP request"))

        def _refuse(self, answer: bytes) -> None:
            """Answer ``answer`` and close, reading (and dropping) what still comes for a
            moment first, so that the client gets to read the answer."""
            self._refused = True
            self._disarm_header_timer()
            if self.transport.is_closing():
                return
            self.transport.write(answer)
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            if self._head_bytes == 0:
                # Nothing sent at all: a browser's spare connection, not an attack.
                self.transport.close()
                return
            ip = self.client[0] if self.client else "unknown"
            guard.events.record(ip, "-", "-", "slow_headers", f"over {header_timeout:g} s")
            self._strike("slow headers")
            self._refuse(too_slow)

        def _strike(self, reason: str) -> None:
            """A strike against the peer, unless it is a trusted proxy (which speaks for
            others: the guard middleware judges those by their forwarded address)."""
            if is_proxy(self._ip):
                guard.events.record(self._ip, "-", "-", "proxy_strike", reason)
            else:
                guard.strike(self._ip, "-", "-", reason)

    return GuardedProtocol
