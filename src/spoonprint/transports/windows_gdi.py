"""Printing a picture of the ticket through the installed Windows driver (GDI); blocking.

For ``mode=gdi`` queues the app renders the ticket as a PNG; this draws it with the printer's
own driver, so raster-only printers (Star TSP100) print whatever the ticket holds.

Long tickets: a receipt driver's paper is one long page (e.g. Star's "72mm x Receipt"); the
driver feeds and cuts after what was drawn. So the ticket is scaled to the printable width
(``GetDeviceCaps(HORZRES)``) and drawn on ONE page. Only a ticket taller than the driver's
page (``VERTRES``) is split, into page-high bands, one page each, top to bottom.

pywin32's ``PyCDC.StartDoc`` returns None (MFC's CDC::StartDoc job id is dropped), so the job
is found by its unique document name through EnumJobs right after StartDoc.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from contextlib import suppress

from PIL import Image, UnidentifiedImageError

from spoonprint.transports.windows_spool import (
    JobNotListed,
    Submission,
    find_job,
    submit_raw,
    win32,
)

# GetDeviceCaps indexes (wingdi.h).
HORZRES = 8
VERTRES = 10
#: How long StartDoc's job may take to appear in EnumJobs.
_FIND_JOB_SECONDS = 1.0

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


def _find_job(name: str, title: str) -> int:
    deadline = time.monotonic() + _FIND_JOB_SECONDS
    while True:
        job_id = find_job(name, title)
        if job_id is not None:
            return job_id
        if time.monotonic() > deadline:
            raise JobNotListed(f"the spooler does not list the job {title!r}")
        time.sleep(0.05)  # StartDoc returned; the listing has no event to wait on


def submit_gdi(name: str, png: bytes, sub: Submission, draw: DrawImage = draw_dib) -> None:
    """Draw the PNG ``png`` through the driver of printer ``name`` as one document; fills in
    ``sub.job_id`` and ``sub.written`` (``len(png)`` shared out over the pages spooled)."""
    picture = load_picture(png)
    win32ui = win32("win32ui")
    sub.check()
    dc = win32ui.CreateDC()
    try:
        dc.CreatePrinterDC(name)
        pages = page_bands(fit_width(picture, dc.GetDeviceCaps(HORZRES)), dc.GetDeviceCaps(VERTRES))
        dc.StartDoc(sub.title)
        try:
            sub.job_id = _find_job(name, sub.title)
            for number, page in enumerate(pages, start=1):
                sub.check()
                dc.StartPage()
                draw(dc.GetHandleOutput(), page, (0, 0, page.width, page.height))
                dc.EndPage()
                sub.written = len(png) * number // len(pages)
            sub.check()
            dc.EndDoc()
        except BaseException:
            with suppress(Exception):
                dc.AbortDoc()
            raise
    finally:
        with suppress(Exception):
            dc.DeleteDC()


def submit(mode: str, name: str, data: bytes, sub: Submission, draw: DrawImage = draw_dib) -> None:
    """One ticket into the queue ``name``: RAW bytes, or (gdi) a PNG drawn by the driver."""
    if mode == "raw":
        submit_raw(name, data, sub)
    else:
        submit_gdi(name, data, sub, draw)
