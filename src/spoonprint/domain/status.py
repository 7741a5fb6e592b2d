"""Printer status: ESC/POS real-time status (DLE EOT n) requests and their decoding.

A valid reply byte has bit 1 and bit 4 set and bit 0 and bit 7 clear (``0xx1xx10``).
n=1 printer status: bit 3 offline. n=2 offline cause: bit 2 cover open, bit 5 paper end stop,
bit 6 error.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS_PRINTER = b"\x10\x04\x01"
STATUS_OFFLINE_CAUSE = b"\x10\x04\x02"


@dataclass(frozen=True)
class PrinterStatus:
    online: bool
    problem: str = ""


def is_status_byte(value: int) -> bool:
    return value & 0b1001_0011 == 0b0001_0010


def decode_printer_status(reply: int, cause: int | None = None) -> PrinterStatus:
    """Decode a DLE EOT 1 reply, optionally with the DLE EOT 2 reply that explains it."""
    if not is_status_byte(reply):
        return PrinterStatus(False, f"unexpected status reply 0x{reply:02x}")
    if not reply & 0x08:
        return PrinterStatus(True)
    return PrinterStatus(False, _offline_cause(cause))


def _offline_cause(cause: int | None) -> str:
    if cause is None or not is_status_byte(cause):
        return "printer reports offline"
    if cause & 0x04:
        return "cover open"
    if cause & 0x20:
        return "paper out"
    if cause & 0x40:
        return "printer error"
    return "printer reports offline"
