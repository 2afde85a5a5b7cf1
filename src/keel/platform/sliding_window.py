"""The shared sliding-window counter: one Redis round trip per request (or per lease of
several hits), the same counting as `limits`' SlidingWindowCounterRateLimiter (docs/adr/0002)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # whole seconds until the window frees capacity

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after).encode()),
        ]


# The sliding window counter of `limits` (SlidingWindowCounterRateLimiter), in one round trip:
# count = previous window * (unelapsed fraction) + current window; a hit is taken only if it
# fits. Time comes from the Redis server, so every instance agrees on the window boundaries.
_SLIDING_WINDOW_LUA = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now_ms / window_ms)
local elapsed = now_ms - index * window_ms
local current_key = KEYS[1] .. ':' .. index
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (index - 1)) or '0')
local current = tonumber(redis.call('GET', current_key) or '0')
local weighted = previous * (window_ms - elapsed) / window_ms + current
local allowed = 0
if weighted + cost <= limit then
  allowed = 1
  current = redis.call('INCRBY', current_key, cost)
  if current == cost then
    redis.call('PEXPIRE', current_key, window_ms * 2 + 1000)
  end
end
return {allowed, previous, current, elapsed}
"""


@dataclass(slots=True)
class _Lease:
    """Hits taken from Redis in advance by this instance, spent locally until they run out."""

    tokens: int
    expires: float  # monotonic
    remaining: int  # the shared remaining count when the lease was taken
    reset_at: float  # monotonic


def lease_size(limit: int) -> int:
    """Hits reserved per Redis round trip: 1 (exact) for small limits, up to 20 for large ones.

    A lease over-counts by at most its unspent part per instance (≤ 1 % of the limit), and
    only while the lease lives (LEASE_SECONDS), so the shared limit stays within a few percent.
    """
    return max(1, min(limit // 100, 20))


LEASE_SECONDS = 1.0
MAX_LEASES = 10000


class RedisSlidingWindow:
    """The shared limiter: one EVALSHA per request, or per lease of several hits."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW_LUA)
        self._leases: dict[str, _Lease] = {}

    async def hit(self, item: RateLimitItem, key: str) -> Decision:
        size = lease_size(item.amount)
        if size == 1:
            return await self._take(item, key, 1)
        now = time.monotonic()
        lease = self._leases.get(key)
        if lease is not None and lease.tokens > 0 and now < lease.expires:
            lease.tokens -= 1
            return Decision(
                allowed=True,
                limit=item.amount,
                remaining=lease.remaining + lease.tokens,
                reset_after=max(0, math.ceil(lease.reset_at - now)),
            )
        decision = await self._take(item, key, size)
        if not decision.allowed:
            # Not room for a whole lease: near the limit every hit goes to Redis, exactly.
            self._leases.pop(key, None)
            return await self._take(item, key, 1)
        if len(self._leases) >= MAX_LEASES:
            self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
            if len(self._leases) >= MAX_LEASES:
                self._leases.clear()
        self._leases[key] = _Lease(
            tokens=size - 1,
            expires=now + LEASE_SECONDS,
            remaining=decision.remaining,
            reset_at=now + decision.reset_after,
        )
        return Decision(
            allowed=True,
            limit=item.amount,
            remaining=decision.remaining + size - 1,
            reset_after=decision.reset_after,
        )

    async def _take(self, item: RateLimitItem, key: str, cost: int) -> Decision:
        window_ms = item.get_expiry() * 1000
        raw = await self._script(keys=[f"keel:rl:{key}:{item.amount}/{item.get_expiry()}"],
                                 args=[item.amount, window_ms, cost])  # fmt: skip
        allowed, previous, current, elapsed = (int(v) for v in raw)
        return sliding_window_decision(
            limit=item.amount,
            window=item.get_expiry(),
            allowed=bool(allowed),
            previous=previous,
            current=current,
            elapsed=elapsed / 1000,
        )


def sliding_window_decision(
    *, limit: int, window: float, allowed: bool, previous: int, current: int, elapsed: float
) -> Decision:
    """Headers for a sliding-window-counter state (counts after the hit, if it was taken)."""
    weighted = previous * (window - elapsed) / window + current
    remaining = max(0, math.floor(limit - weighted))
    if allowed:
        # When the current window (and with it the weight of the previous one) rolls over.
        reset = window - elapsed
    elif current + 1 > limit:
        # The current window alone is full: wait for it to roll over and decay enough.
        reset = (window - elapsed) + window * (1 - (limit - 1) / current)
    else:
        # The previous window's weight has to decay until one more request fits.
        reset = window * (1 - (limit - 1 - current) / previous) - elapsed
    reset_after = max(0, math.ceil(reset))
    return Decision(
        allowed=allowed,
        limit=limit,
        remaining=remaining,
        reset_after=max(1, reset_after) if not allowed else reset_after,
    )
