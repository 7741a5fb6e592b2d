"""Jobs and their states. The allowed transitions are data, enforced by the job store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    PRINTING = "printing"
    #: Confirmed by the printer after the ticket.
    PRINTED = "printed"
    #: Written in full to a printer that cannot confirm (status not available).
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Set aside by an emergency clear; prints again when released (never deleted).
    HELD = "held"


#: Every state change a job may make. ``printing -> queued`` is a delivery attempt that did not
#: finish (printer offline, crash recovery): the job waits for its next attempt. A failed job
#: can be queued again by a person; printed, sent and cancelled are final (a reprint is a new
#: job). An emergency clear holds queued jobs; releasing them queues them again.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.PRINTING, JobState.CANCELLED, JobState.FAILED, JobState.HELD}
    ),
    JobState.PRINTING: frozenset(
        {JobState.PRINTED, JobState.SENT, JobState.QUEUED, JobState.FAILED}
    ),
    JobState.PRINTED: frozenset(),
    JobState.SENT: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.CANCELLED: frozenset(),
    JobState.HELD: frozenset({JobState.QUEUED, JobState.CANCELLED}),
}

#: States in which a job still waits to come out of a printer.
PENDING_STATES = frozenset({JobState.QUEUED, JobState.PRINTING})
#: States a job never leaves.
FINAL_STATES = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)


def can_transition(current: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[current]


@dataclass(frozen=True)
class Job:
    """One accepted order for one printer, as stored."""

    id: int
    printer: str
    state: JobState
    payload: dict[str, Any]
    copies: int
    created_at: float
    updated_at: float
    #: Delivery attempts started (a wait for paper or a cover is not one).
    attempts: int = 0
    order_id: str | None = None
    idempotency_key: str | None = None
    last_error: str | None = None
    #: True when an earlier attempt may have put this ticket on paper: print it marked REPRINT.
    maybe_printed: bool = False
    printed_at: float | None = None
    #: Who is printing it and until when (a crashed printer process stops renewing this).
    lease_owner: str | None = None
    lease_expires: float | None = None
    #: The printer it was ordered for, when it was moved to that printer's backup.
    original_printer: str | None = None
    #: The job this one is a reprint of, when staff asked for a reprint.
    reprint_of: int | None = None
    #: The name of the API key that sent the order.
    submitted_by: str | None = None
    #: For a reprint: when the order was first accepted (the first job it reprints).
    first_accepted_at: float | None = None

    @property
    def ordered_at(self) -> float:
        """When the order was accepted, for a reprint as for its first job."""
        return self.created_at if self.first_accepted_at is None else self.first_accepted_at

    @property
    def moved_to_backup(self) -> bool:
        return self.original_printer is not None and self.original_printer != self.printer


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's history."""

    job_id: int
    at: float
    from_state: JobState | None
    to_state: JobState
    detail: str


@dataclass(frozen=True)
class NewJob:
    """What the API hands the store to enqueue."""

    printer: str
    payload: dict[str, Any]
    copies: int = 1
    order_id: str | None = None
    idempotency_key: str | None = None
    maybe_printed: bool = False
    reprint_of: int | None = None
    submitted_by: str | None = None
    first_accepted_at: float | None = None
