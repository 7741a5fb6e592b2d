"""Group commit: concurrent callers' writes committed together, in one transaction and one fsync,
by one writer thread.

Callers on an event loop ``await group.submit(item)``. The writer thread takes the oldest waiting
item and everything submitted after it up to ``max_batch``, hands the batch to ``commit`` and
then answers every caller of the batch with one callback on each caller's loop. There is no
waiting to fill a batch: a lone caller is committed at once, and callers that arrive while a
batch is being written (its fsync) make up the next one, so batches grow only with the load.

``commit(items)`` returns one outcome per item, in order: a result, or an exception for that
item alone (its caller gets it raised). If ``commit`` raises, the batch did not commit: every
caller of the batch gets that exception and none a result. Items are committed in submission
order, and each caller is answered only after its batch's commit returned.

A caller may pass ``settled``: called exactly once with its item's outcome (the result once the
batch is on disk, or the exception that refused it, ``GroupCommitClosed`` included), on the
caller's loop, before any caller of the batch resumes (a printer worker woken from there starts
on the order while its HTTP answer is still being written). It is called even if the caller
was cancelled meanwhile, so whatever was arranged for the item can always be concluded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("spoonprint.jobs")

T = TypeVar("T")
R = TypeVar("R")

#: Sizes of the most recent batches kept for :attr:`GroupCommit.recent_batches`.
_RECENT = 1000


#: See the module's doc.
Settled = Callable[[R | BaseException], None]
_Answer = tuple[asyncio.Future[R], R | BaseException, Settled[R] | None]


class GroupCommitClosed(RuntimeError):
    """Submitted after :meth:`GroupCommit.close`."""


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]
    settled: Settled[R] | None = None


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_batch: int = 256,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit = commit
        self._max_batch = max_batch
        self._name = name
        self._queue: queue.SimpleQueue[_Waiting[T, R] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Sizes of the last batches committed (for tests and diagnostics).
        self.recent_batches: deque[int] = deque(maxlen=_RECENT)
        #: Items of the batch being committed now (0 while the writer waits for work).
        self.in_flight = 0

    async def submit(self, item: T, settled: Settled[R] | None = None) -> R:
        """Commit ``item`` with whatever else is waiting; its result once that is on disk
        (``settled`` is called with its outcome first, see the module's doc)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:  # so that nothing is queued behind close()'s end marker
            if self._closed:
                closed = GroupCommitClosed(f"{self._name} is closed")
                if settled is not None:
                    _settle(settled, closed)
                raise closed
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(_Waiting(item, loop, future, settled))
        # Cancelling the caller does not withdraw the item (it may be committing already),
        # as with a write handed to a thread pool.
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Commit what was submitted, then stop the writer thread (waits up to ``timeout`` s)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is None:
                return
            self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.error("%s: writer thread still busy after %g s", self._name, timeout)

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    stopping = True  # commit this batch first: close() waits for it
                    break
                batch.append(waiting)
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[_Waiting[T, R]]) -> None:
        outcomes: Sequence[R | BaseException]
        self.in_flight = len(batch)
        try:
            outcomes = self._commit([waiting.item for waiting in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"commit gave {len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:  # the batch is not on disk: nobody is acknowledged
            outcomes = [exc] * len(batch)
        self.recent_batches.append(len(batch))
        self.in_flight = 0
        self._answer(batch, outcomes)

    @staticmethod
    def _answer(batch: list[_Waiting[T, R]], outcomes: Sequence[R | BaseException]) -> None:
        """One callback per event loop answers all of the batch's callers on that loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer[R]]] = {}
        for waiting, outcome in zip(batch, outcomes, strict=True):
            answer = (waiting.future, outcome, waiting.settled)
            by_loop.setdefault(waiting.loop, []).append(answer)
        for loop, answers in by_loop.items():
            # A loop closed meanwhile has nobody left waiting on it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[_Answer[R]]) -> None:
    for _, outcome, settled in answers:
        if settled is not None:
            _settle(settled, outcome)
    for future, outcome, _ in answers:
        if future.done():  # the caller was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _settle(settled: Settled[R], outcome: R | BaseException) -> None:
    try:
        settled(outcome)
    except Exception:  # the outcome stands all the same: its caller must hear it
        log.exception("group commit: a settled-callback failed")
