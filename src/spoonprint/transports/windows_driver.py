"""What a Windows printer's driver takes: its kind (v3, v4, XPSDrv) and the datatypes offered.

A RAW job on a v4 or XPSDrv driver spools 0 bytes and still counts as printed (Microsoft
KB2779300): ``mode=raw`` would lose every ticket silently there. pywin32 has no
``GetPrinterDriver`` level 8, the one that holds ``dwPrinterDriverAttributes``, so it is
called through ctypes (``winspool.drv``'s GetPrinterDriverW; ctypes releases the GIL in the
call). The datatypes come from pywin32's ``EnumPrintProcessorDatatypes`` for the printer's
print processor. Both run in the queue's helper processes, like every spooler call.

Star's TSP100 (futurePRNT driver) is a raster printer: RAW bytes pass through Star's command
emulator, not to the printer as sent, so ``mode=gdi`` is the mode for it.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from spoonprint.transports.windows_spool import open_printer, win32

#: dwPrinterDriverAttributes bit of an XPSDrv driver (winspool.h).
PRINTER_DRIVER_XPS = 0x2
#: cVersion of a v4 driver (v3 drivers say 3).
V4_DRIVER = 4
ERROR_INSUFFICIENT_BUFFER = 122
_DWORD = ctypes.c_ulong
_DWORDLONG = ctypes.c_ulonglong


class _FILETIME(ctypes.Structure):
    _fields_ = (("dwLowDateTime", _DWORD), ("dwHighDateTime", _DWORD))


class DRIVER_INFO_8W(ctypes.Structure):  # noqa: N801  (winspool.h's name)
    """winspool.h's DRIVER_INFO_8W, member for member."""

    _fields_ = (
        ("cVersion", _DWORD),
        ("pName", ctypes.c_wchar_p),
        ("pEnvironment", ctypes.c_wchar_p),
        ("pDriverPath", ctypes.c_wchar_p),
        ("pDataFile", ctypes.c_wchar_p),
        ("pConfigFile", ctypes.c_wchar_p),
        ("pHelpFile", ctypes.c_wchar_p),
        ("pDependentFiles", ctypes.c_void_p),  # a list of strings (MULTI_SZ)
        ("pMonitorName", ctypes.c_wchar_p),
        ("pDefaultDataType", ctypes.c_wchar_p),
        ("pszzPreviousNames", ctypes.c_void_p),
        ("ftDriverDate", _FILETIME),
        ("dwlDriverVersion", _DWORDLONG),
        ("pszMfgName", ctypes.c_wchar_p),
        ("pszOEMUrl", ctypes.c_wchar_p),
        ("pszHardwareID", ctypes.c_wchar_p),
        ("pszProvider", ctypes.c_wchar_p),
        ("pszPrintProcessor", ctypes.c_wchar_p),
        ("pszVendorSetup", ctypes.c_wchar_p),
        ("pszzColorProfiles", ctypes.c_void_p),
        ("pszInfPath", ctypes.c_wchar_p),
        ("dwPrinterDriverAttributes", _DWORD),
        ("pszzCoreDriverDependencies", ctypes.c_void_p),
        ("ftMinInboxDriverVerDate", _FILETIME),
        ("dwlMinInboxDriverVerVersion", _DWORDLONG),
    )


@dataclass(frozen=True)
class Driver:
    """A printer's driver as the spooler describes it."""

    name: str
    #: cVersion: 3 for a v3 (GDI) driver, 4 for a v4 driver.
    version: int
    attributes: int
    manufacturer: str
    print_processor: str
    #: What the print processor takes (RAW, NT EMF 1.008 ...).
    datatypes: tuple[str, ...]

    @property
    def kind(self) -> str:
        if self.version >= V4_DRIVER:
            return "v4"
        return "XPSDrv" if self.attributes & PRINTER_DRIVER_XPS else "v3"

    @property
    def star_raster(self) -> bool:
        """A Star TSP100-family driver (futurePRNT): raster, RAW goes through an emulator."""
        words = f"{self.manufacturer} {self.name}".casefold()
        return "star" in words and "tsp1" in words

    def raw_refusal(self) -> str | None:
        """Why RAW jobs would not reach this printer as sent; None when they would."""
        if self.kind != "v3":
            return (
                f"the printer's driver {self.name!r} is a {self.kind} driver: a RAW job spools "
                "0 bytes there and still counts as printed (Microsoft KB2779300). Use "
                "mode=gdi, or install the printer maker's v3 driver for raw"
            )
        if "RAW" not in self.datatypes:
            offered = ", ".join(self.datatypes) or "none"
            return (
                f"the print processor {self.print_processor!r} of {self.name!r} does not take "
                f"RAW jobs (it takes {offered}): use mode=gdi"
            )
        return None


def load_winspool() -> Any:
    """winspool.drv through ctypes (Windows only)."""
    return ctypes.WinDLL("winspool.drv", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]


def _last_error() -> int:
    return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]


def driver_info_8(handle: int) -> DRIVER_INFO_8W:
    """GetPrinterDriverW(handle, NULL, 8, ...): asked once for the size, then for the data."""
    call = load_winspool().GetPrinterDriverW
    call.argtypes = (
        ctypes.c_void_p, ctypes.c_wchar_p, _DWORD, ctypes.c_void_p, _DWORD,
        ctypes.POINTER(_DWORD),
    )  # fmt: skip
    call.restype = ctypes.c_int
    needed = _DWORD(0)
    if not call(handle, None, 8, None, 0, ctypes.byref(needed)):
        code = _last_error()
        if code != ERROR_INSUFFICIENT_BUFFER:
            raise OSError(code, f"GetPrinterDriverW failed (error {code})")
    buffer = ctypes.create_string_buffer(needed.value)
    if not call(handle, None, 8, buffer, needed.value, ctypes.byref(needed)):
        code = _last_error()
        raise OSError(code, f"GetPrinterDriverW failed (error {code})")
    # A view of the buffer (the strings live in it after the structure), which it keeps alive.
    return DRIVER_INFO_8W.from_buffer(buffer)


def describe_driver(name: str) -> Driver:
    """The driver of printer ``name`` and the datatypes its print processor takes."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        processor = win32print.GetPrinter(handle, 2)["pPrintProcessor"] or "winprint"
        info = driver_info_8(int(handle))
    datatypes = win32print.EnumPrintProcessorDatatypes(None, processor)
    return Driver(
        name=info.pName or "",
        version=int(info.cVersion),
        attributes=int(info.dwPrinterDriverAttributes),
        manufacturer=info.pszMfgName or "",
        print_processor=processor,
        datatypes=tuple(datatypes),
    )
