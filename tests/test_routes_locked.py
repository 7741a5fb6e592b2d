"""Every route of the app, found by walking its routers (also routes hidden from the OpenAPI
document), refuses a request without a key; only GET /status and the index at GET / are
public."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spoonprint.app import build
from spoonprint.config import load_settings
from spoonprint.http.app import create_app
from spoonprint.http.dashboard import PUBLIC_ROUTES

#: GET / answers a program with where the routes are (and sends a browser to the dashboard).
PUBLIC = {("GET", "/status"), ("GET", "/"), *PUBLIC_ROUTES}


def walk(routes: list[Any]) -> Iterator[tuple[str, str]]:
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from walk(router.routes)
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            yield method, route.path


def test_no_route_is_open_by_mistake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOONPRINT_SERVER__DATA_DIR", str(tmp_path / "data"))
    services = build(load_settings(tmp_path / "none.toml"))
    app = create_app(services)
    routes = sorted(set(walk(app.routes)) - {("HEAD", path) for _, path in walk(app.routes)})
    assert ("POST", "/print") in routes and ("GET", "/docs") in routes and len(routes) >= 11

    async def check() -> dict[tuple[str, str], int]:
        transport = httpx.ASGITransport(app=app)
        seen = {}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            for method, path in routes:
                answer = await client.request(method, path.replace("{job_id}", "1"), json={})
                seen[(method, path)] = answer.status_code
        return seen

    seen = asyncio.run(check())
    for route, status in seen.items():
        assert status == (200 if route in PUBLIC else 401), route
