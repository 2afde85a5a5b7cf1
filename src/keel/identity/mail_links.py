"""One-time links sent by mail (SPEC §11): issuing tokens and queueing the mails that carry
them. A token is 32 random bytes, URL-safe; only its SHA-256 is stored (email_tokens)."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Literal
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from keel.identity.models import EmailToken, User
from keel.mail import templates
from keel.mail.outbox import queue_mail
from keel.platform.db import utcnow
from keel.platform.security import Encryptor, sha256_hex
from keel.settings import Settings

Purpose = Literal["reset", "verify", "change"]
TOKEN_BYTES = 32


async def issue_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    purpose: Purpose,
    ttl_seconds: int,
    email: str | None = None,
) -> str:
    """Store a new token's hash and return the token itself (it exists only in the mail)."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    session.add(
        EmailToken(
            token_hash=sha256_hex(raw),
            purpose=purpose,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return raw


def link(settings: Settings, page: str, raw: str) -> str:
    return f"{settings.mail_base_url}/{page}?token={quote(raw, safe='')}"


async def send_verification(
    session: AsyncSession,
    settings: Settings,
    encryptor: Encryptor,
    *,
    user: User,
    purpose: Literal["verify", "change"] = "verify",
    address: str | None = None,
) -> None:
    """Queue the mail with a link proving `address` (default: the user's own) is theirs.

    `verify` confirms the current address; `change` confirms a new one, which the link then
    makes the account's address.
    """
    to = address or user.email
    raw = await issue_token(
        session,
        user_id=user.id,
        purpose=purpose,
        ttl_seconds=settings.email_verify_ttl_seconds,
        email=to,
    )
    template = templates.VERIFY_EMAIL if purpose == "verify" else templates.EMAIL_CHANGE_CONFIRM
    content = template.render(
        name=user.name,
        link=link(settings, "verify-email", raw),
        hours=str(settings.email_verify_ttl_seconds // 3600),
    )
    await queue_mail(session, encryptor, to=to, content=content, key=sha256_hex(raw)[:32])
