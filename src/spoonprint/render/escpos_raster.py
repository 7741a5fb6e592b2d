"""ESC/POS raster images as ``GS v 0`` bands (pure, no I/O).

``GS v 0 m xL xH yL yH d1..dk`` (``1D 76 30 m ..``) prints a raster bit image: m = 0 normal
density, x = xL + 256 xH bytes per row (576 dots -> ``48 00``), y = yL + 256 yH rows, then
x * y bytes, row by row, bit 1 = black, most significant bit = leftmost dot (PROTOCOLS.md;
python-escpos builds the same header). A tall image goes as several commands of at most
``band_height`` rows, because many printers reject or garble one very tall image (their
receive and image buffers are small); the bands print back to back with no gap.
"""

from __future__ import annotations

from spoonprint.render.bitimage import Picture, image_bytes

__all__ = ["DEFAULT_BAND_HEIGHT", "gs_v0_bands", "gs_v0_header"]

DEFAULT_BAND_HEIGHT = 256
_GS_V_0_NORMAL = b"\x1dv0\x00"  # GS v 0, m = 0 (normal width and height)
_MAX_U16 = 0xFFFF


def gs_v0_header(width_bytes: int, height: int) -> bytes:
    """``GS v 0 0 xL xH yL yH`` for a band ``width_bytes`` x ``height``."""
    if not 0 < width_bytes <= _MAX_U16 or not 0 < height <= _MAX_U16:
        raise ValueError(f"GS v 0 band size out of range: {width_bytes} bytes x {height} rows")
    return _GS_V_0_NORMAL + width_bytes.to_bytes(2, "little") + height.to_bytes(2, "little")


def gs_v0_bands(image: Picture, band_height: int = DEFAULT_BAND_HEIGHT) -> bytes:
    """``image`` as consecutive ``GS v 0`` commands of at most ``band_height`` rows each.

    An image with no rows gives no bytes.
    """
    if not 0 < band_height <= _MAX_U16:
        raise ValueError(f"band_height must be 1..{_MAX_U16}, not {band_height}")
    packed = image_bytes(image)
    width_bytes = image.width // 8
    parts: list[bytes] = []
    for top in range(0, image.height, band_height):
        rows = min(band_height, image.height - top)
        parts.append(gs_v0_header(width_bytes, rows))
        parts.append(packed[top * width_bytes : (top + rows) * width_bytes])
    return b"".join(parts)
