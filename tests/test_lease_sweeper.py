"""A job whose lease runs out while the server runs (an attempt stuck past every timeout) is
taken back by the sweeper and printed, marked REPRINT."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from spoonprint.app import build
from spoonprint.config import load_settings
from spoonprint.domain.job import JobState, NewJob


def test_expired_lease_is_swept_and_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOONPRINT_SERVER__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOONPRINT_DELIVERY__LEASE_SECONDS", "0.2")
    services = build(load_settings(tmp_path / "none.toml"))

    async def scenario() -> None:
        await services.start()
        try:
            store = services.store
            job, _ = store.enqueue(NewJob("virtual", {"text": "stuck"}))
            # Another holder takes it before our worker does, then never finishes.
            assert store.claim_next("virtual", owner="stuck-attempt", lease_seconds=0.1)
            store.mark_ticket_started(job.id, "stuck-attempt")  # stuck mid-ticket
            worker = services.printers["virtual"]
            async with asyncio.timeout(10), worker.progress:
                await worker.progress.wait_for(lambda: store.get(job.id).state is JobState.PRINTED)
            printed = store.get(job.id)
            assert printed.maybe_printed
            assert any("recovered" in e.detail for e in store.events(job.id))
        finally:
            await services.stop()

    asyncio.run(scenario())
