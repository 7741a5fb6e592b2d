"""Blocking look-ups the Windows self-test makes (``spoonprint diagnose --windows``), beside
the ones the transport makes: pywin32's presence, a printer's Printing Defaults, the right to
control the Spooler service, and the account the spoonprint service runs under. Module-level
functions, so they run in a helper process like every spooler call."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from spoonprint.transports.windows_spool import SPOOLER_SERVICE, open_printer, win32, winerror

PYWIN32_MODULES = ("pywintypes", "win32print", "win32gui", "win32service", "win32serviceutil")
ERROR_SERVICE_DOES_NOT_EXIST = 1060
#: Widest paper a receipt roll has, in tenths of a millimetre (80 mm roll, some margin).
RECEIPT_WIDTH_MAX = 820
# winsvc.h access rights: what restarting the spooler takes.
_SERVICE_CONTROL = 0x4 | 0x10 | 0x20  # SERVICE_QUERY_STATUS | SERVICE_START | SERVICE_STOP


def pywin32_missing() -> list[str]:
    """The pywin32 modules that do not import (none on a good install)."""
    missing = []
    for name in PYWIN32_MODULES:
        try:
            win32(name)
        except ImportError:
            missing.append(name)
    return missing


@dataclass(frozen=True)
class Paper:
    """A DEVMODE's paper, in tenths of a millimetre (None: the driver gave no DEVMODE)."""

    width: int
    length: int

    @property
    def receipt(self) -> bool:
        return 0 < self.width <= RECEIPT_WIDTH_MAX

    def words(self) -> str:
        return f"{self.width / 10:g} mm x {self.length / 10:g} mm"


def printing_defaults(name: str) -> Paper | None:
    """The paper of the printer's Printing Defaults (GetPrinter level 2's pDevMode): what a
    program running as LocalSystem gets unless it asks for more."""
    with open_printer(name) as handle:
        devmode = win32("win32print").GetPrinter(handle, 2)["pDevMode"]
    if devmode is None:
        return None
    return Paper(int(devmode.PaperWidth), int(devmode.PaperLength))


def spooler_control() -> str | None:
    """None when this account may stop and start the Spooler service, else why not."""
    service = win32("win32service")
    try:
        manager = service.OpenSCManager(None, None, service.SC_MANAGER_CONNECT)
        try:
            handle = service.OpenService(manager, SPOOLER_SERVICE, _SERVICE_CONTROL)
            service.CloseServiceHandle(handle)
        finally:
            service.CloseServiceHandle(manager)
    except Exception as exc:
        if winerror(exc) is None:
            raise
        return f"{getattr(exc, 'funcname', '')}: {getattr(exc, 'strerror', exc)}"
    return None


def service_account(name: str) -> str | None:
    """The account the Windows service ``name`` runs under (QueryServiceConfig's
    ServiceStartName, e.g. "LocalSystem" or ".\\\\kitchen"); None when it is not installed."""
    service = win32("win32service")
    manager = service.OpenSCManager(None, None, service.SC_MANAGER_CONNECT)
    try:
        try:
            handle = service.OpenService(manager, name, service.SERVICE_QUERY_CONFIG)
        except Exception as exc:
            if winerror(exc) == ERROR_SERVICE_DOES_NOT_EXIST:
                return None
            raise
        try:
            return str(service.QueryServiceConfig(handle)[7])
        finally:
            service.CloseServiceHandle(handle)
    finally:
        service.CloseServiceHandle(manager)


def this_account() -> str:
    """Who runs this command."""
    return getpass.getuser()
