"""The web dashboard at ``/dashboard``: what the shop needs to see and do, in a browser.

Sign in with an admin key (a wrong key is a 401, so it counts as a strike with the guard, like
a wrong key on the API); the session is a signed HttpOnly, SameSite=Strict cookie (Secure over
TLS, see :mod:`spoonprint.http.session`). The page shows printers (health, breaker, paper,
advice), the queue, recent jobs, recovery actions and security events, kept up to date by a
server-sent event stream; it searches the job history by order number, shows a picture of any
ticket, and has buttons to reprint, cancel, release held orders, run recovery and unblock an
address. Every action needs the session and its CSRF token (``X-CSRF-Token``).

Every page, script and image is a route of the app itself (no CDN, no catch-all mount), so the
guard still treats any other path as a scanner's probe. Only :data:`PUBLIC_ROUTES` answer
without a session; everything else answers 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from spoonprint.app import Services
from spoonprint.domain.job import Job, JobState, can_transition
from spoonprint.http.guard import strike_after
from spoonprint.http.session import (
    COOKIE,
    COOKIE_PATH,
    CSRF_HEADER,
    Session,
    Sessions,
)
from spoonprint.http.strict_json import StrictJsonRoute
from spoonprint.queue.history import JobHistory
from spoonprint.render.loader import preview_png
from spoonprint.security.clients import parse_address
from spoonprint.security.events import recent_events

log = logging.getLogger("spoonprint.dashboard")

STATIC = Path(__file__).parent / "static"
#: The files served from ``/dashboard/static/``, each as a route of its own.
ASSETS: dict[str, str] = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "icon.png": "image/png",
}
#: What answers without a session (everything else under /dashboard is 401 without one).
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/dashboard"),
        ("GET", "/dashboard/"),
        *(("GET", f"/dashboard/static/{name}") for name in ASSETS),
    }
)
RECENT_JOBS = 15
RECENT_ACTIONS = 10
RECENT_EVENTS = 12
SEARCH_LIMIT = 50
#: Seconds between looks at the state while an event stream is open (sent only on change).
TICK = 1.0
#: An event stream ends after this long and the browser opens a new one (also a bound on how
#: long a stop could wait for a stream, should the check in ``_server_stopping`` ever fail).
STREAM_SECONDS = 60.0
KEEP_ALIVE = 15.0

#: Strict: scripts, styles and images only from spoonprint itself, nothing inline, no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NO_STORE = {"Cache-Control": "no-store"}

JobId = Annotated[int, FastApiPath(ge=1, le=2**63 - 1)]


def _read_assets() -> tuple[dict[str, bytes], str]:
    files = {name: (STATIC / name).read_bytes() for name in ASSETS}
    version = hashlib.sha256(b"".join(files.values())).hexdigest()[:12]
    return files, version


_FILES, ASSET_VERSION = _read_assets()
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_TEMPLATES = {
    name: (STATIC / name).read_text(encoding="utf-8") for name in ("sign-in.html", "dashboard.html")
}


class PrinterChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: One printer, or all when empty.
    printer: str | None = None


class UnblockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: str = Field(max_length=64)


# -- state --------------------------------------------------------------------------------


@dataclass
class Dashboard:
    """What the dashboard's routes share; built when the app starts."""

    services: Services
    sessions: Sessions
    history: JobHistory

    @classmethod
    def open(cls, services: Services) -> Dashboard:
        data_dir = services.settings.server.data_dir
        sessions = Sessions.in_folder(data_dir, services.runtime)
        return cls(services, sessions, JobHistory.open(data_dir))

    def close(self) -> None:
        self.history.close()

    def session_of(self, request: Request) -> Session | None:
        """The request's session, if valid and its key is still an active admin key."""
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is None or not self._key_valid(session):
            return None
        return session

    def _key_valid(self, session: Session) -> bool:
        if session.key_fingerprint is not None:
            env = self.services.settings.api_key
            return env is not None and session.key_fingerprint == self.sessions.fingerprint(
                env.get_secret_value()
            )
        # Key names are never reused, so the name is the key.
        return any(
            key.name == session.name and key.role == "admin" and key.revoked_at is None
            for key in self.services.auth.keys.list()
        )

    async def state(self) -> dict[str, Any]:
        """Everything the page shows. The database and the security log are read in a thread
        (through connections of their own); what lives in memory is read on the event loop,
        where it changes."""
        stored = await asyncio.to_thread(self._stored)
        queued: dict[str, int] = stored.pop("queued")
        services = self.services
        monitor = services.monitor
        actions = list(monitor.recent)[-RECENT_ACTIONS:] if monitor else []
        stored["queue"]["depth"] = sum(queued.values())
        return {
            "version": services.version,
            "started_at": services.started_at,
            "printers": [
                printer_view(services, name, queued.get(name, 0)) for name in services.printers
            ],
            "recovery": [
                {**vars(action), "fault": action.fault.value} for action in reversed(actions)
            ],
            **stored,
        }

    def _stored(self) -> dict[str, Any]:
        guard = self.services.guard
        # Counts from the job store itself (the waiting count reads its index only).
        counts = self.services.store.count_by_state()
        oldest = self.history.oldest_waiting()
        return {
            "queued": self.services.queued_by_printer(),
            "queue": {
                "held": counts[JobState.HELD],
                "failed": counts[JobState.FAILED],
                "oldest": job_view(oldest) if oldest else None,
            },
            "jobs": [job_view(job) for job in self.history.recent(RECENT_JOBS)],
            "security": {
                "blocked": [vars(block) for block in guard.blocks.active(time.time())],
                "events": recent_events(guard.events.path, RECENT_EVENTS),
            },
        }


