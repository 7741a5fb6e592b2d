"""Every error answer is JSON ``{"error": ..., "detail": ...}`` with the right status code."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from spoonprint.errors import (
    InvalidTransition,
    JobNotFound,
    SpoonprintError,
    StoreUnavailable,
    UnknownPrinter,
)
from spoonprint.http.limits import BodyRefused

log = logging.getLogger("spoonprint.http")

_STATUS: list[tuple[type[SpoonprintError], int, str]] = [
    (JobNotFound, 404, "job not found"),
    (UnknownPrinter, 404, "unknown printer"),
    (InvalidTransition, 409, "not possible in the job's current state"),
    (StoreUnavailable, 503, "cannot store orders right now; nothing was accepted"),
]
_REASONS = {
    400: "bad request",
    401: "missing or wrong API key",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    415: "unsupported media type",
}


def error_response(
    status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def answer_error(request: Request, exc: Exception) -> Response:
    """The app's answer to ``exc``: its handler for the nearest class of ``exc``, as Starlette's
    exception middleware finds it for a route (for a request answered before the router)."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            answer: Response = await handler(request, exc)
            return answer
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = _REASONS.get(exc.status_code, "request failed")
        detail = exc.detail if exc.detail != error else None
        return error_response(exc.status_code, error, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return error_response(400, "body is not valid JSON", problems)
        return error_response(422, "invalid request", problems)

    @app.exception_handler(BodyRefused)
    async def body_refused(request: Request, exc: BodyRefused) -> JSONResponse:
        # An expected refusal, not an error to log: the body-limit middleware answers it.
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged in full here; the client learns nothing about the inside (no trace, no path).
        log.exception("%s %s: unexpected error", request.method, request.url.path)
        return error_response(500, "internal error", None)

    @app.exception_handler(SpoonprintError)
    async def domain_error(request: Request, exc: SpoonprintError) -> JSONResponse:
        for kind, status, error in _STATUS:
            if isinstance(exc, kind):
                if status >= 500:
                    log.error("%s %s: %s", request.method, request.url.path, exc)
                return error_response(status, error, str(exc))
        log.error("%s %s: unexpected %r", request.method, request.url.path, exc)
        return error_response(500, "internal error", None)


def _problem(error: Any) -> dict[str, Any]:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    message = error.get("msg", "")
    why = (error.get("ctx") or {}).get("error") if error.get("type") == "json_invalid" else None
    if why and str(why) not in message:  # FastAPI's "JSON decode error" alone says not what
        message = f"{message}: {why}"
    return {"field": ".".join(location) or None, "message": message}
