"""What can be wrong on the way to a printer, and what staff should do about it (pure).

A transport reports :class:`Problem` values; each names a :class:`Fault`. Faults a person must
fix (paper, cover, power) are reported with plain advice and never "recovered"; the others have
recovery strategies (see :mod:`spoonprint.recovery.strategy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    #: No connection to the printer (refused, no route, host down).
    UNREACHABLE = "unreachable"
    #: The printer takes a connection but does not answer.
    NOT_RESPONDING = "not-responding"
    #: The printer reports a recoverable error (cutter, mechanism).
    PRINTER_ERROR = "printer-error"
    PAPER_OUT = "paper-out"
    COVER_OPEN = "cover-open"
    #: The spooler or the printer says the printer is switched off or not connected.
    POWER_OFF = "power-off"
    #: A USB or serial device file is gone (unplugged).
    DEVICE_MISSING = "device-missing"
    #: The print queue or folder named in the configuration does not exist.
    NOT_FOUND = "not-found"
    #: The spooler queue is stopped / paused: jobs wait in it.
    QUEUE_DISABLED = "queue-disabled"
    #: The spooler queue refuses new jobs.
    QUEUE_REJECTING = "queue-rejecting"
    #: Windows "Use Printer Offline" is set on the queue.
    WORK_OFFLINE = "work-offline"
    #: A spooler job spoonprint submitted has made no progress for too long.
    STUCK_JOB = "stuck-job"
    #: The print spooler itself does not answer.
    SPOOLER_DOWN = "spooler-down"
    #: The queue's driver cannot print this kind of job (a Windows v4 driver and mode=raw).
    WRONG_MODE = "wrong-mode"


#: Faults only a person can fix: reported, never "recovered".
HUMAN_NEEDED = frozenset({Fault.PAPER_OUT, Fault.COVER_OPEN, Fault.POWER_OFF})

#: What staff should do, in plain words.
ADVICE: dict[Fault, str] = {
    Fault.UNREACHABLE: "printer unreachable: check that it is switched on and its cable is in",
    Fault.NOT_RESPONDING: "printer not responding: switch it off and on again",
    Fault.PRINTER_ERROR: "printer error: open and close the cover; if it stays, switch it off "
    "and on",
    Fault.PAPER_OUT: "paper out: load a new paper roll and close the cover",
    Fault.COVER_OPEN: "cover open: close the printer cover",
    Fault.POWER_OFF: "printer off or unplugged: check the power and the cable",
    Fault.DEVICE_MISSING: "printer not connected: check the USB cable and that it is switched on",
    Fault.NOT_FOUND: "printer not found: check the printer (queue or folder) name in "
    "spoonprint.toml",
    Fault.QUEUE_DISABLED: "print queue stopped: spoonprint is restarting it",
    Fault.QUEUE_REJECTING: "print queue refusing jobs: spoonprint is re-opening it",
    Fault.WORK_OFFLINE: "printer set to 'Use Printer Offline': spoonprint is clearing it",
    Fault.STUCK_JOB: "a print job is stuck: spoonprint is clearing it and printing again",
    Fault.SPOOLER_DOWN: "the print spooler is not running: restart the computer if this stays",
    Fault.WRONG_MODE: "the printer's Windows driver cannot print raw tickets: set mode=gdi for "
    "it in spoonprint.toml",
}


@dataclass(frozen=True)
class Problem:
    fault: Fault
    #: Technical detail for the logs and admins (may name addresses and queue names).
    detail: str = ""
    #: Spooler job ids concerned (stuck jobs), so a strategy acts on exactly these.
    jobs: tuple[int, ...] = ()

    @property
    def human_needed(self) -> bool:
        return self.fault in HUMAN_NEEDED

    @property
    def advice(self) -> str:
        return ADVICE[self.fault]


@dataclass(frozen=True)
class Health:
    """One probe's findings: no problems means the path to the printer is fine."""

    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def human_needed(self) -> bool:
        return any(problem.human_needed for problem in self.problems)

    def faults(self) -> frozenset[Fault]:
        return frozenset(problem.fault for problem in self.problems)


HEALTHY = Health()
