"""Jobs and their states. The allowed transitions are data, enforced by the job store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    PRINTING = "printing"
    PRINTED = "printed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Every state change a job may make. ``printing -> queued`` is a delivery attempt that did not
#: finish (printer offline, crash recovery): the job waits for its next attempt.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.PRINTING, JobState.CANCELLED, JobState.FAILED}),
    JobState.PRINTING: frozenset({JobState.PRINTED, JobState.QUEUED, JobState.FAILED}),
    JobState.PRINTED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.CANCELLED: frozenset(),
}

#: States in which a job still waits to come out of a printer.
PENDING_STATES = frozenset({JobState.QUEUED, JobState.PRINTING})


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
    attempts: int = 0
    order_id: str | None = None
    idempotency_key: str | None = None
    last_error: str | None = None
    #: True when an earlier attempt may have put this ticket on paper: print it marked REPRINT.
    maybe_printed: bool = False
    printed_at: float | None = None


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
