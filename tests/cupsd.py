"""A private CUPS daemon for tests: its own config, spool, logs and socket in a temp folder.

Use :func:`private_cupsd` (skips the test when cupsd is not installed); it stops cupsd by PID
and removes its folder at the end. The folder is made under the system temp folder, not under
pytest's: cupsd runs backends as user ``lp``, which must reach the spooled files, and pytest's
folders are private to the user running the tests.

Clients reach it with ``CUPS_SERVER=<folder>/cups.sock`` (:attr:`Cupsd.env`), or by passing
:attr:`Cupsd.socket` as the server. See /work/shared/CUPS-NOTES.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_TIMEOUT = 15.0
TOOL_TIMEOUT = 15.0
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
#: A Unix socket path must fit in sockaddr_un.sun_path (108 bytes with the final NUL).
_MAX_SOCKET_PATH = 100

_FILES_CONF = """\
ServerRoot {root}/etc
RequestRoot {root}/spool
TempDir {root}/spool/tmp
StateDir {root}/state
CacheDir {root}/cache
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
Printcap {root}/printcap
SystemGroup root
"""

# Everything is allowed for everyone on this private socket: the tests act as the admin.
_CUPSD_CONF = """\
Listen {socket}
Browsing No
WebInterface No
LogLevel info
MaxLogSize 0
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""


def find_cupsd() -> str | None:
    path = os.environ.get("PATH", os.defpath)
    return shutil.which("cupsd", path=os.pathsep.join((path, *_SBIN)))


@dataclass
class Cupsd:
    """One private cupsd; :meth:`start` and :meth:`stop` may be called again (same socket)."""

    folder: Path
    binary: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.folder / "cups.sock"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, CUPS_SERVER=str(self.socket), LC_ALL="C", LANG="C")

    def configure(self) -> None:
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise RuntimeError(f"socket path too long for AF_UNIX: {self.socket}")
        for sub in ("etc", "spool/tmp", "state", "cache", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # Backends run as user lp and read the spooled files (cupsd sets the spool's own modes).
        self.folder.chmod(0o755)
        (self.folder / "etc" / "cups-files.conf").write_text(
            _FILES_CONF.format(root=self.folder), encoding="utf-8"
        )
        (self.folder / "etc" / "cupsd.conf").write_text(
            _CUPSD_CONF.format(socket=self.socket), encoding="utf-8"
        )

    def start(self) -> None:
        etc = self.folder / "etc"
        with (self.folder / "log" / "cupsd.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-f",
                    "-c",
                    str(etc / "cupsd.conf"),
                    "-s",
                    str(etc / "cups-files.conf"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"cupsd exited with {self.proc.returncode}:\n{self.logs()}")
            ready = self.run("lpstat", "-r", check=False)
            if "scheduler is running" in ready.stdout:
                return
            time.sleep(0.02)  # the socket is not there yet: nothing to wait on
        self.stop()
        raise TimeoutError(f"cupsd not ready within {READY_TIMEOUT} s:\n{self.logs()}")

    def stop(self) -> None:
        """Stop cupsd by its PID (SIGTERM, then SIGKILL after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def run(
        self, *args: str, data: bytes = b"", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a CUPS tool against this daemon (the sbin tools are found too)."""
        tool = shutil.which(args[0], path=os.pathsep.join((os.environ.get("PATH", ""), *_SBIN)))
        if tool is None:
            raise FileNotFoundError(args[0])
        done = subprocess.run(
            [tool, *args[1:]], input=data, env=self.env, capture_output=True, timeout=TOOL_TIMEOUT
        )
        result = subprocess.CompletedProcess(
            list(args),
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def add_raw_queue(self, name: str, port: int) -> None:
        """A raw queue to a socket printer on 127.0.0.1:PORT, enabled and accepting."""
        self.run("lpadmin", "-p", name, "-v", f"socket://127.0.0.1:{port}/?waiteof=false", "-E")

    def remove_queue(self, name: str) -> None:
        self.run("cancel", "-a", "-x", name, check=False)
        self.run("lpadmin", "-x", name, check=False)

    def submit(self, queue: str, data: bytes, title: str = "not spoonprint") -> int:
        """A job submitted with plain ``lp``, as another program on the machine would."""
        said = self.run("lp", "-d", queue, "-o", "raw", "-t", title, data=data).stdout
        match = re.search(r"request id is \S+-(\d+)", said)
        assert match, said
        return int(match.group(1))

    def active_jobs(self, queue: str) -> list[int]:
        """Ids of the queue's jobs that have not finished (pending, held or processing)."""
        listing = self.run("lpstat", "-o", queue, check=False).stdout
        return [int(n) for n in re.findall(rf"^{re.escape(queue)}-(\d+)\s", listing, re.M)]

    def logs(self) -> str:
        parts = []
        for name in ("cupsd.out", "error_log"):
            path = self.folder / "log" / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


@contextmanager
def private_cupsd() -> Iterator[Cupsd]:
    """A running private cupsd; skips the test when cupsd is not installed."""
    binary = find_cupsd()
    if binary is None:
        pytest.skip("cupsd is not installed (apt-get install cups cups-client)")
    daemon = Cupsd(Path(tempfile.mkdtemp(prefix="spoonprint-cupsd-")), binary)
    try:
        daemon.configure()
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(daemon.folder, ignore_errors=True)
