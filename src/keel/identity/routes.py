"""HTTP adapter of the identity service: /api/v1/auth/*."""

from __future__ import annotations

from fastapi import APIRouter, status

from keel.identity import service
from keel.identity.deps import ContextDep, CurrentActor, IdentityDep
from keel.identity.schemas import AuthOut, LoginIn, RegisterIn, UserOut
from keel.platform.db import SessionDep
from keel.platform.errors import Conflict, Unauthorized, error_responses

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _auth_out(user: object, tokens: service.IssuedTokens) -> AuthOut:
    return AuthOut(
        user=UserOut.model_validate(user),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=AuthOut,
    summary="Create an account and sign in",
    responses=error_responses(Conflict),
)
async def register(
    body: RegisterIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> AuthOut:
    user, tokens = await service.register(session, identity, data=body, context=context)
    return _auth_out(user, tokens)


@router.post(
    "/login",
    response_model=AuthOut,
    summary="Sign in with email and password",
    responses=error_responses(Unauthorized),
)
async def login(
    body: LoginIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> AuthOut:
    user, tokens = await service.login(session, identity, data=body, context=context)
    return _auth_out(user, tokens)


@router.get(
    "/profile",
    response_model=UserOut,
    summary="The signed-in user",
    responses=error_responses(Unauthorized),
)
async def profile(actor: CurrentActor, session: SessionDep) -> UserOut:
    return UserOut.model_validate(await service.get_profile(session, actor))
