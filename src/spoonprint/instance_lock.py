"""One spoonprint per data folder, enforced with an OS file lock.

The operating system drops the lock when the process ends in any way (``kill -9`` and power
loss included), so at start every job still marked ``printing`` belongs to a process that is
gone and can be recovered at once. The platform calls are imported lazily: ``fcntl`` on POSIX,
``msvcrt`` on Windows.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from spoonprint.errors import SpoonprintError

LOCK_FILENAME = "spoonprint.lock"


class AlreadyRunning(SpoonprintError):
    """Another spoonprint process holds the data folder."""


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILENAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="ascii")
        try:
            _lock(handle)
        except OSError:
            handle.close()
            raise AlreadyRunning(
                f"another spoonprint is already running with the data folder {self.path.parent}"
                " (stop it first, or give this one another data_dir)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            _unlock(self._file)
            self._file.close()
            self._file = None


@contextlib.contextmanager
def free_or_held(data_dir: Path) -> Iterator[bool]:
    """True, holding the lock so that no server starts meanwhile, when no process holds the
    data folder; False when one does. The lock file's content (the holder's process id) is
    left alone; a missing folder is free (and is not created)."""
    if not data_dir.is_dir():
        yield True
        return
    with (data_dir / LOCK_FILENAME).open("a+", encoding="ascii") as handle:
        try:
            _lock(handle)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            _unlock(handle)


def _lock(handle: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
