"""Read-through caching of projects and first list pages, and its renewal after a commit."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.cache import Cache
from keel.platform.db import after_commit

_DIRTY = "keel.projects.dirty"


@dataclass(frozen=True, slots=True)
class CachedProject:
    version: int
    owner_id: uuid.UUID
    body: bytes

    def encode(self) -> bytes:
        return f"{self.version}|{self.owner_id}|".encode() + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CachedProject:
        version, owner, body = raw.split(b"|", 2)
        return cls(version=int(version), owner_id=uuid.UUID(owner.decode()), body=body)


class ProjectCache:
    """Read-through cache of single projects and first list pages, by generation tokens.

    Entries are keyed by a random token per project, per owner and for the all-owners
    (admin) list; a write replaces those tokens after its commit, which orphans every entry
    built from older data. A reader fetches the token before it reads the database, so an
    entry built from data older than a write is always filed under a token the write
    replaced. A token that has expired or been evicted is simply recreated (a miss).
    Lifetimes are the cache's own (L1/L2 TTL settings), so its staleness bounds hold.
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def token(self, scope: str) -> str:
        key = f"projects:token:{scope}"
        raw = await self._cache.get(key)
        if raw is not None:
            return raw.decode()
        token = secrets.token_hex(8)
        await self._cache.set(key, token.encode())
        return token

    async def project_key(self, project_id: uuid.UUID) -> str:
        """Where one project is cached now (fetch it before reading the database)."""
        token = await self.token(f"project:{project_id}")
        return f"projects:one:{project_id}:{token}"

    async def page_key(self, *, owner_id: uuid.UUID | None, fingerprint: str, limit: int) -> str:
        """Where a first list page is cached now: one owner's projects, or all (None)."""
        scope = f"owner:{owner_id or '*'}"
        token = await self.token(scope)
        return f"projects:list:{scope}:{token}:{fingerprint}:{limit}"

    async def get(self, key: str) -> bytes | None:
        return await self._cache.get(key)

    async def get_project(self, key: str) -> CachedProject | None:
        raw = await self._cache.get(key)
        return None if raw is None else CachedProject.decode(raw)

    async def put_project(self, key: str, project: CachedProject) -> None:
        await self._cache.set(key, project.encode())

    async def get_or_set(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """Concurrent misses on one key run `compute` once (per instance)."""
        return await self._cache.get_or_set(key, compute)

    async def renew(self, scopes: set[str]) -> None:
        await self._cache.set_many(
            {f"projects:token:{scope}": secrets.token_hex(8).encode() for scope in sorted(scopes)}
        )


def mark_dirty(
    session: AsyncSession, cache: ProjectCache, *, project_id: uuid.UUID, owner_id: uuid.UUID
) -> None:
    """Once the transaction commits, retire the cache entries of what it changed (one
    renewal per transaction, however many projects it wrote)."""
    dirty: set[str] = session.info.setdefault(_DIRTY, set())
    dirty.update({f"project:{project_id}", f"owner:{owner_id}", "owner:*"})

    async def renew() -> None:
        await cache.renew(session.info.pop(_DIRTY, set()))

    after_commit(session, renew, key=_DIRTY)
