"""Recovery routes: printer health, recovery on demand, its settings, and the emergency
clear that sets waiting orders aside (held, never deleted) until they are released."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spoonprint.app import Services
from spoonprint.http.auth import require_admin
from spoonprint.http.schemas import JobOut
from spoonprint.http.strict_json import StrictJsonRoute


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: One printer, or every printer when empty.
    printer: str | None = None


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    printer: str | None = None


class RecoveryConfigRequest(BaseModel):
    """Any subset of the [recovery] settings; what is left out keeps its value."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    interval: float | None = Field(None, description="seconds between probes, 1-3600")
    stuck_after: float | None = Field(None, description="seconds before a spooler job is stuck")
    max_tries: int | None = Field(None, description="tries per strategy and fault")
    disabled_strategies: list[str] | None = None


class ReleasedOut(BaseModel):
    released: list[JobOut]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    assert services.monitor is not None
    return services


def recovery_routes(require_json: Any) -> APIRouter:
    router = APIRouter(tags=["recovery"], route_class=StrictJsonRoute)

    @router.get("/recovery/status", dependencies=[Depends(require_admin)])
    def recovery_status(request: Request) -> dict[str, Any]:
        """Per printer: health, last probe, current problems with advice for staff, the
        strategies with how often each was tried and worked, and the time the last recovery
        took; then the most recent recovery actions and the settings in force."""
        services = _services(request)
        monitor = services.monitor
        assert monitor is not None
        return {
            "printers": [monitor.describe(name) for name in services.printers],
            "recent": [{**vars(action), "fault": action.fault.value} for action in monitor.recent],
            "config": monitor.settings.model_dump(),
        }

    @router.post(
        "/recovery/trigger",
        dependencies=[Depends(require_json), Depends(require_admin)],
    )
    async def trigger(request: Request, body: TriggerRequest | None = None) -> dict[str, Any]:
        """Probe now and run every enabled strategy the faults call for (one printer or all),
        ignoring the try limits."""
        services = _services(request)
        assert services.monitor is not None
        name = services.printer_name(body.printer) if body and body.printer else None
        return {"printers": await services.monitor.trigger(name)}

    @router.post(
        "/recovery/config",
        dependencies=[Depends(require_json), Depends(require_admin)],
    )
    def recovery_config(request: Request, body: RecoveryConfigRequest) -> dict[str, Any]:
        """Change recovery settings: validated, kept across restarts, in force at once."""
        changes = body.model_dump(exclude_none=True)
        try:
            settings = _services(request).update_recovery(changes)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
            ]
            raise HTTPException(422, problems) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"config": settings.model_dump()}

    @router.post(
        "/emergency-clear",
        dependencies=[Depends(require_json), Depends(require_admin)],
    )
    async def emergency_clear(request: Request) -> dict[str, Any]:
        """Hold every waiting order (none is deleted), reset every breaker and backoff, and
        run a full recovery on every printer. ``POST /queue/release`` prints the held orders."""
        return await _services(request).emergency_clear()

    @router.post(
        "/queue/release",
        response_model=ReleasedOut,
        dependencies=[Depends(require_json), Depends(require_admin)],
        tags=["jobs"],
    )
    async def release(request: Request, body: ReleaseRequest | None = None) -> ReleasedOut:
        """Queue held orders again (one printer's, or all), in their original order."""
        services = _services(request)
        name = services.printer_name(body.printer) if body and body.printer else None
        released = await services.release_held(name)
        return ReleasedOut(released=[JobOut.of(job) for job in released])

    return router
