"""Printing a picture of the ticket through the installed Windows driver (GDI); blocking.

For ``mode=gdi`` queues the app renders the ticket as a PNG; this draws it with the printer's
own driver, so raster-only printers (Star TSP100) print whatever the ticket holds.

Long tickets: a receipt driver's paper is one long page (e.g. Star's "72mm x Receipt"); the
driver feeds and cuts after what was drawn. So the ticket is scaled to the printable width
(``GetDeviceCaps(HORZRES)``) and drawn on ONE page. Only a ticket taller than the driver's
page (``VERTRES``) is split, into page-high bands, one page each, top to bottom.

The DC is made with ``win32gui.CreateDC`` and an explicit roll-paper DEVMODE
(:func:`receipt_devmode`), and the document started with ``win32print.StartDoc``, which
returns the job id (Pythonwin's ``PyCDC.StartDoc`` drops it).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from PIL import Image, UnidentifiedImageError

from spoonprint.transports.windows_spool import Submission, open_printer, submit_raw, win32

# GetDeviceCaps indexes and DEVMODE bits (wingdi.h).
HORZRES = 8
VERTRES = 10
DM_PAPERSIZE = 0x2
DM_PAPERLENGTH = 0x4
DM_PAPERWIDTH = 0x8
#: DocumentProperties mode DM_IN_BUFFER | DM_OUT_BUFFER: merge ours into the driver's.
DM_MERGE = 0x8 | 0x2
#: Printable width of 80 mm receipt paper (Star's "72mm x Receipt"); 58 mm rolls print 48.
ROLL_WIDTH_MM = 72
#: dmPaperLength is a short in tenths of a millimetre: 3276 mm, a receipt driver's longest.
MAX_PAPER_LENGTH = 32760

#: Draws an image into (left, top, right, bottom) of a device context given by its HDC.
DrawImage = Callable[[int, Image.Image, tuple[int, int, int, int]], None]


class NotAPicture(ValueError):
    """The data handed to a gdi queue is not an image."""


def draw_dib(hdc: int, image: Image.Image, rect: tuple[int, int, int, int]) -> None:
    """Draw ``image`` into ``rect`` of the device context ``hdc`` (Pillow's ImageWin; only
    works on Windows)."""
    from PIL import ImageWin

    ImageWin.Dib(image).draw(hdc, rect)


def load_picture(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            return picture.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise NotAPicture(f"{len(data)} bytes that are not a picture") from exc


def fit_width(picture: Image.Image, width: int) -> Image.Image:
    """The picture scaled to ``width`` dots, height in proportion; 1-bit stays 1-bit."""
    if width <= 0 or picture.width == width:  # a driver that does not say: draw as it is
        return picture
    height = max(1, round(picture.height * width / picture.width))
    scaled = picture.convert("L").resize((width, height), Image.Resampling.LANCZOS)
    if picture.mode == "1":
        # Thermal dots are on or off: threshold rather than dither the smoothed edges.
        return scaled.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    return scaled


def page_bands(picture: Image.Image, page_height: int) -> list[Image.Image]:
    """The picture as pages: itself when it fits, else page-high bands top to bottom."""
    if page_height <= 0 or picture.height <= page_height:
        return [picture]
    return [
        picture.crop((0, top, picture.width, min(top + page_height, picture.height)))
        for top in range(0, picture.height, page_height)
    ]


def receipt_devmode(name: str, width_mm: int = ROLL_WIDTH_MM) -> Any:
    """The printer's DEVMODE with roll paper set: ``width_mm`` printable width, the longest
    page a DEVMODE holds. Without it a DC gets the account's settings, which under the
    LocalSystem service are the printer's Printing Defaults (often A4 or Letter): another
    page height, and tickets split into bands."""
    win32print = win32("win32print")
    with open_printer(name) as handle:
        devmode = win32print.GetPrinter(handle, 2)["pDevMode"]
        if devmode is None:  # the driver gives none: the DC gets the account's settings
            return None
        devmode.PaperWidth = width_mm * 10  # tenths of a millimetre
        devmode.PaperLength = MAX_PAPER_LENGTH
        devmode.Fields = (devmode.Fields & ~DM_PAPERSIZE) | DM_PAPERWIDTH | DM_PAPERLENGTH
        # The driver checks and completes it (its private part too).
        win32print.DocumentProperties(0, handle, name, devmode, devmode, DM_MERGE)
    return devmode


def submit_gdi(name: str, png: bytes, sub: Submission, draw: DrawImage = draw_dib) -> None:
    """Draw the PNG ``png`` through the driver of printer ``name`` as one document; fills in
    ``sub.job_id`` and ``sub.written`` (``len(png)`` shared out over the pages spooled)."""
    picture = load_picture(png)
    win32gui, win32print = win32("win32gui"), win32("win32print")
    sub.check()
    hdc = win32gui.CreateDC("WINSPOOL", name, receipt_devmode(name))
    try:
        width = win32print.GetDeviceCaps(hdc, HORZRES)
        pages = page_bands(fit_width(picture, width), win32print.GetDeviceCaps(hdc, VERTRES))
        # win32print.StartDoc returns GDI's job id (PyCDC.StartDoc drops it).
        sub.job_id = int(win32print.StartDoc(hdc, (sub.title, None, None, 0)))
        try:
            for number, page in enumerate(pages, start=1):
                sub.check()
                win32print.StartPage(hdc)
                draw(hdc, page, (0, 0, page.width, page.height))
                win32print.EndPage(hdc)
                sub.written = len(png) * number // len(pages)
            sub.check()
            win32print.EndDoc(hdc)
        except BaseException:
            with suppress(Exception):
                win32print.AbortDoc(hdc)
            raise
    finally:
        with suppress(Exception):
            win32gui.DeleteDC(hdc)


def submit(mode: str, name: str, data: bytes, sub: Submission, draw: DrawImage = draw_dib) -> None:
    """One ticket into the queue ``name``: RAW bytes, or (gdi) a PNG drawn by the driver."""
    if mode == "raw":
        submit_raw(name, data, sub)
    else:
        submit_gdi(name, data, sub, draw)
