"""GDI printing the way pywin32 offers it without Pythonwin: ``win32gui.CreateDC`` with a
DEVMODE, then ``win32print``'s DC functions (StartDoc returns the job id, win32print.cpp
PyStartDoc). The DC itself is :class:`~tests.fakes.pywin32.FakeDC`, keyed by its HDC; errors
are ``pywintypes.error`` (PyWin_SetAPIError with the function's name)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.pywin32 import (
    EMF_DATATYPE,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    FakeDC,
    FakeSpooler,
    PyDEVMODE,
    UIError,
    error,
)


class Win32Gui:
    """win32gui's CreateDC / DeleteDC (win32/src/win32gui.i)."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler

    def CreateDC(self, Driver: str, Device: str, InitData: Any, /) -> int:
        """win32gui.CreateDC(Driver, Device, InitData) -> HDC; InitData a PyDEVMODE or None
        (then the account's settings: Printing Defaults under LocalSystem)."""
        s = self._s
        if InitData is not None and not isinstance(InitData, PyDEVMODE):
            raise TypeError("The object is not a PyDEVMODE object")
        if Driver != "WINSPOOL":
            raise NotImplementedError("the fake makes printer DCs")
        with s.call("CreateDC"):
            dc = FakeDC(s)
            dc.printer = s.lookup(Device, "CreateDC")
            dc.devmode = InitData
            s._next_handle += 4
            dc.hdc = s._next_handle
            s._dcs[dc.hdc] = dc
            return dc.hdc

    def DeleteDC(self, hdc: int, /) -> None:
        """win32gui.DeleteDC(hdc)."""
        with self._s.call("DeleteDC", spooler=False):
            if self._s._dcs.pop(int(hdc), None) is None:
                raise self._s.winerror(ERROR_INVALID_HANDLE, "DeleteDC")


class GdiPrint:
    """win32print's DC functions: GetDeviceCaps, StartDoc, StartPage, EndPage, EndDoc,
    AbortDoc, and DocumentProperties for the DEVMODE."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler

    def _dc(self, hdc: Any, funcname: str) -> FakeDC:
        dc = self._s._dcs.get(int(hdc))
        if dc is None:
            raise self._s.winerror(ERROR_INVALID_HANDLE, funcname)
        return dc

    @contextmanager
    def _gdi(self, hdc: Any, funcname: str) -> Iterator[FakeDC]:
        with self._s.call(funcname):
            dc = self._dc(hdc, funcname)
            try:
                yield dc
            except UIError as exc:  # FakeDC's win32ui wording: here it is an API error
                raise self._s.winerror(ERROR_INVALID_PARAMETER, funcname) from exc

    def GetDeviceCaps(self, hdc: Any, Index: int, /) -> int:
        """win32print.GetDeviceCaps(hdc, Index) -> int."""
        return self._dc(hdc, "GetDeviceCaps").GetDeviceCaps(Index)

    def StartDoc(self, hdc: Any, docinfo: Any, /) -> int:
        """win32print.StartDoc(hdc, (DocName, Output, DataType, Type)) -> job id."""
        if not isinstance(docinfo, tuple):
            raise TypeError("DOCINFO must be a tuple")
        name, output, datatype, _flags = docinfo
        with self._gdi(hdc, "StartDoc") as dc:
            if dc.job is not None or output is not None:
                raise self._s.winerror(ERROR_INVALID_PARAMETER, "StartDoc")
            assert dc.printer is not None
            dc.job = self._s._new_job(dc.printer, name, datatype or EMF_DATATYPE, self._s.user)
            return dc.job.job_id

    def StartPage(self, hdc: Any, /) -> None:
        with self._gdi(hdc, "StartPage") as dc:
            if dc.job is None or dc.page is not None:
                raise self._s.winerror(ERROR_INVALID_PARAMETER, "StartPage")
            dc.page = []

    def EndPage(self, hdc: Any, /) -> None:
        with self._gdi(hdc, "EndPage") as dc:
            if dc.job is None or dc.page is None:
                raise self._s.winerror(ERROR_INVALID_PARAMETER, "EndPage")
            dc.job.pages.append(dc.page)
            dc.page = None

    def EndDoc(self, hdc: Any, /) -> None:
        with self._gdi(hdc, "EndDoc") as dc:
            if dc.job is None or dc.page is not None:
                raise self._s.winerror(ERROR_INVALID_PARAMETER, "EndDoc")
            self._s.finish_spooling(dc.job)
            dc.job = None

    def AbortDoc(self, hdc: Any, /) -> None:
        with self._gdi(hdc, "AbortDoc") as dc:
            if dc.job is not None:
                self._s.drop(dc.job)
            dc.job = None
            dc.page = None

    def DocumentProperties(
        self, HWnd: Any, hPrinter: Any, DeviceName: str, DevModeOutput: Any, DevModeInput: Any,
        Mode: int, /,
    ) -> int:  # fmt: skip
        """win32print.DocumentProperties(...): with DM_IN_BUFFER | DM_OUT_BUFFER the driver
        merges DevModeInput into DevModeOutput; returns IDOK (1)."""
        with self._s.call("DocumentProperties"):
            _, printer = self._s.handle(hPrinter, "DocumentProperties")
            if not isinstance(DevModeOutput, PyDEVMODE):
                raise TypeError("The object is not a PyDEVMODE object")
            source = DevModeInput if isinstance(DevModeInput, PyDEVMODE) else None
            if source is not None:
                for key in ("Fields", "PaperSize", "PaperWidth", "PaperLength"):
                    setattr(DevModeOutput, key, getattr(source, key))
            DevModeOutput.DeviceName = printer.name
            return 1


__all__ = ["GdiPrint", "Win32Gui", "error"]
