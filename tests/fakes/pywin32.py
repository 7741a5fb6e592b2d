"""An in-memory Windows print spooler behind fake pywin32 modules.

:class:`FakeSpooler` holds printers (name, ``Status`` flags, ``Attributes``, page size), their
jobs (JobId, pDocument, pDatatype, pUserName, Status, Submitted, TotalPages, PagesPrinted and
what was spooled: RAW bytes or the pictures drawn on each page), the Spooler service's state and
whether the process has administrator rights. :meth:`FakeSpooler.installed` puts fake
``pywintypes``, ``win32print``, ``win32ui``, ``win32service``, ``win32serviceutil`` and
``win32com.shell.shell`` modules into ``sys.modules`` and takes them out again.

Only the calls spoonprint's Windows transport makes exist. Each keeps pywin32's name, argument
order (positional only, as pywin32's C functions parse them), return shape, constants and error
type; its docstring names the real call. Sources: pywin32's win32/src/win32print/win32print.cpp,
Pythonwin/win32dc.cpp and win32/Lib/win32serviceutil.py; typeshed's stubs/pywin32; winspool.h
and winerror.h; Microsoft's MS-RPRN and print spooler API documentation.

Behaviour modelled on the Windows spooler:

- a complete job prints (JOB_STATUS_PRINTING for ``print_seconds``, then it leaves the queue)
  when the queue is neither paused nor set to "Use Printer Offline", the printer reports no
  fault (offline, paper out, door open, jam, error) and the Spooler service runs; jobs print one
  at a time in queue order, so a job that does not move holds the ones behind it;
- a deleted job shows JOB_STATUS_DELETING for ``delete_seconds`` before it leaves the queue;
  GetJob / SetJob of a job no longer queued fail with ERROR_INVALID_PARAMETER;
- a stopped spooler answers every spooler call with RPC_S_SERVER_UNAVAILABLE; a restart drops
  jobs being deleted or still being spooled, keeps the others (a job that was printing starts
  over) and makes older handles invalid;
- rights as Windows grants them by default: anyone may print and manage their own jobs; opening
  a printer for administration (PRINTER_ACCESS_ADMINISTER or standard rights beyond
  READ_CONTROL), SetPrinter level 2 or with a command, SetJob on another user's job and
  stopping or starting a service need administrator rights, else ERROR_ACCESS_DENIED.

Tests stage faults by setting a printer's ``status`` / ``attributes``, ``stick`` (new jobs do not
move: "queued" never start, "printing" never finish), ``undeletable`` (deleting never
finishes), by :meth:`FakeSpooler.stop_service` (a crashed spooler), :meth:`FakeSpooler.hang`
(a spooler that does not answer) and :meth:`FakeSpooler.fail_job`.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from tests.fakes.importer import importable

# winerror.h codes and their FormatMessage texts.
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_PRINT_CANCELLED = 63
ERROR_INVALID_PARAMETER = 87
ERROR_SERVICE_DOES_NOT_EXIST = 1060
RPC_S_SERVER_UNAVAILABLE = 1722
ERROR_INVALID_PRINTER_NAME = 1801
ERROR_UNKNOWN_PRINTPROCESSOR = 1798
ERROR_INVALID_DATATYPE = 1804
#: What Windows' own print processor (winprint) takes, as EnumPrintProcessorDatatypes lists it.
WINPRINT_DATATYPES = (
    "RAW", "RAW [FF appended]", "RAW [FF auto]", "NT EMF 1.003", "NT EMF 1.006",
    "NT EMF 1.007", "NT EMF 1.008", "TEXT", "XPS2GDI",
)  # fmt: skip
#: DRIVER_INFO_8 dwPrinterDriverAttributes PRINTER_DRIVER_XPS (winspool.h).
PRINTER_DRIVER_XPS = 0x2
MESSAGES = {
    ERROR_ACCESS_DENIED: "Access is denied.",
    ERROR_INVALID_HANDLE: "The handle is invalid.",
    ERROR_PRINT_CANCELLED: "Your file waiting to be printed was deleted.",
    ERROR_INVALID_PARAMETER: "The parameter is incorrect.",
    ERROR_SERVICE_DOES_NOT_EXIST: "The specified service does not exist as an installed service.",
    RPC_S_SERVER_UNAVAILABLE: "The RPC server is unavailable.",
    ERROR_INVALID_PRINTER_NAME: "The printer name is invalid.",
    ERROR_UNKNOWN_PRINTPROCESSOR: "The print processor is unknown.",
    ERROR_INVALID_DATATYPE: "The specified datatype is invalid.",
}

# Standard access rights (winnt.h).
DELETE = 0x10000
READ_CONTROL = 0x20000
WRITE_DAC = 0x40000
WRITE_OWNER = 0x80000
STANDARD_RIGHTS_REQUIRED = 0xF0000

# The win32print constants the transport reads, with winspool.h's values.
WIN32PRINT_CONSTANTS: dict[str, int] = {
    "PRINTER_STATUS_PAUSED": 0x1,
    "PRINTER_STATUS_ERROR": 0x2,
    "PRINTER_STATUS_PENDING_DELETION": 0x4,
    "PRINTER_STATUS_PAPER_JAM": 0x8,
    "PRINTER_STATUS_PAPER_OUT": 0x10,
    "PRINTER_STATUS_MANUAL_FEED": 0x20,
    "PRINTER_STATUS_PAPER_PROBLEM": 0x40,
    "PRINTER_STATUS_OFFLINE": 0x80,
    "PRINTER_STATUS_IO_ACTIVE": 0x100,
    "PRINTER_STATUS_BUSY": 0x200,
    "PRINTER_STATUS_PRINTING": 0x400,
    "PRINTER_STATUS_OUTPUT_BIN_FULL": 0x800,
    "PRINTER_STATUS_NOT_AVAILABLE": 0x1000,
    "PRINTER_STATUS_WAITING": 0x2000,
    "PRINTER_STATUS_PROCESSING": 0x4000,
    "PRINTER_STATUS_INITIALIZING": 0x8000,
    "PRINTER_STATUS_WARMING_UP": 0x10000,
    "PRINTER_STATUS_TONER_LOW": 0x20000,
    "PRINTER_STATUS_NO_TONER": 0x40000,
    "PRINTER_STATUS_PAGE_PUNT": 0x80000,
    "PRINTER_STATUS_USER_INTERVENTION": 0x100000,
    "PRINTER_STATUS_OUT_OF_MEMORY": 0x200000,
    "PRINTER_STATUS_DOOR_OPEN": 0x400000,
    "PRINTER_STATUS_SERVER_UNKNOWN": 0x800000,
    "PRINTER_STATUS_POWER_SAVE": 0x1000000,
    "PRINTER_ATTRIBUTE_QUEUED": 0x1,
    "PRINTER_ATTRIBUTE_DIRECT": 0x2,
    "PRINTER_ATTRIBUTE_DEFAULT": 0x4,
    "PRINTER_ATTRIBUTE_SHARED": 0x8,
    "PRINTER_ATTRIBUTE_NETWORK": 0x10,
    "PRINTER_ATTRIBUTE_HIDDEN": 0x20,
    "PRINTER_ATTRIBUTE_LOCAL": 0x40,
    "PRINTER_ATTRIBUTE_ENABLE_DEVQ": 0x80,
    "PRINTER_ATTRIBUTE_KEEPPRINTEDJOBS": 0x100,
    "PRINTER_ATTRIBUTE_DO_COMPLETE_FIRST": 0x200,
    "PRINTER_ATTRIBUTE_WORK_OFFLINE": 0x400,
    "PRINTER_ATTRIBUTE_ENABLE_BIDI": 0x800,
    "PRINTER_ATTRIBUTE_RAW_ONLY": 0x1000,
    "PRINTER_ATTRIBUTE_PUBLISHED": 0x2000,
    "JOB_STATUS_PAUSED": 0x1,
    "JOB_STATUS_ERROR": 0x2,
    "JOB_STATUS_DELETING": 0x4,
    "JOB_STATUS_SPOOLING": 0x8,
    "JOB_STATUS_PRINTING": 0x10,
    "JOB_STATUS_OFFLINE": 0x20,
    "JOB_STATUS_PAPEROUT": 0x40,
    "JOB_STATUS_PRINTED": 0x80,
    "JOB_STATUS_DELETED": 0x100,
    "JOB_STATUS_BLOCKED_DEVQ": 0x200,
    "JOB_STATUS_USER_INTERVENTION": 0x400,
    "JOB_STATUS_RESTART": 0x800,
    "JOB_STATUS_COMPLETE": 0x1000,
    "JOB_CONTROL_PAUSE": 1,
    "JOB_CONTROL_RESUME": 2,
    "JOB_CONTROL_CANCEL": 3,
    "JOB_CONTROL_RESTART": 4,
    "JOB_CONTROL_DELETE": 5,
    "JOB_CONTROL_SENT_TO_PRINTER": 6,
    "JOB_CONTROL_LAST_PAGE_EJECTED": 7,
    "JOB_POSITION_UNSPECIFIED": 0,
    "PRINTER_CONTROL_PAUSE": 1,
    "PRINTER_CONTROL_RESUME": 2,
    "PRINTER_CONTROL_PURGE": 3,
    "PRINTER_CONTROL_SET_STATUS": 4,
    "PRINTER_ACCESS_ADMINISTER": 0x4,
    "PRINTER_ACCESS_USE": 0x8,
    "JOB_ACCESS_ADMINISTER": 0x10,
    "JOB_ACCESS_READ": 0x20,
    "PRINTER_ALL_ACCESS": STANDARD_RIGHTS_REQUIRED | 0x4 | 0x8,
    "PRINTER_READ": READ_CONTROL | 0x8,
    "PRINTER_WRITE": READ_CONTROL | 0x8,
    "PRINTER_EXECUTE": READ_CONTROL | 0x8,
    "PRINTER_ENUM_DEFAULT": 0x1,
    "PRINTER_ENUM_LOCAL": 0x2,
    "PRINTER_ENUM_CONNECTIONS": 0x4,
    "PRINTER_ENUM_NAME": 0x8,
    "PRINTER_ENUM_REMOTE": 0x10,
    "PRINTER_ENUM_SHARED": 0x20,
    "PRINTER_ENUM_NETWORK": 0x40,
    "JOB_INFO_1": 1,
    "PRINTER_INFO_1": 1,
}
C = types.SimpleNamespace(**WIN32PRINT_CONSTANTS)

# winsvc.h service states.
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_ACCEPT_STOP = 0x1

# GetDeviceCaps indexes (wingdi.h).
HORZRES = 8
VERTRES = 10
LOGPIXELSX = 88
LOGPIXELSY = 90

#: The keys of pywin32's PRINTER_INFO_2 dict, in its order (PyWinObject_FromPRINTER_INFO).
PRINTER_INFO_2_KEYS = (
    "pServerName",
    "pPrinterName",
    "pShareName",
    "pPortName",
    "pDriverName",
    "pComment",
    "pLocation",
    "pDevMode",
    "pSepFile",
    "pPrintProcessor",
    "pDatatype",
    "pParameters",
    "pSecurityDescriptor",
    "Attributes",
    "Priority",
    "DefaultPriority",
    "StartTime",
    "UntilTime",
    "Status",
    "cJobs",
    "AveragePPM",
)
#: The keys of pywin32's JOB_INFO_1 dict (JobtoPy level 1).
JOB_INFO_1_KEYS = (
    "JobId",
    "pPrinterName",
    "pMachineName",
    "pUserName",
    "pDocument",
    "pDatatype",
    "pStatus",
    "Status",
    "Priority",
    "Position",
    "TotalPages",
    "PagesPrinted",
    "Submitted",
)
#: The datatype GDI documents are spooled as.
EMF_DATATYPE = "NT EMF 1.008"
#: Longest a call may wait on a hung spooler before the fake gives up (tests stay bounded).
HANG_LIMIT = 20.0
#: poll(2) called so that the GIL stays held (ctypes.PyDLL does not release it).
_poll = ctypes.PyDLL(None).poll
_poll.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int)


class error(Exception):
    """pywintypes.error as PyWinGlobals_Ensure defines it (PyWinTypesmodule.cpp): ``args``
    is (winerror, funcname, strerror), also as attributes; missing ones are None."""

    def __init__(self, *args: Any) -> None:
        self.winerror = args[0] if len(args) > 0 else None
        self.funcname = args[1] if len(args) > 1 else None
        self.strerror = args[2] if len(args) > 2 else None
        Exception.__init__(self, *args)


# pywin32 runs the class statement with __name__ "pywintypes": that is where it says it is from.
error.__module__ = "pywintypes"


class UIError(Exception):
    """win32ui.error: raised with a plain message (pywin32's RETURN_ERR), no error code."""


class TimeType(datetime):
    """pywintypes.TimeType (pywintypes.datetime): SYSTEMTIME values come back in UTC."""


#: DEVMODE dmFields bits (wingdi.h) for the paper.
DM_PAPERSIZE = 0x2
DM_PAPERLENGTH = 0x4
DM_PAPERWIDTH = 0x8


class PyDEVMODE:
    """pywintypes' PyDEVMODEW: the paper members spoonprint sets (PyDEVMODE.cpp: Fields,
    PaperSize, PaperLength and PaperWidth, lengths in tenths of a millimetre)."""

    def __init__(self, device_name: str, width: int = 720, length: int = 32760) -> None:
        self.DeviceName = device_name
        self.Fields = DM_PAPERSIZE
        self.PaperSize = 256  # DMPAPER_USER: the driver's own form
        self.PaperWidth = width
        self.PaperLength = length


class PySECURITY_DESCRIPTOR:
    """pywintypes' PySECURITY_DESCRIPTOR, opaque here."""


class PyPrinterHANDLE:
    """win32print's PyPrinterHANDLE (OpenPrinter's result); ``int()`` gives the handle."""

    def __init__(self, value: int) -> None:
        self.handle = value

    def __int__(self) -> int:
        return self.handle


def _system_time() -> TimeType:
    now = datetime.now(UTC)
    # SYSTEMTIME has milliseconds.
    return TimeType(
        now.year, now.month, now.day, now.hour, now.minute, now.second,
        now.microsecond // 1000 * 1000, tzinfo=UTC,
    )  # fmt: skip


@dataclass
class Drawing:
    """One picture drawn on a page: what ImageWin.Dib(image).draw(hdc, rect) would print."""

    image: Image.Image
    rect: tuple[int, int, int, int]


@dataclass
class FakeJob:
    job_id: int
    printer: str
    document: str
    datatype: str
    user: str
    machine: str
    submitted: TimeType
    status: int = 0
    #: RAW bytes written (WritePrinter).
    data: bytearray = field(default_factory=bytearray)
    #: GDI pages, each the pictures drawn on it; RAW jobs count StartPagePrinter pages here.
    pages: list[list[Drawing]] = field(default_factory=list)
    pages_printed: int = 0
    complete: bool = False
    started_at: float | None = None
    deleting_since: float | None = None
    stick: str | None = None
    undeletable: bool = False

    def info(self, position: int) -> dict[str, Any]:
        """The job as win32print's JOB_INFO_1 dict."""
        return {
            "JobId": self.job_id,
            "pPrinterName": self.printer,
            "pMachineName": self.machine,
            "pUserName": self.user,
            "pDocument": self.document,
            "pDatatype": self.datatype,
            "pStatus": None,
            "Status": self.status,
            "Priority": 1,
            "Position": position,
            "TotalPages": len(self.pages),
            "PagesPrinted": self.pages_printed,
            "Submitted": self.submitted,
        }


@dataclass
class FakePrinter:
    name: str
    status: int = 0
    attributes: int = C.PRINTER_ATTRIBUTE_LOCAL | C.PRINTER_ATTRIBUTE_ENABLE_BIDI
    driver: str = "Star TSP100 Cutter (TSP143)"
    #: DRIVER_INFO_8: cVersion (3: v3, 4: v4) and dwPrinterDriverAttributes.
    driver_version: int = 3
    driver_attributes: int = 0
    manufacturer: str = "Star Micronics"
    print_processor: str = "winprint"
    #: The driver gives the printer a DEVMODE (GetPrinter level 2's pDevMode is NULL if not).
    has_devmode: bool = True
    #: GetPrinterDriverW answers level 8 (an old print server refuses it: error 124).
    answers_level_8: bool = True
    #: The datatypes the printer's queue takes (StartDocPrinter refuses others: 1804).
    datatypes: tuple[str, ...] = WINPRINT_DATATYPES
    port: str = "USB001"
    #: Printable area in dots (GetDeviceCaps HORZRES / VERTRES) of the printer's Printing
    #: Defaults, what a DC gets without a DEVMODE under LocalSystem: 72 mm x 3276 mm.
    page_width: int = 576
    page_height: int = 26200
    dpi: int = 203
    #: The longest page the driver draws, in dots, whatever a DEVMODE asks.
    longest_page: int = 26200
    #: The Printing Defaults' paper as its DEVMODE says: (width, length) in tenths of a mm.
    defaults_paper: tuple[int, int] = (720, 32760)
    #: Printing Preferences per account: (width, height) dots, used over the defaults.
    preferences: dict[str, tuple[int, int]] = field(default_factory=dict)

    def area(self, user: str, devmode: PyDEVMODE | None) -> tuple[int, int]:
        """HORZRES, VERTRES of a DC: an explicit DEVMODE's paper when its Fields say so;
        else the account's Printing Preferences, else the Printing Defaults."""
        paper = DM_PAPERWIDTH | DM_PAPERLENGTH
        if devmode is not None and devmode.Fields & paper == paper:
            # Thermal heads have 8 dots a millimetre; the driver caps the page length.
            length = min(devmode.PaperLength * 8 // 10, self.longest_page)
            return devmode.PaperWidth * 8 // 10, length
        return self.preferences.get(user, (self.page_width, self.page_height))

    #: New jobs do not move: "queued" never start, "printing" never finish.
    stick: str | None = None
    #: Deleting a job never finishes (the classic job stuck "Deleting").
    undeletable: bool = False
    jobs: list[FakeJob] = field(default_factory=list)
    printed: list[FakeJob] = field(default_factory=list)
    deleted: list[FakeJob] = field(default_factory=list)

    def can_print(self) -> bool:
        held = self.status & C.PRINTER_STATUS_PAUSED
        held |= self.attributes & C.PRINTER_ATTRIBUTE_WORK_OFFLINE
        faults = (
            C.PRINTER_STATUS_OFFLINE
            | C.PRINTER_STATUS_NOT_AVAILABLE
            | C.PRINTER_STATUS_PAPER_OUT
            | C.PRINTER_STATUS_DOOR_OPEN
            | C.PRINTER_STATUS_PAPER_JAM
            | C.PRINTER_STATUS_ERROR
        )
        return not held and not self.status & faults


@dataclass
class _Open:
    """An open printer handle: its printer, granted access and the spooler run it belongs to."""

    printer: str
    access: int
    generation: int
    doc: FakeJob | None = None
    closed: bool = False


class FakeSpooler:
    """A small Windows print spooler; see the module docstring."""

    def __init__(self, *, print_seconds: float = 0.1, delete_seconds: float = 0.1) -> None:
        self.print_seconds = print_seconds
        self.delete_seconds = delete_seconds
        self.running = True
        #: Whether this process has administrator rights.
        self.admin = False
        self.user = "spoonprint"
        self.machine = "\\\\POS-PC"
        self.restarts = 0
        #: Services that depend on the Spooler: name -> running.
        self.dependents: dict[str, bool] = {"PrintNotify": True}
        #: Asked to stop, the Spooler stays in STOP_PENDING (see spooler_service).
        self.stop_hangs = False
        self.stopping = False
        self.services = _services(self)
        #: The spoonprint Windows service and its account (None: not installed).
        self.service_name = "spoonprint"
        self.service_account: str | None = None
        #: Every call made, by its pywin32 name.
        self.calls: list[str] = []
        self._printers: dict[str, FakePrinter] = {}
        self._lock = threading.RLock()
        self._answering = threading.Event()
        #: Set in the threads that answer other processes (tests/fakes/pywin32_remote.py).
        self.remote = threading.local()
        #: The pipe :meth:`answer` writes to, ending a GIL-holding wait (see :meth:`hang`).
        self._wake: tuple[int, int] | tuple[()] = ()
        self._hung_calls: frozenset[str] | None = None
        self._answering.set()
        self._handles: dict[int, _Open] = {}
        self._dcs: dict[int, FakeDC] = {}
        self._next_job = 2
        self._next_handle = 0x2A0
        self._generation = 0

    # -- staging --------------------------------------------------------------------------

    def add_printer(self, name: str, **settings: Any) -> FakePrinter:
        printer = FakePrinter(name, **settings)
        self._printers[name.casefold()] = printer
        return printer

    def printer(self, name: str) -> FakePrinter:
        return self._printers[name.casefold()]

    def add_job(
        self, printer: str, document: str, *, user: str | None = None, stick: str | None = None
    ) -> FakeJob:
        """A complete job some program submitted (``user``: another account)."""
        with self._lock:
            job = self._new_job(self.printer(printer), document, "RAW", user or self.user)
            job.complete = True
            job.status &= ~C.JOB_STATUS_SPOOLING
            job.pages.append([])
            job.stick = stick
            return job

    def fail_job(self, job_id: int) -> None:
        """The job goes into error (JOB_STATUS_ERROR) and stays in the queue."""
        with self._lock:
            job = self._find(job_id)
            assert job is not None, f"no job {job_id}"
            job.status |= C.JOB_STATUS_ERROR
            job.stick = "queued" if job.started_at is None else "printing"

    def stop_service(self) -> None:
        """The Spooler service stops (crashes): spooler calls fail until it is restarted."""
        with self._lock:
            self.running = False

    def hang(self, *funcnames: str) -> None:
        """The spooler stops answering: calls block until :meth:`answer`. With names, only
        those calls do (a driver stalled in WritePrinter; the rest still answer)."""
        self._hung_calls = frozenset(funcnames) or None
        self._answering.clear()
        self._wake = os.pipe()

    def answer(self) -> None:
        self._answering.set()
        if self._wake:
            os.write(self._wake[1], b"!")

    def jobs(self, printer: str) -> list[FakeJob]:
        with self._lock:
            self._advance()
            return list(self.printer(printer).jobs)

    def driver_facts(self, handle: int) -> dict[str, Any] | None:
        """What GetPrinterDriverW level 8 reports for an open handle; None if unknown."""
        with self._lock:
            opened = self._handles.get(handle)
            if opened is None or opened.closed or opened.generation != self._generation:
                return None
            printer = self.printer(opened.printer)
            return {
                "level_8": printer.answers_level_8,
                "cVersion": printer.driver_version,
                "dwPrinterDriverAttributes": printer.driver_attributes,
                "pName": printer.driver,
                "pEnvironment": "Windows x64",
                "pDefaultDataType": "RAW" if printer.driver_version < 4 else "XPS2GDI",
                "pszMfgName": printer.manufacturer,
                "pszPrintProcessor": printer.print_processor,
            }

    @contextmanager
    def installed(self) -> Iterator[FakeSpooler]:
        """The fake pywin32 modules importable for the duration, as pywin32's are: found on
        import, not imported beforehand. ``import win32print`` loads win32print alone; its
        errors are ``pywintypes.error`` all the same, because pywin32 makes that class in C
        (PyWinGlobals_Ensure) without importing the ``pywintypes`` module."""
        with importable(self.modules()), windows_ctypes(self.driver_facts):
            try:
                yield self
            finally:
                self.answer()  # never leave a thread parked in a hang

    def modules(self) -> dict[str, types.ModuleType]:
        from tests.fakes import spooler_service as service
        from tests.fakes.pywin32_gdi import GdiPrint, Win32Gui  # they build on this module

        pywintypes = _module("pywintypes", error=error, TimeType=TimeType, datetime=TimeType)
        win32print = _module("win32print", **WIN32PRINT_CONSTANTS)
        _bind(win32print, _Win32Print(self))
        _bind(win32print, GdiPrint(self))
        win32ui = _module("win32ui", error=UIError)
        _bind(win32ui, _Win32UI(self))
        win32gui = _module("win32gui", error=error)
        _bind(win32gui, Win32Gui(self))
        win32service = _module("win32service", error=error, **service.CONSTANTS)
        _bind(win32service, service.Win32Service(self))
        win32serviceutil = _module("win32serviceutil", error=error)
        _bind(win32serviceutil, service.Win32ServiceUtil(self))
        shell = _module("win32com.shell.shell")
        _bind(shell, _Shell(self))
        shell_package = _module("win32com.shell", shell=shell, __path__=[])
        win32com = _module("win32com", shell=shell_package, __path__=[])
        return {
            "pywintypes": pywintypes,
            "win32print": win32print,
            "win32ui": win32ui,
            "win32gui": win32gui,
            "win32service": win32service,
            "win32serviceutil": win32serviceutil,
            "win32com": win32com,
            "win32com.shell": shell_package,
            "win32com.shell.shell": shell,
        }

    # -- the drawing stand-in -------------------------------------------------------------

    def draw(self, hdc: int, image: Image.Image, rect: tuple[int, int, int, int]) -> None:
        """Stands in for Pillow's ``ImageWin.Dib(image).draw(hdc, rect)`` (StretchDIBits on
        the printer DC), which only exists on Windows: records the picture on the page."""
        with self._lock:
            dc = self._dcs.get(hdc)
            if dc is None or dc.page is None:
                raise RuntimeError(f"drawing on HDC {hdc:#x} outside a page")
            left, top, right, bottom = rect
            assert all(isinstance(v, int) for v in rect), rect
            assert right > left and bottom > top, rect
            dc.page.append(Drawing(image.copy(), rect))

    # -- the spooler's insides ------------------------------------------------------------

    def winerror(self, code: int, funcname: str) -> error:
        """The pywintypes.error a failing call raises."""
        return error(code, funcname, MESSAGES[code])

    @contextmanager
    def call(self, funcname: str, *, spooler: bool = True) -> Iterator[None]:
        """Every spooler call: wait while hung, fail while stopped, let time pass."""
        self.calls.append(funcname)
        hung = self._hung_calls is None or funcname in self._hung_calls
        if spooler and hung and not self._wait_answering():
            raise RuntimeError(f"fake spooler hung for more than {HANG_LIMIT} s in {funcname}")
        with self._lock:
            if spooler and not self.running:
                raise self.winerror(RPC_S_SERVER_UNAVAILABLE, funcname)
            self._advance()
            yield

    def _wait_answering(self) -> bool:
        """Wait while hung. Called in this process, the wait keeps the GIL, as pywin32's
        calls do: one ``poll(2)`` through ``ctypes.PyDLL`` (which does not release it) on a
        pipe that :meth:`answer` writes to, so no other thread of the process runs until
        the spooler answers from outside, or the wait ends at HANG_LIMIT. Serving another
        process (pywin32_remote), that process's client keeps its own GIL instead."""
        if getattr(self.remote, "active", False):
            return self._answering.wait(HANG_LIMIT)
        if self._answering.is_set():
            return True
        pollfd = (ctypes.c_int * 2)(self._wake[0], 1)  # struct pollfd, POLLIN
        _poll(ctypes.addressof(pollfd), 1, int(HANG_LIMIT * 1000))
        return self._answering.is_set()

    def lookup(self, name: object, funcname: str) -> FakePrinter:
        if not isinstance(name, str):
            raise TypeError(f"{funcname}: printer name must be a string")
        printer = self._printers.get(name.casefold())
        if printer is None:
            raise self.winerror(ERROR_INVALID_PRINTER_NAME, funcname)
        return printer

    def open(self, printer: FakePrinter, access: int, funcname: str) -> int:
        """A handle with ``access``; non-administrators get PRINTER_ACCESS_USE and
        READ_CONTROL only (the default printer security: Everyone may print)."""
        if not self.admin and access & ~(C.PRINTER_ACCESS_USE | READ_CONTROL):
            raise self.winerror(ERROR_ACCESS_DENIED, funcname)
        self._next_handle += 4
        self._handles[self._next_handle] = _Open(printer.name, access, self._generation)
        return self._next_handle

    def handle(self, handle: object, funcname: str) -> tuple[_Open, FakePrinter]:
        if not isinstance(handle, PyPrinterHANDLE):
            raise TypeError("The object is not a PyHANDLE object")
        opened = self._handles.get(handle.handle)
        if opened is None or opened.closed or opened.generation != self._generation:
            raise self.winerror(ERROR_INVALID_HANDLE, funcname)
        return opened, self.printer(opened.printer)

    def _new_job(self, printer: FakePrinter, document: str, datatype: str, user: str) -> FakeJob:
        job = FakeJob(
            job_id=self._next_job,
            printer=printer.name,
            document=document,
            datatype=datatype,
            user=user,
            machine=self.machine,
            submitted=_system_time(),
            status=C.JOB_STATUS_SPOOLING,
            stick=printer.stick,
            undeletable=printer.undeletable,
        )
        self._next_job += 1
        printer.jobs.append(job)
        return job

    def _find(self, job_id: int, printer: FakePrinter | None = None) -> FakeJob | None:
        printers = [printer] if printer is not None else list(self._printers.values())
        return next((j for p in printers for j in p.jobs if j.job_id == job_id), None)

    def finish_spooling(self, job: FakeJob) -> None:
        job.complete = True
        job.status &= ~C.JOB_STATUS_SPOOLING

    def delete(self, job: FakeJob) -> None:
        """SetJob(JOB_CONTROL_DELETE), or a person cancelling it in the queue window: the
        job shows JOB_STATUS_DELETING, then leaves the queue."""
        with self._lock:
            if job.deleting_since is None:
                job.deleting_since = time.monotonic()
            job.status |= C.JOB_STATUS_DELETING

    def drop(self, job: FakeJob) -> None:
        """AbortPrinter / AbortDoc, or a deletion finished between two looks: the job and
        its spool file go at once."""
        with self._lock:
            printer = self.printer(job.printer)
            if job in printer.jobs:
                printer.jobs.remove(job)
                printer.deleted.append(job)

    def restart(self) -> None:
        self._generation += 1
        for printer in self._printers.values():
            for job in list(printer.jobs):
                if job.deleting_since is not None or not job.complete:
                    printer.jobs.remove(job)
                    printer.deleted.append(job)
                else:  # back in the queue from its spool file, from the top
                    job.stick = None
                    job.started_at = None
                    job.status &= ~(C.JOB_STATUS_PRINTING | C.JOB_STATUS_ERROR)
        self.running = True
        self.restarts += 1

    def _advance(self) -> None:
        """Let time pass: deletions finish, and each printer that can prints its head job."""
        if not self.running:
            return
        now = time.monotonic()
        for printer in self._printers.values():
            for job in list(printer.jobs):
                gone = job.deleting_since is not None and not job.undeletable
                if gone and now - (job.deleting_since or now) >= self.delete_seconds:
                    printer.jobs.remove(job)
                    printer.deleted.append(job)
            if printer.can_print():
                self._print_head(printer, now)

    def _print_head(self, printer: FakePrinter, now: float) -> None:
        for job in list(printer.jobs):
            if job.status & C.JOB_STATUS_PRINTED:
                continue  # kept after printing ("Keep printed documents")
            if job.deleting_since is not None:
                if job.undeletable:
                    return  # a job that never finishes deleting holds the queue
                continue
            if not job.complete or job.stick == "queued":
                return
            if job.started_at is None:
                job.started_at = now
                job.status |= C.JOB_STATUS_PRINTING
            if job.stick == "printing" or now - job.started_at < self.print_seconds:
                return
            job.status = (job.status & ~C.JOB_STATUS_PRINTING) | C.JOB_STATUS_PRINTED
            job.pages_printed = len(job.pages)
            # "Keep printed documents" leaves the job listed, JOB_STATUS_PRINTED, for good.
            if not printer.attributes & C.PRINTER_ATTRIBUTE_KEEPPRINTEDJOBS:
                printer.jobs.remove(job)
            printer.printed.append(job)


def _services(spooler: FakeSpooler) -> Any:
    from tests.fakes.spooler_service import Services

    return Services(spooler)


@contextmanager
def windows_ctypes(describe: Any) -> Iterator[None]:
    """``ctypes.WinDLL`` and ``ctypes.get_last_error`` for the duration, as on Windows."""
    from tests.fakes.winspool_dll import ctypes_names  # it imports spoonprint's structure

    names = ctypes_names(describe)
    saved = {name: getattr(ctypes, name) for name in names if hasattr(ctypes, name)}
    for name, value in names.items():
        setattr(ctypes, name, value)
    try:
        yield
    finally:
        for name in names:
            if name in saved:
                setattr(ctypes, name, saved[name])
            else:
                delattr(ctypes, name)


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"fake {name} (tests/fakes/pywin32.py)")
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def _bind(module: types.ModuleType, api: object) -> None:
    """The API object's public methods become the module's functions."""
    for name in dir(api):
        if name[0].isupper():
            setattr(module, name, getattr(api, name))


class _Win32Print:
    """win32print (pywin32 win32/src/win32print/win32print.cpp)."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler

    def OpenPrinter(self, printer: str, Defaults: dict[str, Any] | None = None, /) -> Any:
        """win32print.OpenPrinter(printer, Defaults=None) -> PyPrinterHANDLE. ``Defaults`` is a
        PRINTER_DEFAULTS dict: DesiredAccess (required), pDataType, pDevMode."""
        s = self._s
        with s.call("OpenPrinter"):
            access = C.PRINTER_ACCESS_USE
            if Defaults is not None:
                if not isinstance(Defaults, dict):
                    raise TypeError("PRINTER_DEFAULTS must be a dictionary")
                extra = set(Defaults) - {"DesiredAccess", "pDataType", "pDevMode"}
                if "DesiredAccess" not in Defaults or extra:
                    raise TypeError(f"bad PRINTER_DEFAULTS keys {sorted(Defaults)}")
                access = int(Defaults["DesiredAccess"])
            return PyPrinterHANDLE(s.open(s.lookup(printer, "OpenPrinter"), access, "OpenPrinter"))

    def ClosePrinter(self, hPrinter: Any, /) -> None:
        """win32print.ClosePrinter(hPrinter)."""
        with self._s.call("ClosePrinter"):
            opened, _ = self._s.handle(hPrinter, "ClosePrinter")
            opened.closed = True

    def GetPrinter(self, hPrinter: Any, Level: int, /) -> dict[str, Any]:
        """win32print.GetPrinter(hPrinter, Level) -> PRINTER_INFO_* dict (levels 2 and 5)."""
        if Level not in (2, 5):
            raise NotImplementedError("the fake covers GetPrinter levels 2 and 5")
        s = self._s
        with s.call("GetPrinter"):
            _, printer = s.handle(hPrinter, "GetPrinter")
            if Level == 5:
                return {
                    "pPrinterName": printer.name,
                    "pPortName": printer.port,
                    "Attributes": printer.attributes,
                    "DeviceNotSelectedTimeout": 15000,
                    "TransmissionRetryTimeout": 45000,
                }
            return {
                "pServerName": None,
                "pPrinterName": printer.name,
                "pShareName": None,
                "pPortName": printer.port,
                "pDriverName": printer.driver,
                "pComment": None,
                "pLocation": None,
                # NULL (None) when the driver gives the printer no DEVMODE.
                "pDevMode": PyDEVMODE(printer.name, *printer.defaults_paper)
                if printer.has_devmode
                else None,
                "pSepFile": None,
                "pPrintProcessor": "winprint",
                "pDatatype": "RAW",
                "pParameters": None,
                "pSecurityDescriptor": PySECURITY_DESCRIPTOR(),
                "Attributes": printer.attributes,
                "Priority": 1,
                "DefaultPriority": 0,
                "StartTime": 0,
                "UntilTime": 0,
                "Status": printer.status,
                "cJobs": len(printer.jobs),
                "AveragePPM": 0,
            }

    def SetPrinter(self, hPrinter: Any, Level: int, pPrinter: Any, Command: int, /) -> None:
        """win32print.SetPrinter(hPrinter, Level, pPrinter, Command): level 0 with a
        PRINTER_CONTROL_* command, or level 2 with a full PRINTER_INFO_2 dict and Command 0.
        Both need a handle opened with PRINTER_ACCESS_ADMINISTER."""
        s = self._s
        with s.call("SetPrinter"):
            opened, printer = s.handle(hPrinter, "SetPrinter")
            if Level == 0:
                if pPrinter is not None and not isinstance(pPrinter, int):
                    raise TypeError(
                        "Info must be None or a PRINTER_STATUS_* integer when level is 0."
                    )
                commands = (C.PRINTER_CONTROL_PAUSE, C.PRINTER_CONTROL_RESUME)
                if Command not in commands:
                    raise s.winerror(ERROR_INVALID_PARAMETER, "SetPrinter")
            elif Level == 2:
                info = _printer_info_2(pPrinter)
                if Command != 0:
                    raise s.winerror(ERROR_INVALID_PARAMETER, "SetPrinter")
            elif Level == 5:
                info = _printer_info_5(pPrinter)
                if Command != 0:
                    raise s.winerror(ERROR_INVALID_PARAMETER, "SetPrinter")
            else:
                raise NotImplementedError("the fake covers SetPrinter levels 0, 2 and 5")
            if not opened.access & C.PRINTER_ACCESS_ADMINISTER:
                raise s.winerror(ERROR_ACCESS_DENIED, "SetPrinter")
            if Level == 0:
                if Command == C.PRINTER_CONTROL_PAUSE:
                    printer.status |= C.PRINTER_STATUS_PAUSED
                else:
                    printer.status &= ~C.PRINTER_STATUS_PAUSED
                return
            if info.get("pSecurityDescriptor") is not None and not opened.access & WRITE_DAC:
                raise s.winerror(ERROR_ACCESS_DENIED, "SetPrinter")
            # Only Attributes is applied: the one member the transport changes.
            printer.attributes = int(info["Attributes"])

    def EnumJobs(
        self, hPrinter: Any, FirstJob: int, NoJobs: int, Level: int = 1, /
    ) -> tuple[dict[str, Any], ...]:
        """win32print.EnumJobs(hPrinter, FirstJob, NoJobs, Level=1) -> tuple of JOB_INFO_1
        dicts, in queue order."""
        if Level != 1:
            raise NotImplementedError("the fake covers JOB_INFO_1")
        s = self._s
        with s.call("EnumJobs"):
            _, printer = s.handle(hPrinter, "EnumJobs")
            chosen = printer.jobs[FirstJob : FirstJob + NoJobs]
            return tuple(job.info(FirstJob + i + 1) for i, job in enumerate(chosen))

    def GetJob(self, hPrinter: Any, JobID: int, Level: int = 1, /) -> dict[str, Any]:
        """win32print.GetJob(hPrinter, JobID, Level=1) -> JOB_INFO_1 dict; a job not in the
        queue fails with ERROR_INVALID_PARAMETER (MS-RPRN RpcGetJob)."""
        if Level != 1:
            raise NotImplementedError("the fake covers JOB_INFO_1")
        s = self._s
        with s.call("GetJob"):
            _, printer = s.handle(hPrinter, "GetJob")
            job = s._find(JobID, printer)
            if job is None:
                raise s.winerror(ERROR_INVALID_PARAMETER, "GetJob")
            return job.info(printer.jobs.index(job) + 1)

    def SetJob(self, hPrinter: Any, JobID: int, Level: int, JobInfo: Any, Command: int, /) -> None:
        """win32print.SetJob(hPrinter, JobID, Level, JobInfo, Command): level 0 with JobInfo
        None and a JOB_CONTROL_* command. Its owner may control a job; others need
        PRINTER_ACCESS_ADMINISTER."""
        s = self._s
        if Level != 0:
            raise NotImplementedError("the fake covers SetJob level 0")
        if JobInfo is not None:
            raise TypeError("Info must be None when level is 0.")
        with s.call("SetJob"):
            opened, printer = s.handle(hPrinter, "SetJob")
            job = s._find(JobID, printer)
            if job is None:
                raise s.winerror(ERROR_INVALID_PARAMETER, "SetJob")
            if job.user != s.user and not opened.access & C.PRINTER_ACCESS_ADMINISTER:
                raise s.winerror(ERROR_ACCESS_DENIED, "SetJob")
            if Command not in (C.JOB_CONTROL_DELETE, C.JOB_CONTROL_CANCEL):
                raise NotImplementedError("the fake covers JOB_CONTROL_DELETE / CANCEL")
            s.delete(job)

    def StartDocPrinter(self, hprinter: Any, level: int, docinfo: Any, /) -> int:
        """win32print.StartDocPrinter(hprinter, 1, (docName, outputFile, dataType)) -> JobId."""
        s = self._s
        if level != 1:
            raise ValueError("This information level is not supported")
        doc_name, output_file, datatype = docinfo
        if not isinstance(doc_name, str) or output_file is not None:
            raise TypeError("the fake prints documents with a name to the printer")
        with s.call("StartDocPrinter"):
            opened, printer = s.handle(hprinter, "StartDocPrinter")
            if opened.doc is not None:
                raise s.winerror(ERROR_INVALID_PARAMETER, "StartDocPrinter")
            if datatype is not None and datatype not in printer.datatypes:
                raise s.winerror(ERROR_INVALID_DATATYPE, "StartDocPrinter")
            opened.doc = s._new_job(printer, doc_name, datatype or "RAW", s.user)
            return opened.doc.job_id

    def StartPagePrinter(self, hprinter: Any, /) -> None:
        """win32print.StartPagePrinter(hprinter)."""
        with self._s.call("StartPagePrinter"):
            self._doc(hprinter, "StartPagePrinter").pages.append([])

    def WritePrinter(self, hprinter: Any, buf: Any, /) -> int:
        """win32print.WritePrinter(hprinter, buf) -> bytes written (any buffer object)."""
        data = bytes(memoryview(buf))
        with self._s.call("WritePrinter"):
            job = self._doc(hprinter, "WritePrinter")
            _, printer = self._s.handle(hprinter, "WritePrinter")
            # KB2779300: a v4 / XPSDrv driver takes a RAW job's bytes and drops them; the
            # job prints (nothing) and leaves the queue as printed.
            xps = printer.driver_version >= 4 or printer.driver_attributes & PRINTER_DRIVER_XPS
            if not (xps and job.datatype == "RAW"):
                job.data += data
            return len(data)

    def EndPagePrinter(self, hprinter: Any, /) -> None:
        """win32print.EndPagePrinter(hprinter)."""
        with self._s.call("EndPagePrinter"):
            self._doc(hprinter, "EndPagePrinter")

    def EndDocPrinter(self, hPrinter: Any, /) -> None:
        """win32print.EndDocPrinter(hPrinter): the job is complete and may print."""
        s = self._s
        with s.call("EndDocPrinter"):
            opened, _ = s.handle(hPrinter, "EndDocPrinter")
            s.finish_spooling(self._doc(hPrinter, "EndDocPrinter"))
            opened.doc = None

    def AbortPrinter(self, hPrinter: Any, /) -> None:
        """win32print.AbortPrinter(hPrinter): deletes the spool file of the open document."""
        s = self._s
        with s.call("AbortPrinter"):
            opened, _ = s.handle(hPrinter, "AbortPrinter")
            s.drop(self._doc(hPrinter, "AbortPrinter"))
            opened.doc = None

    def EnumPrintProcessorDatatypes(
        self, ServerName: str | None, PrintProcessorName: str, /
    ) -> tuple[str, ...]:
        """win32print.EnumPrintProcessorDatatypes(ServerName, PrintProcessorName) -> tuple of
        datatype names (DATATYPES_INFO_1); an unknown processor fails with 1798."""
        s = self._s
        with s.call("EnumPrintProcessorDatatypes"):
            for printer in s._printers.values():
                if printer.print_processor.casefold() == PrintProcessorName.casefold():
                    return tuple(printer.datatypes)
            raise s.winerror(ERROR_UNKNOWN_PRINTPROCESSOR, "EnumPrintProcessorDatatypes")

    def EnumPrinters(
        self, flags: int, name: str | None = None, level: int = 1, /
    ) -> tuple[dict[str, Any], ...]:
        """win32print.EnumPrinters(flags, name=None, level=1) -> PRINTER_INFO_4 dicts (level 4)."""
        if level != 4:
            raise NotImplementedError("the fake covers EnumPrinters level 4")
        s = self._s
        with s.call("EnumPrinters"):
            return tuple(
                {"pPrinterName": p.name, "pServerName": None, "Attributes": p.attributes}
                for p in s._printers.values()
            )

    def _doc(self, handle: Any, funcname: str) -> FakeJob:
        opened, _ = self._s.handle(handle, funcname)
        if opened.doc is None:
            raise RuntimeError(f"fake: {funcname} without StartDocPrinter")
        if opened.doc.deleting_since is not None and funcname != "AbortPrinter":
            raise self._s.winerror(ERROR_PRINT_CANCELLED, funcname)
        return opened.doc


def _printer_info_2(info: Any) -> dict[str, Any]:
    """PRINTER_INFO_2 as pywin32 parses it for SetPrinter: every key required, none extra,
    pDevMode a PyDEVMODE (None is refused), pSecurityDescriptor optional."""
    if not isinstance(info, dict):
        raise TypeError("PRINTER_INFO_2 must be a dictionary")
    for position, key in enumerate(PRINTER_INFO_2_KEYS, start=1):
        if key not in info:
            raise TypeError(f"PRINTER_INFO_2() missing required argument '{key}' (pos {position})")
    extra = sorted(set(info) - set(PRINTER_INFO_2_KEYS))
    if extra:
        raise TypeError(f"'{extra[0]}' is an invalid keyword argument for PRINTER_INFO_2()")
    if not isinstance(info["pDevMode"], PyDEVMODE):
        raise TypeError("pDevMode must be a PyDEVMODE object")
    return info


PRINTER_INFO_5_KEYS = (
    "pPrinterName", "pPortName", "Attributes", "DeviceNotSelectedTimeout",
    "TransmissionRetryTimeout",
)  # fmt: skip


def _printer_info_5(info: Any) -> dict[str, Any]:
    """PRINTER_INFO_5 as pywin32 parses it ("OOkkk:PRINTER_INFO_5", keywords)."""
    if not isinstance(info, dict):
        raise TypeError("PRINTER_INFO_5 must be a dictionary")
    for position, key in enumerate(PRINTER_INFO_5_KEYS, start=1):
        if key not in info:
            raise TypeError(f"PRINTER_INFO_5() missing required argument '{key}' (pos {position})")
    extra = sorted(set(info) - set(PRINTER_INFO_5_KEYS))
    if extra:
        raise TypeError(f"'{extra[0]}' is an invalid keyword argument for PRINTER_INFO_5()")
    return info


class FakeDC:
    """win32ui's PyCDC for a printer (Pythonwin/win32dc.cpp); errors are win32ui.error."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler
        self.printer: FakePrinter | None = None
        self.job: FakeJob | None = None
        self.page: list[Drawing] | None = None
        self.hdc = 0
        #: The DEVMODE the DC was created with (win32gui.CreateDC); None: the account's.
        self.devmode: PyDEVMODE | None = None

    def CreatePrinterDC(self, printerName: str | None = None, /) -> None:
        """PyCDC.CreatePrinterDC(printerName=None): OpenPrinter, GetPrinter level 2 for the
        driver, CreateDC; "Unable to open printer" when that fails."""
        s = self._s
        try:
            with s.call("CreatePrinterDC"):
                if printerName is None:
                    raise NotImplementedError("the fake opens printers by name")
                self.printer = s.lookup(printerName, "OpenPrinter")
                s._next_handle += 4
                self.hdc = s._next_handle
                s._dcs[self.hdc] = self
        except error as exc:
            raise UIError("Unable to open printer") from exc

    def GetDeviceCaps(self, index: int, /) -> int:
        """PyCDC.GetDeviceCaps(index) -> int (HORZRES, VERTRES, LOGPIXELSX/Y here)."""
        printer = self._printer()
        width, height = printer.area(self._s.user, self.devmode)
        caps = {
            HORZRES: width,
            VERTRES: height,
            LOGPIXELSX: printer.dpi,
            LOGPIXELSY: printer.dpi,
        }
        return caps[index]

    def GetHandleOutput(self) -> int:
        """PyCDC.GetHandleOutput() -> the output HDC."""
        self._printer()
        return self.hdc

    def StartDoc(self, docName: str, outputFile: str | None = None, /) -> None:
        """PyCDC.StartDoc(docName, outputFile=None) -> None: pywin32 drops the job id that
        GDI's StartDoc returns."""
        s = self._s
        printer = self._printer()
        if self.job is not None or outputFile is not None:
            raise UIError("StartDoc failed")
        try:
            with s.call("StartDoc"):
                self.job = s._new_job(printer, docName, EMF_DATATYPE, s.user)
        except error as exc:
            raise UIError("StartDoc failed") from exc

    def StartPage(self) -> None:
        """PyCDC.StartPage()."""
        with self._gdi("StartPage", "StartPage failed"):
            if self.job is None or self.page is not None:
                raise UIError("StartPage failed")
            self.page = []

    def EndPage(self) -> None:
        """PyCDC.EndPage(); pywin32 words its failure "EndDoc failed (error code N)"."""
        with self._gdi("EndPage", "EndDoc failed (error code -1)"):
            if self.job is None or self.page is None:
                raise UIError("EndDoc failed (error code -1)")
            self.job.pages.append(self.page)
            self.page = None

    def EndDoc(self) -> None:
        """PyCDC.EndDoc(): the job is complete and may print."""
        with self._gdi("EndDoc", "EndDoc failed (error code -1)"):
            if self.job is None or self.page is not None:
                raise UIError("EndDoc failed (error code -1)")
            self._s.finish_spooling(self.job)
            self.job = None

    def AbortDoc(self) -> None:
        """PyCDC.AbortDoc(): the document and its job are dropped."""
        with self._gdi("AbortDoc", "AbortDoc failed"):
            if self.job is not None:
                self._s.drop(self.job)
            self.job = None
            self.page = None

    def DeleteDC(self) -> None:
        """PyCDC.DeleteDC()."""
        with self._s.call("DeleteDC", spooler=False):
            self._s._dcs.pop(self.hdc, None)
            self.printer = None

    def _printer(self) -> FakePrinter:
        if self.printer is None:
            raise UIError("The DC is not a printer DC")
        return self.printer

    @contextmanager
    def _gdi(self, funcname: str, failure: str) -> Iterator[None]:
        try:
            with self._s.call(funcname):
                yield
        except error as exc:
            raise UIError(failure) from exc


class _Win32UI:
    """win32ui (Pythonwin/win32uimodule.cpp)."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler

    def CreateDC(self) -> FakeDC:
        """win32ui.CreateDC() -> PyCDC, not yet tied to a device."""
        return FakeDC(self._s)


class _Shell:
    """win32com.shell.shell (com/win32comext/shell/src/shell.cpp)."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler

    def IsUserAnAdmin(self) -> bool:
        """shell.IsUserAnAdmin() -> bool (shell32's IsUserAnAdmin)."""
        return self._s.admin
