"""JSON bodies with a key given twice are refused (400), not read with the last one winning:
``{"text": "a", "text": "b"}`` means two different things to two different readers, and the
shop's own system may have meant the first.

Python's parser finds them (``object_pairs_hook``); the route class gives FastAPI's routes a
request whose ``json()`` uses it, and the order intake, which parses with pydantic, asks
:func:`duplicate_key` once the order is valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return found


def loads_unique(body: bytes | str) -> Any:
    """``json.loads``, raising :class:`json.JSONDecodeError` for a key given twice."""
    try:
        return json.loads(body, object_pairs_hook=_unique)
    except _Duplicate as exc:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise json.JSONDecodeError(f"duplicate key {exc.key!r}", text, 0) from None


def _keys_unique(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({key for key, _ in pairs}) != len(pairs):
        _unique(pairs)


#: Builds nothing (each object becomes None): half the time of a plain ``json.loads`` with
#: the checking hook, for an order that is parsed again by pydantic anyway.
_KEYS_ONLY = json.JSONDecoder(object_pairs_hook=_keys_unique)


def duplicate_key(body: bytes) -> str | None:
    """The first key given twice in one object of the JSON ``body`` (already known to be
    valid JSON), or None."""
    try:
        _KEYS_ONLY.decode(body.decode("utf-8"))
    except _Duplicate as exc:
        return exc.key
    except ValueError:  # what pydantic accepted and Python's parser does not: not ours to judge
        return None
    return None


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_unique(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body may not repeat a key."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
