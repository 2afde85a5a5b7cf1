"""The dependencies REST routes declare: the container, the transaction, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.types import Scope

from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.auth import AUTHENTICATOR, Authenticator
from keel.platform.db import transaction
from keel.platform.errors import Forbidden, Unauthorized
from keel.platform.http import header
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
    return request_context(request.scope)


def request_context(scope: Scope) -> RequestContext:
    """Who sent the request, for the audit log: client IP (as the protection layer found it
    behind trusted proxies), request id and User-Agent."""
    state = scope.get("state", {})
    client = scope.get("client")
    user_agent = header(scope, b"user-agent")
    return RequestContext(
        ip=state.get("client_ip") or (client[0] if client else None),
        request_id=state.get("request_id"),
        user_agent=user_agent.decode("latin-1") if user_agent is not None else None,
    )


ContextDep = Annotated[RequestContext, Depends(get_request_context)]


async def get_current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    # async def: this runs on every authenticated request (a sync dependency costs a thread hop).
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token", code="UNAUTHORIZED")
    authenticator = services_of(request.app).get(AUTHENTICATOR)
    return await authenticate_bearer(authenticator, credentials.credentials, request.scope)


async def authenticate_bearer(authenticator: Authenticator, token: str, scope: Scope) -> Actor:
    """The caller behind a bearer token (401 unless its session is live), bound to the logs."""
    # The protection layer verified this token already (signature, expiry, type): reuse it.
    verified: VerifiedToken | None = scope.get("state", {}).get("access_token")
    actor = await authenticator.authenticate(
        token, verified=verified if verified is not None and verified.token == token else None
    )
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
