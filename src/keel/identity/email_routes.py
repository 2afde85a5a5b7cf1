"""HTTP adapter of the account-mail flows (SPEC §11): /api/v1/auth/password/* and
/api/v1/auth/email/*."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from keel.identity import account_mail
from keel.identity.deps import IdentityDep
from keel.identity.schemas import (
    EmailChangeIn,
    ForgotPasswordIn,
    ResetPasswordIn,
    UserOut,
    VerifyEmailIn,
)
from keel.platform.deps import ContextDep, CurrentActor, ServicesDep, SessionDep
from keel.platform.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    error_responses,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _accepted() -> Response:
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    summary="Mail a password-reset link",
    description="202 for every address, with an account or without (no mail is sent then), "
    "so the answer does not tell who has an account. The mail links to "
    "`{KEEL_PUBLIC_URL}/reset-password?token=…`, good for 30 minutes and once; a newer "
    "request retires the earlier link. Limited per address "
    "(`KEEL_MAIL_RATE_LIMIT_PER_ADDRESS`) and per IP: 429 with Retry-After.",
    responses=error_responses(TooManyRequests, ServiceUnavailable),
)
async def forgot_password(
    body: ForgotPasswordIn,
    session: SessionDep,
    identity: IdentityDep,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    await account_mail.forgot_password(
        session, identity, services.limiter, email=body.email, context=context
    )
    return _accepted()


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a new password with the token of a reset link",
    description="Every session of the user is signed out (their refresh tokens stop "
    "working at once). A used, expired or unknown token: 400 `INVALID_TOKEN`. The new "
    "password follows the rules of registration (400 names the rule that failed; the token "
    "then stays usable). Following the link also proves the address (`emailVerified`).",
    responses=error_responses(BadRequest, TooManyRequests, ServiceUnavailable),
)
async def reset_password(
    body: ResetPasswordIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> Response:
    await account_mail.reset_password(
        session, identity, token=body.token, new_password=body.new_password, context=context
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/email/verify",
    response_model=UserOut,
    summary="Apply the token of a verification or address-change link",
    description="A verification link (sent at registration and by `/email/resend`, good "
    "for 72 hours) marks the address verified; an address-change link (from "
    "`/email/change`) makes the new address the account's, verified. Each link works once. "
    "A used, expired or unknown token: 400 `INVALID_TOKEN`; a new address that another "
    "account took meanwhile: 409 `EMAIL_TAKEN`. No sign-in needed: the token is the proof.",
    responses=error_responses(BadRequest, Conflict, TooManyRequests),
)
async def verify_email(
    body: VerifyEmailIn, session: SessionDep, identity: IdentityDep, context: ContextDep
) -> UserOut:
    user = await account_mail.verify_email(session, identity, token=body.token, context=context)
    return UserOut.model_validate(user)


@router.post(
    "/email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    summary="Send the signed-in user a new verification link",
    description="Earlier links stay good until they expire. Nothing is sent when the "
    "address is already verified (still 202). Limited per address: 429 with Retry-After.",
    responses=error_responses(Unauthorized, TooManyRequests, ServiceUnavailable),
)
async def resend_verification(
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    await account_mail.resend_verification(
        session, identity, services.limiter, actor, context=context
    )
    return _accepted()


@router.post(
    "/email/change",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    summary="Change the account's address (needs the password)",
    description="The new address gets a confirmation link (`/verify-email?token=…`, 72 "
    "hours; `POST /email/verify` applies it), the current address a notice. Nothing "
    "changes until the link is followed. An address another account holds gets no link "
    "but the answer is the same 202, so this cannot be used to find accounts. A wrong "
    "password: 403 `INVALID_PASSWORD` (counted like a failed sign-in).",
    responses=error_responses(
        BadRequest, Unauthorized, Forbidden, TooManyRequests, ServiceUnavailable
    ),
)
async def change_email(
    body: EmailChangeIn,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    await account_mail.request_email_change(
        session,
        identity,
        services.limiter,
        actor,
        new_email=str(body.new_email),
        password=body.password,
        context=context,
    )
    return _accepted()
