"""Small FastAPI dependencies shared by the route modules."""

from __future__ import annotations

from fastapi import HTTPException, Request

from spoonprint.app import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def require_json(request: Request) -> None:
    """415 for a request body that is not declared as JSON."""
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (media == "application/json" or media.endswith("+json")):
        raise HTTPException(415, "send the order as JSON with Content-Type: application/json")
