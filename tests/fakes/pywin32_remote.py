"""The fake spooler seen from other processes, holding their GIL as pywin32 does.

On Windows every process talks to one spooler (spoolsv.exe) over RPC, and pywin32's
``win32print`` functions wait for its answer with the GIL held (only OpenPrinter and
StartDocPrinter release it, see win32print.cpp's Py_BEGIN_ALLOW_THREADS). This models both:

- :func:`serve` makes a :class:`~tests.fakes.pywin32.FakeSpooler` of the test answer over a
  ``multiprocessing.connection`` socket on 127.0.0.1, and returns the environment under which
  a process (``spoonprint serve``, the helpers it starts) finds fake pywin32 modules that call
  it: a ``sitecustomize`` on PYTHONPATH installs them (:func:`install_client`), importable and
  not pre-imported, like the in-process ones.
- The client waits for each answer in ``poll(2)`` called through ``ctypes.PyDLL``, which keeps
  the GIL for the whole wait, as a C extension that does not release it. While the fake
  spooler hangs, no other thread of that process runs: a server making the call in a thread
  freezes, as it would on Windows. The wait is bounded (``HANG_LIMIT`` and a margin).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fakes import pywin32
from tests.fakes.importer import importable, install
from tests.fakes.winspool_dll import ctypes_names

ENV_ADDRESS = "FAKE_PYWIN32_SPOOLER"
ENV_KEY = "FAKE_PYWIN32_KEY"
#: The win32print calls that release the GIL while the spooler works (win32print.cpp).
RELEASES_GIL = frozenset({("win32print", "OpenPrinter"), ("win32print", "StartDocPrinter")})
_WAIT_MS = int((pywin32.HANG_LIMIT + 10) * 1000)
_SITECUSTOMIZE = f'''\
"""Fake pywin32 modules that call the test's fake spooler (tests/fakes/pywin32_remote.py)."""
import os

if os.environ.get("{ENV_ADDRESS}"):
    from tests.fakes.pywin32_remote import install_client

    install_client()
'''


@dataclass(frozen=True)
class Remote:
    """An object (a win32ui PyCDC) that stays in the spooler's process, by its number."""

    number: int


@contextmanager
def serve(spooler: pywin32.FakeSpooler, boot: Path) -> Iterator[dict[str, str]]:
    """Serve ``spooler`` for the duration; yields the environment for client processes."""
    key = secrets.token_bytes(16)
    listener = Listener(("127.0.0.1", 0), authkey=key)
    modules = spooler.modules()
    objects: dict[int, Any] = {}

    def dispatch(request: tuple[Any, ...]) -> Any:
        kind, *rest = request
        if kind == "object":
            number, method, args = rest
            target = getattr(objects[number], method)
        elif kind == "driver":
            return spooler.driver_facts(*rest)
        elif kind == "draw":
            (args,) = rest
            target = spooler.draw
        else:
            module, name, args = rest
            target = getattr(modules[module], name)
        result = target(*args)
        if isinstance(result, pywin32.FakeDC):
            objects[id(result)] = result
            return Remote(id(result))
        return result

    def answer(conn: Connection) -> None:
        # The spooler's side never holds the test's GIL while it hangs.
        spooler.remote.active = True
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    reply: tuple[str, Any] = ("ok", dispatch(request))
                except Exception as exc:
                    reply = ("error", exc)
                try:
                    conn.send(reply)
                except OSError:
                    return

    def accept() -> None:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(boot), str(repo), os.environ.get("PYTHONPATH")) if p)
    host, port = listener.address
    # Errors come back as pywintypes.error, which pickles by that module's name.
    with importable({"pywintypes": modules["pywintypes"]}):
        try:
            yield {"PYTHONPATH": path, ENV_ADDRESS: f"{host}:{port}", ENV_KEY: key.hex()}
        finally:
            spooler.answer()
            listener.close()


class _Client:
    """This process's connections to the fake spooler, one per thread."""

    def __init__(self, address: str, key: bytes) -> None:
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.key = key
        self.local = threading.local()
        libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL
        self.poll = libc.poll
        self.poll.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int)

    def connection(self) -> Connection:
        conn: Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = Client(self.address, authkey=self.key)
            self.local.conn = conn
        return conn

    def call(self, request: tuple[Any, ...], *, holds_gil: bool = True) -> Any:
        conn = self.connection()
        conn.send(request)
        if holds_gil:
            # struct pollfd {int fd; short events; short revents;}, POLLIN = 1
            pollfd = (ctypes.c_int * 2)(conn.fileno(), 1)
            if self.poll(ctypes.addressof(pollfd), 1, _WAIT_MS) <= 0:
                raise RuntimeError("fake spooler: no answer")
        kind, value = conn.recv()
        if kind == "error":
            raise value
        if isinstance(value, Remote):
            return _RemoteObject(self, value.number)
        return value


class _RemoteObject:
    """A PyCDC living in the spooler's process; its methods are called there."""

    def __init__(self, client: _Client, number: int) -> None:
        self._client = client
        self._number = number

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            return self._client.call(("object", self._number, method, args))

        return call


_CLIENT: _Client | None = None


class _Dib:
    """PIL.ImageWin.Dib(image).draw(hdc, rect), as on Windows."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def draw(self, handle: int, dst: tuple[int, int, int, int]) -> None:
        draw(handle, self.image, dst)


def draw(hdc: int, image: Image.Image, rect: tuple[int, int, int, int]) -> None:
    """The stand-in for Pillow's ImageWin drawing, from a client process."""
    assert _CLIENT is not None, "install_client() first"
    _CLIENT.call(("draw", (hdc, image, rect)))


def client_modules(client: _Client) -> dict[str, types.ModuleType]:
    """Modules shaped as the in-process fake's, whose functions call the spooler."""
    shapes = pywin32.FakeSpooler().modules()
    out: dict[str, types.ModuleType] = {}
    for name, shape in shapes.items():
        module = types.ModuleType(name, shape.__doc__)
        for attr, value in vars(shape).items():
            if attr.startswith("__") and attr != "__path__":
                continue
            if attr[0].isupper() and callable(value) and not isinstance(value, type):
                value = _forward(client, name, attr)
            setattr(module, attr, value)
        out[name] = module
    for name, module in out.items():  # packages hold their submodules as attributes
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(out[parent], child, module)
    return out


def _forward(client: _Client, module: str, name: str) -> Any:
    holds = (module, name) not in RELEASES_GIL

    def call(*args: Any) -> Any:
        # pywin32 reads any buffer (WritePrinter's chunk): what it holds is what travels.
        sent = tuple(bytes(arg) if isinstance(arg, memoryview) else arg for arg in args)
        return client.call(("module", module, name, sent), holds_gil=holds)

    call.__name__ = call.__qualname__ = name
    return call


def install_client() -> None:
    """Make the fake pywin32 modules importable in this process for good."""
    global _CLIENT
    _CLIENT = _Client(os.environ[ENV_ADDRESS], bytes.fromhex(os.environ[ENV_KEY]))
    install(client_modules(_CLIENT))
    # Pillow's ImageWin draws on an HDC only on Windows (StretchDIBits in its C part): here
    # the drawing goes to the fake spooler's DC, as the in-process tests' draw= does.
    from PIL import ImageWin

    ImageWin.Dib = _Dib  # type: ignore[misc,assignment]
    client = _CLIENT
    for name, value in ctypes_names(lambda handle: client.call(("driver", handle))).items():
        setattr(ctypes, name, value)