def printer_view(services: Services, name: str, queued: int) -> dict[str, Any]:
    worker = services.printers[name]
    monitor = services.monitor
    described: dict[str, Any] = (
        monitor.describe(name) if monitor else {"health": "unknown", "problems": []}
    )
    faults = {problem["fault"] for problem in described["problems"]}
    state = worker.state
    reads_status = worker.transport.reads_status and worker.confirm
    return {
        "name": name,
        "address": worker.transport.address,
        "default": name == services.default_printer,
        "backup": services.configs[name].backup,
        "status": _printer_status(state.online, described["health"]),
        "online": state.online,
        "problem": state.problem,
        "advice": monitor.advice(name) if monitor else [],
        "breaker": worker.breaker.state.value,
        "retry_at": worker.breaker.retry_at(time.time()),
        "paper": _paper(faults, state.problem, state.online, reads_status),
        "queued": queued,
        "last_error": state.last_error,
        "last_error_at": state.last_error_at,
        "down_since": state.down_since,
        "last_printed_at": state.last_printed_at,
        "recoveries": described.get("recoveries", 0),
        "last_probe_at": described.get("last_probe_at"),
    }


def _printer_status(online: bool | None, health: str) -> str:
    if health in ("needs-attention", "recovering"):
        return health
    if online is False:
        return "offline"
    if online or health == "ok":
        return "ok"
    return "unknown"


def _paper(faults: set[str], problem: str | None, online: bool | None, reads: bool) -> str:
    """``out``; ``ok`` when the printer itself last said it can print; else ``unknown``
    (not asked yet, not answering, or behind a spooler that does not say)."""
    if "paper-out" in faults or (problem or "").startswith("paper out"):
        return "out"
    return "ok" if reads and online else "unknown"


def order_number(job: Job) -> str | None:
    receipt = job.payload.get("receipt")
    printed = receipt.get("order_no") if isinstance(receipt, dict) else None
    return job.order_id or (str(printed) if printed else None)


def summary(payload: Mapping[str, Any], width: int = 80) -> str:
    """One line saying what a ticket is, for lists."""
    receipt = payload.get("receipt")
    if isinstance(receipt, dict):
        parts = [f"table {receipt['table']}"] if receipt.get("table") else []
        items = [item for item in receipt.get("items") or [] if isinstance(item, dict)]
        parts += [
            f"{item.get('qty', 1)}× {item.get('name') or item.get('name_zh') or 'item'}"
            for item in items[:3]
        ]
        if len(items) > 3:
            parts.append(f"+{len(items) - 3} more")
        line = ", ".join(parts) or str(receipt.get("title") or "receipt")
    else:
        lines = [line.strip() for line in str(payload.get("text", "")).splitlines()]
        line = next((text for text in lines if text), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "order": order_number(job),
        "printer": job.printer,
        "state": job.state.value,
        "copies": job.copies,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "printed_at": job.printed_at,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "maybe_printed": job.maybe_printed,
        "reprint_of": job.reprint_of,
        "original_printer": job.original_printer,
        "summary": summary(job.payload),
        "can_reprint": job.state not in (JobState.QUEUED, JobState.PRINTING),
        "can_cancel": can_transition(job.state, JobState.CANCELLED),
    }


