"""Raw TCP printing (port 9100, "JetDirect"), one connection per ticket.

Every step has a hard timeout, so a printer that accepts a connection but never reads, or drops
it half way, costs a worker at most connect + write + status timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable
from typing import TypeVar

from spoonprint.errors import (
    PrinterDisconnected,
    PrinterOffline,
    PrinterTimeout,
)
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.strategy import RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery, Ticket, Timeouts, ticket_bytes
from spoonprint.transports.uri import PrinterUri, tcp_address

T = TypeVar("T")
_CHUNK = 4096
_OFFLINE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


__all__ = ["TcpTransport", "Timeouts"]


class TcpTransport:
    def __init__(self, host: str, port: int, timeouts: Timeouts = Timeouts()) -> None:
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.address = f"tcp://{host}:{port}"
        self.reads_status = True

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        reader, writer = await self._connect()
        written = 0
        ok = False
        try:
            if check is not None and query is not None:
                check(await self._ask_on(reader, writer, query, 0))
            # Only now: the ticket may still have been in the making while this connected.
            data = await ticket_bytes(ticket)
            for start in range(0, len(data), _CHUNK):
                chunk = data[start : start + _CHUNK]
                writer.write(chunk)
                # Counted before the drain: once handed over, part of it may reach the printer
                # even if the drain then fails, and "may have printed" must err on that side.
                written += len(chunk)
                await self._within(self.timeouts.write, writer.drain(), "writing", written)
            reply = None if query is None else await self._ask_on(reader, writer, query, written)
            ok = True
            return reply
        except (ConnectionError, OSError) as exc:
            raise PrinterDisconnected(
                f"{self.address} dropped the connection: {exc}", bytes_written=written
            ) from exc
        finally:
            await self._close(writer, flush=ok)

    async def ask(self, query: StatusQuery) -> bytes:
        reader, writer = await self._connect()
        try:
            return await self._ask_on(reader, writer, query, 0)
        except (ConnectionError, OSError) as exc:
            raise PrinterDisconnected(f"{self.address} dropped the connection: {exc}") from exc
        finally:
            await self._close(writer, flush=False)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeouts.connect
            )
        except TimeoutError as exc:
            raise PrinterTimeout(
                f"{self.address} did not answer within {self.timeouts.connect:g} s"
            ) from exc
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError) or exc.errno in _OFFLINE_ERRNOS:
                raise PrinterOffline(f"{self.address} refused the connection") from exc
            raise PrinterOffline(f"{self.address} unreachable: {exc}") from exc
        # With no buffer allowance drain() returns only once the kernel has every byte: a
        # printer that stops reading shows up as a write timeout, not as a growing buffer.
        writer.transport.set_write_buffer_limits(high=0)
        return reader, writer

    async def _ask_on(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        query: StatusQuery,
        written: int,
    ) -> bytes:
        writer.write(query.request)
        await self._within(self.timeouts.write, writer.drain(), "writing", written)
        try:
            return await self._within(
                self.timeouts.status, self._read_reply(reader, query), "status", written
            )
        except asyncio.IncompleteReadError as exc:
            raise PrinterDisconnected(
                f"{self.address} closed the connection before answering status",
                bytes_written=written,
            ) from exc

    @staticmethod
    async def _read_reply(reader: asyncio.StreamReader, query: StatusQuery) -> bytes:
        reply = await reader.readexactly(query.reply_size)
        if query.total_size is not None:
            rest = query.total_size(reply) - len(reply)
            if rest > 0:
                reply += await reader.readexactly(rest)
        return reply

    async def _within(self, seconds: float, step: Awaitable[T], what: str, written: int) -> T:
        try:
            return await asyncio.wait_for(step, seconds)
        except TimeoutError as exc:
            raise PrinterTimeout(
                f"{self.address}: no progress {what} for {seconds:g} s", bytes_written=written
            ) from exc

    async def _close(self, writer: asyncio.StreamWriter, *, flush: bool) -> None:
        # After a failure abort(): a graceful close could wait on a peer that stopped reading.
        if flush:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), self.timeouts.write)
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def check_path(self, stuck_after: float) -> Health:
        # Nothing sits between spoonprint and a network printer: its status bytes say it all.
        return HEALTHY

    def strategies(self) -> list[Strategy]:
        return [
            Strategy(
                "reconnect",
                frozenset({Fault.UNREACHABLE, Fault.NOT_RESPONDING}),
                self._reconnect,
                "open a fresh connection to the printer",
            )
        ]

    async def _reconnect(self, problem: Problem) -> str:
        try:
            _, writer = await self._connect()
        except (PrinterOffline, PrinterTimeout) as exc:
            raise RecoveryFailed(str(exc)) from exc
        await self._close(writer, flush=False)
        return f"connected to {self.address}"


def usable() -> str | None:
    return None


def from_uri(uri: PrinterUri, timeouts: Timeouts) -> TcpTransport:
    host, port = tcp_address(uri.raw)
    return TcpTransport(host, port, timeouts)
