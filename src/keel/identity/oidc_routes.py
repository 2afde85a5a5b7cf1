"""HTTP adapter of OpenID Connect sign-in: /api/v1/auth/oidc/* (SPEC §11, docs/oidc.md)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse

from keel.identity import oidc
from keel.identity.deps import IdentityDep
from keel.identity.oidc_rules import allowed_redirect
from keel.identity.routes import auth_out
from keel.identity.schemas import AuthOut, OidcExchangeIn
from keel.platform.deps import ContextDep, SessionDep, part
from keel.platform.errors import (
    AppError,
    BadRequest,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    error_responses,
)

router = APIRouter(prefix="/api/v1/auth/oidc", tags=["auth"])

ClientsDep = Annotated[oidc.OidcClients, Depends(part(oidc.OIDC))]
ProviderName = Annotated[
    str, Path(max_length=32, description="A provider named in KEEL_OIDC_PROVIDERS")
]
# The browser binding of a sign-in under way (see oidc.OidcLogin.binding_hash).
BINDING_COOKIE = "keel_oidc"
BINDING_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")
COOKIE_PATH = "/api/v1/auth/oidc/"
REDIRECT_DOC = {"description": "Redirect (`Location`) to the identity provider or redirectUri"}


def _callback_url(request: Request, clients: oidc.OidcClients, provider: str) -> str:
    base = clients.settings.public_url or str(request.base_url).rstrip("/")
    return f"{base}/api/v1/auth/oidc/{provider}/callback"


def _redirect(location: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    "/{provider}/authorize",
    status_code=302,
    response_class=RedirectResponse,
    summary="Start signing in with an OpenID provider (browser navigation)",
    description="Redirects to the provider with PKCE (S256), `state` and `nonce`; the provider "
    "sends the browser back to the callback, which ends at `redirectUri` with a one-time `code` "
    "for POST /api/v1/auth/oidc/exchange, or with `error` and `error_description`. "
    "`redirectUri` must be on KEEL_OIDC_REDIRECT_ALLOWLIST (else 400). Sets an HttpOnly cookie "
    "that binds the sign-in to this browser.",
    responses={302: REDIRECT_DOC, **error_responses(BadRequest, NotFound, ServiceUnavailable)},
)
async def oidc_authorize(
    request: Request,
    provider: ProviderName,
    identity: IdentityDep,
    clients: ClientsDep,
    redirect_uri: Annotated[
        str,
        Query(
            alias="redirectUri",
            min_length=1,
            max_length=2048,
            description="Where the browser goes afterwards (on the allow-list)",
        ),
    ],
) -> RedirectResponse:
    clients.provider(provider)
    if not allowed_redirect(clients.settings, redirect_uri):
        raise BadRequest("redirectUri is not on the allow-list", code="REDIRECT_NOT_ALLOWED")
    binding = request.cookies.get(BINDING_COOKIE, "")
    if not BINDING_FORMAT.fullmatch(binding):
        binding = secrets.token_urlsafe(32)
    callback = _callback_url(request, clients, provider)
    try:
        location = await oidc.begin(
            identity,
            clients,
            provider=provider,
            redirect_uri=redirect_uri,
            callback_url=callback,
            binding=binding,
        )
    except AppError as exc:
        return _redirect(oidc.RedirectedFailure(redirect_uri, exc).location)
    response = _redirect(location)
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        max_age=clients.settings.oidc_state_ttl_seconds,
        path=COOKIE_PATH,
        secure=callback.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/{provider}/callback",
    status_code=302,
    response_class=RedirectResponse,
    summary="Where the OpenID provider returns the browser (register this URL with it)",
    description="Verifies the state, exchanges the code, verifies the ID token (signature "
    "against the provider's JWKS, `iss`, `aud`, `exp`, `nonce`), then finds the user linked to "
    "the provider's subject, or links the account with the same e-mail only when the provider "
    "says `email_verified`, or creates one. Redirects to redirectUri with `code`, or with "
    "`error` (INVALID_STATE, INVALID_ID_TOKEN, OIDC_EMAIL_UNVERIFIED, OIDC_CODE_REJECTED, "
    "OIDC_PROVIDER_ERROR, OIDC_EMAIL_MISSING, ACCOUNT_DISABLED, OIDC_PROVIDER_UNAVAILABLE). "
    "A state that names no sign-in under way is a 400 INVALID_STATE.",
    responses={302: REDIRECT_DOC, **error_responses(BadRequest)},
)
async def oidc_callback(
    request: Request,
    provider: ProviderName,
    identity: IdentityDep,
    clients: ClientsDep,
    context: ContextDep,
    state: Annotated[str | None, Query(max_length=256)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    try:
        location = await oidc.complete(
            identity,
            clients,
            provider=provider,
            state=state,
            code=code,
            error=error,
            binding=request.cookies.get(BINDING_COOKIE),
            callback_url=_callback_url(request, clients, provider),
            context=context,
        )
    except oidc.RedirectedFailure as failure:
        location = failure.location
    return _redirect(location)


@router.post(
    "/exchange",
    response_model=AuthOut,
    summary="Trade the one-time code from the OpenID callback for tokens",
    description="The same response as POST /api/v1/auth/login. The code is good once and for "
    "KEEL_OIDC_CODE_TTL_SECONDS (60 s by default); with MFA on, `totp` is needed as at login "
    "(a missing or wrong one leaves the code usable until it expires).",
    responses=error_responses(BadRequest, Unauthorized, TooManyRequests),
)
async def oidc_exchange(
    body: OidcExchangeIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> AuthOut:
    user, tokens = await oidc.exchange(
        session, identity, code=body.code, totp_code=body.totp, context=context
    )
    return auth_out(user, tokens)
