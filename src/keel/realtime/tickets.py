"""Single-use, short-lived tickets that let a browser's EventSource authenticate.

A ticket stands for the access token that created it (sealed with AES-256-GCM), so the
SSE endpoint verifies it exactly like a bearer token. Stored in Redis when configured,
otherwise in the database, so a ticket issued by one instance works on every other.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.platform.db import transaction, utcnow
from keel.platform.security import Encryptor, sha256_hex
from keel.platform.services import Slot
from keel.realtime.models import EventTicket

_AAD = b"keel-sse-ticket"


class TicketStore(Protocol):
    async def issue(self, access_token: str) -> str:
        """Return a new ticket for this access token."""
        ...

    async def redeem(self, ticket: str) -> str | None:
        """The access token behind a ticket, once; None if unknown, used or expired."""
        ...


class _Sealing:
    def __init__(self, encryptor: Encryptor) -> None:
        self._encryptor = encryptor

    def seal(self, key: str, token: str) -> bytes:
        return self._encryptor.encrypt(token.encode(), associated_data=_AAD + key.encode())

    def open(self, key: str, blob: bytes) -> str:
        return self._encryptor.decrypt(blob, associated_data=_AAD + key.encode()).decode()


class RedisTicketStore:
    """Tickets as Redis keys with a TTL, redeemed atomically with GETDEL."""

    def __init__(self, redis: Redis, *, encryptor: Encryptor, ttl_seconds: int) -> None:
        self._redis = redis
        self._sealing = _Sealing(encryptor)
        self._ttl = ttl_seconds

    async def issue(self, access_token: str) -> str:
        ticket = secrets.token_urlsafe(32)
        key = sha256_hex(ticket)
        await self._redis.set(
            f"keel:sse-ticket:{key}", self._sealing.seal(key, access_token), ex=self._ttl
        )
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        key = sha256_hex(ticket)
        blob = await self._redis.getdel(f"keel:sse-ticket:{key}")
        if blob is None:
            return None
        return self._sealing.open(key, blob if isinstance(blob, bytes) else blob.encode())


class DatabaseTicketStore:
    """Tickets as rows, redeemed atomically with DELETE … RETURNING."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        encryptor: Encryptor,
        ttl_seconds: int,
    ) -> None:
        self._sessions = sessions
        self._sealing = _Sealing(encryptor)
        self._ttl = ttl_seconds

    async def issue(self, access_token: str) -> str:
        ticket = secrets.token_urlsafe(32)
        key = sha256_hex(ticket)
        async with transaction(self._sessions) as session:
            session.add(
                EventTicket(
                    ticket_hash=key,
                    sealed_token=self._sealing.seal(key, access_token),
                    expires_at=utcnow() + timedelta(seconds=self._ttl),
                )
            )
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        key = sha256_hex(ticket)
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    delete(EventTicket)
                    .where(EventTicket.ticket_hash == key)
                    .returning(EventTicket.sealed_token, EventTicket.expires_at)
                )
            ).first()
        if row is None or row.expires_at < utcnow():
            return None
        return self._sealing.open(key, bytes(row.sealed_token))


def create_ticket_store(
    *,
    redis: Redis | None,
    sessions: async_sessionmaker[AsyncSession],
    encryptor: Encryptor,
    ttl_seconds: int,
) -> TicketStore:
    """Redis when configured (shared by every instance), the database otherwise."""
    if redis is not None:
        return RedisTicketStore(redis, encryptor=encryptor, ttl_seconds=ttl_seconds)
    return DatabaseTicketStore(sessions, encryptor=encryptor, ttl_seconds=ttl_seconds)


TICKETS: Slot[TicketStore] = Slot("event_tickets")
