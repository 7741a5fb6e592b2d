"""One file per ticket in a folder (``file:/path/to/folder[?ext=bin]``): for a program that
picks tickets up, for printing them later, and for trying spoonprint without a printer.

Each ticket appears whole or not at all: it is written to a hidden temporary file in the same
folder, flushed to disk, then renamed to ``<sequence>-<YYYYmmdd-HHMMSS>.<ext>`` (a rename within
one folder is atomic), and the folder itself is flushed so the new name survives a power cut.
Numbers continue from the highest one in the folder when spoonprint starts; one folder belongs
to one printer. ``ext`` is ``bin`` by default (``png`` suits the image protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spoonprint.errors import ConfigError, PrinterOffline, PrinterTimeout
from spoonprint.private import shared_folder
from spoonprint.recovery.health import HEALTHY, Fault, Health, Problem
from spoonprint.recovery.strategy import NeedsAdmin, RecoveryFailed, Strategy
from spoonprint.transports.base import StatusQuery, Ticket, Timeouts, ticket_bytes
from spoonprint.transports.uri import PrinterUri

__all__ = ["FileTransport", "from_uri", "usable"]

#: A ticket file's name; its first group is the sequence number.
TICKET_NAME = re.compile(r"^(\d+)-\d{8}-\d{6}\.[^.]+$")
_EXT = re.compile(r"^[A-Za-z0-9]{1,16}$")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: What os.fsync() on a folder says on filesystems (or systems) that cannot do it.
_NO_FOLDER_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES}


class FileTransport:
    def __init__(self, folder: str | os.PathLike[str], ext: str = "bin") -> None:
        self.folder = Path(folder)
        self.ext = ext
        self.address = f"file:{self.folder}"
        self.reads_status = False
        self._lock = threading.Lock()
        #: The next sequence number; found by looking at the folder on the first ticket.
        self._next: int | None = None

    async def send(
        self,
        ticket: Ticket,
        query: StatusQuery | None = None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes | None:
        if query is not None:
            raise self._cannot_ask()
        await asyncio.to_thread(self.write, await ticket_bytes(ticket))
        return None

    async def ask(self, query: StatusQuery) -> bytes:
        raise self._cannot_ask()

    def _cannot_ask(self) -> PrinterTimeout:
        return PrinterTimeout(f"{self.address} is a folder: it cannot answer status")

    def write(self, data: bytes) -> Path:
        """Write one ticket file (blocking); its path. PrinterOffline when it cannot."""
        with self._lock:
            try:
                shared_folder(self.folder)  # tickets are for other programs to read
                temp = self._write_temp(data)
            except OSError as exc:
                raise self._offline(exc) from exc
            try:
                final = self._next_path()
                os.replace(temp, final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise self._offline(exc) from exc
            assert self._next is not None
            self._next += 1
            self._sync_folder(final, len(data))
            return final

    def _write_temp(self, data: bytes) -> str:
        # Hidden (a leading dot) and not named like a ticket: a program watching the folder
        # skips it, and a restart does not count it.
        fd, temp = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.folder)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o644)  # mkstemp makes it private; a ticket is for others to read
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        return temp

    def _next_path(self) -> Path:
        if self._next is None:
            self._next = highest_sequence(self.folder) + 1
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.folder / f"{self._next:06d}-{stamp}.{self.ext}"

    def _sync_folder(self, final: Path, size: int) -> None:
        """Flush the folder's entry for the new name to disk, where the system allows it."""
        if os.name != "posix":
            return  # Windows cannot open a folder as a file; NTFS journals the rename itself
        try:
            fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in _NO_FOLDER_SYNC:
                return
            # The ticket is in place but may not survive a power cut: say it may have printed.
            raise PrinterOffline(
                f"{self.address}: {final.name} was written but the folder could not be flushed "
                f"to disk: {exc}",
                bytes_written=size,
            ) from exc

    def _offline(self, exc: OSError) -> PrinterOffline:
        if exc.errno in _DISK_FULL:
            return PrinterOffline(
                f"disk full: no room for the ticket in {self.folder}; free some space there"
            )
        if isinstance(exc, PermissionError):
            return PrinterOffline(
                f"{self.address}: permission denied writing to {self.folder}: give the user "
                "spoonprint runs as write access to it (chown or chmod), or choose another folder"
            )
        if exc.errno == errno.EROFS:
            return PrinterOffline(f"{self.address}: {self.folder} is on a read-only disk")
        if isinstance(exc, FileExistsError | NotADirectoryError):
            return PrinterOffline(f"{self.address}: {self.folder} is not a folder")
        return PrinterOffline(f"{self.address}: cannot write the ticket: {exc}")

    # -- health and recovery --------------------------------------------------------------

    async def check_path(self, stuck_after: float) -> Health:
        return await asyncio.to_thread(self._probe)

    def _probe(self) -> Health:
        if not self.folder.exists():
            detail = f"folder {self.folder} does not exist"
            return Health((Problem(Fault.NOT_FOUND, detail),))
        if not self.folder.is_dir():
            return Health((Problem(Fault.UNREACHABLE, f"{self.folder} is not a folder"),))
        try:
            # Creating a file is the one test of "writable" that holds everywhere (ACLs,
            # read-only mounts, Windows); an unnamed temporary file leaves nothing behind.
            with tempfile.TemporaryFile(dir=self.folder):
                pass
            full = shutil.disk_usage(self.folder).free == 0
        except OSError as exc:
            return Health((Problem(Fault.UNREACHABLE, str(self._offline(exc))),))
        if full:
            detail = f"disk full: no room for tickets in {self.folder}; free some space there"
            return Health((Problem(Fault.UNREACHABLE, detail),))
        return HEALTHY

    def strategies(self) -> list[Strategy]:
        return [
            Strategy(
                "create-folder",
                frozenset({Fault.NOT_FOUND}),
                self._create_folder,
                "create the folder tickets are written to",
            )
        ]

    async def _create_folder(self, problem: Problem) -> str:
        try:
            await asyncio.to_thread(shared_folder, self.folder)
        except PermissionError as exc:
            raise NeedsAdmin(
                f"cannot create {self.folder}: permission denied; create it and give the user "
                "spoonprint runs as write access to it"
            ) from exc
        except OSError as exc:
            raise RecoveryFailed(f"cannot create {self.folder}: {exc}") from exc
        return f"created folder {self.folder}"


def highest_sequence(folder: Path) -> int:
    """The highest ticket number in ``folder``; 0 when there is none (or no folder)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    numbers = (int(match[1]) for name in names if (match := TICKET_NAME.match(name)))
    return max(numbers, default=0)


def usable() -> str | None:
    return None


def from_uri(uri: PrinterUri, timeouts: Timeouts) -> FileTransport:
    unknown = sorted(set(uri.options) - {"ext"})
    if unknown:
        raise ConfigError(
            f"printer {uri.raw!r}: unknown option {unknown[0]!r} (file: printers take ext)"
        )
    ext = uri.options.get("ext", "bin")
    if not _EXT.match(ext):
        raise ConfigError(
            f"printer {uri.raw!r}: option ext must be 1-16 letters or digits (like bin or png), "
            f"got {ext!r}"
        )
    return FileTransport(Path(uri.target).expanduser(), ext)
