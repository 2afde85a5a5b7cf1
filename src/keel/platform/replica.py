"""Read-replica routing with read-your-writes: the WAL positions of recent writes."""

from __future__ import annotations

import uuid

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("keel.db")

# session.info keys: who writes in this transaction (set with the RLS actor), and the replay
# position of the replica a read session was opened on (absent: the primary).
ACTOR_KEY = "keel.replica.actor"
REPLAY_KEY = "keel.replica.replay_lsn"
_NEWEST = "*"
_ZSET = "keel:wal"
# How long a user keeps reading from the primary at most after a write; far above any lag
# at which the replica would still be useful.
USER_FENCE_SECONDS = 300


def parse_lsn(text: str) -> int:
    """A pg_lsn ('16/B374D848') as an integer that orders like it."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class WriteFence:
    """Remembers how far the primary's WAL had gone when each recent write committed: per
    user (a user's reads wait for the replica to pass it) and the newest of all (a replica
    read may fill the shared cache only when the replica had replayed every write known).

    With Redis every instance shares it; without, it is this process's. A failure to read it
    routes to the primary and skips the cache fill: stale is never the fallback.
    """

    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis
        self._users: dict[uuid.UUID, int] = {}
        self._newest = 0

    async def record(self, *, user_id: uuid.UUID | None, lsn: int) -> None:
        if self._redis is None:
            self._newest = max(self._newest, lsn)
            if user_id is not None:
                self._users[user_id] = max(self._users.get(user_id, 0), lsn)
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(_ZSET, {_NEWEST: lsn}, gt=True)
                if user_id is not None:
                    pipe.set(f"keel:wal:user:{user_id}", lsn, ex=USER_FENCE_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("write_fence_record_failed", error=type(exc).__name__)

    async def user_lsn(self, user_id: uuid.UUID) -> int | None:
        """The user's last write position (0: none known); None when it cannot be read."""
        if self._redis is None:
            return self._users.get(user_id, 0)
        try:
            raw = await self._redis.get(f"keel:wal:user:{user_id}")
        except (RedisError, OSError):
            return None
        return int(raw or 0)

    async def newest(self) -> int | None:
        """The newest write position recorded by any instance; None when unreadable."""
        if self._redis is None:
            return self._newest
        try:
            score = await self._redis.zscore(_ZSET, _NEWEST)
        except (RedisError, OSError):
            return None
        return int(score or 0)
