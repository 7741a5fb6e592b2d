"""An unexpected error inside a route answers JSON 500 with nothing about the inside."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from spoonprint.app import build
from spoonprint.config import load_settings
from spoonprint.http.app import create_app


def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret path /etc/spoonprint and a stack")


@pytest.mark.parametrize(
    ("method", "path", "body", "broken_store_method"),
    [
        ("GET", "/jobs/1", None, "get"),
        # Answered by the intake middleware, before the router: the same answer.
        ("POST", "/print", {"text": "tea"}, "enqueue_async"),
    ],
)
def test_an_unexpected_error_is_a_json_500_without_details(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: Any,
    broken_store_method: str,
) -> None:
    monkeypatch.setenv("SPOONPRINT_SERVER__DATA_DIR", str(tmp_path / "data"))
    services = build(load_settings(tmp_path / "none.toml"))
    key = services.auth.keys.create("admin")
    app = create_app(services)
    setattr(services.store, broken_store_method, broken)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            return await client.request(method, path, json=body, headers={"X-API-Key": key})

    answer = asyncio.run(call())
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error", "detail": None}
    assert "secret" not in answer.text
