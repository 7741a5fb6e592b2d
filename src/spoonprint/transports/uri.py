"""Printer addresses: ``SCHEME:TARGET[?OPTION=VALUE&...]`` (pure).

======================================  =============================================
``tcp://HOST[:PORT]``                   a network printer (raw TCP, port 9100 by default)
``cups:QUEUE[?client=pycups|cli]``     a CUPS queue (raw jobs); ``server=PATH|HOST[:PORT]``
``usb:/dev/usb/lp0``                    a USB printer device file
``serial:/dev/ttyUSB0?baud=19200``      a serial printer
``windows:PRINTER NAME[?mode=gdi|raw]`` a Windows print queue (``gdi`` by default)
``file:/path/to/folder``                one file per ticket
======================================  =============================================

The target is percent-decoded, so a name holding ``?`` or ``%`` can still be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_TCP_PORT = 9100

#: Scheme -> the module under ``spoonprint.transports`` that implements it.
SCHEME_MODULES: dict[str, str] = {
    "tcp": "tcp",
    "cups": "cups",
    "usb": "device",
    "serial": "device",
    "windows": "windows",
    "file": "file",
}


@dataclass(frozen=True)
class PrinterUri:
    scheme: str
    #: host:port (tcp), queue name (cups), device path (usb, serial), printer name (windows),
    #: folder (file).
    target: str
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def parse_uri(uri: str) -> PrinterUri:
    """Split a printer address; ValueError naming the problem when it is not one."""
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEME_MODULES:
        known = ", ".join(f"{name}:" for name in SCHEME_MODULES)
        raise ValueError(f"printer uri must start with one of {known} got {uri!r}")
    if scheme == "tcp":
        host, port = tcp_address(uri)
        return PrinterUri("tcp", f"{host}:{port}", {}, uri)
    target, _, query = rest.partition("?")
    if target.startswith("//"):
        target = target[2:]
    target = unquote(target)
    if not target:
        raise ValueError(f"printer uri {uri!r} names no {scheme} target")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ValueError(f"bad options in printer uri {uri!r}") from None
    return PrinterUri(scheme, target, options, uri)


def tcp_address(uri: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://HOST[:PORT]`` printer address; ValueError otherwise."""
    parts = urlsplit(uri)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"printer uri must look like tcp://HOST[:PORT], got {uri!r}")
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError:
        raise ValueError(f"bad port in printer uri {uri!r}") from None
    return parts.hostname, port