def job_png(services: Services, job: Job) -> bytes:
    """The ticket a stored job prints, for its printer (CPU-bound: call in a thread)."""
    worker = services.printers.get(job.printer)
    if worker is None:  # its printer was removed from the configuration since
        return services.preview(services.default_printer, job.payload)
    # The worker's own composition, so the picture has the banners (REPRINT, BACKUP FOR)
    # the printer would get.
    document = worker.document(job)
    return preview_png(document, worker.profile, services.typeface)


def _server_stopping() -> bool:
    """Whether uvicorn has been asked to stop. uvicorn waits for every open response before
    it shuts down and tells the app nothing, so an event stream must notice by itself or it
    would hold a stop up; while uvicorn serves, its SIGINT/SIGTERM handler is a bound method of
    the server, whose ``should_exit`` flag says a stop is under way."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        server = getattr(signal.getsignal(sig), "__self__", None)
        if getattr(server, "should_exit", False) is True:
            return True
    return False


# -- pages --------------------------------------------------------------------------------


def _template(name: str, values: Mapping[str, str]) -> str:
    """The page with each ``{{name}}`` replaced, in one pass (a value is never read again)."""
    fields = {**values, "v": ASSET_VERSION}
    return _PLACEHOLDER.sub(lambda match: fields[match.group(1)], _TEMPLATES[name])


def sign_in_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    notice = f'<p class="notice error" role="alert">{html.escape(message)}</p>' if message else ""
    page = _template("sign-in.html", {"message": notice})
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


def dashboard_page(dashboard: Dashboard, session: Session) -> HTMLResponse:
    values = {
        "csrf": html.escape(dashboard.sessions.csrf_token(session)),
        "user": html.escape(session.name),
        "version": html.escape(dashboard.services.version),
    }
    return HTMLResponse(_template("dashboard.html", values), headers=PAGE_HEADERS)


async def _form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:
        return {}
    return {name: values[0] for name, values in fields.items()}


# -- dependencies -------------------------------------------------------------------------


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


async def require_session(
    request: Request, dashboard: Dashboard = Depends(dashboard_of)
) -> Session:
    """401 (a strike with the guard) without a valid session."""
    session = dashboard.session_of(request)
    if session is None:
        raise HTTPException(401, "sign in at /dashboard")
    return session


async def require_csrf(
    request: Request,
    dashboard: Dashboard = Depends(dashboard_of),
    session: Session = Depends(require_session),
) -> Session:
    """403 for an action without the session's CSRF token. Not a strike: a forged request
    comes from the victim's own browser, and striking its address would let any web page get
    the shop's owner blocked."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.method == "POST":
        presented = (await _form(request)).get("csrf")
    if not dashboard.sessions.csrf_ok(session, presented):
        raise HTTPException(403, "missing or wrong CSRF token: reload the dashboard")
    return session


def _client(request: Request) -> str:
    return str(getattr(request.state, "client_ip", None) or "unknown")


# -- routes -------------------------------------------------------------------------------


def dashboard_routes() -> APIRouter:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dashboard = Dashboard.open(app.state.services)
        app.state.dashboard = dashboard
        try:
            yield
        finally:
            dashboard.close()

    router = APIRouter(
        lifespan=lifespan,
        include_in_schema=False,
        tags=["dashboard"],
        route_class=StrictJsonRoute,
    )
    _page_routes(router)
    _read_routes(router)
    _action_routes(router)
    for name, media_type in ASSETS.items():
        router.add_api_route(f"/dashboard/static/{name}", _asset(name, media_type), methods=["GET"])
    return router


def _asset(name: str, media_type: str) -> Callable[[], Response]:
    def asset() -> Response:
        # Pages name scripts and styles with ?v=<content hash>: a new version is a new URL.
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(_FILES[name], media_type=media_type, headers=headers)

    asset.__name__ = f"asset_{name.replace('.', '_')}"
    return asset


