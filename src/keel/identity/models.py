"""Users and their refresh-token sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, UTCDateTime, UUIDType, new_id, utcnow


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(UUIDType, primary_key=True, default=new_id)
    # Always stored lower-cased, so a plain unique index makes uniqueness case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="user")
    is_active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=text("true")
    )
    # AES-256-GCM ciphertext (nonce || ciphertext+tag) of the TOTP secret; NULL until enrolled.
    mfa_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    mfa_enabled: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    # Set when the user follows a verification link (SPEC §11) or signs in through an OpenID
    # provider that vouches for the address.
    email_verified: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    # The last accepted TOTP time step, so one code cannot be replayed within its window.
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )


class AuthSession(Base):
    """One row per refresh token: a family (the login) and each rotation step in it."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        Index("ix_auth_sessions_family_id", "family_id"),
        Index("ix_auth_sessions_user_id", "user_id"),
        Index("ix_auth_sessions_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDType, primary_key=True, default=new_id)
    # SHA-256 of the refresh token's jti; the token itself is never stored.
    jti_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    family_id: Mapped[uuid.UUID] = mapped_column(UUIDType, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUIDType, ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=True
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EmailToken(Base):
    """A one-time link sent by mail (SPEC §11): only the SHA-256 of the token is stored."""

    __tablename__ = "email_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('reset', 'verify', 'change')", name="purpose"),
        Index("ix_email_tokens_user_id", "user_id"),
        Index("ix_email_tokens_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDType, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    # verify: the address being verified; change: the address to change to.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OidcIdentity(Base):
    """A user's account at an OpenID provider: (provider, subject) signs in as that user."""

    __tablename__ = "oidc_identities"
    __table_args__ = (Index("ix_oidc_identities_user_id", "user_id"),)

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The provider's `sub`: stable and unique per provider (OpenID Connect Core §5.7).
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class OidcLogin(Base):
    """A sign-in started at a provider and not yet back: what the callback needs to finish it.

    Keyed by the hash of `state`; taken (deleted) by the first callback that presents it.
    """

    __tablename__ = "oidc_logins"
    __table_args__ = (Index("ix_oidc_logins_expires_at", "expires_at"),)

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    nonce: Mapped[str] = mapped_column(String(128), nullable=False)
    code_verifier: Mapped[str] = mapped_column(String(128), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(String(2048), nullable=False)
    # Hash of the browser binding (an HttpOnly cookie set with the redirect), so a callback
    # URL replayed in another browser (login CSRF) does not sign that browser in.
    binding_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OidcHandoff(Base):
    """The one-time code the callback hands the front end, exchanged once for a session."""

    __tablename__ = "oidc_handoffs"
    __table_args__ = (Index("ix_oidc_handoffs_expires_at", "expires_at"),)

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
