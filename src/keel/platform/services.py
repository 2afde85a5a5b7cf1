"""The one typed container of the app's parts: built in create_app, read by every front door."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from redis.asyncio import Redis
from starlette.applications import Starlette

from keel.platform.bus import Bus
from keel.platform.cache import Cache
from keel.platform.db import Database
from keel.platform.lifecycle import Lifecycle
from keel.platform.ratelimit import RateLimiter
from keel.platform.security import Encryptor, PasswordHasher, TokenCodec
from keel.settings import Settings

T = TypeVar("T")
Probe = Callable[[], Awaitable[object]]


class Slot(Generic[T]):
    """A typed place in `Services` for a part that a feature provides (declared beside it).

    Platform parts are plain fields; features register theirs under a slot so that the
    platform never imports a feature, yet every reader gets its part typed.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


@dataclass(eq=False)
class Services:
    """Everything create_app wires, in one place; front doors read it through `services_of`."""

    settings: Settings
    database: Database
    cache: Cache
    redis: Redis | None
    bus: Bus
    limiter: RateLimiter | None
    tokens: TokenCodec
    hasher: PasswordHasher
    encryptor: Encryptor
    readiness_probes: dict[str, Probe] = field(default_factory=dict)
    # Draining on SIGTERM; front doors and workers register drain callbacks (`on_drain`).
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    _parts: dict[Slot[object], object] = field(default_factory=dict, init=False, repr=False)

    def provide(self, slot: Slot[T], part: T) -> None:
        if slot in self._parts:
            raise RuntimeError(f"{slot} is provided twice")
        self._parts[slot] = part  # type: ignore[index]  # Slot is invariant in T

    def get(self, slot: Slot[T]) -> T:
        try:
            part = self._parts[slot]  # type: ignore[index]  # Slot is invariant in T
        except KeyError:
            raise RuntimeError(f"{slot} was not provided by create_app") from None
        return part  # type: ignore[return-value]  # provide() stored a T under this slot


def services_of(app: Starlette) -> Services:
    """The app's container: the one read of Starlette's untyped state."""
    services: Services = app.state.services
    return services
