"""Run spoonprint as a system service that starts at boot and comes back after a crash.

``spoonprint service install|uninstall``: a systemd unit on Linux (:mod:`.systemd`), a Windows
service through pywin32 on Windows (:mod:`.windows`, imported only there). Either way the
service runs ``<this python> -m spoonprint serve --config <the config file>``, the same server
as by hand, stopped gracefully (SIGTERM / the service manager's stop request).
"""

from __future__ import annotations

DEFAULT_NAME = "spoonprint"
DISPLAY_NAME = "spoonprint print server"
DESCRIPTION = "spoonprint: accepts orders over HTTP and prints kitchen tickets."


class ServiceError(Exception):
    """Installing or removing the service failed; the message says what to do."""
