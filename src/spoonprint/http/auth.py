"""API key check for every route but the public status.

The key comes in the ``X-API-Key`` header, or as the password of HTTP Basic auth, so that a
browser can open ``/docs`` after its own sign-in prompt.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

from spoonprint.http.guard import strike_after
from spoonprint.security.keys import Identity

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
basic_auth = HTTPBasic(auto_error=False, realm="spoonprint")


async def require_key(
    request: Request,
    key: str | None = Security(api_key_header),
    basic: HTTPBasicCredentials | None = Security(basic_auth),
) -> Identity:
    """Who the request's key belongs to; 401 without a valid one.

    Async on purpose: the check is one indexed read, cheaper than a hop to the thread pool."""
    presented = key or (basic.password if basic else None)
    identity: Identity | None = request.app.state.services.auth.identify(presented)
    if identity is None:
        if presented:
            strike_after(request.scope, "wrong API key")
        detail = "wrong API key" if presented else "send your API key in the X-API-Key header"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": 'Basic realm="spoonprint"'})
    request.state.identity = identity
    return identity


async def require_admin(identity: Identity = Depends(require_key)) -> Identity:
    """403 for a key with the ``print`` role on an admin route."""
    if not identity.admin:
        raise HTTPException(403, "this key may only print; an admin key is needed")
    return identity