def _page_routes(router: APIRouter) -> None:
    # Also with the slash people type: any path that is not a route is a strike.
    @router.get("/dashboard/", response_class=HTMLResponse)
    @router.get("/dashboard", response_class=HTMLResponse)
    def page(request: Request, dashboard: Dashboard = Depends(dashboard_of)) -> HTMLResponse:
        """The dashboard when signed in, else the sign-in page (both 200: a browser arriving
        here is not an attacker)."""
        session = dashboard.session_of(request)
        if session is not None:
            return dashboard_page(dashboard, session)
        page = sign_in_page()
        if COOKIE in request.cookies:  # expired, signed out or its key revoked
            page.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return page

    @router.post("/dashboard/sign-in")
    async def sign_in(request: Request, dashboard: Dashboard = Depends(dashboard_of)) -> Response:
        """A form post with ``key``. A wrong key is a 401, which the guard counts as a strike."""
        key = (await _form(request)).get("key", "").strip()
        services = dashboard.services
        identity = services.auth.identify(key)
        if identity is None:
            if key:
                strike_after(request.scope, "wrong API key (dashboard sign-in)")
            message = "That key is not right." if key else "Enter an admin key."
            return sign_in_page(message, 401)
        if not identity.admin:
            return sign_in_page("This key may only print: sign in with an admin key.", 403)
        env = services.settings.api_key
        from_env = env is not None and hmac.compare_digest(env.get_secret_value(), key)
        token, session = dashboard.sessions.open(
            identity.name, dashboard.sessions.fingerprint(key) if from_env else None
        )
        services.guard.events.record(
            _client(request), "POST", request.url.path, "dashboard_sign_in", identity.name
        )
        log.info("dashboard: %s signed in from %s", identity.name, _client(request))
        response = RedirectResponse("/dashboard", status_code=303, headers=NO_STORE)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(dashboard.sessions.lifetime),
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/dashboard/sign-out")
    def sign_out(
        dashboard: Dashboard = Depends(dashboard_of), session: Session = Depends(require_csrf)
    ) -> Response:
        dashboard.sessions.close(session)
        log.info("dashboard: %s signed out", session.name)
        response = RedirectResponse("/dashboard", status_code=303, headers=NO_STORE)
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return response


def _read_routes(router: APIRouter) -> None:
    signed_in = [Depends(require_session)]

    @router.get("/dashboard/api/state", dependencies=signed_in)
    async def state(response: Response, dashboard: Dashboard = Depends(dashboard_of)) -> Any:
        response.headers.update(NO_STORE)
        return {"server_time": time.time(), "state": await dashboard.state()}

    @router.get("/dashboard/api/events", dependencies=signed_in)
    async def events(request: Request, dashboard: Dashboard = Depends(dashboard_of)) -> Response:
        """Server-sent events: ``state`` whenever what the page shows changes, ``signed-out``
        when the session ends. The stream ends now and then; the browser reconnects."""
        headers = {**NO_STORE, "X-Accel-Buffering": "no"}
        stream = _event_stream(request, dashboard)
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @router.get("/dashboard/api/jobs", dependencies=signed_in)
    async def jobs(
        response: Response,
        dashboard: Dashboard = Depends(dashboard_of),
        q: Annotated[str, Query(max_length=128)] = "",
    ) -> Any:
        """Search by order number (or job id); the newest jobs when ``q`` is empty."""
        history = dashboard.history
        if q.strip():
            found = await asyncio.to_thread(history.search, q, SEARCH_LIMIT)
        else:
            found = await asyncio.to_thread(history.recent, SEARCH_LIMIT)
        response.headers.update(NO_STORE)
        return {"query": q, "jobs": [job_view(job) for job in found]}

    @router.get("/dashboard/api/jobs/{job_id}", dependencies=signed_in)
    async def job(
        job_id: JobId, response: Response, dashboard: Dashboard = Depends(dashboard_of)
    ) -> Any:
        store = dashboard.services.store
        found = await asyncio.to_thread(store.get, job_id)
        history = await asyncio.to_thread(store.events, job_id)
        response.headers.update(NO_STORE)
        return {
            **job_view(found),
            "events": [
                {
                    "at": event.at,
                    "from_state": event.from_state,
                    "to_state": event.to_state,
                    "detail": event.detail,
                }
                for event in history
            ],
        }

    @router.get("/dashboard/api/jobs/{job_id}/preview.png", dependencies=signed_in)
    async def preview(job_id: JobId, dashboard: Dashboard = Depends(dashboard_of)) -> Response:
        """The ticket as its printer would print it (with any REPRINT banner)."""
        services = dashboard.services
        found = await asyncio.to_thread(services.store.get, job_id)
        png = await asyncio.to_thread(job_png, services, found)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private"})


