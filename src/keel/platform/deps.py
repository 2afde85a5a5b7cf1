"""The dependencies REST routes declare: the container, the transaction, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.auth import AUTHENTICATOR
from keel.platform.db import transaction
from keel.platform.errors import Forbidden, Unauthorized
from keel.platform.replica import REPLAY_KEY
from keel.platform.services import Services, Slot, services_of

T = TypeVar("T")

bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


async def get_services(connection: HTTPConnection) -> Services:
    # async def: FastAPI runs a sync dependency in the thread pool (a hop per request).
    return services_of(connection.app)


ServicesDep = Annotated[Services, Depends(get_services)]


def part(slot: Slot[T]) -> Callable[[HTTPConnection], Coroutine[Any, Any, T]]:
    """A dependency that hands a route the part a feature provided under `slot`."""

    async def dependency(connection: HTTPConnection) -> T:
        return services_of(connection.app).get(slot)

    return dependency


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error,
    and its after-commit work done before the response is sent."""
    async with transaction(services_of(request.app).database.sessions) as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a failed commit
# becomes an error response instead of a success the client believes.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_request_context(request: Request) -> RequestContext:
    client = request.client
    return RequestContext(
        ip=getattr(request.state, "client_ip", None) or (client.host if client else None),
        request_id=getattr(request.state, "request_id", None),
        user_agent=request.headers.get("user-agent"),
    )


ContextDep = Annotated[RequestContext, Depends(get_request_context)]


async def get_current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    # async def: this runs on every authenticated request (a sync dependency costs a thread hop).
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token", code="UNAUTHORIZED")
    token = credentials.credentials
    # The protection layer verified this token already (signature, expiry, type): reuse it.
    verified: VerifiedToken | None = getattr(request.state, "access_token", None)
    authenticator = services_of(request.app).get(AUTHENTICATOR)
    actor = await authenticator.authenticate(
        token, verified=verified if verified is not None and verified.token == token else None
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


async def get_read_session(request: Request, actor: CurrentActor) -> AsyncIterator[AsyncSession]:
    """A transaction for a read-only endpoint: on the replica when one is configured and has
    replayed the caller's last write, else on the primary (read-your-writes)."""
    factory, replayed = await services_of(request.app).database.read_sessions(actor.user_id)
    async with transaction(factory) as session:
        if replayed is not None:
            session.info[REPLAY_KEY] = replayed
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
