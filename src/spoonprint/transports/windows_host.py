"""Spooler calls where a hung spooler cannot stop the server: helper processes, or threads.

Most of pywin32's ``win32print`` functions hold the GIL while the spooler works (only
OpenPrinter and StartDocPrinter release it; pywin32 issue #628 saw 4-90 s freezes). Run in a
thread, a call into a stalled spooler or driver stops every thread of the process: the event
loop, HTTP intake, and the timeout meant to end the wait. So on Windows the calls run in small
helper processes (``python -m spoonprint.transports.windows_host``): the server waits on a
pipe, which holds nothing, and a call that overruns its time is ended by killing its helper;
the next call starts a fresh one.

The protocol is pickled messages, each prefixed with its length, over the helper's stdin and
stdout: the request ``(module, function, args)``; while a ticket is submitted, progress
``("progress", job_id, written)``; then ``("ok", result, state)`` or ``("error", exc,
state)``. Only spoonprint's own module-level functions are called, by name.

:class:`InThreads` keeps the calls in this process (for a spooler API that releases the GIL,
and for tests of the transport's logic against an in-process fake).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import pickle
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import IO, Any, Protocol, TypeVar

from spoonprint.transports.windows_spool import Submission, describe

T = TypeVar("T")
_LENGTH = struct.Struct("!I")
#: Calls a queue makes at once: a ticket, its polling and the monitor's probe.
HELPERS = 4
#: Longest a helper process may take to start (Python, then pywin32's imports).
START_SECONDS = 30.0


class SpoolerCalls(Protocol):
    async def run(self, seconds: float, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` for at most ``seconds``; TimeoutError when it overruns."""
        ...


class InThreads:
    """The calls in this process's threads (a call stuck in a hung spooler keeps its thread)."""

    def __init__(self, size: int = HELPERS) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="spoonprint-windows")
        weakref.finalize(self, self._pool.shutdown, wait=False)

    async def run(self, seconds: float, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._pool, functools.partial(call, *args))
        return await asyncio.wait_for(work, seconds)


def _write(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other side is gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the helper process ended")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the helper process ended")
    return pickle.loads(data)


class _Helper:
    """One helper process, started and ready (its imports done) when constructed."""

    def __init__(self) -> None:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        # This process's import path, as it is now: the Windows service adds its venv's
        # site folders at run time (service/windows.py's bootstrap), which a plain
        # `python -m` would not see.
        path = [*os.environ.get("PYTHONPATH", "").split(os.pathsep), *sys.path]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            creationflags=flags,
            env=env,
        )
        try:
            assert self.proc.stdout is not None
            if _read(self.proc.stdout) != "ready":
                raise EOFError("the helper process did not start")
        except BaseException:
            self.kill()
            raise

    def call(self, request: tuple[str, str, tuple[Any, ...]], sub: Submission | None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        _write(self.proc.stdin, request)
        while True:
            kind, *rest = _read(self.proc.stdout)
            if kind == "progress":
                if sub is not None:
                    sub.job_id, sub.written = rest
                continue
            value, state = rest
            if sub is not None and state is not None:
                sub.job_id, sub.written = state
            if kind == "error":
                raise value
            return value

    def kill(self) -> None:
        with suppress(OSError):
            self.proc.kill()
        with suppress(Exception):
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with suppress(OSError):
                if stream is not None:
                    stream.close()


class InHelpers:
    """The calls in helper processes, killed when a call overruns (see the module doc)."""

    def __init__(self, start_seconds: float = START_SECONDS) -> None:
        self.start_seconds = start_seconds
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()
        # Threads only start helpers and wait on their pipes: none holds the GIL long.
        self._pool = ThreadPoolExecutor(HELPERS * 2, thread_name_prefix="spoonprint-windows")
        weakref.finalize(self, self.close)

    async def run(self, seconds: float, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in a helper; ``seconds`` counts from when a helper is ready, so a
        helper's start (a second or so on a busy PC) does not eat the call's time."""
        loop = asyncio.get_running_loop()
        helper = await asyncio.wait_for(
            loop.run_in_executor(self._pool, self._take), self.start_seconds
        )
        request = (call.__module__, call.__qualname__, args)
        sub = next((arg for arg in args if isinstance(arg, Submission)), None)
        try:
            result: T = await asyncio.wait_for(
                loop.run_in_executor(self._pool, helper.call, request, sub), seconds
            )
        except Exception as exc:
            if isinstance(exc, TimeoutError | EOFError | OSError):
                helper.kill()  # stuck, dead or cut off: never reused
            else:
                self._give_back(helper)  # the spooler's own answer: the helper is fine
            raise
        except BaseException:  # cancelled mid-call: what the helper does next is unknown
            helper.kill()
            raise
        self._give_back(helper)
        return result

    def _take(self) -> _Helper:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Helper()

    def _give_back(self, helper: _Helper) -> None:
        with self._lock:
            self._idle.append(helper)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.kill()
        self._pool.shutdown(wait=False)


def default_calls() -> SpoolerCalls:
    """Helper processes: pywin32's spooler calls hold the GIL (see the module doc)."""
    return InHelpers()


def _portable(exc: BaseException) -> BaseException:
    """The exception if it survives pickling, else a RuntimeError in its words."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(describe(exc))
    return exc


def main() -> None:
    """The helper's loop: one call at a time, until stdin closes."""
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    _write(out, "ready")
    while True:
        try:
            module, name, args = _read(requests)
        except EOFError:
            return
        sub = next((arg for arg in args if isinstance(arg, Submission)), None)
        if sub is not None:
            sub.on_progress = lambda s: _write(out, ("progress", s.job_id, s.written))
        try:
            reply: tuple[Any, ...] = ("ok", getattr(importlib.import_module(module), name)(*args))
        except Exception as exc:
            reply = ("error", _portable(exc))
        state = None if sub is None else (sub.job_id, sub.written)
        _write(out, (*reply, state))


if __name__ == "__main__":
    main()
