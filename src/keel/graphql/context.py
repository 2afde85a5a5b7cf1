"""Per-operation GraphQL context: the caller, one transaction, and the DataLoaders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from keel.identity import service as identity
from keel.identity.models import User
from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.auth import AUTHENTICATOR
from keel.platform.errors import Unauthorized
from keel.platform.services import Services
from keel.projects import service as projects
from keel.projects.rows import ProjectRows
from keel.projects.service import PROJECTS

T = TypeVar("T")
OwnerPageKey = tuple[uuid.UUID, int]


class GraphQLContext(BaseContext):
    """What resolvers share during one operation (HTTP) or one connection (WebSocket).

    Over HTTP every service call runs in the operation's one transaction, one at a time
    (resolvers run concurrently, a session may not); over WebSocket each call opens its own.
    """

    def __init__(
        self,
        *,
        services: Services,
        request_context: RequestContext,
        token: str | None = None,
        verified: VerifiedToken | None = None,
        session: AsyncSession | None = None,
    ) -> None:
        super().__init__()
        self.services = services
        self.request_context = request_context
        self.token = token
        self.verified = verified
        self.session = session
        self.wrote = False
        self._actor: Actor | None = None
        self._actor_lock = asyncio.Lock()
        self._session_lock = asyncio.Lock()
        # A WebSocket context lives as long as its connection: batch, but never cache.
        self._cache_loads = session is not None
        self._users: DataLoader[uuid.UUID, User | None] | None = None
        self._owner_pages: DataLoader[OwnerPageKey, ProjectRows] | None = None

    # The loaders are made on first use (most operations need none) and dropped by release():
    # they hold bound methods of this context, a reference cycle that would otherwise keep
    # the operation's objects (the request among them) for the cycle collector.
    @property
    def users(self) -> DataLoader[uuid.UUID, User | None]:
        if self._users is None:
            self._users = DataLoader(load_fn=self._load_users, cache=self._cache_loads)
        return self._users

    @property
    def owner_pages(self) -> DataLoader[OwnerPageKey, ProjectRows]:
        if self._owner_pages is None:
            self._owner_pages = DataLoader(load_fn=self._load_owner_pages, cache=self._cache_loads)
        return self._owner_pages

    def release(self) -> None:
        """The operation is over: break the loaders' cycle (see above)."""
        self._users = self._owner_pages = None

    async def actor(self) -> Actor:
        """The authenticated caller (the one Authenticator: signature, expiry, session)."""
        async with self._actor_lock:
            if self._actor is None:
                if not self.token:
                    raise Unauthorized("Missing bearer token")
                self._actor = await self.services.get(AUTHENTICATOR).authenticate(
                    self.token,
                    verified=self.verified
                    if self.verified is not None and self.verified.token == self.token
                    else None,
                )
            return self._actor

    def forget_actor(self) -> None:
        self._actor = None

    async def call(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        if self.session is not None:
            async with self._session_lock:
                return await work(self.session)
        async with self.services.database.transaction() as session:
            return await work(session)

    async def _load_users(self, ids: Sequence[uuid.UUID]) -> list[User | None]:
        actor = await self.actor()
        found = await self.call(lambda session: identity.users_by_ids(session, actor, ids))
        return [found.get(user_id) for user_id in ids]

    async def _load_owner_pages(self, keys: Sequence[OwnerPageKey]) -> list[ProjectRows]:
        actor = await self.actor()
        runtime = self.services.get(PROJECTS)
        pages: dict[OwnerPageKey, ProjectRows] = {}
        for limit in sorted({first for _owner, first in keys}):
            owners = [owner for owner, first in keys if first == limit]

            async def load(
                session: AsyncSession, owners: list[uuid.UUID] = owners, limit: int = limit
            ) -> dict[uuid.UUID, ProjectRows]:
                return await projects.first_projects_of_owners(
                    session, actor, owners, limit=limit, runtime=runtime
                )

            found = await self.call(load)
            pages.update({(owner, limit): page for owner, page in found.items()})
        return [pages[key] for key in keys]
