"""A private CUPS daemon for the CUPS references: its own config, spool, logs and socket in a
temporary folder, stopped by PID at the end. Clients reach it through ``CUPS_SERVER``.

``private_cups()`` yields no daemon, and says why, when cupsd or lp is not installed or cupsd
does not start, so a bench can skip its CUPS reference and run the rest. The tests' private
cupsd (``tests/cupsd.py``) is this one too.
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
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 15.0
TOOL_TIMEOUT = 15.0
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_TOOLS = ("cupsd", "lp", "lpadmin", "lpstat")

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

# Only this private socket is listened on, and the bench is its admin. As Debian ships it
# (LogLevel warn, job history kept), except MaxJobs 0: the default 500 would refuse new jobs
# once 500 wait for a printer, which the acceptance reference reaches in seconds.
_CUPSD_CONF = """\
Listen {socket}
Browsing No
WebInterface No
LogLevel warn
MaxLogSize 0
MaxJobs 0
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


def _tool(name: str) -> str | None:
    path = os.pathsep.join((os.environ.get("PATH", os.defpath), *_SBIN))
    return shutil.which(name, path=path)


def unavailable() -> str | None:
    """None when a private CUPS can run here, else why not (with the fix)."""
    missing = [name for name in _TOOLS if _tool(name) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian: apt-get install cups cups-client)"
    return None


@dataclass
class PrivateCups:
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "cups.sock"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, CUPS_SERVER=str(self.socket), LC_ALL="C", LANG="C")

    def start(self) -> None:
        for sub in ("etc", "spool/tmp", "state", "cache", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # cupsd runs its backends as user lp: they must reach the spooled files.
        self.folder.chmod(0o755)
        etc = self.folder / "etc"
        (etc / "cups-files.conf").write_text(_FILES_CONF.format(root=self.folder))
        (etc / "cupsd.conf").write_text(_CUPSD_CONF.format(socket=self.socket))
        cupsd = _tool("cupsd")
        assert cupsd is not None
        with (self.folder / "log" / "cupsd.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [cupsd, "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")],
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
                raise RuntimeError(f"cupsd exited with {self.proc.returncode}: {self.logs()}")
            if "scheduler is running" in self.run("lpstat", "-r", check=False).stdout:
                return
            time.sleep(0.02)  # the socket is not there yet: nothing to wait on
        self.stop()
        raise TimeoutError(f"cupsd not ready within {READY_TIMEOUT} s: {self.logs()}")

    def stop(self) -> None:
        """Stop cupsd by its PID: SIGTERM, then SIGKILL after 10 s."""
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
        tool = _tool(args[0])
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
        """A raw queue to the socket printer on 127.0.0.1:PORT, enabled and accepting."""
        self.run("lpadmin", "-p", name, "-v", f"socket://127.0.0.1:{port}/?waiteof=false", "-E")

    def remove_queue(self, name: str) -> None:
        self.run("cancel", "-a", "-x", name, check=False)
        self.run("lpadmin", "-x", name, check=False)

    def submit(self, queue: str, data: bytes, title: str = "bench") -> int:
        """One raw job, as a point-of-sale program would send it (``lp -o raw``); its id."""
        said = self.run("lp", "-d", queue, "-o", "raw", "-t", title, data=data).stdout
        match = re.search(r"request id is \S+-(\d+)", said)
        if match is None:
            raise RuntimeError(f"lp did not say the job id: {said!r}")
        return int(match.group(1))

    def submitter(self, queue: str) -> list[str]:
        """The ``lp`` command line of :meth:`submit` (data on its stdin, env :attr:`env`)."""
        lp = _tool("lp")
        assert lp is not None
        return [lp, "-d", queue, "-o", "raw", "-t", "bench"]

    def active_jobs(self, queue: str) -> list[int]:
        """Ids of the jobs of ``queue`` not finished yet (pending, held or processing)."""
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
def private_cups() -> Iterator[tuple[PrivateCups | None, str | None]]:
    """A running private cupsd and None; or None and why there is none (CUPS not installed,
    or cupsd would not start here), so that the caller skips its CUPS reference."""
    missing = unavailable()
    if missing is not None:
        yield None, missing
        return
    # A short folder: the socket path must fit in sockaddr_un (108 bytes).
    with tempfile.TemporaryDirectory(prefix="spb-cups-", dir="/tmp") as folder:
        cups = PrivateCups(Path(folder))
        try:
            cups.start()
        except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
            cups.stop()
            yield None, f"cupsd did not start: {str(exc)[:300]}"
            return
        try:
            yield cups, None
        finally:
            cups.stop()
