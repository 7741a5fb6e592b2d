"""``POST /print``: the route every order takes, served without FastAPI's generic argument
solving, and answered by :class:`IntakeMiddleware` before the router.

FastAPI documents the route from the endpoint's signature like any other (body model, headers,
key, answers). At run time, though, its per-request dependency solving and response-model
round trip took about a third of the server's CPU for each order (py-spy, ``python -m bench
--profile DIR acceptance``). :func:`serve_print` reads the same arguments directly, with the
same checks in the same order as FastAPI would (key -> 401, media type -> 415, header and body
-> 422, or 400 for broken JSON) and the same error answers, then calls the same endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints, TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from spoonprint.app import Services
from spoonprint.domain.job import NewJob
from spoonprint.http.auth import api_key_header, basic_auth, require_key
from spoonprint.http.depends import require_json, services_of
from spoonprint.http.errors import answer_error
from spoonprint.http.schemas import AcceptedOut, PrintRequest, parse_order
from spoonprint.http.strict_json import duplicate_key
from spoonprint.security.keys import Identity

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Where serve_print leaves the order's JSON text for print_order (request.state).
_SOURCE = "order_source"
_IDEMPOTENCY_MAX = 128
_idempotency_key = TypeAdapter(Annotated[str, StringConstraints(max_length=_IDEMPOTENCY_MAX)])


async def print_order(
    order: PrintRequest,
    request: Request,
    response: Response,
    identity: Annotated[Identity, Depends(require_key)],
    idempotency_key: Annotated[
        str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=_IDEMPOTENCY_MAX)
    ] = None,
) -> AcceptedOut:
    """Accept an order. It is on disk before this answers 202; the same ``order_id`` or
    ``Idempotency-Key`` again answers 200 with the first job and prints nothing more."""
    services = services_of(request)
    printer = services.printer_name(order.printer)
    payload = printable_payload(services, printer, order, getattr(request.state, _SOURCE, ""))
    new = NewJob(
        printer,
        payload,
        order.copies,
        order.order_id,
        idempotency_key,
        submitted_by=identity.name,
    )
    job, created = await services.accept(new)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/jobs/{job.id}"
    return AcceptedOut.of(job, duplicate=not created)


async def serve_print(request: Request) -> Response:
    """``POST /print``: FastAPI's checks, in its order, then :func:`print_order`."""
    identity = await require_key(request, await api_key_header(request), await basic_auth(request))
    await require_json(request)
    body = await request.body()
    order, idempotency_key = read_order(request.headers, body)
    # Valid JSON, so UTF-8: lets the printability check look at all its characters at once.
    setattr(request.state, _SOURCE, body.decode("utf-8", "replace"))
    # As FastAPI does: the endpoint may set the status and headers on this one.
    sub = Response()
    del sub.headers["content-length"]
    sub.status_code = None  # type: ignore[assignment]
    accepted = await print_order(order, request, sub, identity, idempotency_key)
    answer = Response(
        accepted.model_dump_json(),
        status_code=sub.status_code or 202,
        media_type="application/json",
    )
    answer.headers.raw.extend(sub.headers.raw)
    return answer


class IntakeMiddleware:
    """Answers ``POST /print`` itself, inside the guard and the body-size limit but before
    Starlette's exception middleware, FastAPI's exit stack and the router, whose layers were
    about a fifth of the event loop's work for an order (py-spy, ``python -m bench --profile DIR
    acceptance``). Errors get the app's own exception handlers' answers, as from the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/print" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await serve_print(request)
        except Exception as exc:
            response = await answer_error(request, exc)
        await response(scope, receive, send)


def read_order(headers: Headers, body: bytes) -> tuple[PrintRequest, str | None]:
    """The order and its idempotency key, or :class:`RequestValidationError` with every
    problem found, located as FastAPI locates them (``header``, ``body``)."""
    problems: list[Any] = []
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        try:
            key = _idempotency_key.validate_python(key)
        except ValidationError as exc:
            problems += _located(exc, "header", IDEMPOTENCY_HEADER)
    order: PrintRequest | None = None
    if not body:
        problems.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
    else:
        try:
            order = parse_order(body)
        except ValidationError as exc:
            problems += _located(exc, "body")
        else:
            if (twice := duplicate_key(body)) is not None:
                message = f"duplicate key {twice!r}"
                problems.append({"type": "json_invalid", "loc": ("body",), "msg": message})
    if problems or order is None:
        raise RequestValidationError(problems, body=body)
    return order, key


def printable_payload(
    services: Services, printer: str, order: PrintRequest, source: str = ""
) -> dict[str, Any]:
    """The order's job payload, or :class:`RequestValidationError` (422) naming each field
    that ``printer`` could not print (``source``: the JSON text of the order, if known)."""
    payload = order.payload()
    problems = services.unprintable(printer, payload, source)
    if problems:
        raise RequestValidationError(
            [
                {"type": "unprintable", "loc": ("body", *location), "msg": reason}
                for location, reason in problems
            ]
        )
    return payload


def _located(exc: ValidationError, *prefix: str) -> list[Any]:
    return [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False)]


def add_print_route(router: APIRouter) -> None:
    router.add_api_route(
        "/print",
        print_order,
        methods=["POST"],
        status_code=202,
        response_model=AcceptedOut,
        tags=["jobs"],
        responses={200: {"model": AcceptedOut, "description": "Already accepted earlier"}},
        # Declared for the OpenAPI document (and as FastAPI would serve it, with the same
        # checks); requests are answered by IntakeMiddleware before they get here.
        dependencies=[Depends(require_json)],
    )
