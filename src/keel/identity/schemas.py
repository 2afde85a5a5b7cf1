"""Request and response bodies of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints

from keel.platform.schemas import ApiModel, RequestModel, SafeStr

Password = Annotated[SafeStr, Field(min_length=8, max_length=128)]
Name = Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class UserOut(ApiModel):
    id: uuid.UUID
    email: str
    name: str
    role: Literal["user", "admin"]
    created_at: datetime


class RegisterIn(RequestModel):
    email: EmailStr = Field(max_length=320)
    password: Password
    name: Name


class LoginIn(RequestModel):
    email: Annotated[SafeStr, Field(min_length=1, max_length=320)]
    password: Annotated[SafeStr, Field(min_length=1, max_length=128)]
    totp: Annotated[SafeStr, Field(min_length=6, max_length=8)] | None = None


class TokenPair(ApiModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class AuthOut(TokenPair):
    user: UserOut
