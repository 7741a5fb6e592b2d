"""The JobStore interface: everything the API and the workers need from durable storage."""

from __future__ import annotations

from typing import Protocol

from spoonprint.domain.job import Job, JobEvent, JobState, NewJob


class JobStore(Protocol):
    def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        """Commit a new job, or return the existing one with the same order id or
        idempotency key. The bool is True when a job was created. The job is on disk on return."""
        ...

    def get(self, job_id: int) -> Job:
        """The job; JobNotFound if there is none."""
        ...

    def events(self, job_id: int) -> list[JobEvent]: ...

    def claim_next(self, printer: str) -> Job | None:
        """Move the printer's oldest queued job to ``printing`` and return it."""
        ...

    def mark_printed(self, job_id: int, detail: str = "") -> Job: ...

    def release(self, job_id: int, error: str, *, maybe_printed: bool) -> Job:
        """An attempt did not finish: ``printing -> queued``, counting the attempt."""
        ...

    def mark_failed(self, job_id: int, error: str) -> Job: ...

    def cancel(self, job_id: int, detail: str = "") -> Job: ...

    def pending(self, printer: str | None = None) -> list[Job]:
        """Jobs still waiting to print, oldest first."""
        ...

    def count_by_state(self) -> dict[JobState, int]: ...

    def recover_interrupted(self) -> list[Job]:
        """At start: jobs left ``printing`` by a crash go back to the queue, flagged as
        possibly printed so they come out marked REPRINT."""
        ...

    def close(self) -> None: ...
