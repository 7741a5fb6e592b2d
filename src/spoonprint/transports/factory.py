"""Opening a transport from a printer address, importing only the module its scheme needs
(pywin32, pycups and pyserial are never imported for a printer that does not use them)."""

from __future__ import annotations

from importlib import import_module
from typing import Protocol as TypingProtocol
from typing import cast

from spoonprint.errors import ConfigError
from spoonprint.transports.base import Timeouts, Transport
from spoonprint.transports.uri import SCHEME_MODULES, PrinterUri, parse_uri


class TransportModule(TypingProtocol):
    """What every transport module offers (tcp, cups, device, windows, file)."""

    def usable(self) -> str | None:
        """None when this transport works on this machine; otherwise why not, in words with
        the fix (e.g. "needs pywin32: pip install pywin32")."""
        ...

    def from_uri(self, uri: PrinterUri, timeouts: Timeouts) -> Transport:
        """The transport for ``uri``; ConfigError naming the bad option."""
        ...


def transport_module(scheme: str) -> TransportModule:
    return cast(TransportModule, import_module(f"spoonprint.transports.{SCHEME_MODULES[scheme]}"))


def open_transport(uri: str | PrinterUri, timeouts: Timeouts) -> Transport:
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    module = transport_module(parsed.scheme)
    reason = module.usable()
    if reason is not None:
        raise ConfigError(f"printer {parsed.raw!r} cannot be used on this machine: {reason}")
    return module.from_uri(parsed, timeouts)
