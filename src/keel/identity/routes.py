"""HTTP adapter of the identity service: /api/v1/auth/*, /api/v1/users, the JWKS."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from keel.identity import admin, credentials, mfa, service, sessions
from keel.identity.deps import IdentityDep
from keel.identity.models import User
from keel.identity.schemas import (
    AdminUserOut,
    AuthOut,
    Jwks,
    LoginIn,
    LogoutIn,
    MfaCodeIn,
    MfaDisableIn,
    MfaSetupOut,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    SessionList,
    SessionOut,
    TokenPair,
    UserOut,
    UserPage,
    UserPatchIn,
)
from keel.platform.deps import AdminActor, ContextDep, CurrentActor, ServicesDep, SessionDep
from keel.platform.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    error_responses,
)
from keel.platform.schemas import Pagination

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users (admin)"])
jwks_router = APIRouter(tags=["auth"])


def auth_out(user: User, tokens: sessions.IssuedTokens) -> AuthOut:
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
    description="Password: 8–128 characters and not a commonly used one. "
    "The 400 names the rule that failed.",
    responses=error_responses(Conflict, ServiceUnavailable),
)
async def register(
    body: RegisterIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> AuthOut:
    user, tokens = await service.register(session, identity, data=body, context=context)
    return auth_out(user, tokens)


@router.post(
    "/login",
    response_model=AuthOut,
    summary="Sign in with email and password (and a TOTP code when MFA is on)",
    description="401 carries the same message for an unknown email and a wrong password. "
    "After repeated failures for one account or one IP, further attempts get 429 with "
    "Retry-After, even with the right password.",
    responses=error_responses(Unauthorized, TooManyRequests, ServiceUnavailable),
)
async def login(
    body: LoginIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> AuthOut:
    user, tokens = await service.login(session, identity, data=body, context=context)
    return auth_out(user, tokens)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new pair (the refresh token rotates)",
    description="A refresh token is good once. Presenting it again within the grace window "
    "returns the same new pair; after it, the whole session is revoked.",
    responses=error_responses(Unauthorized),
)
async def refresh(
    body: RefreshIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> TokenPair:
    tokens = await service.refresh(session, identity, token=body.refresh_token, context=context)
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out: end the session of this refresh token",
    description="No Bearer token needed (the refresh token identifies the session). "
    "Other sessions of the user are untouched; this session's access tokens stop working "
    "at once.",
    responses=error_responses(Unauthorized),
)
async def logout(
    body: LogoutIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> Response:
    await service.logout(session, identity, token=body.refresh_token, context=context)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/profile",
    response_model=UserOut,
    summary="The signed-in user",
    responses=error_responses(Unauthorized),
)
async def profile(actor: CurrentActor, services: ServicesDep) -> UserOut:
    # Authentication has just read the user (from the cache): no transaction needed.
    if actor.profile is None:  # pragma: no cover - CurrentActor always carries the profile
        async with services.database.sessions() as session:
            return UserOut.model_validate(await service.get_profile(session, actor))
    return UserOut.model_validate(actor.profile)


@router.get(
    "/sessions",
    response_model=SessionList,
    summary="The caller's active sessions",
    responses=error_responses(Unauthorized),
)
async def list_sessions(actor: CurrentActor, session: SessionDep) -> SessionList:
    summaries = await sessions.list_sessions(session, actor)
    return SessionList(data=[SessionOut.of(s, actor) for s in summaries])


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke one of the caller's sessions",
    responses=error_responses(Unauthorized, NotFound),
)
async def revoke_session(
    session_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    context: ContextDep,
) -> Response:
    await sessions.revoke_session(session, identity, actor, family_id=session_id, context=context)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Change the password; every other session is signed out",
    responses=error_responses(Unauthorized, Forbidden, ServiceUnavailable, TooManyRequests),
)
async def change_password(
    body: PasswordChangeIn,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    context: ContextDep,
) -> Response:
    await credentials.change_password(
        session,
        identity,
        actor,
        current_password=body.current_password,
        new_password=body.new_password,
        context=context,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/mfa/setup",
    response_model=MfaSetupOut,
    summary="Start TOTP enrolment: a new secret for the authenticator app",
    description="MFA is required at sign-in only after POST /mfa/enable with a valid code.",
    responses=error_responses(Unauthorized, Conflict),
)
async def mfa_setup(
    actor: CurrentActor, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> MfaSetupOut:
    secret, uri = await mfa.start_mfa_enrolment(session, identity, actor, context=context)
    return MfaSetupOut(secret=secret, otpauth_uri=uri)


@router.post(
    "/mfa/enable",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Confirm enrolment with a code; sign-in then needs `totp`",
    responses=error_responses(Unauthorized, BadRequest, Conflict),
)
async def mfa_enable(
    body: MfaCodeIn,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    context: ContextDep,
) -> Response:
    await mfa.confirm_mfa(session, identity, actor, code=body.code, context=context)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/mfa/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Turn MFA off (needs the password and a current code)",
    responses=error_responses(
        Unauthorized, Forbidden, Conflict, ServiceUnavailable, TooManyRequests
    ),
)
async def mfa_disable(
    body: MfaDisableIn,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    context: ContextDep,
) -> Response:
    await mfa.disable_mfa(
        session, identity, actor, password=body.password, code=body.code, context=context
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.get(
    "",
    response_model=UserPage,
    summary="List users (administrators)",
    responses=error_responses(Unauthorized, Forbidden),
)
async def list_users(
    actor: AdminActor,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> UserPage:
    users, total = await admin.list_users(session, actor, page=page, limit=limit)
    return UserPage(
        data=[AdminUserOut.model_validate(u) for u in users],
        pagination=Pagination(
            page=page, limit=limit, total=total, total_pages=admin.total_pages(total, limit)
        ),
    )


@users_router.patch(
    "/{user_id}",
    response_model=AdminUserOut,
    summary="Change a user's role or activation (administrators)",
    description="Deactivation signs the user out of every session at once.",
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserPatchIn,
    actor: AdminActor,
    session: SessionDep,
    identity: IdentityDep,
    context: ContextDep,
) -> AdminUserOut:
    user = await admin.update_user(
        session, identity, actor, user_id=user_id, changes=body, context=context
    )
    return AdminUserOut.model_validate(user)


@jwks_router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    summary="Public keys that verify Keel's access tokens (empty with HS256)",
)
async def jwks(identity: IdentityDep) -> Jwks:
    return Jwks.model_validate(identity.tokens.jwks())
