"""Property test: whatever sequence of store operations happens, a job's recorded history
follows the transition table, no job is lost, and finished jobs never change again."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from spoonprint.domain.job import FINAL_STATES, TRANSITIONS, JobState, NewJob
from spoonprint.errors import InvalidTransition
from spoonprint.queue.sqlite import SqliteJobStore

PRINTERS = ("kitchen", "bar")


class JobStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = SqliteJobStore.in_memory()
        self.accepted: list[int] = []
        self.finished: dict[int, JobState] = {}

    def teardown(self) -> None:
        self.store.close()

    @rule(printer=st.sampled_from(PRINTERS), order=st.none() | st.sampled_from("abcde"))
    def enqueue(self, printer: str, order: str | None) -> None:
        job, created = self.store.enqueue(NewJob(printer, {"text": "x"}, order_id=order))
        if created:
            self.accepted.append(job.id)

    @rule(printer=st.sampled_from(PRINTERS), owner=st.sampled_from(["w1", "w2"]))
    def claim(self, printer: str, owner: str) -> None:
        self.store.claim_next(printer, owner, 30)

    @rule(
        index=st.integers(0, 50),
        action=st.sampled_from(["printed", "sent", "release", "fail", "cancel", "reprint"]),
        owner=st.sampled_from(["w1", "w2", None]),
    )
    def act(self, index: int, action: str, owner: str | None) -> None:
        if not self.accepted:
            return
        job_id = self.accepted[index % len(self.accepted)]
        try:
            if action == "printed":
                self.store.mark_printed(job_id, owner=owner)
            elif action == "sent":
                self.store.mark_sent(job_id, owner=owner)
            elif action == "release":
                self.store.release(job_id, "offline", maybe_printed=False, owner=owner)
            elif action == "fail":
                self.store.mark_failed(job_id, "gave up", owner=owner)
            elif action == "cancel":
                self.store.cancel(job_id)
            else:
                self.accepted.append(self.store.reprint(job_id).id)
        except InvalidTransition:
            pass

    @rule()
    def crash(self) -> None:
        self.store.recover_interrupted()

    @rule()
    def failover(self) -> None:
        self.store.move_to_backup("kitchen", "bar")

    @invariant()
    def histories_follow_the_table(self) -> None:
        for job_id in self.accepted:
            job = self.store.get(job_id)
            events = self.store.events(job_id)
            assert events[0].from_state is None and events[0].to_state is JobState.QUEUED
            for event in events[1:]:
                assert event.from_state is not None
                moved = event.from_state == event.to_state == JobState.QUEUED
                assert moved or event.to_state in TRANSITIONS[event.from_state]
            assert events[-1].to_state is job.state
            if job_id in self.finished:
                assert job.state is self.finished[job_id]
            if job.state in FINAL_STATES:
                self.finished[job_id] = job.state

    @invariant()
    def nothing_lost(self) -> None:
        counts = self.store.count_by_state()
        assert sum(counts.values()) == len(self.accepted)
        for printer in PRINTERS:
            assert sum(1 for j in self.store.pending(printer) if j.state is JobState.PRINTING) <= 2


TestJobStore = JobStoreMachine.TestCase
TestJobStore.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
