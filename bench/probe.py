"""``spoonprint`` with timestamps: runs the normal command line after wrapping the steps an order
goes through, so that each writes ``NAME> T`` when it starts and ``NAME< T`` when it returns to
the file named by ``BENCH_PROBE_FILE`` (T: ``time.perf_counter()``, the system-wide
monotonic clock on Linux, so the bench process can line the marks up with its own times).

Used by :mod:`bench.breakdown`: ``python -m bench.probe serve --config FILE``. The wrapped names
are spoonprint internals; if one is renamed, this fails at start instead of measuring nothing.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

#: Not SPOONPRINT_...: spoonprint would take that for one of its settings.
ENV = "BENCH_PROBE_FILE"


class Marks:
    def __init__(self, path: str) -> None:
        # O_APPEND writes of a line are atomic: the threads' marks do not mix.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(self, name: str) -> None:
        os.write(self._fd, f"{name} {time.perf_counter():.7f}\n".encode())

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        function = getattr(owner, attribute)  # AttributeError: the probe is out of date
        mark = self.mark

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                mark(f"{name}>")
                try:
                    return await function(*args, **kwargs)
                finally:
                    mark(f"{name}<")

            setattr(owner, attribute, timed_async)
            return

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            mark(f"{name}>")
            try:
                return function(*args, **kwargs)
            finally:
                mark(f"{name}<")

        setattr(owner, attribute, timed)


def install(marks: Marks) -> None:
    from spoonprint import app as services
    from spoonprint.delivery import worker
    from spoonprint.delivery.worker import PrinterWorker
    from spoonprint.queue.sqlite import SqliteJobStore
    from spoonprint.render import base
    from spoonprint.transports.tcp import TcpTransport

    marks.wrap(services.Services, "accept", "accept")
    marks.wrap(SqliteJobStore, "enqueue_many", "commit")
    marks.wrap(SqliteJobStore, "claim_next", "claim")
    marks.wrap(PrinterWorker, "_attempt", "attempt")
    marks.wrap(PrinterWorker, "settle", "settle")
    marks.wrap(worker._TicketMaker, "_rendered", "ticket")
    marks.wrap(TcpTransport, "send", "send")
    marks.wrap(TcpTransport, "_connect", "connect")
    marks.wrap(SqliteJobStore, "mark_printed", "mark_printed")
    for protocol in list(base._RENDERERS):
        base._RENDERERS[protocol] = _timed(marks, base._RENDERERS[protocol], "render")


def _timed(marks: Marks, function: Callable[..., bytes], name: str) -> Callable[..., bytes]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> bytes:
        marks.mark(f"{name}>")
        try:
            return function(*args, **kwargs)
        finally:
            marks.mark(f"{name}<")

    return timed


def main() -> None:
    path = os.environ.get(ENV)
    if path:
        install(Marks(path))
    from spoonprint.cli.main import run

    run()


if __name__ == "__main__":
    main()
