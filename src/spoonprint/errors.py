"""The one exception tree of spoonprint.

Adapters translate their libraries' errors into these classes once, at the boundary; everything
above them decides by type, never by message. ``retryable`` says whether delivering the same job
again later can succeed without a person doing anything to the order itself.

::

    SpoonprintError
    ├── ConfigError                 invalid or missing configuration (fails at start)
    ├── PrinterError                a printer could not take a ticket        retryable
    │   ├── PrinterOffline          connection refused / unreachable / no route
    │   ├── PrinterTimeout          connect, write or status read took too long
    │   ├── PrinterDisconnected     the connection dropped mid-ticket
    │   └── PrinterNotReady         the printer answered but cannot print (paper out, cover open)
    ├── RenderError                 the ticket cannot be rendered            not retryable
    ├── StoreError                  the job store failed
    │   └── StoreUnavailable        disk full, read-only, locked: nothing is acknowledged
    ├── JobNotFound                 no job with that id
    ├── UnknownPrinter              no printer with that name
    └── InvalidTransition           a job state change the state table does not allow
"""

from __future__ import annotations


class SpoonprintError(Exception):
    """Base of every error spoonprint raises on purpose."""

    retryable: bool = False


class ConfigError(SpoonprintError):
    """Configuration is invalid; the message names the offending key."""


class PrinterError(SpoonprintError):
    """A printer could not take a ticket right now."""

    retryable = True

    def __init__(self, message: str, *, bytes_written: int = 0) -> None:
        super().__init__(message)
        # Part of a ticket may already be on paper: the next attempt must say REPRINT.
        self.bytes_written = bytes_written


class PrinterOffline(PrinterError):
    """The printer refused the connection or cannot be reached."""


class PrinterTimeout(PrinterError):
    """Connecting, writing or reading status took longer than its timeout."""


class PrinterDisconnected(PrinterError):
    """The connection to the printer dropped while a ticket was being sent."""


class PrinterNotReady(PrinterError):
    """The printer answered but cannot print: paper out, cover open, error state."""


class RenderError(SpoonprintError):
    """The document cannot be turned into printer bytes; retrying will not help."""


class StoreError(SpoonprintError):
    """The job store failed."""


class StoreUnavailable(StoreError):
    """The job store cannot write (disk full, read-only, locked); nothing is acknowledged."""

    retryable = True


class JobNotFound(SpoonprintError):
    """No job has that id."""


class UnknownPrinter(SpoonprintError):
    """No printer has that name."""


class InvalidTransition(SpoonprintError):
    """A job state change that the state table does not allow, or that lost a race."""
