"""Decoding printer status answers, as the virtual printer gives them."""

from __future__ import annotations

import pytest

from spoonprint.domain.profile import Protocol
from spoonprint.domain.status import (
    ESCPOS_DIALECT,
    STAR_DIALECT,
    asb_length,
    decode_printer_status,
    decode_star_asb,
    status_dialect,
)
from spoonprint.emulator.virtual_printer import PrinterMode, star_asb, status_reply


@pytest.mark.parametrize(
    ("mode", "online", "problem"),
    [
        (PrinterMode.ONLINE, True, ""),
        (PrinterMode.PAPER_OUT, False, "paper out"),
        (PrinterMode.COVER_OPEN, False, "cover open"),
    ],
)
def test_escpos_status_and_cause(mode: PrinterMode, online: bool, problem: str) -> None:
    reply, cause = status_reply(mode, 1), status_reply(mode, 2)
    assert reply is not None and cause is not None
    assert decode_printer_status(reply, cause).online is online
    assert decode_printer_status(reply, cause).problem == problem


@pytest.mark.parametrize(
    ("mode", "online", "problem"),
    [
        (PrinterMode.ONLINE, True, ""),
        (PrinterMode.PAPER_OUT, False, "paper out"),
        (PrinterMode.COVER_OPEN, False, "cover open"),
    ],
)
def test_star_asb(mode: PrinterMode, online: bool, problem: str) -> None:
    asb = star_asb(mode)
    assert asb is not None and asb_length(asb[:1]) == len(asb) == 9
    assert decode_star_asb(asb).online is online and decode_star_asb(asb).problem == problem


def test_garbage_is_never_online() -> None:
    assert not decode_printer_status(0xFF).online
    assert not decode_star_asb(b"\x00\x00\x00").online
    assert not decode_star_asb(b"\x10" * 9).online


def test_each_protocol_asks_its_own_question() -> None:
    assert status_dialect(Protocol.ESCPOS) is ESCPOS_DIALECT
    assert status_dialect(Protocol.ESCPOS_RASTER) is ESCPOS_DIALECT
    assert status_dialect(Protocol.STAR_GRAPHIC) is STAR_DIALECT
    assert STAR_DIALECT.request == b"\x1b\x06\x01" and ESCPOS_DIALECT.request == b"\x10\x04\x01"
