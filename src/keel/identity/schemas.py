"""Request and response bodies of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from keel.identity.passwords import MAX_LENGTH, check_new_password, identifier_problem
from keel.identity.repository import FamilySummary
from keel.platform.actor import Actor
from keel.platform.schemas import ApiModel, Pagination, RequestModel, SafeStr

# Length is checked by the validator (so the 400 names the rule); the schema still documents it.
NewPassword = Annotated[
    SafeStr,
    AfterValidator(check_new_password),
    Field(json_schema_extra={"minLength": 8, "maxLength": MAX_LENGTH}),
]
AnyPassword = Annotated[SafeStr, Field(min_length=1, max_length=MAX_LENGTH)]
Name = Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
TotpCode = Annotated[SafeStr, StringConstraints(pattern=r"^[0-9]{6}$")]
Role = Literal["user", "admin"]


class UserOut(ApiModel):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    email_verified: bool = Field(
        description="Whether the user has proved they receive mail at `email` (SPEC §11)."
    )
    created_at: datetime


class AdminUserOut(UserOut):
    is_active: bool
    mfa_enabled: bool
    updated_at: datetime


class RegisterIn(RequestModel):
    email: EmailStr = Field(max_length=320)
    name: Name
    # After email and name, so its validator sees them (validation runs in field order).
    password: NewPassword

    @field_validator("password")
    @classmethod
    def _not_derived_from_identifiers(cls, password: str, info: ValidationInfo) -> str:
        problem = identifier_problem(
            password, email=info.data.get("email"), name=info.data.get("name")
        )
        if problem is not None:
            raise ValueError(problem)
        return password


class LoginIn(RequestModel):
    email: Annotated[SafeStr, Field(min_length=1, max_length=320)]
    password: AnyPassword
    totp: TotpCode | None = Field(default=None, description="Required when MFA is enabled")


class LinkedIdentityOut(ApiModel):
    """An account at an OpenID provider that signs in as this user."""

    provider: str
    subject: str = Field(description="The provider's `sub` for the user")
    created_at: datetime


class OidcExchangeIn(RequestModel):
    code: Annotated[
        SafeStr,
        Field(
            min_length=1,
            max_length=256,
            description="The one-time `code` the OpenID callback added to the redirectUri",
        ),
    ]
    totp: TotpCode | None = Field(default=None, description="Required when MFA is enabled")


class RefreshIn(RequestModel):
    refresh_token: Annotated[SafeStr, Field(min_length=1, max_length=4096)]


class LogoutIn(RefreshIn):
    pass


class PasswordChangeIn(RequestModel):
    current_password: AnyPassword
    new_password: NewPassword


class AccountDeleteIn(RequestModel):
    password: AnyPassword


class TokenPair(ApiModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class AuthOut(TokenPair):
    user: UserOut


class SessionOut(ApiModel):
    id: uuid.UUID = Field(description="The session id (the `sid` claim of its access tokens)")
    created_at: datetime
    last_used_at: datetime = Field(description="Last sign-in or token refresh")
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = Field(description="True for the session of the token making this call")

    @classmethod
    def of(cls, summary: FamilySummary, actor: Actor) -> SessionOut:
        return cls(
            id=summary.family_id,
            created_at=summary.created_at,
            last_used_at=summary.last_used_at,
            expires_at=summary.expires_at,
            user_agent=summary.user_agent,
            ip=summary.ip,
            current=summary.family_id == actor.session_id,
        )


class SessionList(ApiModel):
    data: list[SessionOut]


class MfaSetupOut(ApiModel):
    secret: str = Field(description="Base32 TOTP secret, shown once")
    otpauth_uri: str


class MfaCodeIn(RequestModel):
    code: TotpCode


class MfaDisableIn(RequestModel):
    password: AnyPassword
    code: TotpCode


class UserPage(ApiModel):
    data: list[AdminUserOut]
    pagination: Pagination


class UserPatchIn(RequestModel):
    role: Role | None = None
    is_active: bool | None = None


class Jwks(ApiModel):
    keys: list[dict[str, str]]


# --- account mail (SPEC §11) ----------------------------------------------------------------

MailToken = Annotated[
    SafeStr,
    StringConstraints(min_length=1, max_length=256),
    Field(description="The `token` parameter of the link in the mail"),
]


class ForgotPasswordIn(RequestModel):
    # Any string up to 320: validating it as an address would tell apart the 400 and the 202.
    email: Annotated[SafeStr, Field(min_length=1, max_length=320)]


class ResetPasswordIn(RequestModel):
    token: MailToken
    new_password: NewPassword


class VerifyEmailIn(RequestModel):
    token: MailToken


class EmailChangeIn(RequestModel):
    new_email: EmailStr = Field(max_length=320)
    password: AnyPassword
