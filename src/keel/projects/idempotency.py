"""Idempotent creation: claiming an Idempotency-Key, replaying its stored response."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.actor import Actor
from keel.platform.errors import Conflict, UnprocessableEntity
from keel.projects import repository
from keel.projects.documents import WriteOutcome
from keel.projects.schemas import ProjectCreate


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    key: str


def request_hash(data: ProjectCreate) -> str:
    """What a key is bound to: the request body as sent (unset fields left out)."""
    canonical = orjson.dumps(
        data.model_dump(mode="json", exclude_unset=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


async def replay_or_claim(
    session: AsyncSession,
    actor: Actor,
    *,
    key: str,
    request_hash: str,
    now: datetime,
    ttl: timedelta,
) -> WriteOutcome | None:
    """None when this request now owns the key; otherwise the stored outcome to replay."""
    for _attempt in range(2):
        if await repository.claim_idempotency_key(
            session,
            user_id=actor.user_id,
            key=key,
            request_hash=request_hash,
            now=now,
            expires_at=now + ttl,
        ):
            return None
        stored = await repository.get_idempotency_key(session, user_id=actor.user_id, key=key)
        if stored is None or stored["expires_at"] <= now:
            # Expired (or purged meanwhile): release it and claim it afresh.
            await repository.release_expired_idempotency_key(
                session, user_id=actor.user_id, key=key, now=now
            )
            continue
        if stored["request_hash"] != request_hash:
            raise UnprocessableEntity(
                "This Idempotency-Key was already used with a different request body",
                code="IDEMPOTENCY_KEY_REUSED",
            )
        if stored["status_code"] is None or stored["response_body"] is None:  # pragma: no cover
            # Unreachable while claims and responses commit together; kept as a safe answer.
            raise Conflict("A request with this Idempotency-Key is still in progress")
        return WriteOutcome(
            status_code=stored["status_code"],
            body=stored["response_body"],
            etag=stored["etag"] or "",
            location=stored["location"],
            replayed=True,
        )
    raise Conflict("This Idempotency-Key is being reused concurrently; retry")  # pragma: no cover


async def store_response(
    session: AsyncSession, actor: Actor, *, key: str, outcome: WriteOutcome
) -> None:
    """Keep the outcome under the claimed key, in the same transaction as the write."""
    await repository.store_idempotent_response(
        session,
        user_id=actor.user_id,
        key=key,
        status_code=outcome.status_code,
        body=outcome.body,
        location=outcome.location,
        etag=outcome.etag,
    )
