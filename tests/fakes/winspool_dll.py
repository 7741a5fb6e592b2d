"""``ctypes.WinDLL("winspool.drv")`` for the fake spooler: GetPrinterDriverW level 8.

Windows' ctypes has ``WinDLL`` and ``get_last_error``; Linux's has neither. :func:`ctypes_names`
gives both, to be set on the ``ctypes`` module as Windows has them. The function is called as
a foreign function would be, with ctypes objects, and answers as GetPrinterDriverW does
(winspool.h, MS docs): too small a buffer -> FALSE, ERROR_INSUFFICIENT_BUFFER (122) and the
size needed; else a DRIVER_INFO_8W at the start of the buffer with its strings after it, and
TRUE. A handle the spooler does not know -> FALSE, ERROR_INVALID_HANDLE (6).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from spoonprint.transports.windows_driver import DRIVER_INFO_8W

ERROR_INSUFFICIENT_BUFFER = 122
ERROR_INVALID_HANDLE = 6
ERROR_INVALID_LEVEL = 124
_STRINGS = ("pName", "pEnvironment", "pDriverPath", "pDataFile", "pConfigFile",
            "pDefaultDataType", "pszMfgName", "pszProvider", "pszPrintProcessor")  # fmt: skip

#: What the spooler says of a handle's driver: the string members and the numbers.
Describe = Callable[[int], dict[str, Any] | None]


class _LastError(threading.local):
    code = 0


def ctypes_names(describe: Describe) -> dict[str, Any]:
    """``WinDLL`` and ``get_last_error`` as Windows' ctypes has them, answering from
    ``describe(handle)`` (None: no such handle)."""
    last = _LastError()

    def GetPrinterDriverW(  # noqa: N802  (the API's name)
        hPrinter: Any, pEnvironment: Any, Level: int, pDriverInfo: Any, cbBuf: int,
        pcbNeeded: Any,
    ) -> int:  # fmt: skip
        handle = int(hPrinter.value if isinstance(hPrinter, ctypes.c_void_p) else hPrinter)
        facts = describe(handle)
        if facts is None:
            last.code = ERROR_INVALID_HANDLE
            return 0
        if Level != 8 or not facts["level_8"]:
            last.code = ERROR_INVALID_LEVEL
            return 0
        strings = {key: facts.get(key) or "" for key in _STRINGS}
        width = ctypes.sizeof(ctypes.c_wchar)
        size = ctypes.sizeof(DRIVER_INFO_8W) + sum((len(v) + 1) * width for v in strings.values())
        needed = pcbNeeded._obj if hasattr(pcbNeeded, "_obj") else pcbNeeded.contents
        needed.value = size
        if pDriverInfo is None or cbBuf < size:
            last.code = ERROR_INSUFFICIENT_BUFFER
            return 0
        base = ctypes.addressof(pDriverInfo)
        info = DRIVER_INFO_8W.from_address(base)
        ctypes.memset(base, 0, ctypes.sizeof(DRIVER_INFO_8W))
        info.cVersion = facts["cVersion"]
        info.dwPrinterDriverAttributes = facts["dwPrinterDriverAttributes"]
        at = base + ctypes.sizeof(DRIVER_INFO_8W)
        for key, text in strings.items():
            encoded = ctypes.create_unicode_buffer(text)
            ctypes.memmove(at, encoded, ctypes.sizeof(encoded))
            setattr(info, key, ctypes.cast(at, ctypes.c_wchar_p))
            at += ctypes.sizeof(encoded)
        last.code = 0
        return 1

    class WinDLL:
        """ctypes.WinDLL(name, use_last_error=...) for winspool.drv."""

        def __init__(self, name: str, use_last_error: bool = False) -> None:
            if name.casefold() != "winspool.drv":
                raise OSError(f"fake ctypes: no {name}")
            self.GetPrinterDriverW = _Function(GetPrinterDriverW)

    return {"WinDLL": WinDLL, "get_last_error": lambda: last.code}


class _Function:
    """A foreign function: takes ``argtypes`` / ``restype`` and is called with arguments."""

    def __init__(self, body: Callable[..., int]) -> None:
        self.body = body
        self.argtypes: tuple[Any, ...] = ()
        self.restype: Any = ctypes.c_int

    def __call__(self, *args: Any) -> int:
        return self.body(*args)
