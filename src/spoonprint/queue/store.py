"""The JobStore interface: everything the API and the workers need from durable storage."""

from __future__ import annotations

from typing import Protocol

from spoonprint.domain.job import Job, JobEvent, JobState, NewJob


class JobStore(Protocol):
    def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        """Commit a new job, or return the existing one with the same order id or
        idempotency key. The bool is True when a job was created. The job is on disk on return."""
        ...

    def reprint(self, job_id: int) -> Job:
        """A new job printing the same order again (marked REPRINT if it may be on paper)."""
        ...

    def get(self, job_id: int) -> Job:
        """The job; JobNotFound if there is none."""
        ...

    def events(self, job_id: int) -> list[JobEvent]: ...

    def pending(self, printer: str | None = None) -> list[Job]:
        """Jobs still waiting to print, oldest first."""
        ...

    def count_by_state(self) -> dict[JobState, int]: ...

    def count_pending_by_printer(self) -> dict[str, int]:
        """Jobs still waiting to print, counted per printer."""
        ...

    def claim_next(self, printer: str, owner: str = "", lease_seconds: float = 30.0) -> Job | None:
        """Lease the printer's oldest queued job (``queued -> printing``)."""
        ...

    def heartbeat(self, job_id: int, owner: str, lease_seconds: float) -> None: ...

    def mark_printed(self, job_id: int, detail: str = "", owner: str | None = None) -> Job: ...

    def mark_sent(self, job_id: int, detail: str = "", owner: str | None = None) -> Job: ...

    def mark_ticket_started(self, job_id: int, owner: str) -> None:
        """Durably: the leased job's ticket is about to be handed over (it may print)."""
        ...

    def release(
        self,
        job_id: int,
        error: str,
        *,
        maybe_printed: bool,
        count_attempt: bool = True,
        owner: str | None = None,
    ) -> Job:
        """An attempt did not finish: ``printing -> queued``, keeping the job's place."""
        ...

    def mark_failed(self, job_id: int, error: str, owner: str | None = None) -> Job: ...

    def cancel(self, job_id: int, detail: str = "") -> Job: ...

    def recover_interrupted(self, *, expired_only: bool = False) -> list[Job]:
        """Jobs left ``printing`` go back to the queue, flagged as possibly printed."""
        ...

    def move_to_backup(self, printer: str, backup: str) -> list[Job]: ...

    def hold_queued(self, printer: str | None = None, detail: str = "held") -> list[Job]:
        """``queued -> held`` for every queued job (of one printer, or all)."""
        ...

    def release_held(self, printer: str | None = None, detail: str = "released") -> list[Job]:
        """``held -> queued`` for every held job (of one printer, or all), in order."""
        ...

    def close(self) -> None: ...
