"""Brute-force protection: failed sign-ins counted per account and per IP, then a lockout.

Counters live in Redis when the app has a client (so every instance sees the same counts),
in process otherwise. A scope (account or IP) that reaches its threshold within the window is
locked for the lockout period: even the right password gets 429 until it ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from keel.platform.outage import Outage
from keel.platform.security import sha256_hex

log = structlog.get_logger("keel.identity.throttle")

KEY_PREFIX = "keel:login"
# The in-process table is pruned of expired entries when it grows past this many keys.
MEMORY_PRUNE_AT = 100_000


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing failures are counted against: an account (email digest) or an IP."""

    kind: str
    key: str
    threshold: int

    @classmethod
    def account(cls, email: str, threshold: int) -> Scope:
        # A digest, so Redis keys and memory never hold addresses in clear.
        return cls("account", sha256_hex(email.strip().lower()), threshold)

    @classmethod
    def ip(cls, address: str, threshold: int) -> Scope:
        return cls("ip", address, threshold)


@dataclass(frozen=True, slots=True)
class Failure:
    """What counting one failed sign-in found."""

    locked: list[Scope]
    count: int  # the highest failure count among the scopes, this failure included


def failure_delay(count: int, *, ceiling: float) -> float:
    """How long to hold the answer to the count-th failed sign-in in a window.

    The first failure is answered at once (a typo), then 0.25 s, 0.5 s, 1 s… up to the
    ceiling: repeated failures are slowed before the lockout stops them.
    """
    if count < 2 or ceiling <= 0:
        return 0.0
    return float(min(0.25 * 2 ** (count - 2), ceiling))


class LoginThrottle(Protocol):
    async def retry_after(self, scopes: list[Scope]) -> int:
        """Seconds until every given scope is unlocked (0: none is locked)."""

    async def record_failure(self, scopes: list[Scope]) -> Failure:
        """Count one failure against each scope: the scopes it locked and the highest count."""

    async def reset(self, scope: Scope) -> None:
        """Forget the failures of a scope (after a successful sign-in)."""


class MemoryLoginThrottle:
    """The embedded shape's throttle: counters in a dict, per process."""

    def __init__(self, *, window_seconds: int, lockout_seconds: int) -> None:
        self._window = window_seconds
        self._lockout = lockout_seconds
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, window end)
        self._locks: dict[str, float] = {}  # key -> locked until

    async def retry_after(self, scopes: list[Scope]) -> int:
        now = time.monotonic()
        until = max((self._locks.get(_key(s), 0.0) for s in scopes), default=0.0)
        return math.ceil(until - now) if until > now else 0

    async def record_failure(self, scopes: list[Scope]) -> Failure:
        now = time.monotonic()
        if len(self._failures) > MEMORY_PRUNE_AT:
            self._prune(now)
        locked: list[Scope] = []
        highest = 0
        for scope in scopes:
            key = _key(scope)
            count, ends = self._failures.get(key, (0, now + self._window))
            if ends <= now:
                count, ends = 0, now + self._window
            count += 1
            highest = max(highest, count)
            self._failures[key] = (count, ends)
            if count >= scope.threshold:
                self._locks[key] = now + self._lockout
                self._failures.pop(key, None)
                locked.append(scope)
        return Failure(locked=locked, count=highest)

    async def reset(self, scope: Scope) -> None:
        self._failures.pop(_key(scope), None)

    def _prune(self, now: float) -> None:
        self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
        self._locks = {k: v for k, v in self._locks.items() if v > now}


class RedisLoginThrottle:
    """The scaled-out throttle: INCR with a window expiry, a lock key with the lockout TTL.

    When Redis fails, counting continues in process (per instance) rather than failing
    sign-ins: weaker across instances for the outage, never an open door, never an outage.
    """

    def __init__(self, redis: Redis, *, window_seconds: int, lockout_seconds: int) -> None:
        self._redis = redis
        self._window = window_seconds
        self._lockout = lockout_seconds
        self._fallback = MemoryLoginThrottle(
            window_seconds=window_seconds, lockout_seconds=lockout_seconds
        )
        self._outage = Outage("login_throttle_redis", logger=log)

    def _failed(self, exc: Exception) -> MemoryLoginThrottle:
        self._outage.failed(exc)
        return self._fallback

    def _redis_usable(self) -> bool:
        return self._outage.usable()

    async def retry_after(self, scopes: list[Scope]) -> int:
        local = await self._fallback.retry_after(scopes)
        if not self._redis_usable():
            return local
        try:
            shared = await self._shared_retry_after(scopes)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return local
        self._outage.recovered()
        return max(shared, local)

    async def record_failure(self, scopes: list[Scope]) -> Failure:
        if not self._redis_usable():
            return await self._fallback.record_failure(scopes)
        try:
            return await self._shared_record_failure(scopes)
        except (RedisError, OSError) as exc:
            return await self._failed(exc).record_failure(scopes)

    async def reset(self, scope: Scope) -> None:
        await self._fallback.reset(scope)
        if not self._redis_usable():
            return
        try:
            await self._redis.delete(_key(scope, "fail"))
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def _shared_retry_after(self, scopes: list[Scope]) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.pttl(_key(scope, "lock"))
            ttls: list[int] = await pipe.execute()
        longest = max((ttl for ttl in ttls if ttl > 0), default=0)
        return math.ceil(longest / 1000)

    async def _shared_record_failure(self, scopes: list[Scope]) -> Failure:
        async with self._redis.pipeline(transaction=True) as pipe:
            for scope in scopes:
                key = _key(scope, "fail")
                pipe.incr(key)
                pipe.expire(key, self._window, nx=True)
            results: list[int] = await pipe.execute()
        locked: list[Scope] = []
        for index, scope in enumerate(scopes):
            if int(results[index * 2]) >= scope.threshold:
                # NX: only the failure that crosses the threshold starts (and reports) the lock.
                started = await self._redis.set(
                    _key(scope, "lock"), b"1", ex=self._lockout, nx=True
                )
                await self._redis.delete(_key(scope, "fail"))
                if started:
                    locked.append(scope)
        highest = max((int(results[index * 2]) for index in range(len(scopes))), default=0)
        return Failure(locked=locked, count=highest)


def _key(scope: Scope, suffix: str = "") -> str:
    return f"{KEY_PREFIX}:{suffix}:{scope.kind}:{scope.key}" if suffix else scope.kind + scope.key
