"""An unexpected error inside a route answers JSON 500 with nothing about the inside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from spoonprint.app import build
from spoonprint.config import load_settings
from spoonprint.http.app import create_app


def test_an_unexpected_error_is_a_json_500_without_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOONPRINT_SERVER__DATA_DIR", str(tmp_path / "data"))
    services = build(load_settings(tmp_path / "none.toml"))
    key = services.auth.keys.create("admin")
    app = create_app(services)

    def broken(job_id: int) -> None:
        raise RuntimeError("secret path /etc/spoonprint and a stack")

    services.store.get = broken  # type: ignore[method-assign]

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            return await client.get("/jobs/1", headers={"X-API-Key": key})

    answer = asyncio.run(call())
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error", "detail": None}