async def _event_stream(request: Request, dashboard: Dashboard) -> AsyncIterator[str]:
    yield f"retry: {int(TICK * 2000)}\n\n"
    started = last_sent = time.monotonic()
    last = ""
    while time.monotonic() - started < STREAM_SECONDS and not _server_stopping():
        if dashboard.session_of(request) is None:
            yield "event: signed-out\ndata: {}\n\n"
            return
        body = json.dumps(await dashboard.state(), sort_keys=True, ensure_ascii=False)
        if body != last:
            last, last_sent = body, time.monotonic()
            yield f'event: state\ndata: {{"server_time": {time.time():.3f}, "state": {body}}}\n\n'
        elif time.monotonic() - last_sent > KEEP_ALIVE:
            last_sent = time.monotonic()
            yield ": still here\n\n"
        await asyncio.sleep(TICK)


def _action_routes(router: APIRouter) -> None:
    @router.post("/dashboard/api/jobs/{job_id}/reprint")
    async def reprint(
        job_id: JobId,
        dashboard: Dashboard = Depends(dashboard_of),
        session: Session = Depends(require_csrf),
    ) -> Any:
        services = dashboard.services
        job = await asyncio.to_thread(services.store.reprint, job_id)
        if job.printer in services.printers:
            services.printers[job.printer].wake()
        log.warning("dashboard: %s reprinted job %d as job %d", session.name, job_id, job.id)
        return {"job": job_view(job), "message": f"Job {job_id} prints again as job {job.id}."}

    @router.post("/dashboard/api/jobs/{job_id}/cancel")
    async def cancel(
        job_id: JobId,
        dashboard: Dashboard = Depends(dashboard_of),
        session: Session = Depends(require_csrf),
    ) -> Any:
        store = dashboard.services.store
        job = await asyncio.to_thread(store.cancel, job_id, f"cancelled by {session.name}")
        log.warning("dashboard: %s cancelled job %d", session.name, job_id)
        return {"job": job_view(job), "message": f"Job {job_id} is cancelled."}

    @router.post("/dashboard/api/queue/release")
    async def release(
        dashboard: Dashboard = Depends(dashboard_of),
        session: Session = Depends(require_csrf),
        body: PrinterChoice | None = None,
    ) -> Any:
        services = dashboard.services
        name = services.printer_name(body.printer) if body and body.printer else None
        released = await services.release_held(name)
        log.warning("dashboard: %s released %d held job(s)", session.name, len(released))
        return {
            "released": [job.id for job in released],
            "message": f"{len(released)} held order(s) queued to print again.",
        }

    @router.post("/dashboard/api/recovery/trigger")
    async def recover(
        dashboard: Dashboard = Depends(dashboard_of),
        session: Session = Depends(require_csrf),
        body: PrinterChoice | None = None,
    ) -> Any:
        services = dashboard.services
        if services.monitor is None:
            raise HTTPException(503, "the health monitor is not running")
        name = services.printer_name(body.printer) if body and body.printer else None
        log.warning("dashboard: %s ran recovery on %s", session.name, name or "every printer")
        printers = await services.monitor.trigger(name)
        healthy = [printer for printer, found in printers.items() if found["health"] == "ok"]
        return {
            "printers": printers,
            "message": f"Checked {len(printers)} printer(s); {len(healthy)} healthy.",
        }

    @router.post("/dashboard/api/security/unblock")
    async def unblock(
        body: UnblockRequest,
        request: Request,
        dashboard: Dashboard = Depends(dashboard_of),
        session: Session = Depends(require_csrf),
    ) -> Any:
        address = parse_address(body.ip)
        if address is None:
            raise HTTPException(422, f"{body.ip!r} is not an IP address")
        guard = dashboard.services.guard
        if not await asyncio.to_thread(guard.unblock, str(address)):
            raise HTTPException(404, f"{address} is not blocked")
        detail = f"by {session.name} from {_client(request)}"
        guard.events.record(str(address), "POST", request.url.path, "unblocked", detail)
        log.warning("dashboard: %s unblocked %s", session.name, address)
        return {"message": f"{address} is no longer blocked."}
