"""Authentication and authorization as route dependencies (Annotated aliases)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keel.audit.service import RequestContext
from keel.identity import service
from keel.identity.service import Actor, Identity
from keel.platform.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


def get_identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


async def get_request_context(request: Request) -> RequestContext:
    client = request.client
    return RequestContext(
        ip=getattr(request.state, "client_ip", None) or (client.host if client else None),
        request_id=getattr(request.state, "request_id", None),
        user_agent=request.headers.get("user-agent"),
    )


async def get_current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    # async def: this runs on every authenticated request (a sync dependency costs a thread hop).
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token", code="UNAUTHORIZED")
    token = credentials.credentials
    # The rate-limit layer verified this token already (signature, expiry, type): reuse it.
    verified = getattr(request.state, "access_claims", None)
    claims = verified[1] if verified is not None and verified[0] == token else None
    actor = await service.authenticate_token(
        get_identity(request), token=token, verified_claims=claims
    )
    request.state.actor = actor
    structlog.contextvars.bind_contextvars(user_id=str(actor.user_id))
    return actor


async def get_admin_actor(actor: Annotated[Actor, Depends(get_current_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("Administrator role required")
    return actor


CurrentActor = Annotated[Actor, Depends(get_current_actor)]
AdminActor = Annotated[Actor, Depends(get_admin_actor)]


async def _identity_dependency(request: Request) -> Identity:
    # async def: FastAPI runs a sync dependency in the thread pool (a hop per request).
    return get_identity(request)


IdentityDep = Annotated[Identity, Depends(_identity_dependency)]
ContextDep = Annotated[RequestContext, Depends(get_request_context)]
