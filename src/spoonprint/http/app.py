"""The HTTP API: ``create_app(services)`` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response, Security
from fastapi import Path as FastApiPath
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPBasicCredentials
from starlette.routing import Match
from starlette.types import Scope

from spoonprint import __version__
from spoonprint.app import Services
from spoonprint.domain.job import NewJob
from spoonprint.errors import JobNotFound
from spoonprint.http.auth import api_key_header, basic_auth, require_admin, require_key
from spoonprint.http.dashboard import dashboard_routes
from spoonprint.http.depends import require_json, services_of
from spoonprint.http.errors import install_error_handlers
from spoonprint.http.guard import GuardMiddleware
from spoonprint.http.headers import SecurityHeadersMiddleware
from spoonprint.http.intake import (
    IntakeMiddleware,
    add_print_route,
    printable_payload,
    read_order,
)
from spoonprint.http.limits import BodySizeLimitMiddleware
from spoonprint.http.ops_routes import ops_routes
from spoonprint.http.recovery import recovery_routes
from spoonprint.http.schemas import (
    AcceptedOut,
    ErrorOut,
    JobOut,
    PrinterOut,
    PublicPrinterOut,
    StatusOut,
    TestPrintRequest,
)
from spoonprint.http.strict_json import StrictJsonRoute
from spoonprint.security.keys import Identity

#: Job ids are SQLite integers: anything larger cannot exist (and must not reach the driver).
JobId = Annotated[int, FastApiPath(ge=1, le=2**63 - 1)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


_ORDER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PrintRequest"}}},
}


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="spoonprint",
        version=__version__,
        description="Print server for restaurant order tickets.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=_ERRORS,
        # spoonprint's own metrics are at /metrics; without this FastAPI asks OpenTelemetry
        # on every request whether it has been set up.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    install_error_handlers(app)
    # Innermost of spoonprint's middleware: orders are answered after the guard and the limit.
    app.add_middleware(IntakeMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=services.settings.server.max_body_bytes,
        body_timeout=services.settings.security.body_timeout,
    )
    app.include_router(_public_routes())
    app.include_router(_private_routes(app), dependencies=[Depends(require_key)])
    app.include_router(recovery_routes(require_json), dependencies=[Depends(require_key)])
    app.include_router(ops_routes(services))
    # Its own session sign-in (an admin key), not the API key check.
    app.include_router(dashboard_routes())

    @functools.lru_cache(maxsize=4096)
    def known_path(path: str) -> bool:
        # Asked of the app's own routing, so a route added later is known without a list here.
        scope: Scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        return any(route.matches(scope)[0] is not Match.NONE for route in app.routes)

    # Runs before the rest (only the headers below wrap it): hostile traffic is turned away
    # before anything else.
    app.add_middleware(GuardMiddleware, guard=services.guard, known_path=known_path)
    # Outermost: the guard's own refusals get them too.
    app.add_middleware(SecurityHeadersMiddleware)
    return app


#: What ``GET /`` tells a program: where things are (public: no version, printer or address).
_INDEX: dict[str, Any] = {
    "service": "spoonprint",
    "detail": "print server for order tickets; every route but /status needs an API key",
    "links": {
        "dashboard": "/dashboard",
        "status": "/status",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "print": "/print",
        "job": "/jobs/{id}",
        "queue": "/queue",
        "printers": "/printers",
    },
}


def _can_print(services: Services, name: str) -> bool:
    """Whether ``name`` can print, by the latest word on it: its worker's last try, or the
    health monitor's last check when that came later (a ticket that printed since outdates
    the problem the monitor saw; a printer not tried yet counts as able)."""
    state = services.printers[name].state
    if state.online is False:
        return False
    if services.monitor is None:
        return True
    record = services.monitor.records[name]
    checked_last = (record.last_probe_at or 0.0) >= (state.last_printed_at or 0.0)
    return record.health.ok or not checked_last


def _public_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False, response_model=None)
    def index(request: Request) -> Response:
        # Someone typing the server's address into a browser wants the dashboard.
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/dashboard", status_code=303)
        return JSONResponse(_INDEX)

    @router.get("/status", response_model=StatusOut, tags=["status"])
    def status(
        request: Request,
        key: str | None = Security(api_key_header),
        basic: HTTPBasicCredentials | None = Security(basic_auth),
    ) -> StatusOut:
        """Is the server up, and can its printers print? Public: no order data, no addresses;
        the version and uptime only for a valid key or a client in ``allowed_networks``. Always
        200 while the server runs: ``status`` says ``ok``, ``degraded`` or ``down``."""
        services = services_of(request)
        queued = services.queued_by_printer()
        printers = [
            PublicPrinterOut(
                name=name,
                online=worker.state.online,
                problem=worker.state.problem,
                advice=services.monitor.advice(name) if services.monitor else [],
                breaker=worker.breaker.state.value,
                queued=queued.get(name, 0),
            )
            for name, worker in services.printers.items()
        ]
        able = sum(_can_print(services, name) for name in services.printers)
        overall = "ok" if able == len(printers) else "degraded" if able else "down"
        answer = StatusOut(status=overall, queue_depth=sum(queued.values()), printers=printers)
        # What is installed and since when helps an attacker pick an exploit: the shop only.
        ip = getattr(request.state, "client_ip", None) or (
            request.client.host if request.client else ""
        )
        presented = key or (basic.password if basic else None)
        known = presented is not None and services.auth.identify(presented) is not None
        if presented is not None and not known:
            # Answered 200 whatever the key: without a strike, a way to try keys for free.
            services.guard.strike(ip, request.method, "/status", "wrong API key")
        if known or services.guard.allowlisted(ip):
            answer.version = services.version
            answer.uptime_seconds = round(datetime.now().timestamp() - services.started_at, 3)
        return answer

    return router


def _private_routes(app: FastAPI) -> APIRouter:
    router = APIRouter(route_class=StrictJsonRoute)

    add_print_route(router)

    @router.post(
        "/preview",
        dependencies=[Depends(require_json)],
        tags=["jobs"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The ticket as PNG"}},
        # Read as POST /print reads it (amounts sent as numbers exact), not by FastAPI.
        openapi_extra={"requestBody": _ORDER_BODY},
    )
    async def preview(request: Request) -> Response:
        """The ticket this order would print, as a PNG image, for the printer named (or the
        default printer): its paper width and style. Nothing is printed or stored."""
        order, _ = read_order(request.headers, await request.body())
        services = services_of(request)
        printer = services.printer_name(order.printer)
        payload = printable_payload(services, printer, order)
        png = await asyncio.to_thread(services.preview, printer, payload)
        return Response(png, media_type="image/png")

    @router.post(
        "/jobs/{job_id}/reprint",
        status_code=202,
        response_model=AcceptedOut,
        tags=["jobs"],
        dependencies=[Depends(require_admin)],
    )
    async def reprint(job_id: JobId, request: Request) -> AcceptedOut:
        """Print a finished or failed order again, as a new job. If the order may already be
        on paper, the new ticket carries a REPRINT banner."""
        services = services_of(request)
        job = await asyncio.to_thread(services.store.reprint, job_id)
        if job.printer in services.printers:
            services.printers[job.printer].wake()
        return AcceptedOut.of(job, duplicate=False)

    @router.post(
        "/jobs/{job_id}/cancel",
        response_model=JobOut,
        tags=["jobs"],
        dependencies=[Depends(require_admin)],
    )
    async def cancel(job_id: JobId, request: Request) -> JobOut:
        """Cancel a job that has not printed yet (or a failed one)."""
        store = services_of(request).store
        job = await asyncio.to_thread(store.cancel, job_id, "cancelled by staff")
        return JobOut.of(job)

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(
        job_id: JobId, request: Request, identity: Identity = Depends(require_key)
    ) -> JobOut:
        """A job with its full history. A ``print`` key sees only the jobs it sent."""
        store = services_of(request).store
        job = store.get(job_id)
        if not identity.admin and job.submitted_by != identity.name:
            raise JobNotFound(f"no job {job_id}")
        return JobOut.of(job, store.events(job_id))

    @router.get(
        "/queue", response_model=list[JobOut], tags=["jobs"], dependencies=[Depends(require_admin)]
    )
    def queue(request: Request, printer: str | None = None) -> list[JobOut]:
        """Jobs waiting to print, oldest first."""
        services = services_of(request)
        if printer is not None:
            services.printer_name(printer)
        return [JobOut.of(job) for job in services.store.pending(printer)]

    @router.get(
        "/printers",
        response_model=list[PrinterOut],
        tags=["printers"],
        dependencies=[Depends(require_admin)],
    )
    def printers(request: Request) -> list[PrinterOut]:
        services = services_of(request)
        queued = services.queued_by_printer()
        return [
            PrinterOut(
                name=name,
                uri=config.uri,
                protocol=config.protocol.value,
                style=config.style.value,
                default=name == services.default_printer,
                backup=config.backup,
                online=worker.state.online,
                problem=worker.state.problem,
                advice=services.monitor.advice(name) if services.monitor else [],
                breaker=worker.breaker.state.value,
                retry_at=_when(worker.breaker.retry_at(time.time())),
                last_error=worker.state.last_error,
                last_error_at=_when(worker.state.last_error_at),
                down_since=_when(worker.state.down_since),
                queued=queued.get(name, 0),
            )
            for name, worker in services.printers.items()
            for config in [services.configs[name]]
        ]

    @router.post(
        "/test-print",
        status_code=202,
        response_model=AcceptedOut,
        dependencies=[Depends(require_json), Depends(require_admin)],
        tags=["printers"],
    )
    async def test_print(request: Request, body: TestPrintRequest | None = None) -> AcceptedOut:
        """Print a test ticket on a printer (the default printer if none is named)."""
        services = services_of(request)
        printer = services.printer_name(body.printer if body else None)
        text = "\n".join(
            [
                "spoonprint test page",
                f"printer: {printer}",
                f"time: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
                "If you can read this, printing works.",
            ]
        )
        job, _ = await services.accept(NewJob(printer, {"text": text}))
        return AcceptedOut.of(job, duplicate=False)

    @router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_admin)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get("/docs", include_in_schema=False, dependencies=[Depends(require_admin)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="spoonprint API")

    return router
