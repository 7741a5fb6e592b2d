"""uvicorn's HTTP protocol with three guards at the connection level, below the ASGI app:

- a blocked address is told it is blocked a few times a minute, and past that disconnected as
  soon as it connects (nothing else runs for it);
- bytes that are not HTTP at all (an SSH banner, garbage, a malformed request line) count as a
  strike against the sender before uvicorn's own 400 answer;
- request headers must arrive within ``header_timeout`` seconds, so a client dribbling bytes
  cannot hold a connection open (uvicorn itself times out only idle keep-alive connections).
"""

from __future__ import annotations

import asyncio
from typing import Any

from spoonprint.errors import SpoonprintError
from spoonprint.security.clients import parse_address, within
from spoonprint.security.guard import Guard


def guarded_protocol(guard: Guard, header_timeout: float) -> type[Any]:
    """uvicorn's httptools protocol class with the guards.

    httptools is a required dependency. uvicorn's h11 protocol is no fallback: it has no
    ``on_headers_complete`` to disarm the header timer by, so it would cut every response
    still streaming at ``header_timeout``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError as exc:
        raise SpoonprintError(
            f"the HTTP parser httptools cannot be loaded ({exc}); it is required: "
            "reinstall spoonprint (pip install --force-reinstall spoonprint)"
        ) from exc

    class GuardedProtocol(Base):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ip = self.client[0] if self.client else None
            # Behind a trusted proxy the real client is only known from its header (later).
            trusted_proxy = within(parse_address(ip or ""), guard.policy.trusted_proxies)
            # A blocked address within its few answers a minute goes on, to be answered 403
            # by the guard middleware, saying why.
            blocked = ip is not None and not trusted_proxy and guard.blocked(ip)
            if blocked and not guard.may_answer_blocked(ip or ""):
                transport.abort()
                return
            self._arm_header_timer()

        def on_message_begin(self) -> None:
            self._arm_header_timer()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _unsupported_upgrade_warning(self) -> None:
            # No WebSocket endpoint exists and none is loaded (serve's ws="none"): an upgrade
            # request is served as plain HTTP, through the guard like any other. uvicorn would
            # log two warnings for each, one advising to install a WebSocket library: noise
            # from scanners, and advice that would mislead whoever reads the log.
            pass

        def send_400_response(self, msg: str) -> None:
            ip = self.client[0] if self.client else "unknown"
            guard.strike(ip, "-", "-", f"not HTTP: {msg}")
            super().send_400_response(msg)

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            ip = self.client[0] if self.client else "unknown"
            guard.events.record(ip, "-", "-", "slow_headers", f"over {header_timeout:g} s")
            self.transport.abort()

    return GuardedProtocol
