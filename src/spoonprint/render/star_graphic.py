"""Star Graphic Mode raster jobs for graphics-only Star printers (TSP100 / TSP143), pure.

Bytes and names are from Star's "STAR Graphic Mode Command Specifications" Rev. 2.31
(section 3-2, raster graphics commands), cross-checked with Star's CUPS filter
``rastertostar.c`` (starcupsdrv), which sends the same sequence:

==========================  =====================  ==========================================
bytes                       spec name              here
==========================  =====================  ==========================================
``1B 40``                   ESC @                  initialize the printer
``1B 2A 72 52``             ESC * r R              initialize raster mode (margins, modes...)
``1B 2A 72 41``             ESC * r A              enter raster mode
``1B 2A 72 50 30 00``       ESC * r P n NUL        raster page length 0: continuous receipt
``1B 2A 72 45 n.. 00``      ESC * r E n NUL        raster EOT mode: 13 feed + partial cut,
                                                   1 feed only
``1B 2A 72 44 31 00``       ESC * r D n NUL        drive drawer 1 (external device 1)
``62 n1 n2 d1..dk``         b n1 n2 data           one row, k = n1 + 256 n2 >= 1 bytes,
                                                   then an automatic one-dot line feed
``1B 2A 72 59 n.. 00``      ESC * r Y n NUL        move down n dots: a run of blank rows
``1B 0C 04``                ESC FF EOT             execute EOT mode (print, feed, cut)
``1B 2A 72 42``             ESC * r B              quit raster mode
==========================  =====================  ==========================================

The ``n..`` of the ``ESC * r`` settings is ASCII decimal (up to 255 digits), so EOT mode 13 is
``31 33 00``. Settings are sent before the first row because the spec ignores ``ESC * r E``,
``ESC * r P`` and ``ESC * r D`` while the image buffer holds raster data.

Rows: bit 1 = black, most significant bit = leftmost dot, 72 bytes at 576 dots, 64 at 512.
Trailing zero bytes are trimmed (the printer pads a short row with white) and an all-white row
is never sent as ``b`` (k must be at least 1): runs of them become ``ESC * r Y``. The spec
bounds a vertical move only by the maximum page length, 64000 dots in continuous mode, so
longer runs are split at 64000.
"""

from __future__ import annotations

from spoonprint.render.bitimage import Picture, image_bytes

__all__ = [
    "EOT_FEED",
    "EOT_FEED_PARTIAL_CUT",
    "MAX_VERTICAL_MOVE",
    "raster_setting",
    "star_raster_job",
    "star_raster_rows",
]

INITIALIZE = b"\x1b@"  # ESC @
RASTER_INITIALIZE = b"\x1b*rR"  # ESC * r R
RASTER_ENTER = b"\x1b*rA"  # ESC * r A
RASTER_QUIT = b"\x1b*rB"  # ESC * r B
EXECUTE_EOT = b"\x1b\x0c\x04"  # ESC FF EOT
ROW = b"b"  # b n1 n2 data: transfer raster data with automatic line feed

PAGE_LENGTH = b"P"  # ESC * r P n NUL
EOT_MODE = b"E"  # ESC * r E n NUL
DRIVE_DRAWER = b"D"  # ESC * r D n NUL
VERTICAL_MOVE = b"Y"  # ESC * r Y n NUL

CONTINUOUS_PAGE = 0
EOT_FEED_PARTIAL_CUT = 13
EOT_FEED = 1
DRAWER_1 = 1
#: Maximum page length in continuous mode (ESC * r P n NUL, TSP100 models other than IIU).
MAX_VERTICAL_MOVE = 64000


def raster_setting(command: bytes, n: int) -> bytes:
    """``ESC * r <command> n NUL`` with ``n`` in ASCII decimal."""
    if n < 0:
        raise ValueError(f"raster setting values are not negative: {n}")
    return b"\x1b*r" + command + str(n).encode("ascii") + b"\x00"


def star_raster_rows(image: Picture) -> bytes:
    """The row commands of ``image``: ``b`` rows, trimmed, and ``ESC * r Y`` blank runs.

    Only valid inside raster mode; :func:`star_raster_job` wraps them into a whole job.
    """
    data = image_bytes(image)
    size = image.width // 8
    # "b n1 n2" for every possible row length: looked up, not built, once per row.
    headers = [ROW + length.to_bytes(2, "little") for length in range(size + 1)]
    parts: list[bytes] = []
    blank = 0
    for start in range(0, len(data), size):
        # Trailing zero bytes go: the printer pads a short row with white.
        row = data[start : start + size].rstrip(b"\x00")
        if not row:
            blank += 1
            continue
        if blank:
            parts.append(_blank_rows(blank))
            blank = 0
        parts.append(headers[len(row)])
        parts.append(row)
    if blank:
        # Trailing white rows are paper too: without them the cut would come early.
        parts.append(_blank_rows(blank))
    return b"".join(parts)


def star_raster_job(image: Picture, *, cut: bool = True, drawer: bool = False) -> bytes:
    """A complete Star Graphic Mode job printing ``image``, then feeding (and cutting)."""
    settings = [
        raster_setting(PAGE_LENGTH, CONTINUOUS_PAGE),
        raster_setting(EOT_MODE, EOT_FEED_PARTIAL_CUT if cut else EOT_FEED),
    ]
    if drawer:
        settings.append(raster_setting(DRIVE_DRAWER, DRAWER_1))
    return b"".join(
        [
            INITIALIZE,
            RASTER_INITIALIZE,
            RASTER_ENTER,
            *settings,
            star_raster_rows(image),
            EXECUTE_EOT,
            RASTER_QUIT,
        ]
    )


def _blank_rows(count: int) -> bytes:
    full, rest = divmod(count, MAX_VERTICAL_MOVE)
    moves = [MAX_VERTICAL_MOVE] * full + ([rest] if rest else [])
    return b"".join(raster_setting(VERTICAL_MOVE, n) for n in moves)
