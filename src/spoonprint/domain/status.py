"""Printer status: the questions each printer dialect understands and what the answers mean.

ESC/POS real-time status (DLE EOT n): a reply byte has bit 1 and bit 4 set and bit 0 and bit 7
clear (``0xx1xx10``). n=1 printer status: bit 3 offline. n=2 offline cause: bit 2 cover open,
bit 5 paper end stop, bit 6 error.

Star automatic status (ASB), asked with ESC ACK SOH (``1B 06 01``): byte 1 is a header whose
bits 1-3 and 5-6 give the total length (``0x23`` -> 9 bytes). Byte 3: bit 5 cover open, bit 3
offline. Byte 4: bit 5 unrecoverable error, bit 3 cutter error, bit 2 mechanical error. Byte 6:
bit 3 paper empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spoonprint.domain.profile import Protocol

STATUS_PRINTER = b"\x10\x04\x01"
STATUS_OFFLINE_CAUSE = b"\x10\x04\x02"
STAR_STATUS = b"\x1b\x06\x01"
#: ESC/POS DLE ENQ 2 (recover from a recoverable error, clearing the buffers), then ESC @.
ESCPOS_RESET = b"\x10\x05\x02\x1b\x40"

PAPER_OUT = "paper-out"
COVER_OPEN = "cover-open"
PRINTER_ERROR = "printer-error"


@dataclass(frozen=True)
class PrinterStatus:
    online: bool
    problem: str = ""
    #: The kind of trouble, as a :class:`spoonprint.recovery.health.Fault` value
    #: ("paper-out", "cover-open", "printer-error"); empty when online.
    fault: str = ""


@dataclass(frozen=True)
class StatusDialect:
    """How to ask one kind of printer whether it is fine, and how to read the answer."""

    request: bytes
    #: Bytes to read first; ``total`` (if any) says from them how long the whole reply is.
    first: int
    total: Callable[[bytes], int] | None
    decode: Callable[[bytes], PrinterStatus]
    #: A second question that explains an offline answer (ESC/POS only).
    cause_request: bytes | None = None
    decode_with_cause: Callable[[bytes, bytes], PrinterStatus] | None = None
    #: Bytes that clear a recoverable error, when the dialect has them (Star's are not
    #: confirmed for the TSP100, so none is sent there).
    reset: bytes | None = None


def is_status_byte(value: int) -> bool:
    return value & 0b1001_0011 == 0b0001_0010


def decode_printer_status(reply: int, cause: int | None = None) -> PrinterStatus:
    """Decode a DLE EOT 1 reply, optionally with the DLE EOT 2 reply that explains it."""
    if not is_status_byte(reply):
        return PrinterStatus(False, f"unexpected status reply 0x{reply:02x}", PRINTER_ERROR)
    if not reply & 0x08:
        return PrinterStatus(True)
    return _offline_cause(cause)


def _offline_cause(cause: int | None) -> PrinterStatus:
    if cause is None or not is_status_byte(cause):
        return PrinterStatus(False, "printer reports offline", PRINTER_ERROR)
    if cause & 0x04:
        return PrinterStatus(False, "cover open", COVER_OPEN)
    if cause & 0x20:
        return PrinterStatus(False, "paper out", PAPER_OUT)
    return PrinterStatus(
        False, "printer error" if cause & 0x40 else "printer reports offline", PRINTER_ERROR
    )


def asb_length(header: bytes) -> int:
    """Total ASB length from its first byte."""
    h = header[0]
    return ((h >> 1) & 0x07) | (((h >> 5) & 0x03) << 3)


def decode_star_asb(asb: bytes) -> PrinterStatus:
    if len(asb) < 6 or not asb[0] & 0x01 or asb[0] & 0x10:
        return PrinterStatus(False, f"unexpected status reply {asb.hex(' ')}", PRINTER_ERROR)
    state, errors, paper = asb[2], asb[3], asb[5]
    if state & 0x20:
        return PrinterStatus(False, "cover open", COVER_OPEN)
    if paper & 0x08:
        return PrinterStatus(False, "paper out", PAPER_OUT)
    if errors & 0x08:
        return PrinterStatus(False, "cutter error", PRINTER_ERROR)
    if errors & 0x24:
        return PrinterStatus(False, "printer error", PRINTER_ERROR)
    if state & 0x08:
        return PrinterStatus(False, "printer reports offline", PRINTER_ERROR)
    return PrinterStatus(True)


ESCPOS_DIALECT = StatusDialect(
    request=STATUS_PRINTER,
    first=1,
    total=None,
    decode=lambda reply: decode_printer_status(reply[0]),
    cause_request=STATUS_OFFLINE_CAUSE,
    decode_with_cause=lambda reply, cause: decode_printer_status(reply[0], cause[0]),
    reset=ESCPOS_RESET,
)
STAR_DIALECT = StatusDialect(request=STAR_STATUS, first=1, total=asb_length, decode=decode_star_asb)


def status_dialect(protocol: Protocol) -> StatusDialect:
    if protocol in (Protocol.STAR_GRAPHIC, Protocol.STAR_LINE):
        return STAR_DIALECT
    return ESCPOS_DIALECT
